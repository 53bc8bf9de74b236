# TSD (task-aware spatial disentanglement, with the progressive constraint) on the generated
# "shapes" dataset: faster-rcnn_r18_fpn_shapes.py with its RoI head replaced by TSD's. The
# classification branch reads pointwise-deformed RoIs (delta_c), the regression branch a
# proposal-wise shifted RoI (delta_r); the sibling head (the baseline's 2-fc head on the plain
# proposal) trains alongside and sets the margins of the progressive constraint (eq. 7, 8).
# The head settings (gamma, manners, margins, ...) are inherited from configs/tsd/_base_/tsd_head.py,
# the paper configs' one source: a change there shows up here. Only the branch width follows the
# shapes' (fc_channels, as the baseline's box head).
#
# Data keys to override are listed at the top of the base config; with tools/train.py and
# tools/test.py `--cfg-options data_root=... metainfo.classes="[...]"` is enough (num_classes of
# both heads follows).
_base_ = ['./faster-rcnn_r18_fpn_shapes.py', '../tsd/_base_/tsd_head.py']

model = dict(
    roi_head=dict(
        type='TSDRoIHead',
        bbox_roi_extractor={{_base_.tsd_roi_extractor}},  # sampling_ratio: the base's
        bbox_head=dict(_base_.tsd_bbox_head, fc_out_channels=_base_.fc_channels),
        sibling_head={{_base_.model.roi_head.bbox_head}},
        pc_cls={{_base_.tsd_pc_cls}},
        pc_loc={{_base_.tsd_pc_loc}}))
