# The control for tsd-faster-rcnn_r18_fpn_shapes_ft-baseline.py: the baseline itself, continued from
# its own checkpoint on the very same short schedule, so that the only difference is the conversion.
# Not an equation of the paper (a fine-tuning control for issue 11's measurement).
#
#   python tools/train.py configs/shapes/faster-rcnn_r18_fpn_shapes.py      # the baseline, 800 it
#   python tools/train.py configs/shapes/faster-rcnn_r18_fpn_shapes_ft-baseline.py
#
# Schedule and optimizer: those of the TSD fine-tune config (200 iterations, 20 of warm-up, cosine
# to 1 %, AdamW peak lr 2e-4); see its header for the reasons.
_base_ = './faster-rcnn_r18_fpn_shapes.py'

load_from = 'work_dirs/faster-rcnn_r18_fpn_shapes/iter_800.pth'

max_iters = 200
warmup_iters = 20
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=warmup_iters, end=max_iters,
         eta_min_ratio=0.01),
]
optim_wrapper = dict(optimizer=dict(lr=2e-4))
default_hooks = dict(checkpoint=dict(interval=100))
