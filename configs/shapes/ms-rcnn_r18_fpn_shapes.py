# Mask Scoring R-CNN on the generated "shapes" dataset: mask-rcnn_r18_fpn_shapes.py with
# MaskScoringRoIHead and its MaskIoU head (mmdet::ms_rcnn/ms-rcnn_r50_fpn_1x_coco.py), narrowed as
# the shapes' mask head. The baseline that tsd-ms-rcnn_r18_fpn_shapes.py changes only in its box
# branch.
_base_ = './mask-rcnn_r18_fpn_shapes.py'

model = dict(
    type='MaskScoringRCNN',
    roi_head=dict(
        type='MaskScoringRoIHead',
        mask_iou_head=dict(
            type='MaskIoUHead',
            num_convs=4,
            num_fcs=2,
            roi_feat_size=14,
            in_channels={{_base_.fpn_channels}},
            conv_out_channels={{_base_.fpn_channels}},
            fc_out_channels={{_base_.fc_channels}},
            num_classes={{_base_.num_classes}})),
    train_cfg=dict(rcnn=dict(mask_thr_binary=0.5)))
