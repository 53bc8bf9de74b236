"""TSDTridentRoIHead: TridentNet's RoI head with TSD's box branch in every branch (TSD host).

Implements the TSD loss of eq. 9 as TSDRoIHead does, on each trident branch's proposals and
features (the branches share the head's weights); the merge of the branches at test is TridentNet's.
"""
from mmdet.models.roi_heads import TridentRoIHead
from mmdet.registry import MODELS

from .tsd_roi_head import TSDRoIHead


@MODELS.register_module()
class TSDTridentRoIHead(TSDRoIHead, TridentRoIHead):
    """TridentNet (``TridentRoIHead``) whose box branch is TSD's (Fig. 2), per trident branch.

    TridentFasterRCNN stacks the branches along the batch (its images repeated once per
    branch), so TSD runs per branch with shared weights, as TridentNet's box head does; the
    branches' detections are merged at test by ``TridentRoIHead.predict`` (NMS), unchanged.
    TridentNet is a C4 detector: the shared res5 (``shared_head``) runs on F, F-hat_c and F-hat_r
    and the TSD head averages them (``with_avg_pool``), as :meth:`TSDStageMixin.tsd_bbox_forward`
    describes. Its inference merges branches, so export refuses it (``tsd_inference`` None).

    Args:
        **kwargs: :class:`TSDRoIHead` and ``TridentRoIHead`` arguments (``num_branch``,
            ``test_branch_idx``).
    """

    tsd_inference = None
