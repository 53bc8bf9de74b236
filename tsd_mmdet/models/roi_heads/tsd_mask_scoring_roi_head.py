"""TSDMaskScoringRoIHead: Mask Scoring R-CNN with TSD's box branch (TSD host, one stage).

Implements the TSD loss of eq. 9 for detection, as TSDRoIHead does; the mask head and the MaskIoU
head are Mask Scoring R-CNN's, unchanged.
"""
from mmdet.models.roi_heads import MaskScoringRoIHead
from mmdet.registry import MODELS

from .tsd_roi_head import TSDRoIHead


@MODELS.register_module()
class TSDMaskScoringRoIHead(TSDRoIHead, MaskScoringRoIHead):
    """Mask Scoring R-CNN (``MaskScoringRoIHead``) whose box branch is TSD's (Fig. 2).

    Nothing is overridden: the box forward, losses and box inference are :class:`TSDRoIHead`'s;
    the mask and MaskIoU losses (on the sampled proposals P and F, ``bbox_feats``) and the mask
    inference (on TSD's detections) are ``MaskScoringRoIHead``'s. Its inference is its own
    (mask scores), so export refuses it (``tsd_inference`` None).

    Args:
        **kwargs: :class:`TSDRoIHead` and ``MaskScoringRoIHead`` arguments (``mask_iou_head``).
    """

    tsd_inference = None
