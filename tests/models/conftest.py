"""Shared fixtures of tests/models: a tiny TSD Faster R-CNN made from the shipped 1x config.

Same head wiring as configs/tsd (eq. 2-9), toy widths (ResNet-18 with 8 base channels, 16-channel
FPN, 32-wide fcs, 4 classes) so that CPU tests take milliseconds; ``shrink_model_cfg`` shrinks
mmdet's baseline twins (and Mask / Cascade R-CNN configs) the same way.
"""
import copy
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.testing import demo_mm_inputs, demo_mm_proposals
from mmdet.utils import register_all_modules
from mmengine.config import Config, ConfigDict

import tsd_mmdet  # noqa: F401  (registers the TSD modules)

register_all_modules()

CONFIG_DIR = Path(__file__).resolve().parents[2] / 'configs' / 'tsd'
TSD_CONFIG = CONFIG_DIR / 'tsd-faster-rcnn_r50_fpn_1x_coco.py'
NUM_CLASSES = 4
CHANNELS = 16
IMAGE_SIZE = 128
STRIDES = (4, 8, 16, 32, 64)


@pytest.fixture(autouse=True)
def single_thread():
    """Run each test on one intra-op thread: the toy models are overhead-bound, and a busy 2-core
    machine makes multi-threaded CPU kernels ~10x slower (thread contention), not faster."""
    num_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(num_threads)


@pytest.fixture(scope='session')
def tsd_config() -> Config:
    """The shipped TSD Faster R-CNN R50-FPN 1x config."""
    return Config.fromfile(str(TSD_CONFIG))


def _as_list(cfg) -> list:
    """A per-stage config (list), a single one or None, as a list."""
    if cfg is None:
        return []
    return cfg if isinstance(cfg, list) else [cfg]


def shrink_model_cfg(model_cfg: ConfigDict, **roi_head_overrides) -> ConfigDict:
    """Tiny copy of a two-stage detector config: TSD or its mmdet baseline twin, Faster R-CNN,
    Mask R-CNN or Cascade R-CNN (every stage shrunk alike), and the other TSD hosts' detectors
    (Libra, Dynamic, PISA, Mask Scoring R-CNN, PointRend, HTC, TridentNet).

    ``roi_head_overrides`` update its roi_head; a dict given for a dict entry (e.g. ``bbox_head``)
    updates that entry, anything else replaces it.
    """
    model_cfg = copy.deepcopy(model_cfg)
    roi_head = model_cfg.roi_head
    feat_channels = head_channels = CHANNELS  # features pooled; features the box heads see
    if model_cfg.backbone.type == 'TridentResNet':  # C4, no neck: 64-channel C4
        feat_channels = 64
        # mmdet's TridentConv weights are uninitialised memory until an init covers them
        model_cfg.backbone.base_channels = 4
        model_cfg.backbone.init_cfg = dict(type='Kaiming', layer=['Conv2d', 'TridentConv'])
        # res5 as one strided conv: the shared head runs on F, F-hat_c and F-hat_r of every RoI
        roi_head.shared_head = dict(type='Conv2d', in_channels=feat_channels,
                                    out_channels=head_channels, kernel_size=3, stride=2, padding=1)
    else:
        model_cfg.backbone = dict(
            type='ResNet',
            depth=18,
            base_channels=8,
            out_indices=(0, 1, 2, 3),
            frozen_stages=-1,
            norm_eval=False,
            init_cfg=None)
        necks = _as_list(model_cfg.neck)  # Libra R-CNN: FPN, then BFP
        necks[0].update(in_channels=[8, 16, 32, 64], out_channels=CHANNELS)
        for neck in necks[1:]:
            neck.in_channels = CHANNELS
    model_cfg.rpn_head.update(in_channels=feat_channels, feat_channels=CHANNELS)
    for extractor in _as_list(roi_head.bbox_roi_extractor):
        extractor.out_channels = feat_channels
    for head in _as_list(roi_head.bbox_head) + _as_list(roi_head.get('sibling_head')):
        head.update(in_channels=head_channels, num_classes=NUM_CLASSES)
        if head.type != 'BBoxHead':  # TridentNet's plain head has no fcs
            head.fc_out_channels = 32
        if head.type == 'TSDBBoxHead':
            head.offset_fc_channels = 16
    if roi_head.get('mask_head') is not None:
        roi_head.mask_roi_extractor.out_channels = CHANNELS
        for head in _as_list(roi_head.mask_head):  # HTC: one per stage
            head.update(in_channels=CHANNELS, conv_out_channels=CHANNELS, num_classes=NUM_CLASSES)
            if 'fc_out_channels' in head:  # PointRend's coarse head
                head.fc_out_channels = 32
    for key, widths in (('mask_iou_head', dict(conv_out_channels=CHANNELS, fc_out_channels=32,
                                               num_classes=NUM_CLASSES)),
                        ('point_head', dict(fc_channels=CHANNELS, num_classes=NUM_CLASSES)),
                        ('semantic_head', dict(conv_out_channels=CHANNELS))):
        if roi_head.get(key) is not None:  # Mask Scoring R-CNN, PointRend, HTC
            roi_head[key].update(in_channels=CHANNELS, **widths)
    if roi_head.get('semantic_roi_extractor') is not None:
        roi_head.semantic_roi_extractor.out_channels = CHANNELS
    for key, value in roi_head_overrides.items():
        if isinstance(value, dict) and isinstance(roi_head.get(key), dict):
            roi_head[key].update(value)
        else:
            roi_head[key] = value
    model_cfg.train_cfg.rpn_proposal.update(nms_pre=200, max_per_img=50)
    for rcnn in _as_list(model_cfg.train_cfg.rcnn):
        rcnn.sampler.num = 64
    model_cfg.test_cfg.rpn.update(nms_pre=200, max_per_img=50)
    return model_cfg


