# TSD (with the progressive constraint) on the generated "shapes" dataset: htc_r18_fpn_shapes.py
# with every box stage a TSD head (TSDHybridTaskCascadeRoIHead), as
# tsd-cascade-rcnn_r18_fpn_shapes.py does for Cascade R-CNN: HTC's interleaved mask branch and mask
# information flow are the base's. Head settings from configs/tsd/_base_/tsd_head.py
# (tsd_cascade_bbox_heads); only the widths and classes follow the shapes'. The paper config:
# configs/tsd/tsd-htc_r50_fpn_1x_coco.py.
_base_ = ['./htc_r18_fpn_shapes.py', '../tsd/_base_/tsd_head.py']

model = dict(
    roi_head=dict(
        type='TSDHybridTaskCascadeRoIHead',
        bbox_roi_extractor={{_base_.tsd_roi_extractor}},  # sampling_ratio: the base's
        bbox_head=[
            dict(stage, in_channels=_base_.fpn_channels, fc_out_channels=_base_.fc_channels,
                 num_classes=_base_.num_classes) for stage in _base_.tsd_cascade_bbox_heads
        ],
        sibling_head={{_base_.model.roi_head.bbox_head}},
        pc_cls={{_base_.tsd_pc_cls}},
        pc_loc={{_base_.tsd_pc_loc}}))
