"""TSDDynamicRoIHead: Dynamic R-CNN's RoI head with TSD's box branch (TSD host, one stage).

Implements the TSD loss of eq. 9 as TSDRoIHead does; Dynamic R-CNN's schedules (its IoU threshold
and SmoothL1 beta) are fed by TSD's side: the proposals P and the regression targets of L_loc^D.
"""
import torch
from mmdet.models.roi_heads import DynamicRoIHead
from mmdet.models.task_modules.samplers import SamplingResult
from mmdet.registry import MODELS
from torch import Tensor

from .tsd_roi_head import TSDRoIHead


@MODELS.register_module()
class TSDDynamicRoIHead(TSDRoIHead, DynamicRoIHead):
    """Dynamic R-CNN (``DynamicRoIHead``) whose box branch is TSD's (Fig. 2), with sibling and PC.

    What the schedules read (the paper is silent; the choice keeps Dynamic R-CNN's meaning for
    the box branch that is used at inference):

    - IoU threshold: the ``iou_topk``-th largest IoU between the proposals P and the ground truth
      (``DynamicRoIHead.loss``, unchanged): P is what TSD's stage is assigned and sampled on;
    - SmoothL1 beta: the ``beta_topk``-th smallest |target| (x, y) of TSD's regression targets,
      encoded against P-hat_r (eq. 4), not the sibling's against P. The new beta is set on TSD's
      ``loss_bbox`` and, when the sibling regresses with SmoothL1 too, on the sibling's (the
      baseline's Dynamic R-CNN head, trained jointly, follows the same schedule).

    Args:
        **kwargs: :class:`TSDRoIHead` and :class:`mmdet.models.roi_heads.DynamicRoIHead` arguments.
    """

    def bbox_loss(self, x: tuple[Tensor], sampling_results: list[SamplingResult]) -> dict:
        """:meth:`TSDRoIHead.bbox_loss`, recording the beta statistic of TSD's targets.

        Args:
            x (tuple[Tensor]): Multi-level features.
            sampling_results (list[SamplingResult]): Sampling results of the batch.

        Returns:
            dict: :meth:`TSDRoIHead.bbox_loss`'s results.
        """
        bbox_results = super().bbox_loss(x, sampling_results)
        # DynamicRoIHead.bbox_loss's statistic, on TSD's targets (against P-hat_r)
        _, _, targets, weights = bbox_results['bbox_targets']
        pos = weights[:, 0].nonzero().squeeze(1)
        if len(pos) > 0:
            cur_target = targets[pos, :2].detach().abs().mean(dim=1)
            k = min(self.train_cfg.dynamic_rcnn.beta_topk * len(sampling_results), len(pos))
            self.beta_history.append(torch.kthvalue(cur_target, k)[0].item())
        return bbox_results

    def update_hyperparameters(self) -> tuple[float, float]:
        """DynamicRoIHead's update, with the new beta also given to a SmoothL1 sibling.

        Returns:
            tuple[float]: the updated ``iou_thr`` and ``beta``.
        """
        new_iou_thr, new_beta = super().update_hyperparameters()
        sibling_loss = getattr(self.sibling_head, 'loss_bbox', None)
        if hasattr(sibling_loss, 'beta'):
            sibling_loss.beta = new_beta
        return new_iou_thr, new_beta
