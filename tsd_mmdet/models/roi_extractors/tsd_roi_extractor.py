"""TSDRoIExtractor: FPN RoI pooling of P and of its task-specific derivations P-hat_c, P-hat_r.

Implements the pooling of eq. 3-6: F from P, F-hat_r from P + delta_R (eq. 3-4) and F-hat_c by the
pointwise deformation delta_C with bilinear sampling (eq. 5-6), through tsd_mmdet.ops.
"""

import torch
from mmdet.models.roi_heads.roi_extractors import SingleRoIExtractor
from mmdet.registry import MODELS
from mmdet.utils import ConfigType, OptMultiConfig
from torch import Tensor, nn
from torch.nn.modules.utils import _pair

from tsd_mmdet.ops import DeformRoIAlign


@MODELS.register_module()
class TSDRoIExtractor(SingleRoIExtractor):
    """SingleRoIExtractor whose RoI layers are :class:`tsd_mmdet.ops.DeformRoIAlign`.

    Each RoI goes to the FPN level chosen by ``map_roi_levels`` for the *original* proposal P
    (same rule and ``finest_scale`` as SingleRoIExtractor), whatever offset it is pooled with, so
    F, F-hat_c and F-hat_r of one proposal come from the same level. Without an offset the layer is
    exactly RoIAlign (aligned=True): the same extractor gives F for P.

    The layers are built with ``gamma=1``; the scale gamma travels with the call instead
    (``forward(..., gamma=...)``), because one extractor pools both delta_c (gamma_cls) and
    delta_r (gamma_reg). ``roi_layer`` therefore must not set ``gamma``.

    Args:
        roi_layer (dict): ``dict(type='DeformRoIAlign', output_size=7, sampling_ratio=0)``;
            ``aligned`` may also be given.
        out_channels (int): Channels of the pooled features.
        featmap_strides (list[int]): Strides of the input feature maps.
        finest_scale (int): Scale threshold of level 0. Defaults to 56.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    def __init__(self,
                 roi_layer: ConfigType,
                 out_channels: int,
                 featmap_strides: list[int],
                 finest_scale: int = 56,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(
            roi_layer=roi_layer,
            out_channels=out_channels,
            featmap_strides=featmap_strides,
            finest_scale=finest_scale,
            init_cfg=init_cfg)
        self.output_size = _pair(roi_layer['output_size'])

    def build_roi_layers(self, layer_cfg: ConfigType, featmap_strides: list[int]) -> nn.ModuleList:
        """Build one ``DeformRoIAlign`` (gamma=1) per level from ``tsd_mmdet.ops``.

        Args:
            layer_cfg (dict): RoI layer config, type ``'DeformRoIAlign'``.
            featmap_strides (list[int]): Strides of the input feature maps.

        Returns:
            nn.ModuleList: One RoI layer per level.
        """
        cfg = dict(layer_cfg)
        layer_type = cfg.pop('type')
        if layer_type not in ('DeformRoIAlign', DeformRoIAlign):
            raise ValueError(
                f"TSDRoIExtractor needs roi_layer type 'DeformRoIAlign', got {layer_type!r}")
        if 'gamma' in cfg:
            raise ValueError('TSDRoIExtractor: set gamma on the bbox head (gamma_cls, gamma_reg), '
                             'not on roi_layer')
        return nn.ModuleList(
            [DeformRoIAlign(spatial_scale=1 / s, gamma=1.0, **cfg) for s in featmap_strides])

    def forward(self,
                feats: tuple[Tensor],
                rois: Tensor,
                offset: Tensor | None = None,
                gamma: float = 0.1,
                roi_scale_factor: float | None = None) -> Tensor:
        """Pool each RoI at its level, moved by ``gamma * offset * (w, h)``.

        Args:
            feats (tuple[Tensor]): Multi-level features, each (N, C, H_l, W_l).
            rois (Tensor): (K, 5) [batch_idx, x1, y1, x2, y2] in image coordinates.
            offset (Tensor, optional): Rows follow ``rois``: (K, 2) proposal-wise translation or
                (K, 2, oh, ow) pointwise deformation, x first. None pools plain RoIAlign.
            gamma (float): Magnitude gamma of eq. 3/5. Ignored without an offset.
            roi_scale_factor (float, optional): Rescale RoIs about their centres after the level
                mapping. Defaults to None.

        Returns:
            Tensor: RoI features, (K, out_channels, oh, ow).
        """
        rois = rois.type_as(feats[0])
        if offset is not None:
            if offset.size(0) != rois.size(0):
                raise ValueError(f'offset has {offset.size(0)} rows for {rois.size(0)} rois')
            offset = offset.type_as(feats[0]) * gamma
        num_levels = len(feats)
        roi_feats = feats[0].new_zeros(rois.size(0), self.out_channels, *self.output_size)
        target_lvls = self.map_roi_levels(rois, num_levels)
        if roi_scale_factor is not None:
            rois = self.roi_rescale(rois, roi_scale_factor)

        unused = []
        for i in range(num_levels):
            inds = (target_lvls == i).nonzero(as_tuple=False).squeeze(1)
            if inds.numel() > 0:
                level_offset = None if offset is None else offset[inds]
                roi_feats[inds] = self.roi_layers[i](feats[i], rois[inds], level_offset)
            else:
                unused.append(feats[i])
        if unused and torch.is_grad_enabled():
            # Keep every level (and the offset) in the graph, as SingleRoIExtractor does, so that
            # distributed training sees the same graph on every rank; one add, not one per level.
            if offset is not None:
                unused.append(offset)
            roi_feats = roi_feats + sum(t.sum() for t in unused) * 0.
        return roi_feats
