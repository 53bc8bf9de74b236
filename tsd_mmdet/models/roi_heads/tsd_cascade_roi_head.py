"""TSDCascadeRoIHead: Cascade R-CNN whose every stage is a TSD head with its own sibling and PC.

Implements the TSD loss of eq. 9 at each cascade stage (TSD in Cascade R-CNN, Table 6), weighted by
mmdet's stage loss weights; the boxes passed to the next stage are decoded from P-hat_r (eq. 4).
"""
from collections.abc import Sequence

import torch
from mmdet.models.roi_heads import CascadeRoIHead
from mmdet.models.task_modules.samplers import SamplingResult
from mmdet.registry import MODELS
from mmdet.structures.bbox import get_box_tensor
from mmdet.utils import MultiConfig, OptConfigType, OptMultiConfig
from mmengine.model import ModuleList
from torch import Tensor

from ..bbox_heads import TSDBBoxHead
from ..roi_extractors import TSDRoIExtractor
from .sibling_tolerant_loading import SiblingTolerantLoadMixin
from .tsd_roi_head import TSDRoIHead


class _TSDStage:
    """One cascade stage seen as a single-stage TSDRoIHead.

    TSDRoIHead's box methods (TSD forward of eq. 3-6, losses and PC of eq. 9) run on it unchanged:
    it holds the stage's extractor, TSD head and sibling head, the shared PC terms, the stage's
    ``train_cfg`` and the owner's training mode. It is a view made per call, not a module.
    """

    with_sibling = TSDRoIHead.with_sibling
    _bbox_forward = TSDRoIHead._bbox_forward
    _pc_ious = TSDRoIHead._pc_ious
    bbox_loss = TSDRoIHead.bbox_loss

    def __init__(self, owner: 'TSDCascadeRoIHead', stage: int) -> None:
        self.bbox_roi_extractor = owner.bbox_roi_extractor[stage]
        self.bbox_head = owner.bbox_head[stage]
        self.sibling_head = None if owner.sibling_head is None else owner.sibling_head[stage]
        self.pc_cls = owner.pc_cls
        self.pc_loc = owner.pc_loc
        self.train_cfg = None if owner.train_cfg is None else owner.train_cfg[stage]
        self.training = owner.training


