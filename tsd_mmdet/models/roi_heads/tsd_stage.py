"""The TSD box forward and losses of one stage, given its modules: one implementation for all heads.

Implements the pooling of F, F-hat_c, F-hat_r (eq. 3-6), the TSD and sibling losses and the
progressive constraints M_cls, M_loc (eq. 7-9). TSDRoIHead calls it with its own modules and
TSDCascadeRoIHead with those of the stage it runs, passing the stage explicitly (as mmdet's
``CascadeRoIHead._bbox_forward(stage, x, rois)`` and detectron2's ``_run_stage`` do).
"""
import torch
from mmdet.models.task_modules.samplers import SamplingResult
from mmdet.registry import MODELS
from mmdet.structures.bbox import bbox2roi, bbox_overlaps, get_box_tensor
from mmdet.utils import ConfigType, OptConfigType
from mmengine.config import ConfigDict
from torch import Tensor, nn

from ..bbox_heads import TSDBBoxHead, bbox_targets
from ..roi_extractors import TSDRoIExtractor

__all__ = ['TSDStageMixin', 'sibling_configs']


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


class TSDStageMixin:
    """TSD's box forward and losses for an RoI head with one or several stages.

    The host (put the mixin before the mmdet RoI head in the bases) keeps ``pc_cls`` and
    ``pc_loc``, shared by its stages, and ``training``; the stage's modules come as arguments:
    ``extractor`` (TSDRoIExtractor: F, F-hat_c, F-hat_r), ``bbox_head`` (TSDBBoxHead: F_c, F_r and
    the two branches) and ``sibling_head`` (the sibling H_* trained jointly, or None). The
    construction checks are here too, so that no head writes them again.
    """

    @staticmethod
    def check_sibling_and_pc(owner: str, sibling_head, pc_cls: OptConfigType,
                             pc_loc: OptConfigType) -> None:
        """Refuse PC without a sibling head (PC compares TSD with the sibling)."""
        if sibling_head is None and (pc_cls is not None or pc_loc is not None):
            raise ValueError(f'{owner}: the progressive constraint (pc_cls / pc_loc) compares '
                             'TSD with the sibling head; set sibling_head or drop PC')

    def build_pc(self, pc_cls: OptConfigType, pc_loc: OptConfigType) -> None:
        """Build the PC terms M_cls and M_loc (eq. 7, 8), or None for each one not configured."""
        self.pc_cls = None if pc_cls is None else MODELS.build(pc_cls)
        self.pc_loc = None if pc_loc is None else MODELS.build(pc_loc)

    @staticmethod
    def check_stage_modules(owner: str, extractor: nn.Module, bbox_head: nn.Module,
                            sibling_head: nn.Module | None) -> None:
        """Check one stage's modules: TSD's extractor and head, a sibling of the same classes."""
        if not isinstance(extractor, TSDRoIExtractor):
            raise TypeError(f'{owner} needs bbox_roi_extractor type TSDRoIExtractor, got '
                            f'{type(extractor).__name__}')
        if not isinstance(bbox_head, TSDBBoxHead):
            raise TypeError(f'{owner} needs bbox_head type TSDBBoxHead, got '
                            f'{type(bbox_head).__name__}')
        if sibling_head is not None and sibling_head.num_classes != bbox_head.num_classes:
            raise ValueError(f'{owner}: sibling_head and bbox_head differ in num_classes')

    def tsd_bbox_forward(self, x: tuple[Tensor], rois: Tensor, extractor: TSDRoIExtractor,
                         bbox_head: TSDBBoxHead, sibling_head: nn.Module | None) -> dict:
        """Box forward of training and testing for one stage.

        F is pooled from P; delta_c and delta_r are predicted from F; F-hat_c and F-hat_r are
        pooled from the original P moved by them (eq. 3-6). The sibling head runs on F only in
        training mode.

        Args:
            x (tuple[Tensor]): Multi-level features, each (N, C, H_l, W_l).
            rois (Tensor): P, (K, 5) [batch_idx, x1, y1, x2, y2].
            extractor, bbox_head, sibling_head: The stage's modules (see the class docstring).

        Returns:
            dict: ``cls_score`` (K, num_classes + 1) and ``bbox_pred`` (K, 4 * num_classes) of
            TSD; ``rois_r`` (K, 5) the boxes ``bbox_pred`` is relative to; ``delta_c``,
            ``delta_r`` raw offsets; ``bbox_feats`` F (K, C, k, k); in training with a sibling,
            also ``sibling_cls_score`` and ``sibling_bbox_pred``.
        """
        head = bbox_head
        feats = x[:extractor.num_inputs]
        bbox_feats = extractor(feats, rois)
        delta_c, delta_r = head.forward_offsets(bbox_feats)
        cls_feats = extractor(feats, rois, offset=delta_c, gamma=head.gamma_cls)
        reg_feats = extractor(feats, rois, offset=delta_r, gamma=head.gamma_reg)
        cls_score, bbox_pred = head(cls_feats, reg_feats)
        bbox_results = dict(
            cls_score=cls_score,
            bbox_pred=bbox_pred,
            rois_r=head.derive_reg_rois(rois, delta_r),
            delta_c=delta_c,
            delta_r=delta_r,
            bbox_feats=bbox_feats)
        if self.training and sibling_head is not None:
            sibling_cls_score, sibling_bbox_pred = sibling_head(bbox_feats)
            bbox_results.update(
                sibling_cls_score=sibling_cls_score, sibling_bbox_pred=sibling_bbox_pred)
        return bbox_results

    def tsd_bbox_loss(self, x: tuple[Tensor], sampling_results: list[SamplingResult],
                      extractor: TSDRoIExtractor, bbox_head: TSDBBoxHead,
                      sibling_head: nn.Module | None, train_cfg: ConfigDict | None) -> dict:
        """Box forward and the box losses of eq. 9 for one stage.

        Args:
            x (tuple[Tensor]): Multi-level features.
            sampling_results (list[SamplingResult]): Sampling results of the batch.
            extractor, bbox_head, sibling_head: The stage's modules (see the class docstring).
            train_cfg (ConfigDict): The stage's R-CNN ``train_cfg``.

        Returns:
            dict: :meth:`tsd_bbox_forward`'s results plus ``loss_bbox`` (the loss dict: keys
            ``loss_cls_tsd``, ``loss_bbox_tsd``, ``acc_tsd``; with a sibling ``loss_cls``,
            ``loss_bbox``, ``acc``; with PC ``loss_pc_cls``, ``loss_pc_loc``) and
            ``bbox_targets`` (TSD targets).
        """
        rois = bbox2roi([res.priors for res in sampling_results])
        bbox_results = self.tsd_bbox_forward(x, rois, extractor, bbox_head, sibling_head)
        tsd = bbox_head.loss_and_target(
            cls_score=bbox_results['cls_score'],
            bbox_pred=bbox_results['bbox_pred'],
            rois=bbox_results['rois_r'],
            sampling_results=sampling_results,
            rcnn_train_cfg=train_cfg)
        losses = dict(tsd['loss_bbox'])
        if sibling_head is not None:
            # mmdet's loss_and_target, with degenerate positives dropped as for TSD (bbox_targets).
            losses.update(sibling_head.loss(
                bbox_results['sibling_cls_score'], bbox_results['sibling_bbox_pred'], rois,
                *bbox_targets(sibling_head, sampling_results, train_cfg)))
            labels = tsd['bbox_targets'][0]
            if self.pc_cls is not None:
                losses['loss_pc_cls'] = self.pc_cls(
                    bbox_results['sibling_cls_score'], bbox_results['cls_score'], labels)
            if self.pc_loc is not None:
                losses['loss_pc_loc'] = self.pc_loc(*self.pc_ious(
                    rois, bbox_results, labels, sampling_results, bbox_head, sibling_head))
        bbox_results.update(loss_bbox=losses, bbox_targets=tsd['bbox_targets'])
        return bbox_results

    @staticmethod
    def pc_ious(rois: Tensor, bbox_results: dict, labels: Tensor,
                sampling_results: list[SamplingResult], bbox_head: TSDBBoxHead,
                sibling_head: nn.Module) -> tuple[Tensor, Tensor]:
        """IoU(B-hat, B) and IoU(B-hat_D, B) of eq. 8 over the positive RoIs of one stage.

        B-hat: sibling deltas decoded from P; B-hat_D: TSD deltas decoded from ``rois_r``
        (P-hat_r), both for the ground-truth label; B: the assigned ground truth. ``rois_r`` is
        not detached here: B-hat_D is a function of delta_R in eq. 8.

        Returns:
            tuple[Tensor, Tensor]: (P,) sibling and TSD IoUs.
        """
        pos = (labels >= 0) & (labels < bbox_head.num_classes)
        pos_labels = labels[pos]
        gt_bboxes = torch.cat([get_box_tensor(res.pos_gt_bboxes) for res in sampling_results])
        boxes_sibling = _decode_class_boxes(sibling_head, rois[pos, 1:],
                                            bbox_results['sibling_bbox_pred'][pos], pos_labels)
        boxes_tsd = _decode_class_boxes(bbox_head, bbox_results['rois_r'][pos, 1:],
                                        bbox_results['bbox_pred'][pos], pos_labels)
        return (bbox_overlaps(boxes_sibling, gt_bboxes, is_aligned=True),
                bbox_overlaps(boxes_tsd, gt_bboxes, is_aligned=True))


def sibling_configs(sibling_head: ConfigType | list | None, num_stages: int) -> list:
    """One sibling head config per stage: a list as given, one config repeated, or Nones."""
    if sibling_head is None:
        return [None] * num_stages
    configs = sibling_head if isinstance(sibling_head, list) else [sibling_head] * num_stages
    if len(configs) != num_stages:
        raise ValueError(f'TSDCascadeRoIHead: {len(configs)} sibling heads for {num_stages} '
                         'stages')
    return configs
