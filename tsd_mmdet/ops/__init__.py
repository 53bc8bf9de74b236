"""Compiled op layer of tsd-mmdet: deformable RoIAlign, the pooling of TSD's derived proposals.

Prop.w (eq. 3-4) and Point.w (eq. 5-6); needs torch alone (no mmcv/mmdet).
"""
from .deform_roi_align import MAX_SAMPLING_GRID, DeformRoIAlign, deform_roi_align, has_extension
from .reference import deform_roi_align_reference

__all__ = ['MAX_SAMPLING_GRID', 'DeformRoIAlign', 'deform_roi_align', 'deform_roi_align_reference',
           'has_extension']
