"""RoI heads of TSD.

TSDRoIHead (and its cascade variant) wire the TSD loss of eq. 9 into mmdet's two-stage detectors;
the hosts beside them do the same for mmdet's other RoI heads (one file each); TSDStageMixin is
the contract every TSD RoI head keeps (its stages, their modules and gammas).
"""
from .tsd_cascade_roi_head import TSDCascadeRoIHead
from .tsd_dynamic_roi_head import TSDDynamicRoIHead
from .tsd_htc_roi_head import TSDHybridTaskCascadeRoIHead
from .tsd_mask_scoring_roi_head import TSDMaskScoringRoIHead
from .tsd_pisa_roi_head import TSDPISARoIHead
from .tsd_point_rend_roi_head import TSDPointRendRoIHead
from .tsd_roi_head import TSDRoIHead
from .tsd_stage import TSDStage, TSDStageMixin
from .tsd_trident_roi_head import TSDTridentRoIHead
from .unsupported_hosts import UnsupportedHostError

__all__ = [
    'TSDCascadeRoIHead', 'TSDDynamicRoIHead', 'TSDHybridTaskCascadeRoIHead',
    'TSDMaskScoringRoIHead', 'TSDPISARoIHead', 'TSDPointRendRoIHead', 'TSDRoIHead', 'TSDStage',
    'TSDStageMixin', 'TSDTridentRoIHead', 'UnsupportedHostError'
]
