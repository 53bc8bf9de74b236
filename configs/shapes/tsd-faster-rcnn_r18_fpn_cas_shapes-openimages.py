# TSD (eq. 3-6) with the progressive constraint (eq. 7-8) in Faster R-CNN on the OpenImages-format
# copy of the generated "shapes" dataset, class-aware sampling:
# faster-rcnn_r18_fpn_cas_shapes-openimages.py with its RoI head replaced by TSD's, as the paper's
# configs/tsd/tsd-faster-rcnn_r50_fpn_32xb2-cas-1x_openimages.py (Table 6). The head settings are
# inherited from configs/tsd/_base_/tsd_head.py, the paper configs' one source (a change there
# shows up here); only the branch width follows the shapes' (fc_channels, as the baseline's).
#
# Data keys to override: see faster-rcnn_r18_fpn_cas_shapes-openimages.py.
_base_ = ['./faster-rcnn_r18_fpn_cas_shapes-openimages.py', '../tsd/_base_/tsd_head.py']

model = dict(
    roi_head=dict(
        type='TSDRoIHead',
        bbox_roi_extractor={{_base_.tsd_roi_extractor}},  # sampling_ratio: the base's
        bbox_head=dict(_base_.tsd_bbox_head, fc_out_channels=_base_.fc_channels),
        sibling_head={{_base_.model.roi_head.bbox_head}},
        pc_cls={{_base_.tsd_pc_cls}},
        pc_loc={{_base_.tsd_pc_loc}}))
