# TSD + PC on Faster R-CNN R50-FPN, mmdet's 1x schedule (12 epochs, batch 16, lr 0.02).
# Head as in the paper's ablations (Tables 1-4): Point.w P-hat_c, Prop.w P-hat_r, gamma 0.1, joint
# training with the sibling head (Table 2), PC margins m_c = m_r = 0.2 (Table 3, last row); these
# settings live in _base_/tsd_head.py, shared by every paper config. The sibling head is the base's
# box head, trained jointly on F (pooled from P) and used by PC; never run at inference. Set
# sibling_head=None (and pc_cls=pc_loc=None) for TSD w/o joint training.
# Train with mmdet's own tools: `python tools/train.py <this file>` (custom_imports registers TSD).
_base_ = ['mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py', './_base_/tsd_head.py',
          './_base_/tsd_runtime.py']

model = dict(
    roi_head=dict(
        type='TSDRoIHead',
        bbox_roi_extractor={{_base_.tsd_roi_extractor}},
        bbox_head={{_base_.tsd_bbox_head}},
        sibling_head={{_base_.model.roi_head.bbox_head}},
        pc_cls={{_base_.tsd_pc_cls}},
        pc_loc={{_base_.tsd_pc_loc}}))
