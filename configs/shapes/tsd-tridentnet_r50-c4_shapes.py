# TSD (with the progressive constraint) on the generated "shapes" dataset:
# tridentnet_r50-c4_shapes.py with its box branch replaced by TSD's (TSDTridentRoIHead), as
# tsd-faster-rcnn_r18_fpn_shapes.py does for Faster R-CNN: TSD per trident branch; res5 (the shared
# head) runs on F, F-hat_c and F-hat_r. Head settings (gamma, manners, margins, ...) from
# configs/tsd/_base_/tsd_head.py, the paper configs' one source; only the branch width follows the
# shapes' (fc_channels, as the baseline's box head). The paper config:
# configs/tsd/tsd-tridentnet_r50-caffe_1x_coco.py.
_base_ = ['./tridentnet_r50-c4_shapes.py', '../tsd/_base_/tsd_head.py']

model = dict(
    roi_head=dict(
        type='TSDTridentRoIHead',
        bbox_roi_extractor={{_base_.tsd_roi_extractor}},  # sampling_ratio: the base's
        bbox_head=dict(_base_.tsd_bbox_head, fc_out_channels=_base_.fc_channels),
        sibling_head={{_base_.model.roi_head.bbox_head}},
        pc_cls={{_base_.tsd_pc_cls}},
        pc_loc={{_base_.tsd_pc_loc}}))
