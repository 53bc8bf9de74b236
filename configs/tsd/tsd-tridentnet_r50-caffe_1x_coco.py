# TSD + PC in TridentNet R50-caffe-C4, mmdet's 1x schedule (TSDTridentRoIHead). TSD runs in each
# trident branch (shared weights, as the base's head); the merge of the branches at test is the
# base's. TridentNet is a C4 detector: F, F-hat_c, F-hat_r are pooled 14 x 14 from C4 (TSD's
# DeformRoIAlign in place of RoIAlign), each goes through the base's shared res5, and TSD's head
# averages them (the base's with_avg_pool), with its 1024-wide branch fcs (§2.2); pointwise offsets
# are predicted on res5's 7 x 7 grid and move the 2 x 2 sub-bins of each bin alike. The base's box
# head trains jointly as the sibling (the PC anchor). The paper (FPN only) is silent on C4 heads.
# Baseline twin: mmdet::tridentnet/tridentnet_r50-caffe_1x_coco.py.
_base_ = ['mmdet::tridentnet/tridentnet_r50-caffe_1x_coco.py', './_base_/tsd_head.py',
          './_base_/tsd_runtime.py']

model = dict(
    roi_head=dict(
        type='TSDTridentRoIHead',
        bbox_roi_extractor={{_base_.tsd_roi_extractor}},
        bbox_head={{_base_.tsd_bbox_head}},
        sibling_head={{_base_.model.roi_head.bbox_head}},
        pc_cls={{_base_.tsd_pc_cls}},
        pc_loc={{_base_.tsd_pc_loc}}))
