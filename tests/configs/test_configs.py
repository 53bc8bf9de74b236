"""Every config under configs/ trains one step and predicts on CPU; TSD configs match their twins.

One case per ``*.py`` (``_base_`` folders excepted), so a new config is tested without a new test:
the model of the config (no pretrained weights, fewer proposals) on one 96x96 image with two boxes.
"""
import copy
from pathlib import Path

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.testing import demo_mm_inputs
from mmdet.utils import register_all_modules
from mmengine.config import Config, ConfigDict

from tsd_mmdet.utils import benchmark

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted(p for p in (ROOT / 'configs').rglob('*.py') if '_base_' not in p.parts)
TSD_CONFIGS = [p for p in CONFIGS if p.name.startswith('tsd-')]
NO_TWIN = {  # TSD configs without a baseline twin, and why
    'tsd-faster-rcnn_r50_fpn_13e_coco.py': 'the paper schedule (13 epochs), no mmdet baseline',
    'tsd-star-faster-rcnn_r101-dcn_fpn_ms-3x_coco.py': 'Table 8 compares published numbers',
}
# The R50 configs of the other TSD hosts: each trains one step on a tiny copy of itself in
# tests/models/roi_heads/test_tsd_hosts.py (full width they cost 10-35 s each); here they are built.
TINY_STEP = {
    'tsd-libra-faster-rcnn_r50_fpn_1x_coco.py', 'tsd-dynamic-rcnn_r50_fpn_1x_coco.py',
    'tsd-faster-rcnn_r50_fpn_pisa_1x_coco.py', 'tsd-ms-rcnn_r50_fpn_1x_coco.py',
    'tsd-point-rend_r50-caffe_fpn_ms-1x_coco.py', 'tsd-htc_r50_fpn_1x_coco.py',
    'tsd-tridentnet_r50-caffe_1x_coco.py'
}
IMAGE_SIZE = 96


register_all_modules()


def _ids(paths):
    return [str(p.relative_to(ROOT / 'configs')) for p in paths]


def _roi_heads(roi_head: ConfigDict, key: str) -> list:
    """``roi_head[key]`` as a list (cascade heads are lists already)."""
    value = roi_head[key]
    return value if isinstance(value, list) else [value]


def _unscoped(value):
    """``value`` without the ``_scope_`` keys that inheriting an ``mmdet::`` base adds."""
    if isinstance(value, dict):
        return {k: _unscoped(v) for k, v in value.items() if k != '_scope_'}
    if isinstance(value, (list, tuple)):
        return type(value)(_unscoped(v) for v in value)
    return value


def small_model_cfg(config: Path) -> ConfigDict:
    """The config's model without pretrained weights, with few proposals and RoIs, score_thr 0."""
    model_cfg = copy.deepcopy(Config.fromfile(str(config)).model)
    model_cfg.backbone.init_cfg = None
    model_cfg.train_cfg.rpn_proposal.update(nms_pre=128, max_per_img=64)
    rcnn = model_cfg.train_cfg.rcnn
    for stage in rcnn if isinstance(rcnn, list) else [rcnn]:
        stage.sampler.num = 32
    model_cfg.test_cfg.rpn.update(nms_pre=128, max_per_img=16)  # x 601 OpenImages classes
    model_cfg.test_cfg.rcnn.score_thr = 0.  # keep boxes: NMS and the mask head get work
    return model_cfg


@pytest.mark.parametrize('config', CONFIGS, ids=_ids(CONFIGS))
def test_config_trains_and_predicts(config):
    model_cfg = small_model_cfg(config)
    roi_head = model_cfg.roi_head
    with_mask = roi_head.get('mask_head') is not None
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    if config.name in TINY_STEP:
        assert model.roi_head.tsd_stage(0).sibling_head is not None
        return
    for module in model.modules():  # mmdet's TridentConv: uninitialised memory until init_weights
        if type(module).__name__ == 'TridentConv':
            torch.nn.init.kaiming_uniform_(module.weight, a=1)
    inputs = demo_mm_inputs(
        batch_size=1,
        image_shapes=[(3, IMAGE_SIZE, IMAGE_SIZE)],
        num_items=[2],
        num_classes=_roi_heads(roi_head, 'bbox_head')[0].num_classes,
        with_mask=with_mask,
        with_semantic=roi_head.get('semantic_head') is not None)  # HTC

    losses = model(**model.data_preprocessor(copy.deepcopy(inputs), True), mode='loss')
    total, _ = model.parse_losses(losses)
    assert torch.isfinite(total)
    for key, value in losses.items():
        for v in value if isinstance(value, list) else [value]:
            assert torch.isfinite(v).all(), key
    if config.name.startswith('tsd-'):
        assert any(key.endswith('loss_bbox_tsd') for key in losses)
        assert any(key.endswith('loss_pc_loc') for key in losses)
    if with_mask:  # HTC: one per stage
        assert all(v > 0 for k, v in losses.items() if k.split('.')[-1] == 'loss_mask')
        assert any(k.split('.')[-1] == 'loss_mask' for k in losses)
    total.backward()
    grads = [p.grad for p in model.roi_head.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)

    model.eval()
    with torch.no_grad():
        results = model(**model.data_preprocessor(inputs, False), mode='predict')
    assert len(results) == 1 and isinstance(results[0], DetDataSample)
    pred = results[0].pred_instances
    assert len(pred) > 0 and pred.bboxes.shape[1:] == (4, )
    if with_mask:
        assert pred.masks.shape == (len(pred), IMAGE_SIZE, IMAGE_SIZE)


