# The short fine-tune schedule shared by the two *_ft-baseline.py configs (a trained baseline
# continued, or converted to TSD and fine-tuned): not an equation of the paper.
# Its pieces are named ft_* because mmengine refuses a key that two _base_ files both define, and
# faster-rcnn_r18_fpn_shapes.py defines train_cfg / param_scheduler / optim_wrapper itself; a
# config takes them with `train_cfg = {{_base_.ft_train_cfg}}` and so on. The reasons for the
# numbers are in tsd-faster-rcnn_r18_fpn_shapes_ft-baseline.py's header.
ft_max_iters = 200
ft_warmup_iters = 20
ft_train_cfg = dict(max_iters=ft_max_iters, val_interval=ft_max_iters)
ft_param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=ft_warmup_iters),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=ft_warmup_iters, end=ft_max_iters,
         eta_min_ratio=0.01),
]
ft_optim_wrapper = dict(optimizer=dict(lr=2e-4))
ft_default_hooks = dict(checkpoint=dict(interval=100))
