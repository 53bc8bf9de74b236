# TSD (with the progressive constraint) on the generated "shapes" dataset:
# faster-rcnn_r18_fpn_pisa_shapes.py with its box branch replaced by TSD's (TSDPISARoIHead), as
# tsd-faster-rcnn_r18_fpn_shapes.py does for Faster R-CNN: PISA's Score-HLR, ISR-P and CARL act on
# TSD's branches; the sibling keeps plain losses. Head settings (gamma, manners, margins, ...) from
# configs/tsd/_base_/tsd_head.py, the paper configs' one source; only the branch width follows the
# shapes' (fc_channels, as the baseline's box head). The paper config:
# configs/tsd/tsd-faster-rcnn_r50_fpn_pisa_1x_coco.py.
_base_ = ['./faster-rcnn_r18_fpn_pisa_shapes.py', '../tsd/_base_/tsd_head.py']

model = dict(
    roi_head=dict(
        type='TSDPISARoIHead',
        bbox_roi_extractor={{_base_.tsd_roi_extractor}},  # sampling_ratio: the base's
        bbox_head=dict(_base_.tsd_bbox_head, fc_out_channels=_base_.fc_channels),
        sibling_head={{_base_.model.roi_head.bbox_head}},
        pc_cls={{_base_.tsd_pc_cls}},
        pc_loc={{_base_.tsd_pc_loc}}))
