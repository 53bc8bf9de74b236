"""docs/extending.md's example host (example_host.py): built by config, it trains TSD's branches
with the host's change (eq. 2), keeps the sibling and PC (eq. 7-9), and the package's tools find
its stage through the contract (visualization, export checks, the converter)."""
import copy

import example_host  # noqa: F401  (registers the example's heads)
import pytest
import torch
from conftest import TSD_CONFIG, make_batch, shrink_model_cfg
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.hub import get_config

from tsd_mmdet.deployment import check_exportable
from tsd_mmdet.utils.baseline_to_tsd import convert
from tsd_mmdet.visualization.derived_proposals import tsd_stage


def _model(loss_scale):
    cfg = shrink_model_cfg(Config.fromfile(str(TSD_CONFIG)).model,
                           type='TSDLossScaledRoIHead', loss_scale=loss_scale)
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    return model, cfg


def _losses(model):
    torch.manual_seed(0)
    return model(**model.data_preprocessor(copy.deepcopy(make_batch()), True), mode='loss')


def test_scale_applies_to_tsd_branches_only():
    plain, scaled = _losses(_model(1.0)[0]), _losses(_model(3.0)[0])
    for key in ('loss_cls_tsd', 'loss_bbox_tsd'):
        torch.testing.assert_close(scaled[key], 3 * plain[key])
    for key in ('loss_cls', 'loss_bbox', 'loss_pc_cls', 'loss_pc_loc', 'acc_tsd'):
        torch.testing.assert_close(scaled[key], plain[key])


def test_tools_find_the_stage_through_the_contract():
    model, cfg = _model(2.0)
    head, stage = tsd_stage(model)
    assert head is model.roi_head.bbox_head and stage is None
    check_exportable(model.eval())  # inherits TSDRoIHead's inference: exportable
    baseline_cfg = shrink_model_cfg(get_config('mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py')
                                    .model, type='LossScaledRoIHead', loss_scale=2.0)
    state_dict, report = convert(cfg, MODELS.build(baseline_cfg).state_dict())  # your baseline
    assert report.dropped == []
    model.load_state_dict(state_dict, strict=True)
    with pytest.raises(ValueError, match='one TSD stage'):
        tsd_stage(model, 1)
