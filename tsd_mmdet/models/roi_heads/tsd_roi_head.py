"""TSDRoIHead: StandardRoIHead running the TSD head, its optional sibling head and the PC terms.

Implements the TSD loss of eq. 9: classical sibling losses (eq. 1, joint training of Table 2),
L_cls^D + L_loc^D (eq. 2) and the progressive constraints M_cls, M_loc (eq. 7-8).
"""

import torch
from mmdet.models.roi_heads import StandardRoIHead
from mmdet.models.task_modules.samplers import SamplingResult
from mmdet.models.utils import empty_instances
from mmdet.registry import MODELS
from mmdet.structures.bbox import bbox2roi, bbox_overlaps, get_box_tensor
from mmdet.utils import ConfigType, InstanceList, OptConfigType
from torch import Tensor, nn

from ..bbox_heads import TSDBBoxHead, bbox_targets
from ..roi_extractors import TSDRoIExtractor
from .sibling_tolerant_loading import SiblingTolerantLoadMixin


def _decode_class_boxes(head: nn.Module, priors: Tensor, bbox_pred: Tensor,
                        labels: Tensor) -> Tensor:
    """Decode each row's deltas for its own label with ``head.bbox_coder``.

    Args:
        head (BBoxHead): Head that predicted ``bbox_pred``.
        priors (Tensor): (P, 4) boxes the deltas are relative to.
        bbox_pred (Tensor): (P, 4 * num_classes) or (P, 4) if class agnostic.
        labels (Tensor): (P,) foreground labels.

    Returns:
        Tensor: (P, 4) boxes.
    """
    if not head.reg_class_agnostic:
        bbox_pred = bbox_pred.view(bbox_pred.size(0), head.num_classes,
                                   head.bbox_coder.encode_size)
        bbox_pred = bbox_pred[torch.arange(bbox_pred.size(0), device=labels.device), labels]
    return get_box_tensor(head.bbox_coder.decode(priors, bbox_pred))


