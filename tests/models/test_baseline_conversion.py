"""Baseline -> TSD checkpoint conversion (tsd_mmdet.utils.baseline_to_tsd) on tiny models.

Relates to eq. 2 and 9: with the baseline's head copied into the sibling and both TSD branches and
the offsets (eq. 3, 5) zeroed, TSD predicts what the baseline predicts: Faster, Mask and Cascade.
"""
import copy

import pytest
import torch
from conftest import CONFIG_DIR, HOST_CONFIGS, NUM_CLASSES, make_batch, shrink_model_cfg
from mmdet.registry import MODELS
from mmengine.config import Config, ConfigDict
from mmengine.hub import get_config
from mmengine.runner import load_checkpoint

from tsd_mmdet.deployment import build_initialised_model
from tsd_mmdet.utils import benchmark
from tsd_mmdet.utils.baseline_to_tsd import (
    ConversionError,
    ConversionReport,
    convert,
    unwrap_state_dict,
)

# TSD config -> its mmdet baseline twin
FAMILIES = {
    'faster': ('tsd-faster-rcnn_r50_fpn_1x_coco.py', 'faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'),
    'mask': ('tsd-mask-rcnn_r50_fpn_1x_coco.py', 'mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'),
    'cascade': ('tsd-cascade-rcnn_r50_fpn_1x_coco.py',
                'cascade_rcnn/cascade-rcnn_r50_fpn_1x_coco.py'),
}
OFFSET_LAYERS = ('offset_fc', 'delta_c_fc', 'fc_delta_c', 'delta_r_fc', 'fc_delta_r')
# The baseline pools with mmcv's RoIAlign, TSD with tsd_mmdet's DeformRoIAlign: the same bilinear
# samples (on CPU the outputs are even bitwise equal); room for another summation order.
ATOL = 1e-5


def _tiny_cfgs(family):
    tsd_config, baseline_config = FAMILIES[family]
    tsd = shrink_model_cfg(Config.fromfile(str(CONFIG_DIR / tsd_config)).model)
    baseline = shrink_model_cfg(get_config(f'mmdet::{baseline_config}').model)
    return tsd, baseline


def _baseline_heads(baseline):
    heads = baseline.roi_head.bbox_head
    return list(heads) if isinstance(heads, torch.nn.ModuleList) else [heads]


def _trained_looking_baseline(baseline_cfg):
    """A randomly initialised baseline whose box heads predict far from the proposals and with
    peaked scores (init alone gives near-uniform scores and near-zero deltas)."""
    torch.manual_seed(0)
    baseline = MODELS.build(baseline_cfg)
    baseline.init_weights()
    with torch.no_grad():
        for head in _baseline_heads(baseline):
            head.fc_cls.weight.normal_(std=0.5)
            head.fc_reg.weight.normal_(std=0.1)
    return baseline.eval()


def _zero_offsets(tsd):
    heads = tsd.roi_head.bbox_head
    for head in heads if isinstance(heads, torch.nn.ModuleList) else [heads]:
        for layer in (head.fc_delta_c, head.fc_delta_r):
            torch.nn.init.zeros_(layer.weight)
            torch.nn.init.zeros_(layer.bias)


@pytest.fixture(scope='module')
def converted():
    """Factory: ``converted(family)`` -> (baseline, TSD loaded from its conversion, report)."""
    cache = {}

    def build(family):
        if family not in cache:
            tsd_cfg, baseline_cfg = _tiny_cfgs(family)
            baseline = _trained_looking_baseline(baseline_cfg)
            state_dict, report = convert(tsd_cfg, baseline.state_dict())
            tsd = MODELS.build(tsd_cfg)
            tsd.load_state_dict(state_dict, strict=True)
            cache[family] = baseline, tsd.eval(), report
        return cache[family]

    return build


def _predict(model, data):
    with torch.no_grad():
        return model(**model.data_preprocessor(copy.deepcopy(data), False), mode='predict')


