# The TSD head settings every paper config shares: one place to change a gamma, a manner or a
# margin (eq. 3-8). Inherit it beside the mmdet base and refer to its pieces with {{_base_.<name>}}:
#   _base_ = ['mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py', '../_base_/tsd_head.py']
#   model = dict(roi_head=dict(type='TSDRoIHead', bbox_roi_extractor={{_base_.tsd_roi_extractor}},
#                bbox_head={{_base_.tsd_bbox_head}}, ...))
# tsd_bbox_head holds TSD's own options only; merged into the base's box head it keeps that head's
# channels, classes, box coder and losses, which is how the Faster, Mask and OpenImages configs use it.
# Paper settings: Point.w P-hat_c, Prop.w P-hat_r, gamma 0.1 (Tables 1, 4), offset fcs 256 wide,
# branches 1024 wide (§2.2), PC margins m_c = m_r = 0.2 with loss weight 1 (Table 3, eq. 9).
# Regression targets are encoded against P-hat_r attached (the authors' code); set
# detach_reg_targets=True in tsd_bbox_head for the detached variant (docs/results.md).
tsd_roi_extractor = dict(type='TSDRoIExtractor', roi_layer=dict(type='DeformRoIAlign'))
tsd_bbox_head = dict(
    type='TSDBBoxHead',
    gamma_cls=0.1,
    gamma_reg=0.1,
    cls_manner='pointwise',
    reg_manner='proposalwise',
    offset_fc_channels=256,
    fc_out_channels=1024,
    detach_reg_targets=False)
tsd_pc_cls = dict(type='ProgressiveConstraintCls', margin_cls=0.2, loss_weight=1.0)
tsd_pc_loc = dict(type='ProgressiveConstraintLoc', margin_reg=0.2, loss_weight=1.0)

# Cascade R-CNN: a list replaces the base's list instead of merging into it, so the three stages
# are spelled out here, each tsd_bbox_head on mmdet's cascade stage (class-agnostic SmoothL1
# regression, the stage's target stds).
tsd_cascade_bbox_heads = [
    dict(
        tsd_bbox_head,
        in_channels=256,
        roi_feat_size=7,
        num_classes=80,
        bbox_coder=dict(
            type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.], target_stds=target_stds),
        reg_class_agnostic=True,
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
        loss_bbox=dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.0))
    for target_stds in ([0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1], [0.033, 0.033, 0.067, 0.067])
]
