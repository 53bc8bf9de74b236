"""Time one training step and one predict of a TSD detector against its baseline on the CPU.

The cost side of Table 5 (TSD's runtime overhead): same backbone, neck and RPN weights (same seed),
so both detectors see the same proposals and only the RoI head differs. Random weights, no download.

    python tools/benchmark_head.py [CONFIG] [--baseline CFG] [--size H W] [--repeat N] [--threads N]
"""
import argparse
import statistics
import time

import torch
from mmdet.registry import MODELS
from mmdet.testing import demo_mm_inputs
from mmdet.utils import register_all_modules
from mmengine.config import Config
from mmengine.hub import get_config

DEFAULT_CONFIG = 'configs/tsd/tsd-faster-rcnn_r50_fpn_1x_coco.py'
DEFAULT_BASELINE = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'
STEPS = ('train_step', 'predict')


def load_config(config: str) -> Config:
    """A config file, or a package config such as ``mmdet::faster_rcnn/...py``."""
    return get_config(config) if '::' in config else Config.fromfile(config)


def _seconds(fn) -> float:
    """Wall time of one call of ``fn``."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def make_steps(config: str, size: tuple) -> dict:
    """Build ``config``'s detector and return its timed steps, batch 1, random weights.

    Args:
        config (str): Detector config.
        size (tuple): (H, W) of the input image.

    Returns:
        dict: ``{'train_step': fn, 'predict': fn}``; a training step is forward, backward and an
        SGD step in train mode, predict is the eval-mode forward with post-processing.
    """
    model_cfg = load_config(config).model
    num_classes = model_cfg.roi_head.bbox_head.num_classes
    torch.manual_seed(0)  # same backbone / neck / RPN weights for every config
    model = MODELS.build(model_cfg)
    batch = demo_mm_inputs(
        batch_size=1, image_shapes=(3, *size), num_items=[5], num_classes=num_classes)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)

    def train_step() -> None:
        model.train()
        torch.manual_seed(0)
        data = model.data_preprocessor(batch, True)
        loss, _ = model.parse_losses(model(**data, mode='loss'))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    @torch.no_grad()
    def predict() -> None:
        model.eval()
        model(**model.data_preprocessor(batch, False), mode='predict')

    return dict(train_step=train_step, predict=predict)


def benchmark(configs: dict, size: tuple, repeat: int) -> dict:
    """Time the steps of several configs, interleaved so that load drifts hit all of them.

    Args:
        configs (dict): Name -> config.
        size (tuple): (H, W) of the input image.
        repeat (int): Timed runs per step and config, after one warm-up run.

    Returns:
        dict: ``{name: {step: [seconds, ...]}}``.
    """
    steps = {name: make_steps(config, size) for name, config in configs.items()}
    times = {name: {step: [] for step in STEPS} for name in configs}
    for step in STEPS:
        for name in configs:
            steps[name][step]()  # warm-up
        for _ in range(repeat):
            for name in configs:
                times[name][step].append(_seconds(steps[name][step]))
    return times


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='CPU time of one training step and one predict (batch 1) of a detector '
        'config and of a baseline config, and their ratios.')
    parser.add_argument('config', nargs='?', default=DEFAULT_CONFIG, help='TSD config file')
    parser.add_argument(
        '--baseline', default=DEFAULT_BASELINE, help='baseline config, default: %(default)s')
    parser.add_argument(
        '--size', type=int, nargs=2, default=(800, 1216), metavar=('H', 'W'),
        help='input size, default: %(default)s')
    parser.add_argument(
        '--repeat', type=int, default=3, help='timed runs per step, default: %(default)s')
    parser.add_argument(
        '--threads', type=int, default=None, help='torch intra-op threads, default: torch\'s')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    register_all_modules()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    configs = dict(baseline=args.baseline, tsd=args.config)
    print(f'input {args.size[0]}x{args.size[1]}, batch 1, {torch.get_num_threads()} thread(s), '
          f'{args.repeat} interleaved runs after 1 warm-up; min (median) seconds')
    times = benchmark(configs, tuple(args.size), args.repeat)
    for name, config in configs.items():
        cells = [f'{step} {min(t):7.2f} ({statistics.median(t):.2f})'
                 for step, t in times[name].items()]
        print(f'{name:8s} ' + '   '.join(cells) + f'   {config}')
    for step in STEPS:
        ratio = min(times['tsd'][step]) / min(times['baseline'][step])
        print(f'tsd / baseline {step} (min): {ratio:.2f}x')


if __name__ == '__main__':
    main()
