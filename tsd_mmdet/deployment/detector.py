"""Export-mode two-stage detector: one image in, fixed-size detections out, no branch on data.

Implements the inference of Faster / Mask / Cascade R-CNN with TSD's heads (eq. 3-6, through the
heads' own ``tsd_forward`` / ``_refine_roi``) and of their mmdet baselines, for ``torch.export``.
"""
import contextlib
import copy

import torch
import torch.nn.functional as F
import torchvision
from mmdet.models.roi_heads import CascadeRoIHead
from torch import Tensor, nn

from tsd_mmdet.ops import DeformRoIAlign

from ..models.roi_heads import TSDStageMixin
from .checks import check_exportable
from .necks import export_necks

__all__ = ['ExportDetector', 'ExportRoIExtractor']


class ExportRoIExtractor(nn.Module):
    """``SingleRoIExtractor`` / ``TSDRoIExtractor`` forward for export: same level mapping, no
    branch on how many RoIs a level gets, and the pooling as ops that export (mmcv's RoIAlign as
    ``torchvision::roi_align``, TSD's ``DeformRoIAlign`` as ``tsd_mmdet::deform_roi_align``).

    ``forward(feats, rois, offset=None, gamma=0.1)``: feats (1, C, H_l, W_l) per level, rois
    (K, 5), offset None, (K, 2) or (K, 2, oh, ow) scaled by ``gamma`` as TSDRoIExtractor does;
    returns (K, C, oh, ow).
    """

    def __init__(self, extractor: nn.Module):
        super().__init__()
        self.extractor = extractor
        self._presorted = False

    @property
    def num_inputs(self) -> int:
        return self.extractor.num_inputs

    @property
    def output_size(self) -> tuple[int, int]:
        return self.extractor.output_size

    def level_order(self, rois: Tensor) -> Tensor:
        """(K,) the RoIs' indices grouped by FPN level (each level's in their order): ``rois`` in
        this order are what :meth:`presorted` expects."""
        levels = self.extractor.map_roi_levels(rois, self.num_inputs)
        index = torch.arange(rois.size(0), device=rois.device)
        return (levels * rois.size(0) + index).argsort()  # unique keys: a stable order

    @contextlib.contextmanager
    def presorted(self):
        """Within, every call's RoIs come in :meth:`level_order`: the levels' pooled rows are
        concatenated as they are, without the scatter back to the RoIs' order (a copy of every
        pooled row; a TSD head pools three times: P, P-hat_c, P-hat_r)."""
        self._presorted = True
        try:
            yield
        finally:
            self._presorted = False

    @staticmethod
    def _pool(layer: nn.Module, feat: Tensor, rois: Tensor, offset: Tensor | None) -> Tensor:
        if isinstance(layer, DeformRoIAlign):
            return torch.ops.tsd_mmdet.deform_roi_align(
                feat, rois, offset, layer.spatial_scale, *layer.output_size,
                layer.sampling_ratio, layer.gamma, layer.aligned)
        return torchvision.ops.roi_align(feat, rois, layer.output_size, layer.spatial_scale,
                                         layer.sampling_ratio, layer.aligned)

    def _pool_presorted(self, feats: tuple[Tensor], rois: Tensor, offset: Tensor | None,
                        levels: Tensor) -> Tensor:
        """Each level pools its consecutive rows (``rois`` in :meth:`level_order`); the last
        level takes the rest, so that torch.export sees the K rows add up (no unbacked size)."""
        num, start, pooled = rois.size(0), 0, []
        for i, (feat, layer) in enumerate(zip(feats, self.extractor.roi_layers)):
            if i < len(feats) - 1:
                n = (levels == i).sum().item()
                torch._check(n >= 0)
                torch._check(start + n <= num)
            else:
                n = num - start
            pooled.append(self._pool(layer, feat, rois.narrow(0, start, n),
                                     None if offset is None else offset.narrow(0, start, n)))
            start = start + n
        return torch.cat(pooled)

    def forward(self, feats: tuple[Tensor], rois: Tensor, offset: Tensor | None = None,
                gamma: float = 0.1) -> Tensor:
        ext = self.extractor
        rois = rois.type_as(feats[0])
        if offset is not None:
            offset = offset.type_as(feats[0]) * gamma
        levels = ext.map_roi_levels(rois, len(feats))
        if self._presorted:
            return self._pool_presorted(feats, rois, offset, levels)
        inds, pooled = [], []
        for i, (feat, layer) in enumerate(zip(feats, ext.roi_layers)):
            level_inds = (levels == i).nonzero().squeeze(1)
            inds.append(level_inds)
            pooled.append(self._pool(layer, feat, rois[level_inds],
                                     None if offset is None else offset[level_inds]))
        # One scatter of every level's rows (each RoI has exactly one level).
        roi_feats = feats[0].new_zeros(rois.size(0), ext.out_channels,
                                       *ext.roi_layers[0].output_size)
        return roi_feats.index_put((torch.cat(inds),), torch.cat(pooled))


