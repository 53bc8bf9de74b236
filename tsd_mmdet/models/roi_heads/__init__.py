"""RoI heads of TSD.

TSDRoIHead (and its cascade variant) wire the TSD loss of eq. 9 into mmdet's two-stage detectors.
"""
from .tsd_cascade_roi_head import TSDCascadeRoIHead
from .tsd_roi_head import TSDRoIHead

__all__ = ['TSDCascadeRoIHead', 'TSDRoIHead']
