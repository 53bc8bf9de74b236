"""TSDHybridTaskCascadeRoIHead: HTC whose every box stage is a TSD head (TSD host, cascade).

Implements the TSD loss of eq. 9 at each stage as TSDCascadeRoIHead does; HTC's interleaved mask
flow, mask information flow and semantic branch are mmdet's, unchanged.
"""
from mmdet.models.roi_heads import HybridTaskCascadeRoIHead
from mmdet.models.task_modules.samplers import SamplingResult
from mmdet.registry import MODELS
from mmdet.structures.bbox import bbox2roi
from torch import Tensor
from torch.nn import functional as F

from .tsd_cascade_roi_head import TSDCascadeRoIHead


@MODELS.register_module()
class TSDHybridTaskCascadeRoIHead(TSDCascadeRoIHead, HybridTaskCascadeRoIHead):
    """HTC (``HybridTaskCascadeRoIHead``) with TSD box heads at every stage (Fig. 2 per stage).

    Box stages are :class:`TSDCascadeRoIHead`'s: the refined boxes handed to the next stage (and,
    interleaved, to the mask branch of the same stage) are TSD's, decoded from P-hat_r. With
    ``'bbox'`` in ``semantic_fusion``, the semantic feature pooled from P is added to F, as HTC
    adds it to its box feature; F is what the sibling head and the offset predictors F_c, F_r see.
    F-hat_c and F-hat_r are pooled from the FPN only: HTC pools its semantic feature on P, and
    the paper and the authors' code (no HTC) are silent on fusing it at P-hat_c / P-hat_r. Mask
    heads, mask information flow and the semantic head are HTC's. Its inference (interleaved
    masks, semantic fusion) is its own, so export refuses it (``tsd_inference`` None).

    Args:
        **kwargs: :class:`TSDCascadeRoIHead` and ``HybridTaskCascadeRoIHead`` arguments.
    """

    tsd_inference = None

    def _semantic_roi_feats(self, stage: int, rois: Tensor,
                            semantic_feat: Tensor | None) -> Tensor | None:
        """HTC's box semantic fusion: the semantic feature pooled from ``rois`` (K, C, k, k), at
        the size of ``stage``'s F, or None without it."""
        if semantic_feat is None or not (self.with_semantic and 'bbox' in self.semantic_fusion):
            return None
        feats = self.semantic_roi_extractor([semantic_feat], rois)
        size = tuple(self.bbox_head[stage].roi_feat_size)
        return feats if feats.shape[-2:] == size else F.adaptive_avg_pool2d(feats, size)

    def _bbox_forward(self, stage: int, x: tuple[Tensor], rois: Tensor,
                      semantic_feat: Tensor | None = None) -> dict:
        """:meth:`TSDCascadeRoIHead._bbox_forward` with HTC's semantic feature added to F.

        Args:
            stage (int): Cascade stage.
            x (tuple[Tensor]): Multi-level features.
            rois (Tensor): P of this stage, (K, 5).
            semantic_feat (Tensor, optional): The semantic head's feature, (N, C, H, W).

        Returns:
            dict: As :meth:`TSDCascadeRoIHead._bbox_forward`.
        """
        return self.tsd_bbox_forward(x, rois, *self.stage_modules(stage),
                                     self._semantic_roi_feats(stage, rois, semantic_feat))

    def bbox_loss(self, stage: int, x: tuple[Tensor], sampling_results: list[SamplingResult],
                  semantic_feat: Tensor | None = None) -> dict:
        """:meth:`TSDCascadeRoIHead.bbox_loss` with HTC's semantic feature added to F.

        Returns:
            dict: As :meth:`TSDCascadeRoIHead.bbox_loss`.
        """
        rois = bbox2roi([res.priors for res in sampling_results])
        return super().bbox_loss(stage, x, sampling_results,
                                 self._semantic_roi_feats(stage, rois, semantic_feat))

    def tsd_forward(self, stage: int, x: tuple[Tensor], rois: Tensor) -> dict:
        """The box forward of ``stage`` as at inference: the semantic feature from ``x``."""
        semantic_feat = self.semantic_head(x)[1] if self.with_semantic else None
        return self._bbox_forward(stage, x, rois, semantic_feat)
