# TSD + PC in Faster R-CNN R50-FPN with PISA, mmdet's 1x schedule (TSDPISARoIHead). PISA's
# Score-HLR sampling, ISR-P reweighting and CARL loss (train_cfg.rcnn: sampler, isr, carl) are the
# base's, applied to TSD's branches; the sibling (the base's box head, trained jointly, the PC
# anchor) keeps plain losses. Head options from _base_/tsd_head.py, as
# tsd-faster-rcnn_r50_fpn_1x_coco.py.
# Baseline twin: mmdet::pisa/faster-rcnn_r50_fpn_pisa_1x_coco.py.
_base_ = ['mmdet::pisa/faster-rcnn_r50_fpn_pisa_1x_coco.py', './_base_/tsd_head.py',
          './_base_/tsd_runtime.py']

model = dict(
    roi_head=dict(
        type='TSDPISARoIHead',
        bbox_roi_extractor={{_base_.tsd_roi_extractor}},
        bbox_head={{_base_.tsd_bbox_head}},
        sibling_head={{_base_.model.roi_head.bbox_head}},
        pc_cls={{_base_.tsd_pc_cls}},
        pc_loc={{_base_.tsd_pc_loc}}))