@MODELS.register_module()
class TSDCascadeRoIHead(SiblingTolerantLoadMixin, CascadeRoIHead):
    """Cascade RoI head with TSD box heads (Fig. 2 at every stage).

    Each stage pools F from its own proposals P (the RPN's at stage 0, the previous stage's
    refined boxes after), predicts delta_c / delta_r and runs the TSD branches on F-hat_c / F-hat_r,
    exactly as :class:`TSDRoIHead`. In training, the stage's sibling head runs on F, and the PC
    terms compare the two. The refined boxes handed to the next stage, in training and at
    inference, are the TSD regression decoded from P-hat_r; the sibling heads never run at
    inference. Mask heads, if any, are mmdet's, on the sampled proposals of each stage.

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

    def __init__(self,
                 num_stages: int,
                 stage_loss_weights: Sequence[float],
                 sibling_head: OptMultiConfig = None,
                 pc_cls: OptConfigType = None,
                 pc_loc: OptConfigType = None,
                 **kwargs) -> None:
        if sibling_head is None and (pc_cls is not None or pc_loc is not None):
            raise ValueError('TSDCascadeRoIHead: the progressive constraint (pc_cls / pc_loc) '
                             'compares TSD with the sibling heads; set sibling_head or drop PC')
        super().__init__(num_stages=num_stages, stage_loss_weights=stage_loss_weights, **kwargs)
        self.sibling_head = None
        if sibling_head is not None:
            if not isinstance(sibling_head, list):
                sibling_head = [sibling_head] * num_stages
            if len(sibling_head) != num_stages:
                raise ValueError(f'TSDCascadeRoIHead: {len(sibling_head)} sibling heads for '
                                 f'{num_stages} stages')
            self.sibling_head = ModuleList([MODELS.build(cfg) for cfg in sibling_head])
            if any(s.num_classes != h.num_classes
                   for s, h in zip(self.sibling_head, self.bbox_head)):
                raise ValueError('TSDCascadeRoIHead: sibling_head and bbox_head differ in '
                                 'num_classes')
        self.pc_cls = None if pc_cls is None else MODELS.build(pc_cls)
        self.pc_loc = None if pc_loc is None else MODELS.build(pc_loc)

    def init_bbox_head(self, bbox_roi_extractor: MultiConfig, bbox_head: MultiConfig) -> None:
        """Build the per-stage box RoI extractors and heads, checking they are TSD's.

        Args:
            bbox_roi_extractor (dict | list[dict]): TSDRoIExtractor config(s).
            bbox_head (dict | list[dict]): TSDBBoxHead config(s).
        """
        super().init_bbox_head(bbox_roi_extractor, bbox_head)
        for extractor, head in zip(self.bbox_roi_extractor, self.bbox_head):
            if not isinstance(extractor, TSDRoIExtractor):
                raise TypeError('TSDCascadeRoIHead needs bbox_roi_extractor type '
                                f'TSDRoIExtractor, got {type(extractor).__name__}')
            if not isinstance(head, TSDBBoxHead):
                raise TypeError('TSDCascadeRoIHead needs bbox_head type TSDBBoxHead, got '
                                f'{type(head).__name__}')

    def _bbox_forward(self, stage: int, x: tuple[Tensor], rois: Tensor) -> dict:
        """:meth:`TSDRoIHead._bbox_forward` with the modules of ``stage``.

        Args:
            stage (int): Cascade stage.
            x (tuple[Tensor]): Multi-level features, each (N, C, H_l, W_l).
            rois (Tensor): P of this stage, (K, 5) [batch_idx, x1, y1, x2, y2].

        Returns:
            dict: ``cls_score``, ``bbox_pred``, ``rois_r``, ``delta_c``, ``delta_r``,
            ``bbox_feats`` (and the sibling outputs in training), as TSDRoIHead.
        """
        return _TSDStage(self, stage)._bbox_forward(x, rois)

    def bbox_loss(self, stage: int, x: tuple[Tensor],
                  sampling_results: list[SamplingResult]) -> dict:
        """:meth:`TSDRoIHead.bbox_loss` for ``stage``, with ``rois`` set to P-hat_r.

        ``CascadeRoIHead.loss`` refines the boxes with ``bbox_head.refine_bboxes``, which decodes
        ``bbox_pred`` from ``rois``: TSD's deltas are relative to P-hat_r (``rois_r``).

        Args:
            stage (int): Cascade stage.
            x (tuple[Tensor]): Multi-level features.
            sampling_results (list[SamplingResult]): Sampling results of this stage.

        Returns:
            dict: TSDRoIHead's box results plus ``rois`` (K, 5), equal to ``rois_r``.
        """
        bbox_results = _TSDStage(self, stage).bbox_loss(x, sampling_results)
        bbox_results['rois'] = bbox_results['rois_r']
        return bbox_results

    def _refine_roi(self, x: tuple[Tensor], rois: Tensor, batch_img_metas: list[dict],
                    num_proposals_per_img: Sequence[int]) -> tuple:
        """CascadeRoIHead._refine_roi with each stage's deltas decoded from its P-hat_r.

        Args:
            x (tuple[Tensor]): Multi-level features.
            rois (Tensor): Proposals, (n, 5) [batch_idx, x1, y1, x2, y2].
            batch_img_metas (list[dict]): Image meta information.
            num_proposals_per_img (sequence[int]): Number of proposals of each image.

        Returns:
            tuple: ``rois`` (list of (n_i, 5)): the last stage's P-hat_r, which its ``bbox_preds``
            are relative to; ``cls_scores`` (list of (n_i, num_classes + 1)): scores averaged
            over the stages; ``bbox_preds`` (list of (n_i, 4) or (n_i, 4 * num_classes)): the
            last stage's deltas.
        """
        ms_scores = []
        for stage in range(self.num_stages):
            bbox_results = self._bbox_forward(stage, x, rois)
            rois_r = bbox_results['rois_r'].split(num_proposals_per_img, 0)
            cls_scores = bbox_results['cls_score'].split(num_proposals_per_img, 0)
            bbox_preds = bbox_results['bbox_pred'].split(num_proposals_per_img, 0)
            ms_scores.append(cls_scores)
            if stage < self.num_stages - 1:
                rois = self._regress_rois(stage, rois_r, cls_scores, bbox_preds,
                                          batch_img_metas)
        cls_scores = [
            sum(score[i] for score in ms_scores) / len(ms_scores)
            for i in range(len(batch_img_metas))
        ]
        return list(rois_r), cls_scores, bbox_preds

    def _regress_rois(self, stage: int, rois_r: Sequence[Tensor], cls_scores: Sequence[Tensor],
                      bbox_preds: Sequence[Tensor], batch_img_metas: list[dict]) -> Tensor:
        """Next stage's proposals: ``stage``'s deltas for the top class, decoded from P-hat_r.

        Args:
            stage (int): Cascade stage that predicted the deltas.
            rois_r (sequence[Tensor]): Per image P-hat_r, (n_i, 5).
            cls_scores (sequence[Tensor]): Per image logits, (n_i, num_classes + 1).
            bbox_preds (sequence[Tensor]): Per image deltas, (n_i, 4) or (n_i, 4 * num_classes).
            batch_img_metas (list[dict]): Image meta information.

        Returns:
            Tensor: (n, 5) refined RoIs of all images, [batch_idx, x1, y1, x2, y2].
        """
        bbox_head = self.bbox_head[stage]
        refined = []
        for rois, scores, deltas, img_meta in zip(rois_r, cls_scores, bbox_preds,
                                                   batch_img_metas):
            if bbox_head.custom_activation:
                scores = bbox_head.loss_cls.get_activation(scores)
            labels = scores[:, :-1].argmax(dim=1)
            boxes = bbox_head.regress_by_class(rois[:, 1:], labels, deltas, img_meta)
            refined.append(torch.cat([rois[:, :1], get_box_tensor(boxes)], dim=1))
        return torch.cat(refined)
