"""Shared fixtures of tests/deployment: each shapes detector exported once per session.

Random weights on the configs of configs/shapes (TSD and baseline twins of Faster, Cascade and
Mask R-CNN), stirred so that the test sees what a trained model does: proposals of several sizes
(RPN deltas ~ N(0, 1)) spread over the FPN levels (``finest_scale=8``), and TSD offsets
delta_c, delta_r of a tenth of the RoI and more (eq. 3-6), not the init's ~1e-3.
"""
import functools
import os.path as osp

import pytest
import torch
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import bbox2roi
from mmengine.config import Config
from mmengine.registry import init_default_scope

import tsd_mmdet  # noqa: F401  (registers TSD's modules)
from tsd_mmdet import deployment
from tsd_mmdet.deployment import (
    OnnxDetector,
    OpenVinoDetector,
    build_initialised_model,
    config_classes,
    export_detector,
)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SHAPES = osp.join(ROOT, 'configs', 'shapes')
CONFIGS = {
    'tsd-faster': 'tsd-faster-rcnn_r18_fpn_shapes.py',
    'faster': 'faster-rcnn_r18_fpn_shapes.py',
    'tsd-cascade': 'tsd-cascade-rcnn_r18_fpn_shapes.py',
    'cascade': 'cascade-rcnn_r18_fpn_shapes.py',
    'tsd-mask': 'tsd-mask-rcnn_r18_fpn_shapes.py',
    'mask': 'mask-rcnn_r18_fpn_shapes.py',
    'tsd-libra': 'tsd-libra-faster-rcnn_r18_fpn_shapes.py',
    'tsd-dynamic': 'tsd-dynamic-rcnn_r18_fpn_shapes.py',
    'tsd-pisa': 'tsd-faster-rcnn_r18_fpn_pisa_shapes.py',
    'tsd-ms': 'tsd-ms-rcnn_r18_fpn_shapes.py',
    'tsd-point-rend': 'tsd-point-rend_r18_fpn_shapes.py',
    'tsd-htc': 'tsd-htc_r18_fpn_shapes.py',
    'tsd-trident': 'tsd-tridentnet_r50-c4_shapes.py',
}
EXPORT_SHAPE = (320, 320)


def shapes_config(name: str) -> Config:
    """A shapes config with its RoIs spread over the FPN levels (``finest_scale=8``)."""
    cfg = Config.fromfile(osp.join(SHAPES, CONFIGS[name]))
    options = {'model.roi_head.bbox_roi_extractor.finest_scale': 8}
    if name in ('mask', 'tsd-mask'):
        options['model.roi_head.mask_roi_extractor.finest_scale'] = 8
    cfg.merge_from_dict(options)
    return cfg


def random_detector(cfg: Config) -> torch.nn.Module:
    """The config's detector with seeded random weights, stirred as the module docstring says."""
    init_default_scope('mmdet')
    detector = build_initialised_model(cfg.model, seed=0)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        reg = detector.rpn_head.rpn_reg.weight
        reg.copy_(torch.randn(reg.shape, generator=generator))
        heads = detector.roi_head.bbox_head
        for head in heads if isinstance(heads, torch.nn.ModuleList) else [heads]:
            for name in ('fc_delta_c', 'fc_delta_r'):
                if hasattr(head, name):
                    weight = getattr(head, name).weight
                    weight.copy_(torch.randn(weight.shape, generator=generator) * 0.03)
    return detector.eval()


def match_detections(want: dict, got: dict) -> list[int]:
    """Index of the row of ``got`` matched to each detection of ``want`` by the package's
    :func:`~tsd_mmdet.deployment.match_detections` (same label, IoU >= 0.99, |score difference|
    <= 1e-3, each row used once, ``want`` best first). Fails the test naming the first detection
    left unmatched. Both: ``bboxes`` (n, 4), ``scores``, ``labels``."""
    pairs, unmatched = deployment.match_detections(want, got)
    for i in unmatched[:1]:
        raise AssertionError(f"detection {i} (label {int(want['labels'][i])}, score "
                             f"{float(want['scores'][i]):.4f}) has no match")
    return [j for _, j in pairs]


def predict_detections(detector: torch.nn.Module, image: torch.Tensor):
    """``model.predict`` on one image (1, 3, H, W), as mmdet's test loop runs it (rescale off:
    the input's pixels), with the mask head's probabilities of each detection's label for Mask
    R-CNN (``probs``, (n, 28, 28))."""
    h, w = image.shape[-2:]
    sample = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w),
                                         scale_factor=(1.0, 1.0)))
    with torch.no_grad():
        data = detector.data_preprocessor(dict(inputs=[image[0]], data_samples=[sample]))
        pred = detector.predict(data['inputs'], data['data_samples'], rescale=False)[0]
        pred = pred.pred_instances
        if detector.roi_head.with_mask:
            feats = detector.extract_feat(data['inputs'])
            logits = detector.roi_head._mask_forward(feats, bbox2roi([pred.bboxes]))['mask_preds']
            pred.probs = logits[torch.arange(len(pred)), pred.labels].sigmoid()
    return pred


class Exported:
    """One exported detector: its config, the PyTorch model, the ONNX file under ONNX Runtime
    (``onnx``) and, made on first use, under OpenVINO (``openvino``)."""

    def __init__(self, name: str, directory: str):
        self.name = name
        self.cfg = shapes_config(name)
        self.detector = random_detector(self.cfg)
        self.path = osp.join(directory, f'{name}.onnx')
        self.detector.dataset_meta = dict(classes=config_classes(self.cfg))
        export_detector(self.detector, self.path, EXPORT_SHAPE)
        self.onnx = OnnxDetector(self.path)

    @functools.cached_property
    def openvino(self) -> OpenVinoDetector:
        return OpenVinoDetector(self.path)


@pytest.fixture
def match():
    """:func:`match_detections`."""
    return match_detections


@pytest.fixture
def predict():
    """:func:`predict_detections`."""
    return predict_detections


@pytest.fixture(scope='module')
def random_model():
    """Factory: ``random_model(cfg)`` -> :func:`random_detector`."""
    return random_detector


@pytest.fixture(scope='module')
def shapes_cfg():
    """Factory: ``shapes_cfg(name)`` -> :func:`shapes_config`, a fresh copy each call."""
    return shapes_config


@pytest.fixture(scope='session')
def exported(tmp_path_factory):
    """Factory: ``exported(name)`` -> :class:`Exported`, made once per session."""
    cache = {}
    directory = str(tmp_path_factory.mktemp('onnx'))

    def get(name: str) -> Exported:
        if name not in cache:
            cache[name] = Exported(name, directory)
        return cache[name]

    return get
