"""TSDPISARoIHead: PISA's RoI head with TSD's box branch (TSD host, one stage).

Implements the TSD loss of eq. 9 as TSDRoIHead does, with PISA's prime-sample reweighting (Score-HLR
negative weights, ISR-P positive weights) and its CARL loss applied to L_cls^D, L_loc^D (eq. 2).
"""
from mmdet.models.losses.pisa_loss import carl_loss, isr_p
from mmdet.models.roi_heads import PISARoIHead
from mmdet.models.task_modules.samplers import SamplingResult
from mmdet.registry import MODELS
from mmengine.config import ConfigDict
from torch import Tensor

from ..bbox_heads import TSDBBoxHead
from .tsd_roi_head import TSDRoIHead


@MODELS.register_module()
class TSDPISARoIHead(TSDRoIHead, PISARoIHead):
    """PISA (``PISARoIHead``) whose box branch is TSD's (Fig. 2), with sibling and PC.

    PISA's reweighting is applied to TSD's branches, the detector's box branch at inference:
    the negatives' Score-HLR weights (from mmdet's ``ScoreHLRSampler``, which scores the
    negatives with this head's forward: TSD's classifier), ISR-P's positive weights (from the
    IoU of TSD's boxes decoded from P-hat_r) and CARL on TSD's scores and deltas (loss key
    ``loss_carl_tsd``). The sibling's losses stay unweighted, as in Faster R-CNN; the paper is
    silent on PISA. The sampler groups negatives by NMS over boxes it decodes from P (mmdet's code,
    unchanged), where TSD's deltas are relative to P-hat_r: an approximation of the grouping only.

    Args:
        **kwargs: :class:`TSDRoIHead` and :class:`mmdet.models.roi_heads.PISARoIHead` arguments.
    """

    def bbox_loss(self, x: tuple[Tensor], sampling_results: list[SamplingResult],
                  neg_label_weights: list[Tensor | None] | None = None) -> dict:
        """:meth:`TSDRoIHead.bbox_loss` with the sampler's negative label weights.

        Args:
            x (tuple[Tensor]): Multi-level features.
            sampling_results (list[SamplingResult]): Sampling results of the batch.
            neg_label_weights (list[Tensor | None], optional): Per image (num_neg,) weights of
                the negatives (ScoreHLRSampler), or None.

        Returns:
            dict: :meth:`TSDRoIHead.bbox_loss`'s results.
        """
        return self.tsd_bbox_loss(x, sampling_results, self.bbox_roi_extractor, self.bbox_head,
                                  self.sibling_head, self.train_cfg,
                                  neg_label_weights=neg_label_weights)

    def tsd_branch_loss(self, bbox_results: dict, sampling_results: list[SamplingResult],
                        bbox_head: TSDBBoxHead, train_cfg: ConfigDict,
                        neg_label_weights: list[Tensor | None] | None = None) -> dict:
        """PISARoIHead.bbox_loss's losses on TSD's outputs, targets against P-hat_r.

        Returns:
            dict: ``loss_bbox`` (``loss_cls_tsd``, ``loss_bbox_tsd``, ``acc_tsd`` and, with
            ``carl`` in ``train_cfg``, ``loss_carl_tsd``) and ``bbox_targets`` (reweighted).
        """
        cls_score, bbox_pred = bbox_results['cls_score'], bbox_results['bbox_pred']
        rois = bbox_results['rois_r']
        if bbox_head.detach_reg_targets:
            rois = rois.detach()
        labels, label_weights, targets, weights = bbox_head.get_targets(
            sampling_results, train_cfg, rois=rois)
        if neg_label_weights is not None and neg_label_weights[0] is not None:
            start = 0
            for res, neg_weights in zip(sampling_results, neg_label_weights):
                num_pos, num_neg = len(res.pos_inds), len(res.neg_inds)
                label_weights[start + num_pos:start + num_pos + num_neg] = neg_weights
                start += num_pos + num_neg
        isr_cfg = train_cfg.get('isr', None)
        if isr_cfg is not None:
            # weights only: ISR-P ranks by IoU, no gradient goes through its boxes
            labels, label_weights, _, weights = isr_p(
                cls_score, bbox_pred, (labels, label_weights, targets.detach(), weights),
                rois.detach(), sampling_results, bbox_head.loss_cls, bbox_head.bbox_coder,
                **isr_cfg, num_class=bbox_head.num_classes)
        losses = bbox_head.loss(cls_score, bbox_pred, rois, labels, label_weights, targets,
                                weights)
        carl_cfg = train_cfg.get('carl', None)
        if carl_cfg is not None:
            losses.update(carl_loss(cls_score, labels, bbox_pred, targets, bbox_head.loss_bbox,
                                    **carl_cfg, num_class=bbox_head.num_classes))
        return dict(loss_bbox={f'{k}_tsd': v for k, v in losses.items()},
                    bbox_targets=(labels, label_weights, targets, weights))