@MODELS.register_module()
class TSDRoIHead(SiblingTolerantLoadMixin, StandardRoIHead):
    """RoI head of TSD (Fig. 2): F from P, offsets, F-hat_c / F-hat_r, the two TSD branches.

    ``bbox_roi_extractor`` must be a :class:`TSDRoIExtractor` and ``bbox_head`` a
    :class:`TSDBBoxHead`. At training time an optional sibling head (a plain mmdet box head on
    F, e.g. Shared2FCBBoxHead) is trained jointly (Table 2) and anchors the PC terms; at inference
    only TSD runs (§3.2). Mask heads work unchanged: ``bbox_feats`` is F, pooled from P.

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

    def __init__(self,
                 sibling_head: OptConfigType = None,
                 pc_cls: OptConfigType = None,
                 pc_loc: OptConfigType = None,
                 **kwargs) -> None:
        if sibling_head is None and (pc_cls is not None or pc_loc is not None):
            raise ValueError('TSDRoIHead: the progressive constraint (pc_cls / pc_loc) compares '
                             'TSD with the sibling head; set sibling_head or drop PC')
        if kwargs.get('shared_head') is not None:
            raise ValueError('TSDRoIHead does not support shared_head')
        super().__init__(**kwargs)
        self.sibling_head = None if sibling_head is None else MODELS.build(sibling_head)
        self.pc_cls = None if pc_cls is None else MODELS.build(pc_cls)
        self.pc_loc = None if pc_loc is None else MODELS.build(pc_loc)
        if self.with_sibling and self.sibling_head.num_classes != self.bbox_head.num_classes:
            raise ValueError('TSDRoIHead: sibling_head and bbox_head differ in num_classes')

    @property
    def with_sibling(self) -> bool:
        """bool: whether the head trains a sibling head jointly."""
        return self.sibling_head is not None

    def init_bbox_head(self, bbox_roi_extractor: ConfigType, bbox_head: ConfigType) -> None:
        """Build the box RoI extractor and head, checking they are TSD's.

        Args:
            bbox_roi_extractor (dict): Config of a TSDRoIExtractor.
            bbox_head (dict): Config of a TSDBBoxHead.
        """
        super().init_bbox_head(bbox_roi_extractor, bbox_head)
        if not isinstance(self.bbox_roi_extractor, TSDRoIExtractor):
            raise TypeError('TSDRoIHead needs bbox_roi_extractor type TSDRoIExtractor, got '
                            f'{type(self.bbox_roi_extractor).__name__}')
        if not isinstance(self.bbox_head, TSDBBoxHead):
            raise TypeError('TSDRoIHead needs bbox_head type TSDBBoxHead, got '
                            f'{type(self.bbox_head).__name__}')

    def _bbox_forward(self, x: tuple[Tensor], rois: Tensor) -> dict:
        """Box forward of training and testing.

        F is pooled from P; delta_c and delta_r are predicted from F; F-hat_c and F-hat_r are
        pooled from the original P moved by them (eq. 3-6). The sibling head runs on F only in
        training mode.

        Args:
            x (tuple[Tensor]): Multi-level features, each (N, C, H_l, W_l).
            rois (Tensor): P, (K, 5) [batch_idx, x1, y1, x2, y2].

        Returns:
            dict: ``cls_score`` (K, num_classes + 1) and ``bbox_pred`` (K, 4 * num_classes) of
            TSD; ``rois_r`` (K, 5) the boxes ``bbox_pred`` is relative to; ``delta_c``,
            ``delta_r`` raw offsets; ``bbox_feats`` F (K, C, k, k); in training with a sibling,
            also ``sibling_cls_score`` and ``sibling_bbox_pred``.
        """
        feats = x[:self.bbox_roi_extractor.num_inputs]
        bbox_feats = self.bbox_roi_extractor(feats, rois)
        delta_c, delta_r = self.bbox_head.forward_offsets(bbox_feats)
        cls_feats = self.bbox_roi_extractor(
            feats, rois, offset=delta_c, gamma=self.bbox_head.gamma_cls)
        reg_feats = self.bbox_roi_extractor(
            feats, rois, offset=delta_r, gamma=self.bbox_head.gamma_reg)
        cls_score, bbox_pred = self.bbox_head(cls_feats, reg_feats)
        bbox_results = dict(
            cls_score=cls_score,
            bbox_pred=bbox_pred,
            rois_r=self.bbox_head.derive_reg_rois(rois, delta_r),
            delta_c=delta_c,
            delta_r=delta_r,
            bbox_feats=bbox_feats)
        if self.training and self.with_sibling:
            sibling_cls_score, sibling_bbox_pred = self.sibling_head(bbox_feats)
            bbox_results.update(
                sibling_cls_score=sibling_cls_score, sibling_bbox_pred=sibling_bbox_pred)
        return bbox_results

    def bbox_loss(self, x: tuple[Tensor], sampling_results: list[SamplingResult]) -> dict:
        """Box forward and the box losses of eq. 9.

        Args:
            x (tuple[Tensor]): Multi-level features.
            sampling_results (list[SamplingResult]): Sampling results of the batch.

        Returns:
            dict: :meth:`_bbox_forward`'s results plus ``loss_bbox`` (the loss dict) and
            ``bbox_targets`` (TSD targets).
        """
        rois = bbox2roi([res.priors for res in sampling_results])
        bbox_results = self._bbox_forward(x, rois)
        tsd = self.bbox_head.loss_and_target(
            cls_score=bbox_results['cls_score'],
            bbox_pred=bbox_results['bbox_pred'],
            rois=bbox_results['rois_r'],
            sampling_results=sampling_results,
            rcnn_train_cfg=self.train_cfg)
        losses = dict(tsd['loss_bbox'])
        if self.with_sibling:
            # mmdet's loss_and_target, with degenerate positives dropped as for TSD (bbox_targets).
            losses.update(self.sibling_head.loss(
                bbox_results['sibling_cls_score'], bbox_results['sibling_bbox_pred'], rois,
                *bbox_targets(self.sibling_head, sampling_results, self.train_cfg)))
            labels = tsd['bbox_targets'][0]
            if self.pc_cls is not None:
                losses['loss_pc_cls'] = self.pc_cls(
                    bbox_results['sibling_cls_score'], bbox_results['cls_score'], labels)
            if self.pc_loc is not None:
                losses['loss_pc_loc'] = self.pc_loc(
                    *self._pc_ious(rois, bbox_results, labels, sampling_results))
        bbox_results.update(loss_bbox=losses, bbox_targets=tsd['bbox_targets'])
        return bbox_results

    def _pc_ious(self, rois: Tensor, bbox_results: dict, labels: Tensor,
                 sampling_results: list[SamplingResult]) -> tuple[Tensor, Tensor]:
        """IoU(B-hat, B) and IoU(B-hat_D, B) of eq. 8 over the positive RoIs.

        B-hat: sibling deltas decoded from P; B-hat_D: TSD deltas decoded from ``rois_r``
        (P-hat_r), both for the ground-truth label; B: the assigned ground truth. ``rois_r`` is
        not detached here: B-hat_D is a function of delta_R in eq. 8.

        Returns:
            tuple[Tensor, Tensor]: (P,) sibling and TSD IoUs.
        """
        pos = (labels >= 0) & (labels < self.bbox_head.num_classes)
        pos_labels = labels[pos]
        gt_bboxes = torch.cat([get_box_tensor(res.pos_gt_bboxes) for res in sampling_results])
        boxes_sibling = _decode_class_boxes(self.sibling_head, rois[pos, 1:],
                                            bbox_results['sibling_bbox_pred'][pos], pos_labels)
        boxes_tsd = _decode_class_boxes(self.bbox_head, bbox_results['rois_r'][pos, 1:],
                                        bbox_results['bbox_pred'][pos], pos_labels)
        return (bbox_overlaps(boxes_sibling, gt_bboxes, is_aligned=True),
                bbox_overlaps(boxes_tsd, gt_bboxes, is_aligned=True))

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
