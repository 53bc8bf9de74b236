# PointRend on the generated "shapes" dataset: mask-rcnn_r18_fpn_shapes.py with PointRendRoIHead,
# its coarse mask head and point head (mmdet::point_rend/point-rend_r50-caffe_fpn_ms-1x_coco.py),
# narrowed as the shapes' heads. The baseline that tsd-point-rend_r18_fpn_shapes.py changes only
# in its box branch.
_base_ = './mask-rcnn_r18_fpn_shapes.py'

model = dict(
    type='PointRend',
    roi_head=dict(
        type='PointRendRoIHead',
        mask_roi_extractor=dict(
            type='GenericRoIExtractor',
            aggregation='concat',
            roi_layer=dict(_delete_=True, type='SimpleRoIAlign', output_size=14),
            out_channels={{_base_.fpn_channels}},
            featmap_strides=[4]),
        mask_head=dict(
            _delete_=True,
            type='CoarseMaskHead',
            num_fcs=2,
            in_channels={{_base_.fpn_channels}},
            conv_out_channels={{_base_.fpn_channels}},
            fc_out_channels={{_base_.fc_channels}},
            num_classes={{_base_.num_classes}},
            loss_mask=dict(type='CrossEntropyLoss', use_mask=True, loss_weight=1.0)),
        point_head=dict(
            type='MaskPointHead',
            num_fcs=3,
            in_channels={{_base_.fpn_channels}},
            fc_channels={{_base_.fpn_channels}},
            num_classes={{_base_.num_classes}},
            coarse_pred_each_layer=True,
            loss_point=dict(type='CrossEntropyLoss', use_mask=True, loss_weight=1.0))),
    train_cfg=dict(
        rcnn=dict(mask_size=7, num_points=14 * 14, oversample_ratio=3,
                  importance_sample_ratio=0.75)),
    test_cfg=dict(rcnn=dict(subdivision_steps=5, subdivision_num_points=28 * 28,
                            scale_factor=2)))
