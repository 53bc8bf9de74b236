# Dynamic R-CNN on the generated "shapes" dataset: faster-rcnn_r18_fpn_shapes.py with
# DynamicRoIHead, SmoothL1 box loss and mmdet's dynamic_rcnn schedule settings
# (mmdet::dynamic_rcnn/dynamic-rcnn_r50_fpn_1x_coco.py), updated every 100 of the 800 iterations.
# The baseline that tsd-dynamic-rcnn_r18_fpn_shapes.py changes only in its RoI head.
_base_ = './faster-rcnn_r18_fpn_shapes.py'

model = dict(
    roi_head=dict(
        type='DynamicRoIHead',
        bbox_head=dict(loss_bbox=dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.0))),
    train_cfg=dict(
        rcnn=dict(
            dynamic_rcnn=dict(
                iou_topk=75,
                beta_topk=10,
                update_iter_interval=100,
                initial_iou=0.4,
                initial_beta=1.0))))
