"""Tests of the shipped TSD Faster R-CNN configs and their parameter counts.

Table 1's #param (TSD with R50-FPN: 58.9M) and the §3.1 / §3.6 training settings (eq. 9 weights 1).
"""
from pathlib import Path

import pytest
from mmdet.registry import MODELS
from mmengine.config import Config

from tsd_mmdet.utils import benchmark

ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = ROOT / 'configs' / 'tsd'
TSD_CONFIG = CONFIG_DIR / 'tsd-faster-rcnn_r50_fpn_1x_coco.py'


def _parameters(config: str, inference: bool = False) -> int:
    model_cfg = benchmark.load_model_config(config).model
    if inference:
        model_cfg = benchmark.inference_model_cfg(model_cfg)
    return benchmark.count_parameters(MODELS.build(model_cfg))


def test_parameter_counts_match_table_1():
    counts = dict(inference=_parameters(str(TSD_CONFIG), inference=True),
                  training=_parameters(str(TSD_CONFIG)),
                  baseline=_parameters('mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'))
    assert counts['inference'] == pytest.approx(58.9e6, rel=0.01)  # TSD, Table 1
    assert counts['baseline'] == pytest.approx(41.8e6, rel=0.01)  # ResNet-50, Table 1
    # The training model adds the sibling Shared2FCBBoxHead: 12544->1024->1024, 81 + 320 outputs.
    sibling = 12544 * 1024 + 1024 + 1024 * 1024 + 1024 + 1024 * 81 + 81 + 1024 * 320 + 320
    assert counts['training'] - counts['inference'] == sibling
    # TSD head (hand count in tests/models/bbox_heads) replaces the baseline's box head.
    assert counts['inference'] - counts['baseline'] == 31_571_189 - sibling


def test_1x_config(tsd_config):
    assert tsd_config.custom_imports == dict(imports=['tsd_mmdet'], allow_failed_imports=False)
    assert tsd_config.runner_type == 'TSDRunner'
    assert tsd_config.custom_hooks == [dict(type='NonFiniteGuardHook'),
                                       dict(type='RandomStateHook')]
    roi_head = tsd_config.model.roi_head
    assert roi_head.type == 'TSDRoIHead'
    assert roi_head.bbox_roi_extractor.type == 'TSDRoIExtractor'
    assert roi_head.bbox_roi_extractor.roi_layer == dict(
        type='DeformRoIAlign', output_size=7, sampling_ratio=0)
    assert roi_head.bbox_head.type == 'TSDBBoxHead'
    assert (roi_head.bbox_head.cls_manner, roi_head.bbox_head.reg_manner) == (
        'pointwise', 'proposalwise')
    assert roi_head.sibling_head.type == 'Shared2FCBBoxHead'
    assert (roi_head.pc_cls.margin_cls, roi_head.pc_loc.margin_reg) == (0.2, 0.2)
    assert roi_head.pc_cls.loss_weight == roi_head.pc_loc.loss_weight == 1.0
    assert tsd_config.train_cfg.max_epochs == 12


def test_13e_config():
    cfg = Config.fromfile(str(CONFIG_DIR / 'tsd-faster-rcnn_r50_fpn_13e_coco.py'))
    roi_head = cfg.model.roi_head
    assert (roi_head.pc_cls.margin_cls, roi_head.pc_loc.margin_reg) == (0.5, 0.2)
    assert cfg.train_cfg.max_epochs == 13
    warmup, steps = cfg.param_scheduler
    assert warmup.type == 'LinearLR' and (warmup.begin, warmup.end) == (0, 1)
    assert warmup.start_factor * 0.04 == pytest.approx(0.00125)
    assert steps.type == 'MultiStepLR' and steps.milestones == [8, 11] and steps.end == 13
    assert cfg.optim_wrapper.optimizer.lr == 0.04
    assert cfg.auto_scale_lr == dict(enable=True, base_batch_size=32)
