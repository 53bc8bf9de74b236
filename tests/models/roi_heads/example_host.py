"""The worked example of docs/extending.md: TSD in your own RoI head, in one file (eq. 2-9 reused).

``LossScaledRoIHead`` stands for your detector's RoI head: a StandardRoIHead that scales its box
losses. ``TSDLossScaledRoIHead`` is its TSD host: the mixin's contract does the rest.
"""
from mmdet.models.roi_heads import StandardRoIHead
from mmdet.registry import MODELS

from tsd_mmdet.models.roi_heads import TSDRoIHead


@MODELS.register_module(force=True)
class LossScaledRoIHead(StandardRoIHead):
    """Your RoI head: mmdet's StandardRoIHead with every box loss multiplied by ``loss_scale``."""

    def __init__(self, loss_scale: float = 1.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.loss_scale = loss_scale

    def bbox_loss(self, x, sampling_results) -> dict:
        bbox_results = super().bbox_loss(x, sampling_results)
        bbox_results['loss_bbox'] = self.scaled(bbox_results['loss_bbox'])
        return bbox_results

    def scaled(self, losses: dict) -> dict:
        return {k: v * self.loss_scale if 'loss' in k else v for k, v in losses.items()}


@MODELS.register_module(force=True)
class TSDLossScaledRoIHead(TSDRoIHead, LossScaledRoIHead):
    """Your RoI head with TSD's box branch: the scale applies to TSD's branches (L_cls^D, L_loc^D).

    TSDRoIHead first in the bases: its box forward, loss and inference replace the sibling head's
    role; LossScaledRoIHead's constructor still runs (``loss_scale``). The one override moves what
    the host adds from its box loss onto TSD's branch loss.
    """

    def tsd_branch_loss(self, bbox_results, sampling_results, bbox_head, train_cfg) -> dict:
        tsd = super().tsd_branch_loss(bbox_results, sampling_results, bbox_head, train_cfg)
        tsd['loss_bbox'] = self.scaled(tsd['loss_bbox'])
        return tsd
