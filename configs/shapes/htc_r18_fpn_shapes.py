# HTC on the generated "shapes" dataset: cascade-rcnn_r18_fpn_shapes.py with HTC's interleaved mask
# branch and mask information flow (mmdet::htc/htc-without-semantic_r50_fpn_1x_coco.py), narrowed
# as the shapes' heads. Without HTC's semantic branch: the generated dataset has no stuff
# segmentation maps. The baseline that tsd-htc_r18_fpn_shapes.py changes only in its box stages.
_base_ = ['./cascade-rcnn_r18_fpn_shapes.py']

mask_head = dict(
    type='HTCMaskHead',
    num_convs=4,
    in_channels={{_base_.fpn_channels}},
    conv_out_channels={{_base_.fpn_channels}},
    num_classes={{_base_.num_classes}},
    loss_mask=dict(type='CrossEntropyLoss', use_mask=True, loss_weight=1.0))
model = dict(
    type='HybridTaskCascade',
    data_preprocessor=dict(pad_mask=True),
    roi_head=dict(
        type='HybridTaskCascadeRoIHead',
        interleaved=True,
        mask_info_flow=True,
        mask_roi_extractor=dict(
            type='SingleRoIExtractor',
            roi_layer=dict(type='RoIAlign', output_size=14, sampling_ratio=1),
            out_channels={{_base_.fpn_channels}},
            featmap_strides=[4, 8, 16, 32]),
        mask_head=[dict(mask_head, with_conv_res=False), mask_head, mask_head]),
    train_cfg=dict(rcnn=[dict(stage, mask_size=28) for stage in _base_.model.train_cfg.rcnn]),
    test_cfg=dict(rcnn=dict(mask_thr_binary=0.5)))

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale={{_base_.image_scale}}, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='Resize', scale={{_base_.image_scale}}, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = dict(metric=['bbox', 'segm'])
test_evaluator = val_evaluator
