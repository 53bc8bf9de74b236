# TSD (task-aware spatial disentanglement, with the progressive constraint) on the generated
# "shapes" dataset: faster-rcnn_r18_fpn_shapes.py with its RoI head replaced by TSD's. The
# classification branch reads pointwise-deformed RoIs (delta_c), the regression branch a
# proposal-wise shifted RoI (delta_r); the sibling head (the baseline's 2-fc head on the plain
# proposal) trains alongside and sets the margins of the progressive constraint (eq. 7, 8).
#
# Data keys to override are listed at the top of the base config; with tools/train.py and
# tools/test.py `--cfg-options data_root=... metainfo.classes="[...]"` is enough (num_classes of
# both heads follows).
_base_ = './faster-rcnn_r18_fpn_shapes.py'

custom_imports = dict(imports=['tsd_mmdet'], allow_failed_imports=False)

model = dict(
    roi_head=dict(
        type='TSDRoIHead',
        bbox_roi_extractor=dict(
            type='TSDRoIExtractor',
            roi_layer=dict(type='DeformRoIAlign', output_size=7)),  # sampling_ratio: base's
        bbox_head=dict(
            type='TSDBBoxHead',
            gamma_cls=0.1,
            gamma_reg=0.1,
            cls_manner='pointwise',
            reg_manner='proposalwise'),
        sibling_head=dict(
            type='Shared2FCBBoxHead',
            in_channels={{_base_.fpn_channels}},
            fc_out_channels={{_base_.fc_channels}},
            roi_feat_size=7,
            num_classes={{_base_.num_classes}},
            bbox_coder=dict(
                type='DeltaXYWHBBoxCoder',
                target_means=[0., 0., 0., 0.],
                target_stds=[0.1, 0.1, 0.2, 0.2]),
            reg_class_agnostic=False,
            loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
            loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
        pc_cls=dict(type='ProgressiveConstraintCls', margin_cls=0.2, loss_weight=1.0),
        pc_loc=dict(type='ProgressiveConstraintLoc', margin_reg=0.2, loss_weight=1.0)))
