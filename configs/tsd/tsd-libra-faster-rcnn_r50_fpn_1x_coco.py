# TSD + PC in Libra R-CNN R50-FPN, mmdet's 1x schedule. Libra's RoI head is a StandardRoIHead, so
# the host is TSDRoIHead itself: the balanced feature pyramid (BFP neck) and the IoU-balanced
# sampling are the base's, and TSD's regression loss L_loc^D is the base's balanced L1 (the TSD
# head options of _base_/tsd_head.py merge into the base's box head, keeping its losses). The
# base's box head trains jointly as the sibling head (the PC anchor), as in
# tsd-faster-rcnn_r50_fpn_1x_coco.py.
# Baseline twin: mmdet::libra_rcnn/libra-faster-rcnn_r50_fpn_1x_coco.py.
_base_ = ['mmdet::libra_rcnn/libra-faster-rcnn_r50_fpn_1x_coco.py', './_base_/tsd_head.py',
          './_base_/tsd_runtime.py']

model = dict(
    roi_head=dict(
        type='TSDRoIHead',
        bbox_roi_extractor={{_base_.tsd_roi_extractor}},
        bbox_head={{_base_.tsd_bbox_head}},
        sibling_head={{_base_.model.roi_head.bbox_head}},
        pc_cls={{_base_.tsd_pc_cls}},
        pc_loc={{_base_.tsd_pc_loc}}))
