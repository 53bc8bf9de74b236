# TSD (eq. 3-6) with the progressive constraint (eq. 7-8) in Mask R-CNN on the generated "shapes"
# dataset: mask-rcnn_r18_fpn_shapes.py with the detection branch replaced by TSD's, as the paper's
# configs/tsd/tsd-mask-rcnn_r50_fpn_1x_coco.py does (Table 7). The head settings (gamma, manners,
# margins, ...) are inherited from configs/tsd/_base_/tsd_head.py, the paper configs' one source:
# a change there shows up here. Only the branch width follows the shapes' (fc_channels, as the
# baseline's box head); the mask head is the baseline's, run on the TSD boxes at test time.
#
# Data keys to override: see mask-rcnn_r18_fpn_shapes.py; with plain mmdet tools also
# model.roi_head.sibling_head.num_classes.
_base_ = ['./mask-rcnn_r18_fpn_shapes.py', '../tsd/_base_/tsd_head.py']

model = dict(
    roi_head=dict(
        type='TSDRoIHead',
        bbox_roi_extractor={{_base_.tsd_roi_extractor}},  # sampling_ratio: the base's
        bbox_head=dict(_base_.tsd_bbox_head, fc_out_channels=_base_.fc_channels),
        sibling_head={{_base_.model.roi_head.bbox_head}},
        pc_cls={{_base_.tsd_pc_cls}},
        pc_loc={{_base_.tsd_pc_loc}}))
