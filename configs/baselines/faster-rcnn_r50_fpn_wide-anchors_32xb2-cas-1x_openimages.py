# Faster R-CNN R50-FPN for OpenImages V6 with the expanded anchors of Table 6's starred rows,
# scales {8, 11, 14} x aspect ratios {0.1, 0.5, 1, 2, 4, 8}, class-aware sampling, mmdet's 1x
# OpenImages set-up: the baseline of the wide-anchor TSD* config.
# TSD twin: configs/tsd/tsd-faster-rcnn_r50_fpn_wide-anchors_32xb2-cas-1x_openimages.py.
_base_ = './faster-rcnn_r50_fpn_32xb2-cas-1x_openimages.py'

model = dict(
    rpn_head=dict(anchor_generator=dict(scales=[8, 11, 14], ratios=[0.1, 0.5, 1.0, 2.0, 4.0, 8.0])))
