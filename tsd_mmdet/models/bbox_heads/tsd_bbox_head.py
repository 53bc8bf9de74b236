"""TSDBBoxHead: offset predictors F_c, F_r and the two disentangled branches of the TSD head.

Implements eq. 3 and 5 (delta_r = F_r(F), delta_c = F_c(F), scaled by gamma * (w, h) at pooling),
eq. 4 (P-hat_r = P + delta_R) and the branches H_1^D (classification), H_2^D (regression) of eq. 2.
"""

import torch
from mmdet.models.roi_heads.bbox_heads import BBoxHead
from mmdet.models.task_modules.samplers import SamplingResult
from mmdet.registry import MODELS
from mmengine.config import ConfigDict
from torch import Tensor, nn

from .bbox_targets import bbox_targets

MANNERS = ('pointwise', 'proposalwise')


@MODELS.register_module()
class TSDBBoxHead(BBoxHead):
    """The TSD head H^D: from the RoI feature F of P, predict delta_c and delta_r; from the features
    pooled with them, classify (F-hat_c) and regress (F-hat_r) in separate branches.

    Layers (k = roi_feat_size, C = in_channels, paper sizes in brackets)::

        F (C*k*k) -> offset_fc (256) -+-> delta_c_fc (256) -> fc_delta_c (k*k*2 | 2)   = F_c
                                      +-> delta_r_fc (256) -> fc_delta_r (2 | k*k*2)   = F_r
        F-hat_c (C*k*k) -> cls_fcs (1024, 1024) -> fc_cls (num_classes + 1)
        F-hat_r (C*k*k) -> reg_fcs (1024, 1024) -> fc_reg (4 * num_classes | 4)

    The first offset layer is shared by F_c and F_r (§2.2). No weight is shared with the sibling
    head. The last offset layers start at Normal(std=1e-3), zero bias: offsets start close to 0,
    so TSD starts from pooling P itself, while gradients still reach ``offset_fc`` from the first
    step (an exactly-zero last layer would block them).

    Args:
        gamma_cls (float): gamma of eq. 5 for delta_c. Defaults to 0.1.
        gamma_reg (float): gamma of eq. 3 for delta_r. Defaults to 0.1.
        cls_manner (str): 'pointwise' (Point.w, k x k offsets) or 'proposalwise' (Prop.w, one
            translation) for P-hat_c. Defaults to 'pointwise' (Table 4).
        reg_manner (str): 'proposalwise' or 'pointwise' for P-hat_r. Defaults to 'proposalwise'.
            With 'proposalwise', boxes are regressed relative to P-hat_r; with 'pointwise',
            which has no single derived box, relative to P.
        offset_fc_channels (int): Width of the offset predictors. Defaults to 256.
        fc_out_channels (int): Width of the branch fcs. Defaults to 1024.
        detach_reg_targets (bool): Encode the regression targets of L_loc^D against a detached
            P-hat_r. False (default) follows the authors' code (Sense-X/TSD,
            ``bbox_target_single_tsd``: the targets are ``bbox2delta(P-hat_r, B)`` with P-hat_r
            built from delta_r and nothing detached), so L_loc^D trains delta_r directly: with
            gamma_reg equal to the coder's x/y std, d t / d delta_r = -1 and the box loss pulls
            P-hat_r towards its object. True keeps the targets fixed, so delta_r learns only through
            the pooled feature F-hat_r and, with PC, through M_loc; the paper says neither. Use it
            for ablations (docs/results.md).
        **kwargs: :class:`mmdet.models.roi_heads.bbox_heads.BBoxHead` arguments (in_channels,
            roi_feat_size, num_classes, bbox_coder, reg_class_agnostic, loss_cls, loss_bbox, ...).
            With ``with_avg_pool`` (a C4 detector's head after its shared res5, as mmdet's
            TridentNet), F, F-hat_c and F-hat_r are averaged over the k x k grid before the offset
            fc and the branch fcs, as BBoxHead averages F; the paper (FPN heads only) is silent.
    """

    def __init__(self,
                 gamma_cls: float = 0.1,
                 gamma_reg: float = 0.1,
                 cls_manner: str = 'pointwise',
                 reg_manner: str = 'proposalwise',
                 offset_fc_channels: int = 256,
                 fc_out_channels: int = 1024,
                 detach_reg_targets: bool = False,
                 init_cfg: dict | None = None,
                 **kwargs) -> None:
        super().__init__(init_cfg=init_cfg, **kwargs)
        for name, manner in (('cls_manner', cls_manner), ('reg_manner', reg_manner)):
            if manner not in MANNERS:
                raise ValueError(f'{name} must be one of {MANNERS}, got {manner!r}')
        if not (self.with_cls and self.with_reg):
            raise ValueError('TSDBBoxHead needs with_cls and with_reg')
        self.gamma_cls = gamma_cls
        self.gamma_reg = gamma_reg
        self.cls_manner = cls_manner
        self.reg_manner = reg_manner
        self.offset_fc_channels = offset_fc_channels
        self.fc_out_channels = fc_out_channels
        self.detach_reg_targets = detach_reg_targets

        in_dim = self.in_channels if self.with_avg_pool else self.in_channels * self.roi_feat_area
        self.offset_fc = nn.Linear(in_dim, offset_fc_channels)
        self.delta_c_fc = nn.Linear(offset_fc_channels, offset_fc_channels)
        self.fc_delta_c = nn.Linear(offset_fc_channels, self._offset_dim(cls_manner))
        self.delta_r_fc = nn.Linear(offset_fc_channels, offset_fc_channels)
        self.fc_delta_r = nn.Linear(offset_fc_channels, self._offset_dim(reg_manner))

        self.cls_fcs = nn.ModuleList(
            [nn.Linear(in_dim, fc_out_channels), nn.Linear(fc_out_channels, fc_out_channels)])
        self.reg_fcs = nn.ModuleList(
            [nn.Linear(in_dim, fc_out_channels), nn.Linear(fc_out_channels, fc_out_channels)])
        self.relu = nn.ReLU(inplace=True)

        # BBoxHead built fc_cls / fc_reg on the flattened RoI feature; rebuild them on the fcs.
        if self.custom_cls_channels:
            cls_channels = self.loss_cls.get_cls_channels(self.num_classes)
        else:
            cls_channels = self.num_classes + 1
        cls_predictor_cfg = self.cls_predictor_cfg.copy()
        cls_predictor_cfg.update(in_features=fc_out_channels, out_features=cls_channels)
        self.fc_cls = MODELS.build(cls_predictor_cfg)
        box_dim = self.bbox_coder.encode_size
        reg_predictor_cfg = self.reg_predictor_cfg.copy()
        reg_predictor_cfg.update(
            in_features=fc_out_channels,
            out_features=box_dim if self.reg_class_agnostic else box_dim * self.num_classes)
        self.fc_reg = MODELS.build(reg_predictor_cfg)

        if init_cfg is None:
            # BBoxHead already set Normal(0.01) for fc_cls and Normal(0.001) for fc_reg.
            self.init_cfg += [
                dict(
                    type='Xavier',
                    distribution='uniform',
                    override=[
                        dict(name='offset_fc'),
                        dict(name='delta_c_fc'),
                        dict(name='delta_r_fc'),
                        dict(name='cls_fcs'),
                        dict(name='reg_fcs')
                    ]),
                dict(
                    type='Normal',
                    std=1e-3,
                    override=[dict(name='fc_delta_c'), dict(name='fc_delta_r')])
            ]

    def _offset_dim(self, manner: str) -> int:
        """Output width of an offset predictor: k*k*2 pointwise, 2 proposal-wise."""
        return 2 * self.roi_feat_area if manner == 'pointwise' else 2

    def _shape_offset(self, offset: Tensor, manner: str) -> Tensor:
        """(K, D) predictor output -> (K, 2, k, k) pointwise or (K, 2) proposal-wise."""
        if manner == 'pointwise':
            return offset.view(offset.size(0), 2, *self.roi_feat_size)
        return offset

    def _flatten(self, feats: Tensor) -> Tensor:
        """(K, C, k, k) -> (K, C * k * k), or (K, C) averaged over the grid with avg pooling."""
        return self.avg_pool(feats).flatten(1) if self.with_avg_pool else feats.flatten(1)

    def forward_offsets(self, bbox_feats: Tensor) -> tuple[Tensor, Tensor]:
        """Predict the raw offsets delta_c (F_c) and delta_r (F_r) from the RoI feature F of P.

        The pooling op scales them by gamma * (w, h) (eq. 3, 5).

        Args:
            bbox_feats (Tensor): F, (K, C, k, k).

        Returns:
            tuple[Tensor, Tensor]: delta_c and delta_r, each (K, 2, k, k) for 'pointwise' or
            (K, 2) for 'proposalwise'; channel 0 is x, 1 is y.
        """
        x = self.relu(self.offset_fc(self._flatten(bbox_feats)))
        delta_c = self.fc_delta_c(self.relu(self.delta_c_fc(x)))
        delta_r = self.fc_delta_r(self.relu(self.delta_r_fc(x)))
        return (self._shape_offset(delta_c, self.cls_manner),
                self._shape_offset(delta_r, self.reg_manner))

    def forward(self, cls_feats: Tensor, reg_feats: Tensor) -> tuple[Tensor, Tensor]:
        """Run the classification branch on F-hat_c and the regression branch on F-hat_r.

        Args:
            cls_feats (Tensor): F-hat_c, (K, C, k, k).
            reg_feats (Tensor): F-hat_r, (K, C, k, k).

        Returns:
            tuple[Tensor, Tensor]: cls_score (K, num_classes + 1) and bbox_pred
            (K, 4 * num_classes), or (K, 4) if class agnostic; deltas relative to
            :meth:`derive_reg_rois`.
        """
        x_cls = self._flatten(cls_feats)
        for fc in self.cls_fcs:
            x_cls = self.relu(fc(x_cls))
        x_reg = self._flatten(reg_feats)
        for fc in self.reg_fcs:
            x_reg = self.relu(fc(x_reg))
        return self.fc_cls(x_cls), self.fc_reg(x_reg)

    def derive_reg_rois(self, rois: Tensor, delta_r: Tensor) -> Tensor:
        """The boxes the regression deltas are relative to.

        Proposal-wise: P-hat_r = P + gamma_reg * delta_r * (w, h) (eq. 3-4), in image coordinates,
        with w = x2 - x1, h = y2 - y1 as in mmdet 3.x and tsd_mmdet.ops. Pointwise: P itself (a
        pointwise deformation has no single derived box).

        Args:
            rois (Tensor): P, (K, 5) [batch_idx, x1, y1, x2, y2].
            delta_r (Tensor): (K, 2) proposal-wise or (K, 2, k, k) pointwise.

        Returns:
            Tensor: (K, 5), same layout as ``rois``.
        """
        if self.reg_manner == 'pointwise':
            return rois
        shift = self.gamma_reg * delta_r.type_as(rois) * (rois[:, 3:5] - rois[:, 1:3])
        return torch.cat([rois[:, :1], rois[:, 1:3] + shift, rois[:, 3:5] + shift], dim=1)

    def get_targets(self,
                    sampling_results: list[SamplingResult],
                    rcnn_train_cfg: ConfigDict,
                    concat: bool = True,
                    rois: Tensor | None = None) -> tuple:
        """BBoxHead.get_targets, with positives encoded against ``rois`` when given.

        A positive whose ground-truth box or RoI has no width or height (zero-size or inverted;
        mmdet's sampler adds each ground-truth box as a proposal) gets box target 0 and box
        weight 0 and sends no gradient through its target: no L_loc^D from it and, with attached
        targets, none to delta_r (:func:`~tsd_mmdet.models.bbox_heads.bbox_targets.bbox_targets`).
        It still counts as a positive for classification. Every valid box is encoded as before.

        Args:
            sampling_results (list[SamplingResult]): Sampling results of the batch.
            rcnn_train_cfg (ConfigDict): ``train_cfg`` of R-CNN.
            concat (bool): Concatenate the images. Defaults to True.
            rois (Tensor, optional): (K, 5) boxes the deltas are relative to, rows in the order of
                ``bbox2roi([res.priors ...])``; the targets stay differentiable with respect to
                them (detach them before, as :meth:`loss_and_target` does with
                ``detach_reg_targets``, to keep the targets fixed). None encodes against the
                sampled priors, as BBoxHead does.

        Returns:
            tuple: labels (K,), label_weights (K,), bbox_targets (K, 4), bbox_weights (K, 4)
            (lists per image if not ``concat``).
        """
        return bbox_targets(self, sampling_results, rcnn_train_cfg, concat=concat, rois=rois)

    def loss_and_target(self,
                        cls_score: Tensor,
                        bbox_pred: Tensor,
                        rois: Tensor,
                        sampling_results: list[SamplingResult],
                        rcnn_train_cfg: ConfigDict,
                        concat: bool = True,
                        reduction_override: str | None = None) -> dict:
        """L_cls^D and L_loc^D of eq. 2, with regression targets encoded against ``rois``.

        In BBoxHead ``rois`` are the sampled priors themselves; here they are the boxes from
        :meth:`derive_reg_rois` (P-hat_r). By default the targets are encoded against P-hat_r
        attached, so L_loc^D also trains delta_r through the targets (the authors' code); with
        ``detach_reg_targets`` they are encoded against P-hat_r detached and delta_r learns
        through the pooled features F-hat_r only.

        Args:
            cls_score (Tensor): (K, num_classes + 1).
            bbox_pred (Tensor): (K, 4 * num_classes) or (K, 4).
            rois (Tensor): (K, 5) regression rois, rows following the sampled priors.
            sampling_results (list[SamplingResult]): Sampling results of the batch.
            rcnn_train_cfg (ConfigDict): ``train_cfg`` of R-CNN.
            concat (bool): Concatenate the images. Defaults to True.
            reduction_override (str, optional): Loss reduction override. Defaults to None.

        Returns:
            dict: ``loss_bbox``: losses keyed ``loss_cls_tsd``, ``loss_bbox_tsd``, ``acc_tsd``;
            ``bbox_targets``: the targets tuple of :meth:`get_targets`.
        """
        if self.detach_reg_targets:
            rois = rois.detach()
        targets = self.get_targets(sampling_results, rcnn_train_cfg, concat=concat, rois=rois)
        losses = self.loss(
            cls_score, bbox_pred, rois, *targets, reduction_override=reduction_override)
        return dict(loss_bbox={f'{k}_tsd': v for k, v in losses.items()}, bbox_targets=targets)
