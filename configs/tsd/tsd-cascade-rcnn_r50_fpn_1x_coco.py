# TSD + PC in Cascade R-CNN R50-FPN, mmdet's 1x schedule (TSD in Cascade R-CNN, §3.5 / Table 6).
# Every stage is a TSD head (its own offset predictors, F-hat_c / F-hat_r branches) on that
# stage's proposals, with the base's box head of the same stage trained jointly as its sibling and
# the PC terms between the two. Stage loss weights (1, 0.5, 0.25), IoU thresholds, box coders and
# losses are the base's; boxes passed between stages are the TSD regression decoded from P-hat_r.
# Head options from _base_/tsd_head.py (tsd_cascade_bbox_heads), as tsd-faster-rcnn_r50_fpn_1x_coco.py.
# Baseline twin: mmdet::cascade_rcnn/cascade-rcnn_r50_fpn_1x_coco.py.
_base_ = ['mmdet::cascade_rcnn/cascade-rcnn_r50_fpn_1x_coco.py', './_base_/tsd_head.py',
          './_base_/tsd_runtime.py']

model = dict(
    roi_head=dict(
        type='TSDCascadeRoIHead',
        bbox_roi_extractor={{_base_.tsd_roi_extractor}},
        bbox_head={{_base_.tsd_cascade_bbox_heads}},
        sibling_head={{_base_.model.roi_head.bbox_head}},
        pc_cls={{_base_.tsd_pc_cls}},
        pc_loc={{_base_.tsd_pc_loc}}))
