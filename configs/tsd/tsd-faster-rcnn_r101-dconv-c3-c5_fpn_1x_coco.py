# TSD + PC on Faster R-CNN R101-FPN with deformable convolutions in stages c3-c5, mmdet's 1x
# schedule (Table 5, "ResNet-101-DCN" with TSD): tsd-faster-rcnn_r101_fpn_1x_coco.py with mmdet's
# DCN setting.
# Baseline twin: mmdet::dcn/faster-rcnn_r101-dconv-c3-c5_fpn_1x_coco.py.
_base_ = './tsd-faster-rcnn_r101_fpn_1x_coco.py'

model = dict(
    backbone=dict(
        dcn=dict(type='DCN', deform_groups=1, fallback_on_stride=False),
        stage_with_dcn=(False, True, True, True)))
