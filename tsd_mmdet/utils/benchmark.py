"""Size and speed of TSD detectors against their baseline twins: Table 1's #param, Table 5's time.

Not an equation of the paper. Three measurements of (baseline, TSD) pairs, all on models built from
their configs with random weights (nothing is downloaded; latency depends on the architecture):

- :func:`count_parameters` / :func:`inference_model_cfg`: parameters of the inference model (the
  training-only sibling head and PC left out) and of the training model;
- :func:`time_inference`: latency per image (data preprocessing, forward and post-processing such
  as NMS, as Table 5's runtime), the two models interleaved image by image after untimed warm-up
  runs, so that a slower spell of the machine hits both;
- :func:`time_train_steps`: one training step (forward, backward, SGD step) and one predict, batch
  1, same backbone / neck / RPN weights (same seed), interleaved after one warm-up.

A config named ``tsd-NAME.py`` is paired with its baseline twin ``NAME.py`` (:func:`find_twin`).
tools/analysis_tools/benchmark.py is the command line.
"""
import copy
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import mmcv
import numpy as np
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.testing import demo_mm_inputs
from mmengine.config import Config, ConfigDict
from mmengine.hub import get_config
from mmengine.utils import get_installed_path
from torch import nn

__all__ = ['build_inference_model', 'count_parameters', 'find_twin', 'inference_model_cfg',
           'load_images', 'load_model_config', 'pair_configs', 'time_inference',
           'time_train_steps', 'with_tsd_pooling']

# The repository's configs (an editable install's parent folder).
CONFIGS = Path(__file__).resolve().parents[2] / 'configs'
TSD_PREFIX = 'tsd-'
IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp')
TRAIN_STEPS = ('train_step', 'predict')


def load_model_config(config: str) -> Config:
    """A config file, or a package config such as ``mmdet::faster_rcnn/...py``."""
    return get_config(config) if '::' in config else Config.fromfile(config)


def find_twin(config: str) -> str | None:
    """The twin of ``config`` by name, or None.

    ``.../tsd-NAME.py`` -> ``configs/baselines/NAME.py``, ``.../NAME.py`` or ``mmdet::DIR/NAME.py``
    (the first that exists); a baseline ``NAME.py`` (file or ``mmdet::`` path) ->
    ``configs/tsd/tsd-NAME.py`` or ``tsd-NAME.py`` next to it.
    """
    name = config.split('::')[-1].split('/')[-1]
    next_to = [] if '::' in config else [Path(config).parent]
    if name.startswith(TSD_PREFIX):
        twin = name[len(TSD_PREFIX):]
        for folder in [CONFIGS / 'baselines', *next_to]:
            if (folder / twin).is_file():
                return str(folder / twin)
        mmdet_configs = Path(get_installed_path('mmdet')) / '.mim' / 'configs'
        found = sorted(mmdet_configs.rglob(twin))
        return f'mmdet::{found[0].relative_to(mmdet_configs).as_posix()}' if found else None
    tsd_name = f'{TSD_PREFIX}{name}'
    return next((str(f / tsd_name) for f in [CONFIGS / 'tsd', *next_to]
                 if (f / tsd_name).is_file()), None)


def pair_configs(configs: list[str], explicit: bool) -> list[tuple[str, str]]:
    """(baseline, TSD) pairs: consecutive if ``explicit``, else each config with its twin.

    Raises:
        ValueError: a config without a twin, or an odd number of explicit configs.
    """
    if explicit:
        if len(configs) % 2:
            raise ValueError('--pairs needs BASELINE TSD pairs: an even number of configs')
        return list(zip(configs[::2], configs[1::2]))
    pairs = []
    for config in configs:
        twin = find_twin(config)
        if twin is None:
            raise ValueError(f'no twin found for {config}; pass --pairs BASELINE TSD')
        is_tsd = config.split('/')[-1].startswith(TSD_PREFIX)
        pair = (twin, config) if is_tsd else (config, twin)
        if pair not in pairs:
            pairs.append(pair)
    return pairs


def count_parameters(model: nn.Module) -> int:
    """Number of parameters of ``model`` (trainable or not, buffers excluded)."""
    return sum(p.numel() for p in model.parameters())


def inference_model_cfg(model_cfg: ConfigDict) -> ConfigDict:
    """Copy of a model config without its training-only parts (sibling head and PC).

    Configs whose roi_head has no ``sibling_head`` are returned unchanged (as a copy).
    """
    model_cfg = copy.deepcopy(model_cfg)
    roi_head = model_cfg.get('roi_head')
    if roi_head is not None and 'sibling_head' in roi_head:
        roi_head.update(sibling_head=None, pc_cls=None, pc_loc=None)
    return model_cfg


def with_tsd_pooling(model_cfg: ConfigDict) -> ConfigDict:
    """Copy of a model config whose plain RoIAlign box extractors pool with tsd_mmdet's op.

    Without an offset the op is RoIAlign (same output size, sampling ratio, alignment), so a
    baseline changed this way differs from its TSD twin only in the head: the latency ratio then
    measures TSD's head, not mmcv's RoIAlign against our kernel.
    """
    model_cfg = copy.deepcopy(model_cfg)
    roi_head = model_cfg.get('roi_head')
    if roi_head is None or roi_head.get('bbox_roi_extractor') is None:
        return model_cfg
    extractors = roi_head.bbox_roi_extractor
    for extractor in extractors if isinstance(extractors, list) else [extractors]:
        layer = extractor.roi_layer
        if extractor.type == 'SingleRoIExtractor' and layer.type == 'RoIAlign':
            extractor.type = 'TSDRoIExtractor'
            extractor.roi_layer = dict(
                type='DeformRoIAlign', output_size=layer.output_size,
                sampling_ratio=layer.get('sampling_ratio', 0), aligned=layer.get('aligned', True))
    return model_cfg


