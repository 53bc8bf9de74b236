"""TSDCascadeRoIHead: Cascade R-CNN whose every stage is a TSD head with its own sibling and PC.

Implements the TSD loss of eq. 9 at each cascade stage (TSD in Cascade R-CNN, Table 6), weighted by
mmdet's stage loss weights; the boxes passed to the next stage are decoded from P-hat_r (eq. 4).
"""
from collections.abc import Sequence

from mmdet.models.roi_heads import CascadeRoIHead
from mmdet.models.task_modules.samplers import SamplingResult
from mmdet.registry import MODELS
from mmdet.utils import OptConfigType, OptMultiConfig
from torch import Tensor

from .sibling_tolerant_loading import SiblingTolerantLoadMixin
from .tsd_stage import TSDStageMixin


@MODELS.register_module()
class TSDCascadeRoIHead(SiblingTolerantLoadMixin, TSDStageMixin, CascadeRoIHead):
    """Cascade RoI head with TSD box heads (Fig. 2 at every stage).

    Each stage pools F from its own proposals P (the RPN's at stage 0, the previous stage's
    refined boxes after), predicts delta_c / delta_r and runs the TSD branches on F-hat_c / F-hat_r,
    exactly as :class:`TSDRoIHead`: both run :class:`TSDStageMixin`'s box forward and losses, here
    with the modules of the stage passed explicitly (:meth:`stage_modules`). In training, the
    stage's sibling head runs on F, and the PC terms compare the two. The refined boxes handed to
    the next stage, in training and at inference, are the TSD regression decoded from P-hat_r;
    the sibling heads never run at inference. Mask heads, if any, are mmdet's, on the sampled
    proposals of each stage.

    Loss keys: ``s{i}.`` + the keys of :class:`TSDRoIHead`; every key with ``loss`` in its name
    is multiplied by ``stage_loss_weights[i]`` (PC terms included), as mmdet does.

    Checkpoints load strictly across the two set-ups, as for :class:`TSDRoIHead`: with siblings
    and none of their weights in the checkpoint, the initialised siblings are kept; without
    siblings, the checkpoint's ``sibling_head.*`` keys are ignored.

    Args:
        num_stages (int): Number of cascade stages.
        stage_loss_weights (list[float]): Loss weight of each stage.
        bbox_roi_extractor (dict | list[dict]): TSDRoIExtractor config(s), one per stage or shared.
        bbox_head (dict | list[dict]): TSDBBoxHead config(s), one per stage or shared.
        sibling_head (dict | list[dict], optional): Sibling head config(s) H_*, one per stage or
            one for all (built once per stage), or None (no joint training, no PC).
        pc_cls (dict, optional): ``dict(type='ProgressiveConstraintCls', ...)`` or None; shared.
        pc_loc (dict, optional): ``dict(type='ProgressiveConstraintLoc', ...)`` or None; shared.
        **kwargs: :class:`mmdet.models.roi_heads.CascadeRoIHead` arguments.
    """

    tsd_inference = 'cascade'

    def __init__(self,
                 num_stages: int,
                 stage_loss_weights: Sequence[float],
                 sibling_head: OptMultiConfig = None,
                 pc_cls: OptConfigType = None,
                 pc_loc: OptConfigType = None,
                 **kwargs) -> None:
        self.check_tsd_config(type(self).__name__, sibling_head, pc_cls, pc_loc)
        super().__init__(num_stages=num_stages, stage_loss_weights=stage_loss_weights, **kwargs)
        self.build_tsd(sibling_head, pc_cls, pc_loc)

    def _bbox_forward(self, stage: int, x: tuple[Tensor], rois: Tensor) -> dict:
        """:meth:`TSDStageMixin.tsd_bbox_forward` with the modules of ``stage``.

        Args:
            stage (int): Cascade stage.
            x (tuple[Tensor]): Multi-level features, each (N, C, H_l, W_l).
            rois (Tensor): P of this stage, (K, 5) [batch_idx, x1, y1, x2, y2].

        Returns:
            dict: ``cls_score``, ``bbox_pred``, ``rois_r``, ``delta_c``, ``delta_r``,
            ``bbox_feats`` (and the sibling outputs in training), as TSDRoIHead.
        """
        return self.tsd_bbox_forward(x, rois, *self.stage_modules(stage))

    def bbox_loss(self, stage: int, x: tuple[Tensor], sampling_results: list[SamplingResult],
                  fused_feats: Tensor | None = None) -> dict:
        """:meth:`TSDStageMixin.tsd_bbox_loss` for ``stage``, with ``rois`` set to P-hat_r.

        ``CascadeRoIHead.loss`` refines the boxes with ``bbox_head.refine_bboxes``, which decodes
        ``bbox_pred`` from ``rois``: TSD's deltas are relative to P-hat_r (``rois_r``).

        Args:
            stage (int): Cascade stage.
            x (tuple[Tensor]): Multi-level features.
            sampling_results (list[SamplingResult]): Sampling results of this stage.
            fused_feats (Tensor, optional): Added to F (:meth:`TSDStageMixin.tsd_bbox_forward`).

        Returns:
            dict: TSDRoIHead's box results plus ``rois`` (K, 5), equal to ``rois_r``.
        """
        train_cfg = None if self.train_cfg is None else self.train_cfg[stage]
        bbox_results = self.tsd_bbox_loss(x, sampling_results, *self.stage_modules(stage),
                                          train_cfg, fused_feats)
        bbox_results['rois'] = bbox_results['rois_r']
        return bbox_results

    def _refine_roi(self, x: tuple[Tensor], rois: Tensor, batch_img_metas: list[dict],
                    num_proposals_per_img: Sequence[int], **kwargs) -> tuple:
        """CascadeRoIHead._refine_roi with each stage's deltas decoded from its P-hat_r.

        Args:
            x (tuple[Tensor]): Multi-level features.
            rois (Tensor): Proposals, (n, 5) [batch_idx, x1, y1, x2, y2].
            batch_img_metas (list[dict]): Image meta information.
            num_proposals_per_img (sequence[int]): Number of proposals of each image.
            **kwargs: Passed to :meth:`_bbox_forward` (HTC's ``semantic_feat``).

        Returns:
            tuple: ``rois`` (list of (n_i, 5)): the last stage's P-hat_r, which its ``bbox_preds``
            are relative to; ``cls_scores`` (list of (n_i, num_classes + 1)): scores averaged
            over the stages; ``bbox_preds`` (list of (n_i, 4) or (n_i, 4 * num_classes)): the
            last stage's deltas.
        """
        ms_scores = []
        for stage in range(self.num_stages):
            bbox_results = self._bbox_forward(stage, x, rois, **kwargs)
            rois_r = bbox_results['rois_r'].split(num_proposals_per_img, 0)
            cls_scores = bbox_results['cls_score'].split(num_proposals_per_img, 0)
            bbox_preds = bbox_results['bbox_pred'].split(num_proposals_per_img, 0)
            ms_scores.append(cls_scores)
            if stage < self.num_stages - 1:
                rois = self.tsd_next_rois(stage, rois_r, cls_scores, bbox_preds,
                                          batch_img_metas)
        cls_scores = [
            sum(score[i] for score in ms_scores) / len(ms_scores)
            for i in range(len(batch_img_metas))
        ]
        return list(rois_r), cls_scores, bbox_preds
