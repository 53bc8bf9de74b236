"""Datasets of tsd-mmdet: the generated "shapes" data and the checks every run makes first.

Not an equation of the paper (the data the main job trains on, and clear errors for bad data).
"""
from . import shapes
from .checks import (
    DEGENERATE_BOX_POLICIES,
    MIN_BOX_SIZE,
    DatasetCheckError,
    check_datasets,
    ensure_default_dataset,
)

__all__ = ['DEGENERATE_BOX_POLICIES', 'MIN_BOX_SIZE', 'DatasetCheckError', 'check_datasets',
           'ensure_default_dataset', 'shapes']
