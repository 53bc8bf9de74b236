# TSD fine-tuned from a trained baseline instead of trained from nothing: tsd-faster-rcnn_r18_fpn_
# shapes.py (same model: TSD + PC, sibling head) started from faster-rcnn_r18_fpn_shapes.py's
# checkpoint converted by tools/model_converters/baseline_to_tsd.py, on a short schedule.
# Not an equation of the paper: the TSD loss is eq. 9 as in the from-scratch config; only the
# starting point (sibling head and both TSD branches = the baseline's head) and the schedule differ.
#
#   python tools/train.py configs/shapes/faster-rcnn_r18_fpn_shapes.py      # the baseline, 800 it
#   python tools/model_converters/baseline_to_tsd.py \
#       configs/shapes/tsd-faster-rcnn_r18_fpn_shapes.py \
#       work_dirs/faster-rcnn_r18_fpn_shapes/iter_800.pth \
#       work_dirs/faster-rcnn_r18_fpn_shapes/tsd-init.pth
#   python tools/train.py configs/shapes/tsd-faster-rcnn_r18_fpn_shapes_ft-baseline.py
#
# (another converted checkpoint: --cfg-options load_from=PATH; another dataset: the same
# data_root / metainfo.classes overrides in all three commands, see the base configs' headers.)
# Its control, the baseline continued on this schedule: faster-rcnn_r18_fpn_shapes_ft-baseline.py.
#
# Schedule (_base_/ft_schedule.py, shared with the control): 200 iterations (a quarter of the
# from-scratch run), warm-up over the first 20, then cosine to 1 % of the peak. Optimizer: the
# base's AdamW at a peak lr of 2e-4, a fifth of the from-scratch 1e-3. The baseline ends its cosine
# schedule at 1e-5, fully trained: Adam moves every weight by about lr per step whatever its
# gradient, so restarting at 1e-3 with fresh moment estimates would first undo part of the converged
# backbone, RPN and head. 2e-4 still lets the offset predictors (starting at near-zero offsets) and
# the two branches (starting equal) move apart within 200 iterations; the warm-up covers the steps
# before Adam's second-moment estimates settle. These are reasoned choices, not tuned ones.
_base_ = ['./tsd-faster-rcnn_r18_fpn_shapes.py', './_base_/ft_schedule.py']

load_from = 'work_dirs/faster-rcnn_r18_fpn_shapes/tsd-init.pth'

max_iters = {{_base_.ft_max_iters}}  # the dumped config then shows this run's length
train_cfg = {{_base_.ft_train_cfg}}
param_scheduler = {{_base_.ft_param_scheduler}}
optim_wrapper = {{_base_.ft_optim_wrapper}}
default_hooks = {{_base_.ft_default_hooks}}
