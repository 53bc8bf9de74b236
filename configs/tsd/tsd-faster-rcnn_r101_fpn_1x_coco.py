# TSD + PC on Faster R-CNN R101-FPN, mmdet's 1x schedule (Table 5, "ResNet-101" with TSD):
# tsd-faster-rcnn_r50_fpn_1x_coco.py with a ResNet-101 backbone, as mmdet derives its R101 config.
# Baseline twin: mmdet::faster_rcnn/faster-rcnn_r101_fpn_1x_coco.py.
_base_ = './tsd-faster-rcnn_r50_fpn_1x_coco.py'

model = dict(
    backbone=dict(
        depth=101, init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet101')))