@pytest.mark.parametrize('config', TSD_CONFIGS, ids=_ids(TSD_CONFIGS))
def test_tsd_config_matches_its_baseline_twin(config):
    """Everything but the RoI head equal; the sibling is the baseline's box head; the RoI head's
    other parts (mask head, stage weights, RoI layer size) equal too."""
    twin = benchmark.find_twin(str(config))
    if config.name in NO_TWIN:
        assert twin is None, f'{config.name} has a twin {twin}: remove it from NO_TWIN'
        return
    assert twin is not None, f'no baseline twin for {config.name}: add one or list it in NO_TWIN'
    tsd = _unscoped(Config.fromfile(str(config)).to_dict())
    baseline = _unscoped(benchmark.load_model_config(twin).to_dict())
    for key in ('custom_imports', 'runner_type', 'custom_hooks', 'dataset_check'):
        tsd.pop(key)  # configs/tsd/_base_/tsd_runtime.py (the twins from mmdet lack it)
        baseline.pop(key, None)
    for key in [k for k in tsd if k.startswith('tsd_')]:  # configs/tsd/_base_/tsd_head.py's pieces
        del tsd[key]
    if config.name.endswith('_ft-baseline.py'):  # each starts from its own converted checkpoint
        assert tsd.pop('load_from') != baseline.pop('load_from')
    tsd_roi, baseline_roi = tsd['model'].pop('roi_head'), baseline['model'].pop('roi_head')
    assert tsd == baseline

    assert tsd_roi['sibling_head'] == baseline_roi['bbox_head']
    for key in set(baseline_roi) - {'type', 'bbox_roi_extractor', 'bbox_head'}:
        assert tsd_roi[key] == baseline_roi[key], key
    extractors = [copy.deepcopy(r['bbox_roi_extractor']) for r in (tsd_roi, baseline_roi)]
    for extractor in extractors:
        del extractor['type'], extractor['roi_layer']['type']
    assert extractors[0] == extractors[1]
    for tsd_head, baseline_head in zip(*(_roi_heads(ConfigDict(r), 'bbox_head')
                                         for r in (tsd_roi, baseline_roi))):
        for key in ('num_classes', 'bbox_coder', 'reg_class_agnostic', 'loss_cls', 'loss_bbox'):
            assert tsd_head[key] == baseline_head[key], key


def test_baselines_have_tsd_twins():
    for config in (ROOT / 'configs' / 'baselines').glob('*.py'):
        assert benchmark.find_twin(str(config)) is not None, config.name


def test_wide_anchors():
    """Table 6's TSD*: 3 scales x 6 ratios; the RPN head's outputs follow the anchor generator."""
    config = ROOT / 'configs/tsd/tsd-faster-rcnn_r50_fpn_wide-anchors_32xb2-cas-1x_openimages.py'
    rpn_head = MODELS.build(small_model_cfg(config).rpn_head)
    assert rpn_head.num_base_priors == 18
    assert rpn_head.rpn_cls.out_channels == 18 and rpn_head.rpn_reg.out_channels == 4 * 18


def test_openimages_sampling():
    cfg = Config.fromfile(
        str(ROOT / 'configs/tsd/tsd-faster-rcnn_r50_fpn_32xb2-cas-1x_openimages.py'))
    assert cfg.train_dataloader.sampler.type == 'ClassAwareSampler'
    assert cfg.train_dataloader.dataset.type == 'OpenImagesDataset'
    assert cfg.val_evaluator.type == cfg.test_evaluator.type == 'OpenImagesOwnClassesMetric'
    assert cfg.val_evaluator.use_group_of and cfg.val_evaluator.iou_thrs == 0.5  # mmdet's settings
    assert cfg.model.roi_head.bbox_head.num_classes == 601


def test_tsd_star_settings():
    """§3.6's TSD*: multi-scale training, soft-NMS, DCN, 3x schedule, margins 0.5 / 0.2."""
    cfg = Config.fromfile(str(ROOT / 'configs/tsd/tsd-star-faster-rcnn_r101-dcn_fpn_ms-3x_coco.py'))
    resize = cfg.train_dataloader.dataset.pipeline[2]
    assert resize.type == 'RandomChoiceResize'
    assert [s for _, s in resize.scales] == list(range(480, 961, 32))
    assert cfg.model.test_cfg.rcnn.nms.type == 'soft_nms'
    assert cfg.model.backbone.depth == 101 and cfg.model.backbone.dcn.type == 'DCN'
    assert cfg.train_cfg.max_epochs == 36 and cfg.param_scheduler[1].milestones == [27, 33]
    assert cfg.model.roi_head.pc_cls.margin_cls == 0.5
    assert cfg.model.roi_head.pc_loc.margin_reg == 0.2


def test_paper_schedule_follows_the_authors_where_the_paper_is_silent():
    """13e: lr 0.04 on batch 32 (paper §3.1), gradients clipped at max_norm 35 (authors' code)."""
    cfg = Config.fromfile(str(ROOT / 'configs/tsd/tsd-faster-rcnn_r50_fpn_13e_coco.py'))
    assert cfg.optim_wrapper.optimizer.lr == 0.04 and cfg.auto_scale_lr.base_batch_size == 32
    assert cfg.optim_wrapper.clip_grad == dict(max_norm=35, norm_type=2)
    assert cfg.train_cfg.max_epochs == 13 and cfg.param_scheduler[1].milestones == [8, 11]
