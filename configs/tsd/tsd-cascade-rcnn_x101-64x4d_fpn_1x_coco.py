# TSD + PC in Cascade R-CNN with a ResNeXt-101 64x4d FPN backbone, mmdet's 1x schedule (heavy
# backbone in Cascade R-CNN, Table 6): tsd-cascade-rcnn_r50_fpn_1x_coco.py with mmdet's X101
# backbone, as mmdet derives its X101 config.
# Baseline twin: mmdet::cascade_rcnn/cascade-rcnn_x101-64x4d_fpn_1x_coco.py.
_base_ = './tsd-cascade-rcnn_r50_fpn_1x_coco.py'

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