def build_inference_model(config: str, device: str = 'cpu',
                          same_pooling: bool = False) -> nn.Module:
    """The eval-mode inference model of ``config`` (no sibling head), on ``device``; with
    ``same_pooling``, see :func:`with_tsd_pooling`."""
    model_cfg = inference_model_cfg(load_model_config(config).model)
    if same_pooling:
        model_cfg = with_tsd_pooling(model_cfg)
    return MODELS.build(model_cfg).to(device).eval()


def load_images(img_dir: str | None, num_images: int, size: tuple[int, int],
                seed: int = 0) -> list[np.ndarray]:
    """``num_images`` BGR uint8 images, each (h, w, 3).

    From ``img_dir`` (sorted, cycled if there are fewer files), rescaled to fit ``size`` (h, w)
    keeping the aspect ratio as mmdet's test pipeline does; else seeded random images of ``size``.
    """
    height, width = size
    if img_dir is None:
        rng = np.random.default_rng(seed)
        return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(num_images)]
    files = sorted(p for p in Path(img_dir).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f'no images in {img_dir}')
    return [
        mmcv.imrescale(mmcv.imread(str(files[i % len(files)])), (width, height))
        for i in range(num_images)
    ]


def pack(image: np.ndarray) -> dict:
    """One image as a data-preprocessor batch: ``inputs`` [(3, h, w) uint8], ``data_samples``."""
    height, width = image.shape[:2]
    sample = DetDataSample(
        metainfo=dict(img_shape=(height, width), ori_shape=(height, width), scale_factor=(1., 1.)))
    return dict(inputs=[torch.from_numpy(image).permute(2, 0, 1).contiguous()],
                data_samples=[sample])


def _seconds(fn: Callable[[], object], device: str = 'cpu') -> float:
    """Wall time of one call of ``fn`` (synchronised on CUDA)."""
    if device == 'cuda':
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device == 'cuda':
        torch.cuda.synchronize()
    return time.perf_counter() - start


def _predict(model: nn.Module, batch: dict) -> None:
    with torch.no_grad():
        model(**model.data_preprocessor(batch, False), mode='predict')


def time_inference(models: tuple[nn.Module, nn.Module], images: list[np.ndarray], warmup: int,
                   device: str = 'cpu') -> tuple[list[float], list[float]]:
    """Per-image seconds (preprocessing, forward, post-processing) of both models, interleaved
    image by image after ``warmup`` untimed runs each."""
    batches = [pack(image) for image in images]
    for i in range(warmup):
        for model in models:
            _predict(model, batches[i % len(batches)])
    times = ([], [])
    for batch in batches:
        for model, model_times in zip(models, times):
            model_times.append(_seconds(lambda m=model, b=batch: _predict(m, b), device))
    return times


def train_steps(config: str, size: tuple[int, int], device: str = 'cpu') -> dict:
    """Build ``config``'s detector (seed 0) and return its timed steps, batch 1, random weights.

    Returns:
        dict: ``{'train_step': fn, 'predict': fn}``; a training step is forward, backward and an
        SGD step in train mode, predict is the eval-mode forward with post-processing.
    """
    model_cfg = load_model_config(config).model
    head = model_cfg.roi_head.bbox_head
    num_classes = (head[0] if isinstance(head, list) else head).num_classes
    torch.manual_seed(0)  # same backbone / neck / RPN weights for every config
    model = MODELS.build(model_cfg).to(device)
    batch = demo_mm_inputs(batch_size=1, image_shapes=(3, *size), num_items=[5],
                           num_classes=num_classes, device=device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)

    def train_step() -> None:
        model.train()
        torch.manual_seed(0)
        data = model.data_preprocessor(batch, True)
        loss, _ = model.parse_losses(model(**data, mode='loss'))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def predict() -> None:
        model.eval()
        _predict(model, batch)

    return dict(train_step=train_step, predict=predict)


def time_train_steps(configs: dict[str, str], size: tuple[int, int], repeat: int,
                     device: str = 'cpu') -> dict:
    """Time the steps of several configs, interleaved so that load drifts hit all of them.

    Args:
        configs (dict): Name -> config.
        size (tuple): (H, W) of the input image.
        repeat (int): Timed runs per step and config, after one warm-up run.

    Returns:
        dict: ``{name: {step: [seconds, ...]}}``, steps ``TRAIN_STEPS``.
    """
    steps = {name: train_steps(config, size, device) for name, config in configs.items()}
    times = {name: {step: [] for step in TRAIN_STEPS} for name in configs}
    for step in TRAIN_STEPS:
        for name in configs:
            steps[name][step]()  # warm-up
        for _ in range(repeat):
            for name in configs:
                times[name][step].append(_seconds(steps[name][step], device))
    return times


def median_ms(seconds: list[float]) -> float:
    """The median of ``seconds``, in milliseconds."""
    return statistics.median(seconds) * 1e3