@pytest.mark.parametrize('family', FAMILIES)
def test_zero_offsets_predict_as_the_baseline(converted, family):
    baseline, tsd, _ = converted(family)
    data = make_batch(batch_size=2, with_mask=family == 'mask')
    expected = _predict(baseline, data)
    # Control: with the offsets as initialised (Normal(std=1e-3)), TSD pools moved samples.
    assert not all(torch.equal(a.pred_instances.scores, b.pred_instances.scores)
                   for a, b in zip(expected, _predict(tsd, data)))
    tsd = copy.deepcopy(tsd)
    _zero_offsets(tsd)
    for theirs, ours in zip(expected, _predict(tsd, data)):
        theirs, ours = theirs.pred_instances, ours.pred_instances
        assert set(ours.keys()) == set(theirs.keys())
        assert len(theirs) > 10  # enough detections for the comparison to mean something
        torch.testing.assert_close(ours.labels, theirs.labels, rtol=0, atol=0)
        torch.testing.assert_close(ours.scores, theirs.scores, rtol=0, atol=ATOL)
        torch.testing.assert_close(ours.bboxes, theirs.bboxes, rtol=0, atol=ATOL)
        if family == 'mask':
            assert (ours.masks != theirs.masks).float().mean() <= 1e-3


@pytest.mark.parametrize('family', FAMILIES)
def test_report_and_weights(converted, family):
    baseline, tsd, report = converted(family)
    stages = [''] if family != 'cascade' else ['0.', '1.', '2.']
    assert report.dropped == []
    assert sorted(report.left_at_init) == sorted(
        f'roi_head.bbox_head.{s}{layer}.{p}' for s in stages for layer in OFFSET_LAYERS
        for p in ('weight', 'bias'))
    modules = {k.split('.')[0] if not k.startswith('roi_head') else '.'.join(k.split('.')[:2])
               for k in report.copied}
    assert modules == {'backbone', 'neck', 'rpn_head'} | (
        {'roi_head.mask_head'} if family == 'mask' else set())
    base, ours = baseline.state_dict(), tsd.state_dict()
    for key in report.copied:
        assert torch.equal(ours[key], base[key])
    for s in stages:
        for p in ('weight', 'bias'):
            for i in (0, 1):
                shared = base[f'roi_head.bbox_head.{s}shared_fcs.{i}.{p}']
                for branch in ('cls_fcs', 'reg_fcs'):
                    assert torch.equal(ours[f'roi_head.bbox_head.{s}{branch}.{i}.{p}'], shared)
            for layer in ('shared_fcs.0', 'shared_fcs.1', 'fc_cls', 'fc_reg'):
                assert torch.equal(ours[f'roi_head.sibling_head.{s}{layer}.{p}'],
                                   base[f'roi_head.bbox_head.{s}{layer}.{p}'])
            for layer in ('fc_cls', 'fc_reg'):
                assert torch.equal(ours[f'roi_head.bbox_head.{s}{layer}.{p}'],
                                   base[f'roi_head.bbox_head.{s}{layer}.{p}'])
    # The offset predictors keep the TSD init: last layers Normal(std=1e-3), zero bias.
    head = tsd.roi_head.bbox_head[0] if family == 'cascade' else tsd.roi_head.bbox_head
    assert 0 < head.fc_delta_r.weight.std() < 2e-3 and not head.fc_delta_r.bias.any()
    assert any('cls_fcs.0 <- ' in line for line in report.lines())


def test_checkpoint_loads_strictly_with_and_without_sibling(tmp_path):
    tsd_cfg, baseline_cfg = _tiny_cfgs('faster')
    baseline = _trained_looking_baseline(baseline_cfg)
    wrapped = {'state_dict': {f'module.{k}': v for k, v in baseline.state_dict().items()}}
    state_dict, report = convert(tsd_cfg, unwrap_state_dict(wrapped))
    assert report.dropped == [] and len(report.copied) > 0
    path = tmp_path / 'tsd.pth'
    torch.save({'state_dict': state_dict, 'meta': {}}, path)
    inference_cfg = copy.deepcopy(tsd_cfg)
    inference_cfg.roi_head.update(sibling_head=None, pc_cls=None, pc_loc=None)
    for cfg in (tsd_cfg, inference_cfg):
        model = MODELS.build(cfg)
        load_checkpoint(model, str(path), strict=True)
        for key, value in model.state_dict().items():
            assert torch.equal(value, state_dict[key])


def test_convert_is_seeded_and_leaves_the_global_rng(converted):
    baseline, _, _ = converted('faster')
    tsd_cfg, _ = _tiny_cfgs('faster')
    torch.manual_seed(123)
    expected_draw = torch.rand(3)
    torch.manual_seed(123)
    first, _ = convert(tsd_cfg, baseline.state_dict())
    assert torch.equal(torch.rand(3), expected_draw)
    second, _ = convert(tsd_cfg, baseline.state_dict())
    other, _ = convert(tsd_cfg, baseline.state_dict(), seed=1)
    key = 'roi_head.bbox_head.fc_delta_c.weight'
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not torch.equal(first[key], other[key])