def _nms_top(boxes: Tensor, scores: Tensor, groups: Tensor, valid: Tensor, nms_cfg: dict,
             num: int) -> tuple[Tensor, Tensor]:
    """mmcv's ``batched_nms`` over the valid rows, then the ``num`` best kept, in fixed size.

    boxes (M, 4), scores (M,) >= 0, groups (M,) NMS groups (level or label), valid (M,) bool.
    Returns indices (num,) into the rows, best first, and whether each is a kept row (num,):
    fewer than ``num`` kept rows leave the tail invalid.
    """
    cand = valid.nonzero().squeeze(1)
    cand_boxes = boxes[cand]
    if not nms_cfg.get('class_agnostic', False):
        # mmcv's offset trick: the largest coordinate of the valid boxes, + 1, per group.
        max_coordinate = boxes.masked_fill(~valid[:, None], float('-inf')).max()
        cand_boxes = cand_boxes + (groups[cand].to(boxes) * (max_coordinate + 1))[:, None]
    keep = torchvision.ops.nms(cand_boxes, scores[cand], nms_cfg['iou_threshold'])
    kept = torch.zeros_like(valid).index_put((cand[keep],), torch.ones_like(keep, dtype=torch.bool))
    ranked = torch.where(kept, scores, scores.new_tensor(-1.0))
    if ranked.size(0) < num:
        ranked = torch.cat([ranked, ranked.new_full((num - ranked.size(0),), -1.0)])
    top_scores, top = ranked.topk(num)
    return top.clamp(max=boxes.size(0) - 1), top_scores >= 0


