# TSD + PC on Faster R-CNN with a MobileNetV2 FPN backbone, mmdet's 1x schedule (light backbone,
# beyond Table 5): tsd-faster-rcnn_r50_fpn_1x_coco.py with the backbone and neck of the baseline.
# Baseline twin: configs/baselines/faster-rcnn_mobilenetv2_fpn_1x_coco.py.
_base_ = './tsd-faster-rcnn_r50_fpn_1x_coco.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='MobileNetV2',
        out_indices=(1, 2, 4, 7),
        frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=True,
        init_cfg=dict(type='Pretrained', checkpoint='open-mmlab://mmdet/mobilenet_v2')),
    neck=dict(in_channels=[24, 32, 96, 1280]))
