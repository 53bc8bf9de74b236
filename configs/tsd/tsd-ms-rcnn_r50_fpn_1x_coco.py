# TSD + PC in Mask Scoring R-CNN R50-FPN, mmdet's 1x schedule (TSDMaskScoringRoIHead). TSD replaces
# the detection branch only, as in tsd-mask-rcnn_r50_fpn_1x_coco.py; the mask head and the MaskIoU
# head are the base's, unchanged. The base's box head trains jointly as the sibling (the PC anchor).
# Baseline twin: mmdet::ms_rcnn/ms-rcnn_r50_fpn_1x_coco.py.
_base_ = ['mmdet::ms_rcnn/ms-rcnn_r50_fpn_1x_coco.py', './_base_/tsd_head.py',
          './_base_/tsd_runtime.py']

model = dict(
    roi_head=dict(
        type='TSDMaskScoringRoIHead',
        bbox_roi_extractor={{_base_.tsd_roi_extractor}},
        bbox_head={{_base_.tsd_bbox_head}},
        sibling_head={{_base_.model.roi_head.bbox_head}},
        pc_cls={{_base_.tsd_pc_cls}},
        pc_loc={{_base_.tsd_pc_loc}}))
