r"""End-to-end size and speed of TSD detectors against their baseline twins (Table 5's runtime).

For each pair, prints the inference model's parameters (the training-only sibling head and PC
left out) and its latency per image (data preprocessing, network forward and post-processing
such as NMS, as Table 5's runtime), then the TSD / baseline latency ratio. Timing: untimed warm-up
runs, then the images in turn, the two models of a pair interleaved image by image so that a
slower spell of the machine hits both; the median and the range over the images are reported.
Models are built from the configs and never initialised from checkpoints (nothing is downloaded):
latency depends on the architecture, not the weights (up to the number of boxes reaching NMS).

A config named ``tsd-NAME.py`` is paired with its baseline twin ``NAME.py``, looked up in
configs/baselines/, then next to the TSD config, then among mmdet's configs
(``mmdet::DIR/NAME.py``); a baseline config is paired with ``configs/tsd/tsd-NAME.py``.
``--pairs`` takes explicit ``BASELINE TSD`` pairs instead.

    python tools/benchmark.py configs/tsd/tsd-faster-rcnn_r50_fpn_1x_coco.py --num-images 5
    python tools/benchmark.py configs/tsd/*.py --device cuda --num-images 50 --warmup 10
    python tools/benchmark.py --pairs mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py \
        configs/tsd/tsd-faster-rcnn_r50_fpn_1x_coco.py --img-dir data/coco/val2017
"""
import argparse
import copy
import statistics
import time
from pathlib import Path

import mmcv
import numpy as np
import torch
from count_params import count_parameters, inference_model_cfg, load_config  # tools/
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.utils import register_all_modules
from mmengine.config import ConfigDict
from mmengine.utils import get_installed_path
from torch import nn

import tsd_mmdet  # noqa: F401  (registers TSD's modules)

ROOT = Path(__file__).resolve().parents[1]
TSD_DIR = ROOT / 'configs' / 'tsd'
BASELINE_DIR = ROOT / 'configs' / 'baselines'
TSD_PREFIX = 'tsd-'
IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp')


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
        for folder in [BASELINE_DIR, *next_to]:
            if (folder / twin).is_file():
                return str(folder / twin)
        mmdet_configs = Path(get_installed_path('mmdet')) / '.mim' / 'configs'
        found = sorted(mmdet_configs.rglob(twin))
        return f'mmdet::{found[0].relative_to(mmdet_configs).as_posix()}' if found else None
    tsd_name = f'{TSD_PREFIX}{name}'
    return next((str(f / tsd_name) for f in [TSD_DIR, *next_to] if (f / tsd_name).is_file()), None)


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


def build_inference_model(config: str, device: str, same_pooling: bool = False) -> nn.Module:
    """The eval-mode inference model of ``config`` (no sibling head), on ``device``; with
    ``same_pooling``, see :func:`with_tsd_pooling`."""
    model_cfg = inference_model_cfg(load_config(config).model)
    if same_pooling:
        model_cfg = with_tsd_pooling(model_cfg)
    return MODELS.build(model_cfg).to(device).eval()


def load_images(img_dir: str | None, num_images: int, size: tuple[int, int],
                seed: int) -> list[np.ndarray]:
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


def run_once(model: nn.Module, batch: dict, device: str) -> float:
    """Seconds for one image: data preprocessing, forward and post-processing."""
    if device == 'cuda':
        torch.cuda.synchronize()
    start = time.perf_counter()
    with torch.no_grad():
        model(**model.data_preprocessor(batch, False), mode='predict')
    if device == 'cuda':
        torch.cuda.synchronize()
    return time.perf_counter() - start


def time_pair(models: tuple[nn.Module, nn.Module], images: list[np.ndarray], warmup: int,
              device: str) -> tuple[list[float], list[float]]:
    """Per-image seconds of both models, interleaved image by image after ``warmup`` runs each."""
    batches = [pack(image) for image in images]
    for i in range(warmup):
        for model in models:
            run_once(model, batches[i % len(batches)], device)
    times = ([], [])
    for batch in batches:
        for model, model_times in zip(models, times):
            model_times.append(run_once(model, batch, device))
    return times


def display_name(config: str) -> str:
    """``config`` relative to the repository if it lies in it, else as given."""
    path = Path(config).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else config


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('configs', nargs='+', metavar='CONFIG',
                        help='TSD or baseline configs (files or mmdet:: paths)')
    parser.add_argument('--pairs', action='store_true',
                        help='read CONFIG ... as BASELINE TSD pairs instead of finding twins')
    parser.add_argument('--device', choices=('cpu', 'cuda'), default='cpu')
    parser.add_argument('--size', type=int, nargs=2, default=(800, 1333), metavar=('H', 'W'),
                        help='image size (random images) or the box images are rescaled into '
                        '(--img-dir); default: 800 1333')
    parser.add_argument('--num-images', type=int, default=5, help='timed images per model')
    parser.add_argument('--warmup', type=int, default=2, help='untimed runs per model first')
    parser.add_argument('--img-dir', help='folder of images to time on (default: random images)')
    parser.add_argument('--threads', type=int, default=2,
                        help='torch CPU threads (default: 2, the machine the CPU goal is set for)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--same-pooling', action='store_true',
                        help="pool the baselines' boxes with tsd_mmdet's op too (no offset: "
                        'RoIAlign), so that the ratio measures the TSD head alone')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    register_all_modules()
    pairs = pair_configs(args.configs, args.pairs)
    images = load_images(args.img_dir, args.num_images, tuple(args.size), args.seed)
    source = f'random {args.size[0]}x{args.size[1]}' if args.img_dir is None else \
        f'{args.img_dir}, rescaled into {args.size[0]}x{args.size[1]},'
    pooling = "; baselines pool with tsd_mmdet's op" if args.same_pooling else ''
    print(f'device {args.device}, {args.threads} threads, {len(images)} {source} images, '
          f'{args.warmup} warm-up runs; latency: median [min, max] over the images{pooling}\n')
    print('| config | params (M) | latency (ms) | TSD / baseline |')
    print('|---|---|---|---|')
    for baseline, tsd in pairs:
        torch.manual_seed(args.seed)
        models = (build_inference_model(baseline, args.device, args.same_pooling),
                  build_inference_model(tsd, args.device))
        times = time_pair(models, images, args.warmup, args.device)
        medians = [statistics.median(t) for t in times]
        for config, model, seconds, median in zip((baseline, tsd), models, times, medians):
            ratio = f'{medians[1] / medians[0]:.3f}' if config == tsd else ''
            params = count_parameters(model) / 1e6
            print(f'| {display_name(config)} | {params:.2f} | {median * 1e3:.0f} '
                  f'[{min(seconds) * 1e3:.0f}, {max(seconds) * 1e3:.0f}] | {ratio} |')
        del models  # free both before building the next pair


if __name__ == '__main__':
    main()
