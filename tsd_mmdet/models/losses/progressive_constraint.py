"""Progressive constraint (PC): hinge losses that push TSD above the sibling head by a margin.

Implements M_cls (eq. 7) and M_loc (eq. 8), each weighted 1.0 by default in the total loss (eq. 9).
"""
import torch
import torch.nn.functional as F
from mmdet.registry import MODELS
from torch import Tensor, nn


def _hinge(sibling: Tensor, tsd: Tensor, margin: float) -> Tensor:
    """Elementwise |s - t + min(m, 1 - s)|_+ for scores in [0, 1], shape of ``sibling``.

    The effective margin min(m, 1 - s) keeps the target s + margin reachable (at most 1), as the
    authors' code does; eq. 7-8 write the plain m.
    """
    effective_margin = torch.clamp(1 - sibling, max=margin)
    return F.relu(sibling - tsd + effective_margin)


def _mean(loss: Tensor) -> Tensor:
    """Mean of a 1-D loss; 0 (finite, still in the graph) when it is empty."""
    return loss.sum() / max(loss.numel(), 1)


@MODELS.register_module()
class ProgressiveConstraintCls(nn.Module):
    """M_cls (eq. 7): the TSD head's softmax score of the target class should beat the sibling's.

    ``loss = mean_k relu(p_sib[k, y_k] - p_tsd[k, y_k] + min(m_c, 1 - p_sib[k, y_k]))`` over all
    sampled RoIs, background included (the default, as the authors' code does; eq. 7 does not say,
    while eq. 8 says M_loc ignores negatives). mmdet 3.x puts the background class in the *last*
    column (label ``num_classes``), so ``y_k`` indexes the scores directly.

    ``foreground_only=True`` averages over the positive RoIs only (label < num_classes), as M_loc
    does: an ablation option, not the paper's or the authors' setting. With no positives the loss is
    0, finite and still in the graph.

    The sibling side is detached: PC is there to pull TSD above the sibling head, not to pull the
    sibling down towards TSD; the sibling is trained by its own loss only.

    Args:
        margin_cls (float): m_c. Defaults to 0.2 (ablations; 0.5 in the final models, §3.6).
        loss_weight (float): Weight of the term. Defaults to 1.0 (eq. 9).
        foreground_only (bool): Average over positive RoIs only. Defaults to False (authors').
    """

    def __init__(self, margin_cls: float = 0.2, loss_weight: float = 1.0,
                 foreground_only: bool = False) -> None:
        super().__init__()
        self.margin_cls = margin_cls
        self.loss_weight = loss_weight
        self.foreground_only = foreground_only

    def forward(self, cls_score_sibling: Tensor, cls_score_tsd: Tensor, labels: Tensor) -> Tensor:
        """Compute M_cls.

        Args:
            cls_score_sibling (Tensor): Sibling-head logits, (K, num_classes + 1).
            cls_score_tsd (Tensor): TSD-head logits, (K, num_classes + 1).
            labels (Tensor): Label of each sampled RoI in [0, num_classes], num_classes being
                background, (K,).

        Returns:
            Tensor: Scalar loss.
        """
        sib, tsd, lab = (tuple(t.shape) for t in (cls_score_sibling, cls_score_tsd, labels))
        if sib != tsd or lab != tsd[:1]:
            raise ValueError('ProgressiveConstraintCls: expected sibling and TSD scores of one '
                             f'shape (K, C + 1) and K labels, got {sib}, {tsd} and {lab}')
        rows = torch.arange(labels.numel(), device=labels.device)
        if self.foreground_only:
            rows = rows[labels < cls_score_tsd.size(-1) - 1]
        p_sibling = F.softmax(cls_score_sibling.detach(), dim=-1)[rows, labels[rows]]
        p_tsd = F.softmax(cls_score_tsd, dim=-1)[rows, labels[rows]]
        return self.loss_weight * _mean(_hinge(p_sibling, p_tsd, self.margin_cls))


@MODELS.register_module()
class ProgressiveConstraintLoc(nn.Module):
    """M_loc (eq. 8): the TSD box should overlap its ground truth more than the sibling's box.

    ``loss = mean_k relu(IoU_sib[k] - IoU_tsd[k] + min(m_r, 1 - IoU_sib[k]))`` over positive RoIs
    (negatives are ignored, §2.3). IoUs are computed by the caller (TSDRoIHead) with mmdet's
    aligned ``bbox_overlaps``. The sibling IoU is detached for the same reason as in
    :class:`ProgressiveConstraintCls`. With no positives the loss is 0, finite and still in the
    graph.

    Args:
        margin_reg (float): m_r. Defaults to 0.2.
        loss_weight (float): Weight of the term. Defaults to 1.0 (eq. 9).
    """

    def __init__(self, margin_reg: float = 0.2, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.margin_reg = margin_reg
        self.loss_weight = loss_weight

    def forward(self, iou_sibling: Tensor, iou_tsd: Tensor) -> Tensor:
        """Compute M_loc.

        Args:
            iou_sibling (Tensor): IoU(B-hat, B) of the sibling's boxes, (P,).
            iou_tsd (Tensor): IoU(B-hat_D, B) of the TSD boxes, (P,).

        Returns:
            Tensor: Scalar loss.
        """
        return self.loss_weight * _mean(_hinge(iou_sibling.detach(), iou_tsd, self.margin_reg))
