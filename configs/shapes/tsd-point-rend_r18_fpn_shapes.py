# TSD (with the progressive constraint) on the generated "shapes" dataset:
# point-rend_r18_fpn_shapes.py with its box branch replaced by TSD's (TSDPointRendRoIHead), as
# tsd-faster-rcnn_r18_fpn_shapes.py does for Faster R-CNN: the coarse mask head and the point head
# are the base's, unchanged. Head settings (gamma, manners, margins, ...) from
# configs/tsd/_base_/tsd_head.py, the paper configs' one source; only the branch width follows the
# shapes' (fc_channels, as the baseline's box head). The paper config:
# configs/tsd/tsd-point-rend_r50-caffe_fpn_ms-1x_coco.py.
_base_ = ['./point-rend_r18_fpn_shapes.py', '../tsd/_base_/tsd_head.py']

model = dict(
    roi_head=dict(
        type='TSDPointRendRoIHead',
        bbox_roi_extractor={{_base_.tsd_roi_extractor}},  # sampling_ratio: the base's
        bbox_head=dict(_base_.tsd_bbox_head, fc_out_channels=_base_.fc_channels),
        sibling_head={{_base_.model.roi_head.bbox_head}},
        pc_cls={{_base_.tsd_pc_cls}},
        pc_loc={{_base_.tsd_pc_loc}}))
