# Baseline twin of configs/tsd/tsd-faster-rcnn_r50_fpn_32xb2-cas-1x_openimages.py: mmdet's
# OpenImages Faster R-CNN with class-aware sampling, run as every config of this project is
# (configs/tsd/_base_/tsd_runtime.py: TSDRunner's data checks, NonFiniteGuardHook) and with the
# same train pipeline (FilterAnnotations), so that the two differ in the RoI head only.
_base_ = ['mmdet::openimages/faster-rcnn_r50_fpn_32xb2-cas-1x_openimages.py',
          '../tsd/_base_/tsd_runtime.py']

# OpenImagesDataset keeps boxes under one pixel (its CSV boxes are fractions of the image), which
# no box coder can encode: FilterAnnotations drops them after loading (TSDRunner's data check warns
# with their count and images, and refuses a train pipeline without such a filter).
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1, 1), keep_empty=False),
    dict(type='Resize', scale=(1024, 800), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

# mmdet's OpenImagesMetric (AP at IoU 0.5, group-of boxes, hierarchy) whose per-class table names the
# rows by the dataset's own classes instead of OpenImages' first 601 (tsd_mmdet.evaluation)
val_evaluator = dict(type='OpenImagesOwnClassesMetric')
test_evaluator = val_evaluator
