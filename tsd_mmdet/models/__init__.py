"""TSD's mmdet modules; importing this package registers them in ``mmdet.registry.MODELS``.

Together they implement the TSD loss of eq. 9: extractor (eq. 3-6), heads (eq. 2-5), PC (eq. 7-8).
"""
from .bbox_heads import TSDBBoxHead
from .losses import ProgressiveConstraintCls, ProgressiveConstraintLoc
from .roi_extractors import TSDRoIExtractor
from .roi_heads import TSDCascadeRoIHead, TSDRoIHead

__all__ = [
    'ProgressiveConstraintCls', 'ProgressiveConstraintLoc', 'TSDBBoxHead', 'TSDCascadeRoIHead',
    'TSDRoIExtractor', 'TSDRoIHead'
]
