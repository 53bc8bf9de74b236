# TSD (eq. 3-6) with the progressive constraint (eq. 7-8) in Cascade R-CNN on the generated
# "shapes" dataset: cascade-rcnn_r18_fpn_shapes.py with every stage a TSD head, its sibling the
# baseline's head of the same stage, as the paper's configs/tsd/tsd-cascade-rcnn_r50_fpn_1x_coco.py
# (Table 6). The stage heads are configs/tsd/_base_/tsd_head.py's tsd_cascade_bbox_heads, the paper
# configs' one source (a change there shows up here), with the shapes' input and branch widths and
# classes.
#
# Data keys to override: see cascade-rcnn_r18_fpn_shapes.py; with plain mmdet tools also
# model.roi_head.sibling_head.{0,1,2}.num_classes.
_base_ = ['./cascade-rcnn_r18_fpn_shapes.py', '../tsd/_base_/tsd_head.py']

model = dict(
    roi_head=dict(
        type='TSDCascadeRoIHead',
        bbox_roi_extractor={{_base_.tsd_roi_extractor}},  # sampling_ratio: the base's
        bbox_head=[
            dict(stage, in_channels=_base_.fpn_channels, fc_out_channels=_base_.fc_channels,
                 num_classes=_base_.num_classes) for stage in _base_.tsd_cascade_bbox_heads
        ],
        sibling_head={{_base_.model.roi_head.bbox_head}},
        pc_cls={{_base_.tsd_pc_cls}},
        pc_loc={{_base_.tsd_pc_loc}}))
