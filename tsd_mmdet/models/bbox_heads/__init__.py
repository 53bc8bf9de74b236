"""Box heads of TSD.

The disentangled head H^D of eq. 2 with its offset predictors (eq. 3, 5).
"""
from .bbox_targets import bbox_targets, degenerate_boxes
from .tsd_bbox_head import TSDBBoxHead

__all__ = ['TSDBBoxHead', 'bbox_targets', 'degenerate_boxes']
