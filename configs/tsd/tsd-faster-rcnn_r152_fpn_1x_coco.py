# TSD + PC on Faster R-CNN R152-FPN, mmdet's 1x schedule (Table 5, "ResNet-152" with TSD):
# tsd-faster-rcnn_r50_fpn_1x_coco.py with a ResNet-152 backbone.
# Baseline twin: configs/baselines/faster-rcnn_r152_fpn_1x_coco.py (mmdet has no R152 config).
_base_ = './tsd-faster-rcnn_r50_fpn_1x_coco.py'

model = dict(
    backbone=dict(
        depth=152, init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet152')))
