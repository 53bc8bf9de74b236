"""RoI heads of TSD.

TSDRoIHead (and its cascade variant) wire the TSD loss of eq. 9 into mmdet's two-stage detectors;
TSDStageMixin is the contract every TSD RoI head keeps (its stages, their modules and gammas).
"""
from .tsd_cascade_roi_head import TSDCascadeRoIHead
from .tsd_roi_head import TSDRoIHead
from .tsd_stage import TSDStage, TSDStageMixin

__all__ = ['TSDCascadeRoIHead', 'TSDRoIHead', 'TSDStage', 'TSDStageMixin']
