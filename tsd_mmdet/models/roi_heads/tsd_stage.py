"""The TSD stage contract: what a TSD RoI head is, and its box forward and losses, for all hosts.

Implements the pooling of F, F-hat_c, F-hat_r (eq. 3-6), the TSD and sibling losses and the
progressive constraints M_cls, M_loc (eq. 7-9). Every TSD RoI head (TSDRoIHead, TSDCascadeRoIHead
and the hosts beside them) runs it with the modules of the stage it runs, passing the stage
explicitly (as mmdet's ``CascadeRoIHead._bbox_forward(stage, x, rois)`` and detectron2's
``_run_stage`` do); code outside ``models/`` asks it for the stages (:class:`TSDStage`).
"""
from dataclasses import dataclass

import torch
from mmdet.models.task_modules.samplers import SamplingResult
from mmdet.registry import MODELS
from mmdet.structures.bbox import bbox2roi, bbox_overlaps, get_box_tensor
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from mmengine.config import ConfigDict
from mmengine.model import ModuleList
from torch import Tensor, nn

from ..bbox_heads import TSDBBoxHead, bbox_targets
from ..roi_extractors import TSDRoIExtractor
from .unsupported_hosts import check_sibling_kind

__all__ = ['TSDStage', 'TSDStageMixin', 'sibling_configs']


@dataclass(frozen=True)
class TSDStage:
    """The modules of one TSD stage of an RoI head (a view: the host owns them).

    Attributes:
        extractor (TSDRoIExtractor): pools F, F-hat_c and F-hat_r (eq. 3-6).
        bbox_head (TSDBBoxHead): F_c, F_r and the branches H_1^D, H_2^D (eq. 2-5).
        sibling_head (nn.Module | None): the sibling H_* trained jointly on F (eq. 1), or None.
        pc_cls (nn.Module | None): M_cls (eq. 7), or None.
        pc_loc (nn.Module | None): M_loc (eq. 8), or None.
    """

    extractor: TSDRoIExtractor
    bbox_head: TSDBBoxHead
    sibling_head: nn.Module | None
    pc_cls: nn.Module | None
    pc_loc: nn.Module | None

    @property
    def gamma_cls(self) -> float:
        """float: gamma of eq. 5 (delta_c)."""
        return self.bbox_head.gamma_cls

    @property
    def gamma_reg(self) -> float:
        """float: gamma of eq. 3 (delta_r)."""
        return self.bbox_head.gamma_reg


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


