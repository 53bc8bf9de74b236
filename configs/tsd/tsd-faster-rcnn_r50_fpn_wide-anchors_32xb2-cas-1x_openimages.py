# TSD* of Table 6 on Faster R-CNN R50-FPN for OpenImages V6: tsd-faster-rcnn_r50_fpn_32xb2-cas-1x_
# openimages.py with the expanded anchors of the starred rows, scales {8, 11, 14} x aspect ratios
# {0.1, 0.5, 1, 2, 4, 8} (18 anchors per location; the RPN head's outputs follow the generator).
# (The paper's starred rows use DCN-ResNeXt101 / DCN-SENet154 and multi-scale test on the LB.)
# Baseline twin: configs/baselines/faster-rcnn_r50_fpn_wide-anchors_32xb2-cas-1x_openimages.py.
_base_ = './tsd-faster-rcnn_r50_fpn_32xb2-cas-1x_openimages.py'

model = dict(
    rpn_head=dict(anchor_generator=dict(scales=[8, 11, 14], ratios=[0.1, 0.5, 1.0, 2.0, 4.0, 8.0])))
