# TSD + PC in PointRend R50-caffe-FPN, mmdet's multi-scale 1x schedule (PointRend's only R50 1x
# config; TSDPointRendRoIHead). TSD replaces the detection branch only; the coarse mask head and the
# point head are the base's, unchanged. The base's box head trains jointly as the sibling (the PC
# anchor). Head options from _base_/tsd_head.py, as tsd-faster-rcnn_r50_fpn_1x_coco.py.
# Baseline twin: mmdet::point_rend/point-rend_r50-caffe_fpn_ms-1x_coco.py.
_base_ = ['mmdet::point_rend/point-rend_r50-caffe_fpn_ms-1x_coco.py', './_base_/tsd_head.py',
          './_base_/tsd_runtime.py']

model = dict(
    roi_head=dict(
        type='TSDPointRendRoIHead',
        bbox_roi_extractor={{_base_.tsd_roi_extractor}},
        bbox_head={{_base_.tsd_bbox_head}},
        sibling_head={{_base_.model.roi_head.bbox_head}},
        pc_cls={{_base_.tsd_pc_cls}},
        pc_loc={{_base_.tsd_pc_loc}}))
