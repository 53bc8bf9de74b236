# TSD + PC on Faster R-CNN R50-FPN, mmdet's 1x schedule (12 epochs, batch 16, lr 0.02).
# Head as in the paper's ablations (Tables 1-4): Point.w P-hat_c, Prop.w P-hat_r, gamma 0.1, joint
# training with the sibling head (Table 2), PC margins m_c = m_r = 0.2 (Table 3, last row).
# Train with mmdet's own tools: `python tools/train.py <this file>` (custom_imports registers TSD).
_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['tsd_mmdet'], allow_failed_imports=False)

model = dict(
    roi_head=dict(
        _delete_=True,
        type='TSDRoIHead',
        bbox_roi_extractor=dict(
            type='TSDRoIExtractor',
            roi_layer=dict(type='DeformRoIAlign', output_size=7, sampling_ratio=0),
            out_channels=256,
            featmap_strides=[4, 8, 16, 32]),
        bbox_head=dict(
            type='TSDBBoxHead',
            in_channels=256,
            roi_feat_size=7,
            num_classes=80,
            gamma_cls=0.1,
            gamma_reg=0.1,
            cls_manner='pointwise',
            reg_manner='proposalwise',
            offset_fc_channels=256,
            fc_out_channels=1024,
            bbox_coder=dict(
                type='DeltaXYWHBBoxCoder',
                target_means=[0., 0., 0., 0.],
                target_stds=[0.1, 0.1, 0.2, 0.2]),
            reg_class_agnostic=False,
            loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
            loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
        # The base's box head, trained jointly on F (pooled from P) and used by PC; never run at
        # inference. Set sibling_head=None (and pc_cls=pc_loc=None) for TSD w/o joint training.
        sibling_head=dict(
            type='Shared2FCBBoxHead',
            in_channels=256,
            fc_out_channels=1024,
            roi_feat_size=7,
            num_classes=80,
            bbox_coder=dict(
                type='DeltaXYWHBBoxCoder',
                target_means=[0., 0., 0., 0.],
                target_stds=[0.1, 0.1, 0.2, 0.2]),
            reg_class_agnostic=False,
            loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
            loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
        pc_cls=dict(type='ProgressiveConstraintCls', margin_cls=0.2, loss_weight=1.0),
        pc_loc=dict(type='ProgressiveConstraintLoc', margin_reg=0.2, loss_weight=1.0)))
