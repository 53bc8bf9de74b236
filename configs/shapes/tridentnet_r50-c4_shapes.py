# TridentNet on the generated "shapes" dataset: the shapes data and schedule of
# faster-rcnn_r18_fpn_shapes.py with mmdet's TridentNet C4 detector
# (mmdet::tridentnet/tridentnet_r50-caffe_1x_coco.py), narrowed for 2 CPU cores: a quarter-width
# TridentResNet-50 (3 branches, dilations 1, 2, 3; test on branch 1) from scratch, ResNet-18's res5
# as the shared head (256 -> 512 channels) on 8x8 RoIs (4x4 after it), 16 sampled RoIs per image and
# branch (the shared head runs per RoI: at 14x14 and 32 RoIs one iteration took 6.3 s here). TridentConv's
# weights need an init without a checkpoint (mmdet leaves them uninitialised): Kaiming here. The
# baseline that tsd-tridentnet_r50-c4_shapes.py changes only in its box branch.
_base_ = './faster-rcnn_r18_fpn_shapes.py'

c4_channels = 256
res5_channels = 512
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    type='TridentFasterRCNN',
    backbone=dict(
        _delete_=True,
        type='TridentResNet',
        depth=50,
        base_channels=16,
        num_stages=3,
        strides=(1, 2, 2),
        dilations=(1, 1, 1),
        out_indices=(2, ),
        frozen_stages=-1,
        norm_cfg=norm_cfg,
        norm_eval=False,
        style='pytorch',
        trident_dilations=(1, 2, 3),
        num_branch=3,
        test_branch_idx=1,
        init_cfg=dict(type='Kaiming', layer=['Conv2d', 'TridentConv'])),
    neck=None,
    rpn_head=dict(
        in_channels=c4_channels,
        feat_channels=c4_channels,
        # anchors of 16..256 px on C4: objects are 10..250 px after resizing
        anchor_generator=dict(scales=[1, 2, 4, 8, 16], ratios=[0.5, 1.0, 2.0], strides=[16])),
    roi_head=dict(
        type='TridentRoIHead',
        num_branch=3,
        test_branch_idx=1,
        shared_head=dict(type='ResLayer', depth=18, stage=3, stride=2, dilation=1,
                         style='pytorch', norm_cfg=norm_cfg, norm_eval=False),
        bbox_roi_extractor=dict(
            _delete_=True,
            type='SingleRoIExtractor',
            roi_layer=dict(type='RoIAlign', output_size=8, sampling_ratio=1),
            out_channels=c4_channels,
            featmap_strides=[16]),
        bbox_head=dict(
            _delete_=True,
            type='BBoxHead',
            with_avg_pool=True,
            roi_feat_size=4,
            in_channels=res5_channels,
            num_classes={{_base_.num_classes}},
            bbox_coder=dict(
                type='DeltaXYWHBBoxCoder',
                target_means=[0., 0., 0., 0.],
                target_stds=[0.1, 0.1, 0.2, 0.2]),
            reg_class_agnostic=False,
            loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
            loss_bbox=dict(type='L1Loss', loss_weight=1.0))),
    train_cfg=dict(
        rcnn=dict(sampler=dict(num=16, pos_fraction=0.5, add_gt_as_proposals=False))))
