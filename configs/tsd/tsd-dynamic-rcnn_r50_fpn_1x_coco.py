# TSD + PC in Dynamic R-CNN R50-FPN, mmdet's 1x schedule (TSDDynamicRoIHead). Dynamic R-CNN's
# schedules are the base's (dynamic_rcnn in train_cfg.rcnn): the IoU threshold follows the IoUs of
# the proposals P, the SmoothL1 beta follows TSD's regression targets (against P-hat_r), and is set
# on TSD's loss and the sibling's. The base's box head trains jointly as the sibling head (the PC
# anchor); head options from _base_/tsd_head.py, as tsd-faster-rcnn_r50_fpn_1x_coco.py.
# Baseline twin: mmdet::dynamic_rcnn/dynamic-rcnn_r50_fpn_1x_coco.py.
_base_ = ['mmdet::dynamic_rcnn/dynamic-rcnn_r50_fpn_1x_coco.py', './_base_/tsd_head.py',
          './_base_/tsd_runtime.py']

model = dict(
    roi_head=dict(
        type='TSDDynamicRoIHead',
        bbox_roi_extractor={{_base_.tsd_roi_extractor}},
        bbox_head={{_base_.tsd_bbox_head}},
        sibling_head={{_base_.model.roi_head.bbox_head}},
        pc_cls={{_base_.tsd_pc_cls}},
        pc_loc={{_base_.tsd_pc_loc}}))
