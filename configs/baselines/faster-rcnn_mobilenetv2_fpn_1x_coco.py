# Faster R-CNN with a MobileNetV2 FPN backbone, mmdet's 1x schedule: the light-backbone baseline
# (not a paper row; mmdet ships MobileNetV2 only in SSDLite / YOLOv3). mmdet's R50 config with
# MobileNetV2's default four outputs (strides 4, 8, 16, 32; 24, 32, 96, 1280 channels), ImageNet
# weights as mmdet's YOLOv3, BN frozen (norm_eval) and the stem + first stage frozen as ResNet's.
# TSD twin: configs/tsd/tsd-faster-rcnn_mobilenetv2_fpn_1x_coco.py.
_base_ = ['mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py', '../tsd/_base_/tsd_runtime.py']

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
