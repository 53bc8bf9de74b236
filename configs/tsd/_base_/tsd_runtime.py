# What every config of tsd-mmdet runs with, TSD or baseline twin (not an equation of the paper):
# - custom_imports registers TSD's modules, so mmdet's own tools/train.py and tools/test.py run it;
# - TSDRunner (mmengine's Runner, registered by tsd_mmdet) checks each loop's data before building
#   its dataloaders and stops with one line ("dataset error: ...") on data it cannot use; training
#   boxes under one pixel are dropped with a warning, or refused with
#   dataset_check = dict(degenerate_boxes='error');
# - NonFiniteGuardHook refuses any optimizer step on a non-finite loss or gradient: training stops
#   with one line naming the iteration, the loss terms and the images, the last checkpoint good
#   (dict(type='NonFiniteGuardHook', action='skip', max_consecutive_skips=10) skips instead);
# - RandomStateHook keeps the random generators' states in the checkpoints, so that --resume
#   continues as the uninterrupted run would (same RoI samples, same augmentation).
custom_imports = dict(imports=['tsd_mmdet'], allow_failed_imports=False)
runner_type = 'TSDRunner'
custom_hooks = [dict(type='NonFiniteGuardHook'), dict(type='RandomStateHook')]
dataset_check = dict(degenerate_boxes='drop')
