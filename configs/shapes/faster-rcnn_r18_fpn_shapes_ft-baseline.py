# The control for tsd-faster-rcnn_r18_fpn_shapes_ft-baseline.py: the baseline itself, continued from
# its own checkpoint on the very same short schedule, so that the only difference is the conversion.
# Not an equation of the paper (a fine-tuning control for issue 11's measurement).
#
#   python tools/train.py configs/shapes/faster-rcnn_r18_fpn_shapes.py      # the baseline, 800 it
#   python tools/train.py configs/shapes/faster-rcnn_r18_fpn_shapes_ft-baseline.py
#
# Schedule and optimizer: _base_/ft_schedule.py, shared with the TSD fine-tune config (200
# iterations, 20 of warm-up, cosine to 1 %, AdamW peak lr 2e-4); see that config's header for the
# reasons.
_base_ = ['./faster-rcnn_r18_fpn_shapes.py', './_base_/ft_schedule.py']

load_from = 'work_dirs/faster-rcnn_r18_fpn_shapes/iter_800.pth'

max_iters = {{_base_.ft_max_iters}}  # the dumped config then shows this run's length
train_cfg = {{_base_.ft_train_cfg}}
param_scheduler = {{_base_.ft_param_scheduler}}
optim_wrapper = {{_base_.ft_optim_wrapper}}
default_hooks = {{_base_.ft_default_hooks}}