def _baseline_state(family, **bbox_head):
    """State dict of the tiny baseline of ``family`` with its (every stage's) box head updated."""
    _, baseline_cfg = _tiny_cfgs(family)
    heads = baseline_cfg.roi_head.bbox_head
    for head in heads if isinstance(heads, list) else [heads]:
        head.update(bbox_head)
    return MODELS.build(baseline_cfg).state_dict()


@pytest.mark.parametrize(
    'family,bbox_head,message',
    [('faster', dict(num_classes=NUM_CLASSES + 2), 'num_classes: baseline 6 .* TSD 4'),
     ('faster', dict(fc_out_channels=24), r'fc width \(fc_out_channels\): baseline 24, TSD 32'),
     ('faster', dict(in_channels=8), 'input width'),
     ('faster', dict(reg_class_agnostic=True), 'class-agnostic mismatch: the baseline regresses '
      'class-agnostic'),
     ('cascade', dict(reg_class_agnostic=False), 'class-agnostic mismatch: the baseline regresses '
      'per class'),
     ('faster', dict(type='Shared4Conv1FCBBoxHead'), 'not a plain Shared2FCBBoxHead')],
    ids=['num-classes', 'fc-width', 'input-width', 'agnostic-baseline', 'agnostic-tsd',
         'not-shared2fc'])
def test_refuses_heads_that_do_not_fit(family, bbox_head, message):
    tsd_cfg, _ = _tiny_cfgs(family)
    with pytest.raises(ConversionError, match=message):
        convert(tsd_cfg, _baseline_state(family, **bbox_head))


def test_refuses_other_stages_and_non_tsd_configs():
    faster_tsd, faster_baseline = _tiny_cfgs('faster')
    cascade_tsd, _ = _tiny_cfgs('cascade')
    faster_state = MODELS.build(faster_baseline).state_dict()
    with pytest.raises(ConversionError, match='3 cascade stages, the baseline a single-stage'):
        convert(cascade_tsd, faster_state)
    with pytest.raises(ConversionError, match='single-stage box head, the baseline 3 cascade'):
        convert(faster_tsd, _baseline_state('cascade'))
    with pytest.raises(ConversionError, match='not a TSD model'):
        convert(faster_baseline, faster_state)
    with pytest.raises(ConversionError, match='no box head'):
        convert(faster_tsd, {k: v for k, v in faster_state.items() if '.bbox_head.' not in k})


def test_unwrap_state_dict():
    w = torch.ones(1)
    assert unwrap_state_dict({'backbone.conv1.weight': w}) == {'backbone.conv1.weight': w}
    assert unwrap_state_dict({'state_dict': {'module.neck.w': w, 'rpn_head.module.w': w},
                              'meta': {}}) == {'neck.w': w, 'rpn_head.module.w': w}


def test_report_lines():
    """The summary the converter prints: one line per layer (weight and bias together), copied
    tensors counted per module (a roi_head module by its two first names)."""
    report = ConversionReport(
        head=[('roi_head.bbox_head.cls_fcs.0.weight', 'roi_head.bbox_head.shared_fcs.0.weight'),
              ('roi_head.bbox_head.cls_fcs.0.bias', 'roi_head.bbox_head.shared_fcs.0.bias')],
        copied=['backbone.conv1.weight', 'backbone.bn1.bias', 'roi_head.mask_head.conv.weight'],
        left_at_init=['roi_head.bbox_head.fc_delta_r.weight',
                      'roi_head.bbox_head.fc_delta_r.bias', 'roi_head.bbox_head.fc_delta_c.bias'],
        dropped=['roi_head.extra.weight (not in the TSD model)', 'neck.w (shape (2,), TSD (3,))'])
    assert report.lines() == [
        'box heads (TSD <- baseline):',
        '  roi_head.bbox_head.cls_fcs.0 <- roi_head.bbox_head.shared_fcs.0',
        'copied as they are: backbone (2 tensors), roi_head.mask_head (1 tensors)',
        'left at init: roi_head.bbox_head.fc_delta_r, roi_head.bbox_head.fc_delta_c',
        'dropped from the baseline: roi_head.extra.weight (not in the TSD model), neck.w (shape '
        '(2,), TSD (3,))',
    ]
    assert ConversionReport().lines() == [
        'box heads (TSD <- baseline):', 'copied as they are: nothing', 'left at init: nothing',
        'dropped from the baseline: nothing']
    assert report.as_meta()['left_at_init'] == report.left_at_init


