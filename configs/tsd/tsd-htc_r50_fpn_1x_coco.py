# TSD + PC in HTC R50-FPN, mmdet's 1x schedule (TSDHybridTaskCascadeRoIHead). Every box stage is a
# TSD head, as in tsd-cascade-rcnn_r50_fpn_1x_coco.py (the three stages' TSD heads are
# _base_/tsd_head.py's tsd_cascade_bbox_heads, equal to HTC's stage heads in coder, classes and
# losses), each with the base's stage head trained jointly as its sibling and the PC terms. HTC's
# interleaved mask branch, mask information flow and semantic branch are the base's, unchanged; the
# semantic feature is fused into F (pooled from P), which the sibling and the offset predictors see.
# Baseline twin: mmdet::htc/htc_r50_fpn_1x_coco.py.
_base_ = ['mmdet::htc/htc_r50_fpn_1x_coco.py', './_base_/tsd_head.py', './_base_/tsd_runtime.py']

model = dict(
    roi_head=dict(
        type='TSDHybridTaskCascadeRoIHead',
        bbox_roi_extractor={{_base_.tsd_roi_extractor}},
        bbox_head={{_base_.tsd_cascade_bbox_heads}},
        sibling_head={{_base_.model.roi_head.bbox_head}},
        pc_cls={{_base_.tsd_pc_cls}},
        pc_loc={{_base_.tsd_pc_loc}}))
