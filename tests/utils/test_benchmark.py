"""tsd_mmdet.utils.benchmark: twin lookup, pairing, inference-model parameters, same pooling."""
from pathlib import Path

import pytest
from mmdet.registry import MODELS
from mmengine.config import Config

from tsd_mmdet.utils import benchmark

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / 'tools'
SHAPES = ROOT / 'configs' / 'shapes'



@pytest.mark.parametrize('config,twin', [
    ('configs/tsd/tsd-faster-rcnn_r50_fpn_1x_coco.py',
     'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'),
    ('configs/tsd/tsd-faster-rcnn_r101-dconv-c3-c5_fpn_1x_coco.py',
     'mmdet::dcn/faster-rcnn_r101-dconv-c3-c5_fpn_1x_coco.py'),
    ('configs/tsd/tsd-faster-rcnn_r152_fpn_1x_coco.py',
     str(ROOT / 'configs/baselines/faster-rcnn_r152_fpn_1x_coco.py')),
    ('configs/baselines/faster-rcnn_r152_fpn_1x_coco.py',
     str(ROOT / 'configs/tsd/tsd-faster-rcnn_r152_fpn_1x_coco.py')),
    ('mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py',
     str(ROOT / 'configs/tsd/tsd-mask-rcnn_r50_fpn_1x_coco.py')),
    ('configs/shapes/tsd-faster-rcnn_r18_fpn_shapes.py',
     'configs/shapes/faster-rcnn_r18_fpn_shapes.py'),
    ('configs/shapes/faster-rcnn_r18_fpn_shapes.py',
     'configs/shapes/tsd-faster-rcnn_r18_fpn_shapes.py'),
    ('configs/tsd/tsd-faster-rcnn_r50_fpn_13e_coco.py', None),
    ('mmdet::retinanet/retinanet_r50_fpn_1x_coco.py', None),
])
def test_find_twin(config, twin, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert benchmark.find_twin(config) == twin


def test_pair_configs(monkeypatch):
    monkeypatch.chdir(ROOT)
    tsd, base = 'configs/shapes/tsd-faster-rcnn_r18_fpn_shapes.py', \
        'configs/shapes/faster-rcnn_r18_fpn_shapes.py'
    assert benchmark.pair_configs([tsd, base], explicit=False) == [(base, tsd)]
    assert benchmark.pair_configs(['a.py', 'b.py'], explicit=True) == [('a.py', 'b.py')]
    with pytest.raises(ValueError, match='even number'):
        benchmark.pair_configs(['a.py'], explicit=True)
    with pytest.raises(ValueError, match='no twin'):
        benchmark.pair_configs(['configs/tsd/tsd-faster-rcnn_r50_fpn_13e_coco.py'], explicit=False)


def _parameters(config, inference=False):
    model_cfg = Config.fromfile(str(config)).model
    if inference:
        model_cfg = benchmark.inference_model_cfg(model_cfg)
    return benchmark.count_parameters(MODELS.build(model_cfg))




@pytest.mark.parametrize('config', [
    'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',
    'mmdet::cascade_rcnn/cascade-rcnn_r50_fpn_1x_coco.py',
])
def test_same_pooling_baseline_equals_mmdet_roi_align(config):
    """--same-pooling: the baseline's boxes are pooled by tsd_mmdet's op with the same settings,
    and its RoI features equal mmcv's RoIAlign (the op without offset is RoIAlign)."""
    import torch

    model_cfg = benchmark.load_model_config(config).model
    changed = benchmark.with_tsd_pooling(model_cfg)
    extractors = changed.roi_head.bbox_roi_extractor
    extractors = extractors if isinstance(extractors, list) else [extractors]
    assert all(e.type == 'TSDRoIExtractor' and e.roi_layer.type == 'DeformRoIAlign'
               for e in extractors)
    assert model_cfg.roi_head.bbox_roi_extractor != changed.roi_head.bbox_roi_extractor
    original = model_cfg.roi_head.bbox_roi_extractor
    original = original[0] if isinstance(original, list) else original
    ours, theirs = (MODELS.build(cfg) for cfg in (extractors[0], original))
    torch.manual_seed(0)
    feats = tuple(torch.randn(1, 256, 64 // s, 64 // s) for s in (1, 2, 4, 8))
    rois = torch.tensor([[0., 2., 3., 30., 40.], [0., 0., 0., 200., 180.], [0., 10., 5., 14., 9.]])
    torch.testing.assert_close(ours(feats, rois), theirs(feats, rois), atol=1e-4, rtol=1e-4)
