# TSD* of Table 8 (§3.6): TSD + PC on Faster R-CNN R101-FPN with deformable convolutions (c3-c5),
# with TridentNet*'s bells and whistles: multi-scale training (short side drawn from 480..960 in
# steps of 32, long side <= 1333), soft-NMS at test, the 3x schedule (36 epochs, lr / 10 at epochs
# 27 and 33), and the final margins m_c = 0.5, m_r = 0.2. Test: single scale (1333, 800).
# No baseline twin (Table 8 compares with published numbers).
_base_ = './tsd-faster-rcnn_r101-dconv-c3-c5_fpn_1x_coco.py'

model = dict(
    roi_head=dict(pc_cls=dict(margin_cls=0.5), pc_loc=dict(margin_reg=0.2)),
    test_cfg=dict(rcnn=dict(nms=dict(type='soft_nms', iou_threshold=0.5))))

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='RandomChoiceResize',
        scales=[(1333, short_side) for short_side in range(480, 961, 32)],
        keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

max_epochs = 36
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_epochs,
        by_epoch=True,
        milestones=[27, 33],
        gamma=0.1)
]