def _on_grid(offset: Tensor, size: tuple[int, int]) -> Tensor:
    """A pointwise offset (K, 2, k, k) repeated to the pooling grid ``size`` (a multiple of k),
    each bin's offset for its sub-bins; a proposal-wise (K, 2) or same-size one unchanged."""
    if offset.dim() != 4 or tuple(offset.shape[-2:]) == tuple(size):
        return offset
    return offset.repeat_interleave(size[0] // offset.size(2), dim=2).repeat_interleave(
        size[1] // offset.size(3), dim=3)


class TSDStageMixin:
    """The contract of a TSD RoI head, and TSD's box forward and losses for one or several stages.

    The host (put the mixin before the mmdet RoI head in the bases) has mmdet's
    ``bbox_roi_extractor`` and ``bbox_head`` (one module, or a ModuleList with one per stage), and
    calls :meth:`build_tsd` at the end of its constructor, which adds ``sibling_head`` (the same
    layout, or None) and ``pc_cls`` / ``pc_loc`` (shared by the stages) and checks them. What the
    rest of the package needs to know about a TSD head, it asks here: :attr:`num_tsd_stages`,
    :meth:`tsd_stage` (the modules and gammas of a stage), :meth:`tsd_forward` (a stage's box
    forward at inference) and :meth:`tsd_next_rois` (a stage's refined boxes, for multi-stage
    hosts); :attr:`tsd_inference` says which mmdet inference the host's box branch runs.

    The stage's modules come as arguments to the forward and losses: ``extractor``
    (TSDRoIExtractor: F, F-hat_c, F-hat_r), ``bbox_head`` (TSDBBoxHead: F_c, F_r and the two
    branches) and ``sibling_head`` (the sibling H_* trained jointly, or None).

    Attributes:
        tsd_inference (str | None): ``'standard'`` if the host's inference is StandardRoIHead's
            box branch (Faster / Mask R-CNN) on TSD's outputs, ``'cascade'`` if it is
            CascadeRoIHead's, None for any other (a host with its own test-time flow); export
            (tsd_mmdet.deployment) reproduces the first two only.
    """

    tsd_inference: str | None = None

    def build_tsd(self, sibling_head: OptMultiConfig, pc_cls: OptConfigType,
                  pc_loc: OptConfigType) -> None:
        """Build the TSD parts of the host, after mmdet's constructor: the sibling head(s) and
        the PC terms; then check every stage.

        Args:
            sibling_head (dict | list[dict], optional): Sibling head config H_*; for a
                multi-stage host one per stage or one for all (built once per stage); None: no
                joint training (then no PC).
            pc_cls (dict, optional): ``dict(type='ProgressiveConstraintCls', ...)`` or None.
            pc_loc (dict, optional): ``dict(type='ProgressiveConstraintLoc', ...)`` or None.
        """
        owner = type(self).__name__
        self.check_tsd_config(owner, sibling_head, pc_cls, pc_loc)
        if sibling_head is None:
            self.sibling_head = None
        elif isinstance(self.bbox_head, nn.ModuleList):
            self.sibling_head = ModuleList(
                [MODELS.build(cfg) for cfg in sibling_configs(sibling_head, len(self.bbox_head))])
        else:
            self.sibling_head = MODELS.build(sibling_head)
        self.build_pc(pc_cls, pc_loc)
        for stage in range(self.num_tsd_stages):
            self.check_stage_modules(owner, *self.stage_modules(stage))

    @property
    def with_sibling(self) -> bool:
        """bool: whether the head trains a sibling head jointly."""
        return self.sibling_head is not None

    @property
    def num_tsd_stages(self) -> int:
        """int: number of TSD stages (1, or the cascade's number of stages)."""
        return len(self.bbox_head) if isinstance(self.bbox_head, nn.ModuleList) else 1

    def stage_modules(self, stage: int) -> tuple[nn.Module, nn.Module, nn.Module | None]:
        """The modules of ``stage``: its extractor, TSD box head and sibling head (or None)."""
        if not 0 <= stage < self.num_tsd_stages:
            raise ValueError(f'stage {stage}: {type(self).__name__} has TSD stages '
                             f'0..{self.num_tsd_stages - 1}')
        if not isinstance(self.bbox_head, nn.ModuleList):
            return self.bbox_roi_extractor, self.bbox_head, self.sibling_head
        sibling = None if self.sibling_head is None else self.sibling_head[stage]
        return self.bbox_roi_extractor[stage], self.bbox_head[stage], sibling

    def tsd_stage(self, stage: int = 0) -> TSDStage:
        """The modules (and so the gammas) of TSD stage ``stage``."""
        return TSDStage(*self.stage_modules(stage), pc_cls=self.pc_cls, pc_loc=self.pc_loc)

    def tsd_forward(self, stage: int, x: tuple[Tensor], rois: Tensor) -> dict:
        """The box forward of ``stage`` (:meth:`tsd_bbox_forward` with its modules).

        Hosts whose forward takes more inputs (HTC's semantic feature) override it to compute
        them from ``x``, so that this is what their inference runs.
        """
        return self.tsd_bbox_forward(x, rois, *self.stage_modules(stage))

    def tsd_next_rois(self, stage: int, rois_r: list[Tensor], cls_scores: list[Tensor],
                      bbox_preds: list[Tensor], batch_img_metas: list[dict]) -> Tensor:
        """Next stage's proposals: ``stage``'s deltas for the top class, decoded from P-hat_r.

        Args:
            stage (int): Stage that predicted the deltas.
            rois_r (list[Tensor]): Per image P-hat_r, (n_i, 5).
            cls_scores (list[Tensor]): Per image logits, (n_i, num_classes + 1).
            bbox_preds (list[Tensor]): Per image deltas, (n_i, 4) or (n_i, 4 * num_classes).
            batch_img_metas (list[dict]): Image meta information.

        Returns:
            Tensor: (n, 5) refined RoIs of all images, [batch_idx, x1, y1, x2, y2].
        """
        bbox_head = self.stage_modules(stage)[1]
        refined = []
        for rois, scores, deltas, img_meta in zip(rois_r, cls_scores, bbox_preds,
                                                   batch_img_metas):
            if bbox_head.custom_activation:
                scores = bbox_head.loss_cls.get_activation(scores)
            labels = scores[:, :-1].argmax(dim=1)
            boxes = bbox_head.regress_by_class(rois[:, 1:], labels, deltas, img_meta)
            refined.append(torch.cat([rois[:, :1], get_box_tensor(boxes)], dim=1))
        return torch.cat(refined)

    @classmethod
    def check_tsd_config(cls, owner: str, sibling_head, pc_cls: OptConfigType,
                         pc_loc: OptConfigType) -> None:
        """The checks of the TSD arguments a host can make before mmdet builds anything: a sibling
        of a kind TSD cannot pair with (SABL's), PC without a sibling. :meth:`build_tsd` makes
        them too; a host calls this first in its constructor to fail before the build."""
        check_sibling_kind(owner, sibling_head)
        cls.check_sibling_and_pc(owner, sibling_head, pc_cls, pc_loc)

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
                         bbox_head: TSDBBoxHead, sibling_head: nn.Module | None,
                         fused_feats: Tensor | None = None) -> dict:
        """Box forward of training and testing for one stage.

        F is pooled from P; delta_c and delta_r are predicted from F; F-hat_c and F-hat_r are
        pooled from the original P moved by them (eq. 3-6). The sibling head runs on F only in
        training mode. With a shared head (a C4 detector's res5, as mmdet's TridentNet), the
        host's ``shared_head`` runs on each of the three pooled features, as StandardRoIHead runs
        it on F; pointwise offsets, predicted on the head's k x k grid, move the extractor's finer
        grid bin by bin (each offset moves the sub-bins of its bin alike; the paper, FPN only, is
        silent).

        Args:
            x (tuple[Tensor]): Multi-level features, each (N, C, H_l, W_l).
            rois (Tensor): P, (K, 5) [batch_idx, x1, y1, x2, y2].
            extractor, bbox_head, sibling_head: The stage's modules (see the class docstring).
            fused_feats (Tensor, optional): (K, C, k, k) added to F after pooling, before the
                offsets and the sibling see it (HTC's semantic fusion); None adds nothing.

        Returns:
            dict: ``cls_score`` (K, num_classes + 1) and ``bbox_pred`` (K, 4 * num_classes) of
            TSD; ``rois_r`` (K, 5) the boxes ``bbox_pred`` is relative to; ``delta_c``,
            ``delta_r`` raw offsets; ``bbox_feats`` F (K, C, k, k); in training with a sibling,
            also ``sibling_cls_score`` and ``sibling_bbox_pred``.
        """
        head = bbox_head
        feats = x[:extractor.num_inputs]
        bbox_feats = extractor(feats, rois)
        if fused_feats is not None:
            bbox_feats = bbox_feats + fused_feats
        bbox_feats = self._shared_head(bbox_feats)
        delta_c, delta_r = head.forward_offsets(bbox_feats)
        cls_feats = self._shared_head(extractor(
            feats, rois, offset=_on_grid(delta_c, extractor.output_size), gamma=head.gamma_cls))
        reg_feats = self._shared_head(extractor(
            feats, rois, offset=_on_grid(delta_r, extractor.output_size), gamma=head.gamma_reg))
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

    def _shared_head(self, feats: Tensor) -> Tensor:
        """The host's shared head (StandardRoIHead's ``shared_head``) on pooled features, if any."""
        return self.shared_head(feats) if getattr(self, 'with_shared_head', False) else feats

    def tsd_bbox_loss(self, x: tuple[Tensor], sampling_results: list[SamplingResult],
                      extractor: TSDRoIExtractor, bbox_head: TSDBBoxHead,
                      sibling_head: nn.Module | None, train_cfg: ConfigDict | None,
                      fused_feats: Tensor | None = None, **branch_kwargs) -> dict:
        """Box forward and the box losses of eq. 9 for one stage.

        Args:
            x (tuple[Tensor]): Multi-level features.
            sampling_results (list[SamplingResult]): Sampling results of the batch.
            extractor, bbox_head, sibling_head: The stage's modules (see the class docstring).
            train_cfg (ConfigDict): The stage's R-CNN ``train_cfg``.
            fused_feats (Tensor, optional): See :meth:`tsd_bbox_forward`.
            **branch_kwargs: Passed to :meth:`tsd_branch_loss` (PISA's negative label weights).

        Returns:
            dict: :meth:`tsd_bbox_forward`'s results plus ``loss_bbox`` (the loss dict: keys
            ``loss_cls_tsd``, ``loss_bbox_tsd``, ``acc_tsd``; with a sibling ``loss_cls``,
            ``loss_bbox``, ``acc``; with PC ``loss_pc_cls``, ``loss_pc_loc``) and
            ``bbox_targets`` (TSD targets).
        """
        rois = bbox2roi([res.priors for res in sampling_results])
        bbox_results = self.tsd_bbox_forward(x, rois, extractor, bbox_head, sibling_head,
                                             fused_feats)
        tsd = self.tsd_branch_loss(bbox_results, sampling_results, bbox_head, train_cfg,
                                   **branch_kwargs)
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

    def tsd_branch_loss(self, bbox_results: dict, sampling_results: list[SamplingResult],
                        bbox_head: TSDBBoxHead, train_cfg: ConfigDict | None) -> dict:
        """L_cls^D and L_loc^D of eq. 2 (:meth:`TSDBBoxHead.loss_and_target` on P-hat_r).

        Hosts that change the detector's own box loss (PISA's reweighting) override this, so that
        their change applies to TSD's branches; the sibling's losses stay mmdet's.

        Returns:
            dict: ``loss_bbox`` (keys ``loss_cls_tsd``, ``loss_bbox_tsd``, ``acc_tsd``, ...) and
            ``bbox_targets`` (labels, label weights, box targets, box weights; TSD's).
        """
        return bbox_head.loss_and_target(
            cls_score=bbox_results['cls_score'],
            bbox_pred=bbox_results['bbox_pred'],
            rois=bbox_results['rois_r'],
            sampling_results=sampling_results,
            rcnn_train_cfg=train_cfg)

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
        raise ValueError(f'{len(configs)} sibling heads for {num_stages} stages: give one per '
                         'stage or one for all')
    return configs
