# TSD + PC on Mask R-CNN R50-FPN, mmdet's 1x schedule (Table 7, "ResNet-50 w. FPN" with TSD).
# TSD replaces the detection branch only: the box head becomes TSD's, the base's box head trains
# jointly as the sibling head (the PC anchor, never run at inference), and the mask head is mmdet's,
# trained on the sampled proposals P and run on the final TSD boxes at test time, as in Mask R-CNN.
# Head options from _base_/tsd_head.py, as tsd-faster-rcnn_r50_fpn_1x_coco.py (§3.4: "the same as ... Faster R-CNN").
# Baseline twin: mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py.
_base_ = ['mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py', './_base_/tsd_head.py',
          './_base_/tsd_runtime.py']

model = dict(
    roi_head=dict(
        type='TSDRoIHead',
        bbox_roi_extractor={{_base_.tsd_roi_extractor}},
        bbox_head={{_base_.tsd_bbox_head}},
        sibling_head={{_base_.model.roi_head.bbox_head}},
        pc_cls={{_base_.tsd_pc_cls}},
        pc_loc={{_base_.tsd_pc_loc}}))