class ExportDetector(nn.Module):
    """A trained two-stage detector as one graph: ``forward(image) -> (dets, labels[, masks])``.

    Contract (also in docs/deploy.md):

    - input ``image`` (1, 3, H, W) float32, H and W free: the image as the config's test pipeline
      delivers it (resized, not normalised, in the loader's channel order); the data
      preprocessor's mean, std, channel flip and padding to its size divisor are in the graph;
    - ``dets`` (1, N, 5): x1, y1, x2, y2, score in the input's pixels, best first;
      ``labels`` (1, N) int64; N is the config's ``test_cfg.rcnn.max_per_img``; rows past the
      detections have score 0, label -1 and a zero box;
    - Mask R-CNN also ``masks`` (1, N, 28, 28): the mask head's probabilities for each
      detection's label (zero for padded rows); pasting into the image is left to the caller.

    The computation is mmdet's ``model.predict`` (rescale=False): RPN top ``nms_pre`` per level,
    NMS per level, top ``max_per_img`` proposals (handed to the RoI head in FPN level order, which
    no detection depends on: its poolings need no scatter back), the RoI head's own forward (TSD
    or mmdet's), multi-class NMS. Counts that depend on the data (proposals kept, RoIs per FPN
    level, boxes over ``score_thr``) are tensor sizes, never Python branches; proposals and
    detections are padded to their fixed numbers with masked rows. mmcv's RoIAlign (baselines,
    mask branch) becomes torchvision's, the same algorithm.
    """

    def __init__(self, detector: nn.Module):
        super().__init__()
        check_exportable(detector)
        self.detector = copy.deepcopy(detector).eval()
        export_necks(self.detector)  # Libra R-CNN's BFP with free H, W
        roi_head = self.detector.roi_head
        self.tsd = isinstance(roi_head, TSDStageMixin)
        self.cascade = (roi_head.tsd_inference == 'cascade' if self.tsd else
                        isinstance(roi_head, CascadeRoIHead))
        for name in ('bbox_roi_extractor', 'mask_roi_extractor'):
            extractor = getattr(roi_head, name, None)
            if isinstance(extractor, nn.ModuleList):
                setattr(roi_head, name, nn.ModuleList([ExportRoIExtractor(e) for e in extractor]))
            elif extractor is not None:
                setattr(roi_head, name, ExportRoIExtractor(extractor))
        self.with_mask = roi_head.with_mask

    @property
    def output_names(self) -> list[str]:
        return ['dets', 'labels', 'masks'] if self.with_mask else ['dets', 'labels']

    def _preprocess(self, image: Tensor) -> Tensor:
        """The data preprocessor on one image: channel flip, normalisation, padding."""
        pre = self.detector.data_preprocessor
        x = image
        if pre._channel_conversion:
            x = x[:, [2, 1, 0]]
        div = pre.pad_size_divisor
        h, w = x.shape[-2:]
        pad = (0, (div - w % div) % div, 0, (div - h % div) % div)
        if not pre._enable_normalize:
            return F.pad(x, pad, value=pre.pad_value)
        if pre.pad_value != 0:
            return F.pad((x - pre.mean) / pre.std, pad, value=pre.pad_value)
        # Padding with 0 before the division by std is the same (0 / std = 0) and leaves the
        # division next to the first convolution, where INT8 needs its quantizer (quantize.py):
        # a Pad between them keeps that convolution in fp32 under OpenVINO.
        return F.pad(x - pre.mean, pad, value=0.) / pre.std

    def _proposals(self, feats: tuple[Tensor], img_shape) -> tuple[Tensor, Tensor]:
        """RPNHead.predict_by_feat for one image: (P, 4) proposals, P = ``max_per_img``, and their
        validity (P,)."""
        head = self.detector.rpn_head
        cfg = head.test_cfg
        cls_scores, bbox_preds = head(feats)
        priors = head.prior_generator.grid_priors(
            [s.shape[-2:] for s in cls_scores], dtype=cls_scores[0].dtype,
            device=cls_scores[0].device)
        k = cfg.nms_pre
        scores, deltas, anchors, levels = [], [], [], []
        for level, (score, delta, prior) in enumerate(zip(cls_scores, bbox_preds, priors)):
            score = score[0].permute(1, 2, 0).reshape(-1, head.cls_out_channels)
            score = score.sigmoid() if head.use_sigmoid_cls else score.softmax(-1)[:, :-1]
            delta = delta[0].permute(1, 2, 0).reshape(-1, head.bbox_coder.encode_size)
            # Pad with k rows of score -1 so that topk(k) has a fixed size at any feature size.
            score = torch.cat([score.reshape(-1), score.new_full((k,), -1.0)])
            top_scores, top = score.topk(k)
            scores.append(top_scores)
            deltas.append(torch.cat([delta, delta.new_zeros(k, delta.size(1))])[top])
            anchors.append(torch.cat([prior, prior.new_zeros(k, prior.size(1))])[top])
            levels.append(torch.full((k,), level, dtype=torch.long, device=score.device))
        scores = torch.cat(scores)
        boxes = head.bbox_coder.decode(torch.cat(anchors), torch.cat(deltas), max_shape=img_shape)
        valid = scores >= 0
        if cfg.get('min_bbox_size', -1) >= 0:
            wh = boxes[:, 2:] - boxes[:, :2]
            valid = valid & (wh > cfg.min_bbox_size).all(1)
        top, kept = _nms_top(boxes, scores, torch.cat(levels), valid, cfg.nms, cfg.max_per_img)
        return torch.where(kept[:, None], boxes[top], 0.0), kept

    def _detections(self, head: nn.Module, rois: Tensor, cls_score: Tensor, bbox_pred: Tensor,
                    roi_valid: Tensor, img_shape) -> tuple[Tensor, Tensor]:
        """BBoxHead._predict_by_feat_single + multiclass_nms in fixed size: dets (N, 5), labels
        (N,)."""
        cfg = self.detector.roi_head.test_cfg
        if head.custom_cls_channels:
            scores = head.loss_cls.get_activation(cls_score)
        else:
            scores = F.softmax(cls_score, dim=-1)
        num_rois = rois.size(0)
        reg_classes = 1 if head.reg_class_agnostic else head.num_classes
        boxes = head.bbox_coder.decode(
            rois[:, 1:].repeat_interleave(reg_classes, dim=0),
            bbox_pred.view(-1, head.bbox_coder.encode_size), max_shape=img_shape)
        boxes = boxes.view(num_rois, reg_classes, 4).expand(num_rois, head.num_classes, 4)
        scores = scores[:, :-1]
        labels = torch.arange(head.num_classes, device=scores.device).expand_as(scores)
        valid = (scores > cfg.score_thr) & roi_valid[:, None]
        boxes, scores, labels = boxes.reshape(-1, 4), scores.reshape(-1), labels.reshape(-1)
        top, kept = _nms_top(boxes, scores, labels, valid.reshape(-1), cfg.nms, cfg.max_per_img)
        dets = torch.where(kept[:, None], torch.cat([boxes[top], scores[top, None]], dim=1), 0.0)
        return dets, torch.where(kept, labels[top], -1)

    def forward(self, image: Tensor) -> tuple[Tensor, ...]:
        """image (1, 3, H, W) -> dets (1, N, 5), labels (1, N)[, masks (1, N, 28, 28)]."""
        img_shape = tuple(image.shape[-2:])
        feats = self.detector.extract_feat(self._preprocess(image))
        proposals, valid = self._proposals(feats, img_shape)
        rois = torch.cat([proposals.new_zeros(proposals.size(0), 1), proposals], dim=1)
        roi_head = self.detector.roi_head
        # The proposals in FPN level order (the detections do not depend on it): the first
        # stage's poolings then need no scatter back (ExportRoIExtractor.presorted).
        first = self._first_stage_extractor()
        presorted = contextlib.nullcontext()
        if first is not None:
            order = first.level_order(rois)
            rois, valid, presorted = rois[order], valid[order], first.presorted()
        with presorted:
            rois, cls_score, bbox_pred, head = self._box_forward(feats, rois, img_shape)
        dets, labels = self._detections(head, rois, cls_score, bbox_pred, valid, img_shape)
        if not self.with_mask:
            return dets[None], labels[None]
        mask_rois = torch.cat([dets.new_zeros(dets.size(0), 1), dets[:, :4]], dim=1)
        mask_preds = roi_head._mask_forward(feats, mask_rois)['mask_preds']
        if not roi_head.mask_head.class_agnostic:
            mask_preds = mask_preds[torch.arange(dets.size(0)), labels.clamp(min=0)]
        else:
            mask_preds = mask_preds[:, 0]
        masks = torch.where((labels >= 0)[:, None, None], mask_preds.sigmoid(), 0.0)
        return dets[None], labels[None], masks[None]

    def _first_stage_extractor(self) -> ExportRoIExtractor | None:
        """The box RoI extractor of the first stage alone: None for a cascade that shares one
        extractor across its stages (its later stages' RoIs come in the refined boxes' levels)."""
        extractor = self.detector.roi_head.bbox_roi_extractor
        if isinstance(extractor, nn.ModuleList):
            return extractor[0]  # one wrapper per stage (__init__)
        return None if self.cascade else extractor

    def _box_forward(self, feats: tuple[Tensor], rois: Tensor, img_shape):
        """The RoI head's box forward at inference: the last stage's rois, cls_score, bbox_pred
        (TSD: the deltas are relative to P-hat_r) and box head."""
        roi_head = self.detector.roi_head
        if self.cascade:
            rois, cls_scores, bbox_preds = roi_head._refine_roi(
                feats, rois, [dict(img_shape=img_shape)], (rois.size(0),))
            rois, cls_score, bbox_pred = rois[0], cls_scores[0], bbox_preds[0]
            head = roi_head.bbox_head[-1]
        elif self.tsd:
            results = roi_head.tsd_forward(0, feats, rois)
            rois, cls_score, bbox_pred = results['rois_r'], results['cls_score'], \
                results['bbox_pred']
            head = roi_head.tsd_stage(0).bbox_head
        else:
            results = roi_head._bbox_forward(feats, rois)
            cls_score, bbox_pred, head = results['cls_score'], results['bbox_pred'], \
                roi_head.bbox_head
        return rois, cls_score, bbox_pred, head
