r"""Size and speed of TSD configs against their baseline twins (Table 1's #param, Table 5's time).

The command line of ``tsd_mmdet.utils.benchmark`` (its docstring says how each is measured):

- ``--task params``: parameters of the inference model (no sibling head) and the training model;
- ``--task inference`` (default): latency per image, TSD / baseline ratio (``--same-pooling``: the
  baseline pools with tsd_mmdet's op too, so that the ratio measures the head alone);
- ``--task train``: one training step and one predict, batch 1, and their ratios.

Each CONFIG is paired with its twin by name (``tsd-NAME.py`` <-> ``NAME.py``); ``--pairs`` takes
``BASELINE TSD`` pairs instead. Random weights, nothing downloaded::

    python tools/analysis_tools/benchmark.py configs/tsd/tsd-faster-rcnn_r50_fpn_1x_coco.py
    python tools/analysis_tools/benchmark.py configs/tsd/*.py --task params
    python tools/analysis_tools/benchmark.py configs/tsd/tsd-faster-rcnn_r50_fpn_1x_coco.py \
        --task train --size 800 1216 --repeat 3
"""
import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = 'configs/tsd/tsd-faster-rcnn_r50_fpn_1x_coco.py'


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('configs', nargs='*', default=[DEFAULT_CONFIG], metavar='CONFIG',
                        help=f'TSD or baseline configs (files or mmdet:: paths); default: '
                        f'{DEFAULT_CONFIG}')
    parser.add_argument('--task', choices=('params', 'inference', 'train'), default='inference')
    parser.add_argument('--pairs', action='store_true',
                        help='read CONFIG ... as BASELINE TSD pairs instead of finding twins')
    parser.add_argument('--device', choices=('cpu', 'cuda'), default='cpu')
    parser.add_argument('--size', type=int, nargs=2, default=(800, 1333), metavar=('H', 'W'),
                        help='image size (random images) or the box images are rescaled into '
                        '(--img-dir); default: 800 1333')
    parser.add_argument('--num-images', type=int, default=5, help='inference: timed images')
    parser.add_argument('--warmup', type=int, default=2, help='inference: untimed runs first')
    parser.add_argument('--img-dir', help='inference: images to time on (default: random)')
    parser.add_argument('--same-pooling', action='store_true',
                        help="inference: pool the baselines' boxes with tsd_mmdet's op too")
    parser.add_argument('--repeat', type=int, default=3, help='train: timed runs per step')
    parser.add_argument('--threads', type=int, default=2,
                        help='torch CPU threads (default: 2, the machine the CPU goal is set for)')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


def display_name(config: str) -> str:
    """``config`` relative to the repository if it lies in it, else as given."""
    path = Path(config).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else config


def main(argv=None) -> None:
    args = parse_args(argv)
    import torch
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    from tsd_mmdet.utils import benchmark as bm

    torch.set_num_threads(args.threads)
    register_all_modules()
    try:
        pairs = bm.pair_configs(args.configs, args.pairs)
    except ValueError as e:
        raise SystemExit(f'error: {e}') from None
    if args.task == 'params':
        print('| config | inference params (M) | training params (M) |\n|---|---|---|')
        for config in (c for pair in pairs for c in pair):
            model_cfg = bm.load_model_config(config).model
            counts = [bm.count_parameters(MODELS.build(cfg)) / 1e6
                      for cfg in (bm.inference_model_cfg(model_cfg), model_cfg)]
            print(f'| {display_name(config)} | {counts[0]:.2f} | {counts[1]:.2f} |')
    elif args.task == 'inference':
        images = bm.load_images(args.img_dir, args.num_images, tuple(args.size), args.seed)
        source = f'random {args.size[0]}x{args.size[1]}' if args.img_dir is None else \
            f'{args.img_dir}, rescaled into {args.size[0]}x{args.size[1]},'
        pooling = "; baselines pool with tsd_mmdet's op" if args.same_pooling else ''
        print(f'device {args.device}, {args.threads} threads, {len(images)} {source} images, '
              f'{args.warmup} warm-up runs; latency: median [min, max] over the images'
              f'{pooling}\n')
        print('| config | params (M) | latency (ms) | TSD / baseline |\n|---|---|---|---|')
        for baseline, tsd in pairs:
            torch.manual_seed(args.seed)
            models = (bm.build_inference_model(baseline, args.device, args.same_pooling),
                      bm.build_inference_model(tsd, args.device))
            times = bm.time_inference(models, images, args.warmup, args.device)
            medians = [bm.median_ms(t) for t in times]
            for config, model, seconds, median in zip((baseline, tsd), models, times, medians):
                ratio = f'{medians[1] / medians[0]:.3f}' if config == tsd else ''
                print(f'| {display_name(config)} | {bm.count_parameters(model) / 1e6:.2f} | '
                      f'{median:.0f} [{min(seconds) * 1e3:.0f}, {max(seconds) * 1e3:.0f}] | '
                      f'{ratio} |')
            del models  # free both before building the next pair
    else:
        print(f'input {args.size[0]}x{args.size[1]}, batch 1, {args.threads} thread(s), '
              f'{args.repeat} interleaved runs after 1 warm-up; min (median) seconds')
        for baseline, tsd in pairs:
            configs = dict(baseline=baseline, tsd=tsd)
            times = bm.time_train_steps(configs, tuple(args.size), args.repeat, args.device)
            for name, config in configs.items():
                cells = [f'{step} {min(t):7.2f} ({bm.median_ms(t) / 1e3:.2f})'
                         for step, t in times[name].items()]
                print(f'{name:8s} ' + '   '.join(cells) + f'   {display_name(config)}')
            for step in bm.TRAIN_STEPS:
                ratio = min(times['tsd'][step]) / min(times['baseline'][step])
                print(f'tsd / baseline {step} (min): {ratio:.2f}x')


if __name__ == '__main__':
    main()
