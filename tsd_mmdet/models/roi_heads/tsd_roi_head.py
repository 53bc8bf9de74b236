"""TSDRoIHead: StandardRoIHead running the TSD head, its optional sibling head and the PC terms.

Implements the TSD loss of eq. 9: classical sibling losses (eq. 1, joint training of Table 2),
L_cls^D + L_loc^D (eq. 2) and the progressive constraints M_cls, M_loc (eq. 7-8).
"""
from mmdet.models.roi_heads import StandardRoIHead
from mmdet.models.task_modules.samplers import SamplingResult
from mmdet.models.utils import empty_instances
from mmdet.registry import MODELS
from mmdet.structures.bbox import bbox2roi
from mmdet.utils import ConfigType, InstanceList, OptConfigType
from torch import Tensor

from .sibling_tolerant_loading import SiblingTolerantLoadMixin
from .tsd_stage import TSDStageMixin


@MODELS.register_module()
class TSDRoIHead(SiblingTolerantLoadMixin, TSDStageMixin, StandardRoIHead):
    """RoI head of TSD (Fig. 2): F from P, offsets, F-hat_c / F-hat_r, the two TSD branches.

    ``bbox_roi_extractor`` must be a :class:`TSDRoIExtractor` and ``bbox_head`` a
    :class:`TSDBBoxHead`. At training time an optional sibling head (a plain mmdet box head on
    F, e.g. Shared2FCBBoxHead) is trained jointly (Table 2) and anchors the PC terms; at inference
    only TSD runs (§3.2). Mask heads work unchanged: ``bbox_feats`` is F, pooled from P. The box
    forward and losses are :class:`TSDStageMixin`'s, run with this head's modules.

    Loss keys: ``loss_cls``, ``loss_bbox``, ``acc`` (sibling, absent without it),
    ``loss_cls_tsd``, ``loss_bbox_tsd``, ``acc_tsd`` (TSD), ``loss_pc_cls``, ``loss_pc_loc`` (PC).

    Checkpoints load across the two set-ups: a head with a sibling keeps its initialised sibling
    weights when the checkpoint has none, and a head without one ignores the sibling weights of a
    checkpoint (so strict loading works both ways).

    Args:
        sibling_head (dict, optional): Config of the sibling head H_*, or None (no joint
            training, no PC).
        pc_cls (dict, optional): ``dict(type='ProgressiveConstraintCls', margin_cls=...)`` or None.
        pc_loc (dict, optional): ``dict(type='ProgressiveConstraintLoc', margin_reg=...)`` or None.
        **kwargs: :class:`mmdet.models.roi_heads.StandardRoIHead` arguments.
    """

    tsd_inference = 'standard'

    def __init__(self,
                 sibling_head: OptConfigType = None,
                 pc_cls: OptConfigType = None,
                 pc_loc: OptConfigType = None,
                 **kwargs) -> None:
        self.check_tsd_config(type(self).__name__, sibling_head, pc_cls, pc_loc)
        super().__init__(**kwargs)
        self.build_tsd(sibling_head, pc_cls, pc_loc)

    def _bbox_forward(self, x: tuple[Tensor], rois: Tensor) -> dict:
        """Box forward of training and testing (:meth:`TSDStageMixin.tsd_bbox_forward`).

        Args:
            x (tuple[Tensor]): Multi-level features, each (N, C, H_l, W_l).
            rois (Tensor): P, (K, 5) [batch_idx, x1, y1, x2, y2].

        Returns:
            dict: ``cls_score``, ``bbox_pred``, ``rois_r`` (P-hat_r), ``delta_c``, ``delta_r``,
            ``bbox_feats`` (and the sibling outputs in training).
        """
        return self.tsd_bbox_forward(x, rois, self.bbox_roi_extractor, self.bbox_head,
                                     self.sibling_head)

    def bbox_loss(self, x: tuple[Tensor], sampling_results: list[SamplingResult]) -> dict:
        """Box forward and the box losses of eq. 9 (:meth:`TSDStageMixin.tsd_bbox_loss`).

        Args:
            x (tuple[Tensor]): Multi-level features.
            sampling_results (list[SamplingResult]): Sampling results of the batch.

        Returns:
            dict: :meth:`_bbox_forward`'s results plus ``loss_bbox`` and ``bbox_targets``.
        """
        return self.tsd_bbox_loss(x, sampling_results, self.bbox_roi_extractor, self.bbox_head,
                                  self.sibling_head, self.train_cfg)

    def predict_bbox(self,
                     x: tuple[Tensor],
                     batch_img_metas: list[dict],
                     rpn_results_list: InstanceList,
                     rcnn_test_cfg: ConfigType,
                     rescale: bool = False) -> InstanceList:
        """StandardRoIHead.predict_bbox with TSD: decode ``bbox_pred`` from ``rois_r``.

        The sibling head is never run here.

        Args:
            x (tuple[Tensor]): Multi-level features.
            batch_img_metas (list[dict]): Image meta information.
            rpn_results_list (list[InstanceData]): Proposals, ``bboxes`` (n_i, 4) each.
            rcnn_test_cfg (ConfigDict): ``test_cfg`` of R-CNN.
            rescale (bool): Return boxes in the original image space. Defaults to False.

        Returns:
            list[InstanceData]: Per image ``bboxes`` (n, 4), ``scores`` (n,), ``labels`` (n,).
        """
        proposals = [res.bboxes for res in rpn_results_list]
        rois = bbox2roi(proposals)
        if rois.shape[0] == 0:
            return empty_instances(
                batch_img_metas,
                rois.device,
                task_type='bbox',
                box_type=self.bbox_head.predict_box_type,
                num_classes=self.bbox_head.num_classes,
                score_per_cls=rcnn_test_cfg is None)

        bbox_results = self._bbox_forward(x, rois)
        num_proposals_per_img = tuple(len(p) for p in proposals)
        return self.bbox_head.predict_by_feat(
            rois=bbox_results['rois_r'].split(num_proposals_per_img, 0),
            cls_scores=bbox_results['cls_score'].split(num_proposals_per_img, 0),
            bbox_preds=bbox_results['bbox_pred'].split(num_proposals_per_img, 0),
            batch_img_metas=batch_img_metas,
            rcnn_test_cfg=rcnn_test_cfg,
            rescale=rescale)
