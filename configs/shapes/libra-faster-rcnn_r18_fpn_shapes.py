# Libra R-CNN on the generated "shapes" dataset: faster-rcnn_r18_fpn_shapes.py with Libra's three
# balances (mmdet::libra_rcnn/libra-faster-rcnn_r50_fpn_1x_coco.py): a balanced feature pyramid (BFP
# after the FPN), IoU-balanced negative / instance-balanced positive sampling, balanced L1 loss. The
# baseline that tsd-libra-faster-rcnn_r18_fpn_shapes.py changes only in its RoI head.
_base_ = './faster-rcnn_r18_fpn_shapes.py'

model = dict(
    neck=[
        {{_base_.model.neck}},
        dict(type='BFP', in_channels={{_base_.fpn_channels}}, num_levels=5, refine_level=2,
             refine_type='non_local')
    ],
    roi_head=dict(
        bbox_head=dict(
            loss_bbox=dict(
                _delete_=True,
                type='BalancedL1Loss',
                alpha=0.5,
                gamma=1.5,
                beta=1.0,
                loss_weight=1.0))),
    train_cfg=dict(
        rpn=dict(sampler=dict(neg_pos_ub=5), allowed_border=-1),
        rcnn=dict(
            sampler=dict(
                _delete_=True,
                type='CombinedSampler',
                num=128,
                pos_fraction=0.25,
                add_gt_as_proposals=True,
                pos_sampler=dict(type='InstanceBalancedPosSampler'),
                neg_sampler=dict(
                    type='IoUBalancedNegSampler',
                    floor_thr=-1,
                    floor_fraction=0,
                    num_bins=3)))))