def test_pretrained_init_is_not_loaded_and_the_config_is_left_alone():
    """The configs' backbones start from Pretrained weights; the converter's model must not load
    them (the baseline's weights replace them; a path that does not exist here would fail), in
    dicts or lists of the config (a cascade stage), and the caller's config keeps them."""
    tsd_cfg, _ = _tiny_cfgs('cascade')
    pretrained = dict(type='Pretrained', checkpoint='/nonexistent/pretrained.pth')
    tsd_cfg.backbone.init_cfg = pretrained
    tsd_cfg.roi_head.bbox_head[1].init_cfg = pretrained
    before = copy.deepcopy(tsd_cfg)
    model = build_initialised_model(tsd_cfg)
    assert model.roi_head.bbox_head[1].fc_delta_r.weight.std() < 2e-3  # its own init ran
    assert tsd_cfg == before


def test_refuses_a_detector_without_roi_head():
    tsd_cfg, baseline_cfg = _tiny_cfgs('faster')
    retinanet = dict(
        type='RetinaNet', data_preprocessor=tsd_cfg.data_preprocessor, backbone=tsd_cfg.backbone,
        neck=dict(tsd_cfg.neck, start_level=1, add_extra_convs='on_input'),
        bbox_head=dict(
            type='RetinaHead', num_classes=NUM_CLASSES, in_channels=16, feat_channels=16,
            stacked_convs=1,
            anchor_generator=dict(type='AnchorGenerator', octave_base_scale=4,
                                  scales_per_octave=1, ratios=[1.0], strides=[8, 16, 32, 64]),
            bbox_coder=dict(type='DeltaXYWHBBoxCoder')))
    with pytest.raises(ConversionError, match='not a TSD model'):
        convert(ConfigDict(retinanet), MODELS.build(baseline_cfg).state_dict())


# the other hosts (tests/models/roi_heads/test_tsd_hosts.py): their mmdet twin converts
HOST_TWINS = {name: benchmark.find_twin(str(CONFIG_DIR / name)) for name in HOST_CONFIGS}
SHARED2FC_HOSTS = [n for n in HOST_CONFIGS if 'tridentnet' not in n]
# HTC fuses its semantic feature into the box feature, TSD into F only: predictions differ
SAME_PREDICTIONS = [n for n in SHARED2FC_HOSTS if 'htc' not in n]


def _host_cfgs(name):
    tsd = shrink_model_cfg(Config.fromfile(str(CONFIG_DIR / name)).model)
    baseline = shrink_model_cfg(get_config(HOST_TWINS[name]).model)
    return tsd, baseline


@pytest.mark.parametrize('name', SHARED2FC_HOSTS, ids=[n[4:-3] for n in SHARED2FC_HOSTS])
def test_host_baselines_convert(name):
    tsd_cfg, baseline_cfg = _host_cfgs(name)
    baseline = _trained_looking_baseline(baseline_cfg)
    state_dict, report = convert(tsd_cfg, baseline.state_dict())
    tsd = MODELS.build(tsd_cfg)
    tsd.load_state_dict(state_dict, strict=True)
    assert report.dropped == []
    assert {k.rsplit('.', 2)[-2] for k in report.left_at_init} == set(OFFSET_LAYERS)
    if name not in SAME_PREDICTIONS:
        return
    _zero_offsets(tsd)
    with_mask = baseline_cfg.roi_head.get('mask_head') is not None
    data = make_batch(batch_size=1, with_mask=with_mask)
    for theirs, ours in zip(_predict(baseline, data), _predict(tsd.eval(), data)):
        theirs, ours = theirs.pred_instances, ours.pred_instances
        assert len(theirs) > 10
        torch.testing.assert_close(ours.labels, theirs.labels, rtol=0, atol=0)
        torch.testing.assert_close(ours.scores, theirs.scores, rtol=0, atol=ATOL)
        torch.testing.assert_close(ours.bboxes, theirs.bboxes, rtol=0, atol=ATOL)


def test_trident_baseline_is_refused():
    """TridentNet's box head is a plain BBoxHead (avg pool, no fcs): nothing for TSD's branches."""
    tsd_cfg, baseline_cfg = _host_cfgs('tsd-tridentnet_r50-caffe_1x_coco.py')
    with pytest.raises(ConversionError, match='not a plain Shared2FCBBoxHead'):
        convert(tsd_cfg, MODELS.build(baseline_cfg).state_dict())
