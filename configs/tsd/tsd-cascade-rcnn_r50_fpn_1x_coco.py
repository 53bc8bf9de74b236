# TSD + PC in Cascade R-CNN R50-FPN, mmdet's 1x schedule (TSD in Cascade R-CNN, §3.5 / Table 6).
# Every stage is a TSD head (its own offset predictors, F-hat_c / F-hat_r branches) on that
# stage's proposals, with the base's box head of the same stage trained jointly as its sibling and
# the PC terms between the two. Stage loss weights (1, 0.5, 0.25), IoU thresholds, box coders and
# losses are the base's; boxes passed between stages are the TSD regression decoded from P-hat_r.
# Head options as tsd-faster-rcnn_r50_fpn_1x_coco.py (m_c = m_r = 0.2).
# Baseline twin: mmdet::cascade_rcnn/cascade-rcnn_r50_fpn_1x_coco.py.
_base_ = 'mmdet::cascade_rcnn/cascade-rcnn_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['tsd_mmdet'], allow_failed_imports=False)

model = dict(
    roi_head=dict(
        type='TSDCascadeRoIHead',
        bbox_roi_extractor=dict(type='TSDRoIExtractor', roi_layer=dict(type='DeformRoIAlign')),
        bbox_head=[
            dict(
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
                    target_stds=target_stds),
                reg_class_agnostic=True,
                loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
                loss_bbox=dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.0))
            for target_stds in ([0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1],
                                [0.033, 0.033, 0.067, 0.067])
        ],
        sibling_head={{_base_.model.roi_head.bbox_head}},
        pc_cls=dict(type='ProgressiveConstraintCls', margin_cls=0.2, loss_weight=1.0),
        pc_loc=dict(type='ProgressiveConstraintLoc', margin_reg=0.2, loss_weight=1.0)))
