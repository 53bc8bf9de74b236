# TSD + PC on Mask R-CNN R50-FPN, mmdet's 1x schedule (Table 7, "ResNet-50 w. FPN" with TSD).
# TSD replaces the detection branch only: the box head becomes TSD's, the base's box head trains
# jointly as the sibling head (the PC anchor, never run at inference), and the mask head is mmdet's,
# trained on the sampled proposals P and run on the final TSD boxes at test time, as in Mask R-CNN.
# Head options as tsd-faster-rcnn_r50_fpn_1x_coco.py (§3.4: "the same as ... Faster R-CNN").
# Baseline twin: mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py.
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['tsd_mmdet'], allow_failed_imports=False)

model = dict(
    roi_head=dict(
        type='TSDRoIHead',
        bbox_roi_extractor=dict(type='TSDRoIExtractor', roi_layer=dict(type='DeformRoIAlign')),
        bbox_head=dict(
            type='TSDBBoxHead',
            gamma_cls=0.1,
            gamma_reg=0.1,
            cls_manner='pointwise',
            reg_manner='proposalwise',
            offset_fc_channels=256),
        sibling_head={{_base_.model.roi_head.bbox_head}},
        pc_cls=dict(type='ProgressiveConstraintCls', margin_cls=0.2, loss_weight=1.0),
        pc_loc=dict(type='ProgressiveConstraintLoc', margin_reg=0.2, loss_weight=1.0)))
