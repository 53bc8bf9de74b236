# TSD + PC on Faster R-CNN with a ResNeXt-101 64x4d FPN backbone, mmdet's 1x schedule (Table 5,
# "ResNeXt-101" with TSD): tsd-faster-rcnn_r50_fpn_1x_coco.py with mmdet's X101-64x4d backbone.
# Baseline twin: mmdet::faster_rcnn/faster-rcnn_x101-64x4d_fpn_1x_coco.py.
_base_ = './tsd-faster-rcnn_r50_fpn_1x_coco.py'

model = dict(
    backbone=dict(
        type='ResNeXt',
        depth=101,
        groups=64,
        base_width=4,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=True),
        style='pytorch',
        init_cfg=dict(type='Pretrained', checkpoint='open-mmlab://resnext101_64x4d')))
