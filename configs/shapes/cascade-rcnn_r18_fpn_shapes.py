# Baseline Cascade R-CNN on the generated "shapes" dataset, the twin of
# tsd-cascade-rcnn_r18_fpn_shapes.py (not an equation of the paper). faster-rcnn_r18_fpn_shapes.py
# (same half-width ResNet-18-FPN, data, schedule) with mmdet's three-stage cascade head (IoU 0.5 /
# 0.6 / 0.7, class-agnostic SmoothL1 regression, stage stds and loss weights as
# mmdet::_base_/models/cascade-rcnn_r50_fpn.py) at the shapes' widths, 128 RoIs per image and
# stage; the TSD twin changes only its stage heads.
#
# Data keys to override: see faster-rcnn_r18_fpn_shapes.py; with plain mmdet tools the classes
# are model.roi_head.bbox_head.{0,1,2}.num_classes.
_base_ = './faster-rcnn_r18_fpn_shapes.py'

model = dict(
    type='CascadeRCNN',
    roi_head=dict(
        type='CascadeRoIHead',
        num_stages=3,
        stage_loss_weights=[1, 0.5, 0.25],
        bbox_head=[
            dict(
                type='Shared2FCBBoxHead',
                in_channels={{_base_.fpn_channels}},
                fc_out_channels={{_base_.fc_channels}},
                roi_feat_size=7,
                num_classes={{_base_.num_classes}},
                bbox_coder=dict(
                    type='DeltaXYWHBBoxCoder',
                    target_means=[0., 0., 0., 0.],
                    target_stds=target_stds),
                reg_class_agnostic=True,
                loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
                loss_bbox=dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.0))
            for target_stds in ([0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1],
                                [0.033, 0.033, 0.067, 0.067])
        ]),
    train_cfg=dict(rcnn=[
        dict(
            assigner=dict(
                type='MaxIoUAssigner',
                pos_iou_thr=iou,
                neg_iou_thr=iou,
                min_pos_iou=iou,
                match_low_quality=False,
                ignore_iof_thr=-1),
            sampler=dict(
                type='RandomSampler',
                num=128,
                pos_fraction=0.25,
                neg_pos_ub=-1,
                add_gt_as_proposals=True),
            pos_weight=-1,
            debug=False) for iou in (0.5, 0.6, 0.7)
    ]))
