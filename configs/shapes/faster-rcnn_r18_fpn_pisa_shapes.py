# Faster R-CNN with PISA on the generated "shapes" dataset: faster-rcnn_r18_fpn_shapes.py with
# PISARoIHead, Score-HLR sampling, ISR-P and CARL (mmdet::pisa/faster-rcnn_r50_fpn_pisa_1x_coco.py),
# SmoothL1 box loss. The baseline that tsd-faster-rcnn_r18_fpn_pisa_shapes.py changes only in its
# RoI head.
_base_ = './faster-rcnn_r18_fpn_shapes.py'

model = dict(
    roi_head=dict(
        type='PISARoIHead',
        bbox_head=dict(loss_bbox=dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.0))),
    train_cfg=dict(
        rcnn=dict(
            sampler=dict(
                type='ScoreHLRSampler',
                num=128,
                pos_fraction=0.25,
                neg_pos_ub=-1,
                add_gt_as_proposals=True,
                k=0.5,
                bias=0.),
            isr=dict(k=2, bias=0),
            carl=dict(k=1, bias=0.2))))
