# TSD + PC on Faster R-CNN R50-FPN for OpenImages V6 (601 classes), mmdet's OpenImages 1x set-up
# (32 GPUs x 2 images, lr 0.08) with class-aware sampling (§3.1; mmdet's ClassAwareSampler):
# Table 6, "ResNet-50" with TSD. Head options from _base_/tsd_head.py, as tsd-faster-rcnn_r50_fpn_1x_coco.py; the base's box
# head trains jointly as the sibling head. Dataset and metric (OpenImagesOwnClassesMetric: mmdet's
# OpenImagesMetric, AP@0.5, its table named by the dataset's classes) are the
# base's. (The paper used the V5 challenge set, 500 classes: mmdet's *_openimages-challenge.py.)
# Built on its baseline twin, configs/baselines/faster-rcnn_r50_fpn_32xb2-cas-1x_openimages.py
# (mmdet's, with this project's runtime and a train pipeline that drops boxes under one pixel), so
# that the two differ in the RoI head only.
_base_ = ['../baselines/faster-rcnn_r50_fpn_32xb2-cas-1x_openimages.py', './_base_/tsd_head.py']

model = dict(
    roi_head=dict(
        type='TSDRoIHead',
        bbox_roi_extractor={{_base_.tsd_roi_extractor}},
        bbox_head={{_base_.tsd_bbox_head}},
        sibling_head={{_base_.model.roi_head.bbox_head}},
        pc_cls={{_base_.tsd_pc_cls}},
        pc_loc={{_base_.tsd_pc_loc}}))