@pytest.fixture
def tiny_model_cfg(tsd_config: Config) -> Callable[..., ConfigDict]:
    """Factory: ``tiny_model_cfg(**roi_head_overrides)`` -> tiny TSD detector config."""
    return lambda **overrides: shrink_model_cfg(tsd_config.model, **overrides)


@pytest.fixture
def tiny_detector(tiny_model_cfg) -> Callable[..., torch.nn.Module]:
    """Factory: ``tiny_detector(**roi_head_overrides)`` -> initialised tiny TSD detector."""

    def build(**overrides) -> torch.nn.Module:
        torch.manual_seed(0)
        model = MODELS.build(tiny_model_cfg(**overrides))
        model.init_weights()
        return model

    return build


@pytest.fixture
def tiny_roi_head(tiny_model_cfg) -> Callable[..., torch.nn.Module]:
    """Factory: ``tiny_roi_head(**roi_head_overrides)`` -> initialised tiny TSDRoIHead."""

    def build(**overrides) -> torch.nn.Module:
        torch.manual_seed(0)
        model_cfg = tiny_model_cfg(**overrides)
        roi_head = model_cfg.roi_head
        roi_head.update(train_cfg=model_cfg.train_cfg.rcnn, test_cfg=model_cfg.test_cfg.rcnn)
        head = MODELS.build(roi_head)
        head.init_weights()
        return head

    return build


def make_batch(batch_size: int = 2,
               num_items=None,
               with_mask: bool = False,
               image_size: int = IMAGE_SIZE) -> dict:
    """Seeded ``demo_mm_inputs`` batch of square images with labels in [1, NUM_CLASSES)."""
    return demo_mm_inputs(
        batch_size=batch_size,
        image_shapes=(3, image_size, image_size),
        num_items=num_items,
        num_classes=NUM_CLASSES,
        with_mask=with_mask)


