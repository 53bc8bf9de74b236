# Faster R-CNN R152-FPN, mmdet's 1x schedule (Table 5, "ResNet-152" baseline): mmdet's R50 config
# with a ResNet-152 backbone, as mmdet derives its R101 config (mmdet ships no R152 one).
# TSD twin: configs/tsd/tsd-faster-rcnn_r152_fpn_1x_coco.py.
_base_ = ['mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py', '../tsd/_base_/tsd_runtime.py']

model = dict(
    backbone=dict(
        depth=152, init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet152')))
