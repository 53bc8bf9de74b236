"""Box-head targets that stay finite on degenerate boxes: mmdet's targets, unencodable rows dropped.

Serves L_loc^D of eq. 2 (targets against P-hat_r, eq. 4) and the sibling's L_loc of eq. 1: a
positive whose box has no width or height cannot be encoded (0 / 0, log 0) and gets no box target.
"""
import torch
from mmdet.models.roi_heads.bbox_heads import BBoxHead
from mmdet.models.task_modules.samplers import SamplingResult
from mmdet.models.utils import multi_apply
from mmdet.structures.bbox import get_box_tensor
from mmengine.config import ConfigDict
from torch import Tensor

__all__ = ['bbox_targets', 'degenerate_boxes']


def degenerate_boxes(boxes: Tensor) -> Tensor:
    """Which boxes cannot be encoded: width or height <= 0 (zero-size or inverted) or not finite.

    Args:
        boxes (Tensor): (P, 4) boxes ``x1, y1, x2, y2``.

    Returns:
        Tensor: (P,) bool.
    """
    size = boxes[:, 2:4] - boxes[:, 0:2]
    return ~((size > 0).all(1) & torch.isfinite(boxes).all(1))


def bbox_targets(head: BBoxHead,
                 sampling_results: list[SamplingResult],
                 rcnn_train_cfg: ConfigDict,
                 concat: bool = True,
                 rois: Tensor | None = None) -> tuple:
    """``head.get_targets`` (mmdet's BBoxHead), finite for degenerate positives.

    A positive whose ground-truth box or whose RoI (the box its deltas are relative to) is
    degenerate (:func:`degenerate_boxes`: a zero-width, zero-height or inverted box, which mmdet's
    sampler adds as a proposal of its own) gets box target 0 and box weight 0, and is encoded
    against a constant stand-in: it adds nothing to the box loss and sends no gradient through
    the targets (with attached ``rois``, none to delta_r). It stays a positive for classification
    (its label and label weight are mmdet's). Every other row is exactly mmdet's.

    Args:
        head (BBoxHead): The head whose coder, classes and ``_get_targets_single`` are used.
        sampling_results (list[SamplingResult]): Sampling results of the batch.
        rcnn_train_cfg (ConfigDict): ``train_cfg`` of R-CNN.
        concat (bool): Concatenate the images. Defaults to True.
        rois (Tensor, optional): (K, 5) boxes the deltas are relative to, rows in the order of
            ``bbox2roi([res.priors ...])``; the targets stay differentiable with respect to them.
            None encodes against the sampled priors, as BBoxHead does.

    Returns:
        tuple: labels (K,), label_weights (K,), bbox_targets (K, 4), bbox_weights (K, 4) (lists
        per image if not ``concat``).
    """
    if rois is None:
        pos_rois = [res.pos_priors for res in sampling_results]
    else:
        img_rois = rois.split([len(res.priors) for res in sampling_results])
        pos_rois = [r[:len(res.pos_priors), 1:] for r, res in zip(img_rois, sampling_results)]
    pos_gts = [get_box_tensor(res.pos_gt_bboxes) for res in sampling_results]
    bad = [degenerate_boxes(r) | degenerate_boxes(g) for r, g in zip(pos_rois, pos_gts)]
    # Bad rows are encoded as the unit box against itself: finite, and constant (no gradient).
    pos_rois = [_replace_rows(r, b) for r, b in zip(pos_rois, bad)]
    pos_gts = [_replace_rows(g, b) for g, b in zip(pos_gts, bad)]
    labels, label_weights, targets, weights = multi_apply(
        head._get_targets_single,
        pos_rois,
        [res.neg_priors for res in sampling_results],
        pos_gts,
        [res.pos_gt_labels for res in sampling_results],
        cfg=rcnn_train_cfg)
    targets = [_zero_rows(t, b) for t, b in zip(targets, bad)]
    weights = [_zero_rows(w, b) for w, b in zip(weights, bad)]
    if concat:
        return tuple(torch.cat(t, 0) for t in (labels, label_weights, targets, weights))
    return labels, label_weights, targets, weights


def _replace_rows(boxes: Tensor, rows: Tensor) -> Tensor:
    """``boxes`` (P, 4) with ``rows`` (P,) replaced by the unit box (0, 0, 1, 1)."""
    if not rows.any():
        return boxes
    unit = boxes.new_tensor([0., 0., 1., 1.]).expand_as(boxes)
    return torch.where(rows[:, None], unit, boxes)


def _zero_rows(values: Tensor, rows: Tensor) -> Tensor:
    """``values`` (K, D) with its first ``len(rows)`` rows zeroed where ``rows`` (the positives)."""
    if not rows.any():
        return values
    mask = torch.zeros(values.size(0), dtype=torch.bool, device=values.device)
    mask[:rows.numel()] = rows
    return values.masked_fill(mask[:, None], 0)