def make_roi_inputs(num_proposals: int = 20, num_items=None) -> tuple[tuple, list, list]:
    """Seeded RoI-head inputs: (FPN features, proposals, data samples) for 2 images."""
    torch.manual_seed(0)
    feats = tuple(
        torch.randn(2, CHANNELS, IMAGE_SIZE // s, IMAGE_SIZE // s) for s in STRIDES)
    proposals = demo_mm_proposals([(3, IMAGE_SIZE, IMAGE_SIZE)] * 2, num_proposals)
    return feats, proposals, make_batch(num_items=num_items)['data_samples']


@pytest.fixture
def roi_inputs() -> Callable[..., tuple[tuple, list, list]]:
    """Factory: ``roi_inputs(num_proposals=20, num_items=None)`` -> (feats, proposals, samples)."""
    return make_roi_inputs


def moved_rois(rois: torch.Tensor, delta: torch.Tensor, gamma: float) -> torch.Tensor:
    """P translated by ``gamma * delta * (w, h)`` (eq. 3-4), computed here by hand: (K, 5)."""
    shift = gamma * delta * (rois[:, 3:5] - rois[:, 1:3])
    return torch.cat([rois[:, :1], rois[:, 1:3] + shift, rois[:, 3:5] + shift], dim=1)


def set_visible_offsets(bbox_head: torch.nn.Module) -> None:
    """Offsets far from their near-zero init, and different for the two branches: delta_r is the
    translation (1, -0.5) for every RoI, delta_c a ramp from -1 to 1 over its outputs."""
    with torch.no_grad():
        bbox_head.fc_delta_r.bias.copy_(
            torch.tensor([1.0, -0.5]).repeat(bbox_head.fc_delta_r.out_features // 2))
        bbox_head.fc_delta_c.bias.copy_(torch.linspace(-1, 1, bbox_head.fc_delta_c.out_features))


def record_branch_inputs(bbox_head: torch.nn.Module) -> list:
    """A list that collects the (F-hat_c, F-hat_r) of every call of ``bbox_head``'s branches."""
    seen = []
    bbox_head.register_forward_pre_hook(lambda module, args: seen.append(args))
    return seen


@pytest.fixture
def batch() -> Callable[..., dict]:
    """Factory: ``batch(batch_size=2, num_items=None, with_mask=False, image_size=128)``."""
    return make_batch


# The COCO config of each TSD host (configs/tsd/) and its RoI head class.
HOST_CONFIGS = {
    'tsd-libra-faster-rcnn_r50_fpn_1x_coco.py': 'TSDRoIHead',
    'tsd-dynamic-rcnn_r50_fpn_1x_coco.py': 'TSDDynamicRoIHead',
    'tsd-faster-rcnn_r50_fpn_pisa_1x_coco.py': 'TSDPISARoIHead',
    'tsd-ms-rcnn_r50_fpn_1x_coco.py': 'TSDMaskScoringRoIHead',
    'tsd-point-rend_r50-caffe_fpn_ms-1x_coco.py': 'TSDPointRendRoIHead',
    'tsd-htc_r50_fpn_1x_coco.py': 'TSDHybridTaskCascadeRoIHead',
    'tsd-tridentnet_r50-caffe_1x_coco.py': 'TSDTridentRoIHead',
}


@pytest.fixture
def tiny_host() -> Callable[..., tuple[torch.nn.Module, dict]]:
    """Factory: ``tiny_host(config_name, **roi_head_overrides)`` -> (initialised tiny detector of
    that configs/tsd/ config, a seeded batch of 2 images for it, with masks and semantic maps
    where the detector has those branches)."""

    def build(config_name: str, **overrides) -> tuple[torch.nn.Module, dict]:
        model_cfg = shrink_model_cfg(Config.fromfile(str(CONFIG_DIR / config_name)).model,
                                     **overrides)
        model_cfg.test_cfg.rcnn.score_thr = 0.  # keep boxes: NMS and the mask heads get work
        torch.manual_seed(0)
        model = MODELS.build(model_cfg)
        model.init_weights()
        roi_head = model_cfg.roi_head
        batch = demo_mm_inputs(
            batch_size=2,
            image_shapes=(3, IMAGE_SIZE, IMAGE_SIZE),
            num_classes=NUM_CLASSES,
            with_mask=roi_head.get('mask_head') is not None,
            with_semantic=roi_head.get('semantic_head') is not None)
        return model, batch

    return build
