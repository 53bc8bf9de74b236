"""Latency of exported detectors: ONNX Runtime and OpenVINO against eager PyTorch with the op.

TSD's pooling (eq. 3-6) runs as our compiled kernel in PyTorch and as ONNX RoiAlign in the export.
Each CONFIG is exported (with --checkpoints, or random weights), then every model runs in PyTorch
and in every runtime of --backends on the same seeded random images, interleaved, with the same
threads, after a warm-up; prints the median and p90 per image and the ratios (docs/deploy.md).

    python tools/deployment/benchmark_onnx.py CONFIG [CONFIG ...] [--checkpoints CKPT ...] \
        [--shape H W] [--images 5] [--repeats 5] [--warmup 2] [--threads 1 [2 ...]] \
        [--backends onnxruntime openvino] [--precision f32] [--int8 [--calib-images 10]] \
        [--work-dir DIR] [--profile] [--cfg-options ...]

Give the TSD config first and its baseline twin second: TSD / baseline is then printed under each
backend. With several --threads, each thread count is one interleaved run of every model and
backend; the end is a markdown table of all (docs/deploy.md). --profile adds each runtime's own
profile: time per operator type (ONNX Runtime's profiler, OpenVINO's per-layer counters), the
RoiAlign of Point.w apart. --int8 also quantizes each export (tools/deployment/quantize.py's
defaults; calibrated on --calib-images images of the training set, or, where that set is not
here, on the benchmark's random images: the timing is the same) and times it under OpenVINO as
backend openvino-int8, in the same interleaved run.
"""
import argparse
import os
import os.path as osp

from mmengine.config import DictAction

import tsd_mmdet  # noqa: F401  (registers TSD's modules)
from tsd_mmdet.deployment import (
    RUNTIMES,
    CalibrationDataError,
    ExportError,
    benchmark_images,
    benchmark_latency,
    calibration_images,
    export_detector,
    latency_table,
    load_detector,
    profile_runtime,
    quantize_detector,
)
from tsd_mmdet.utils.config import load_config


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('configs', nargs='+', metavar='CONFIG', help='detector configs')
    parser.add_argument('--checkpoints', nargs='+', metavar='CKPT',
                        help='one per config (default: random weights, nothing downloaded)')
    parser.add_argument('--shape', type=int, nargs=2, default=(800, 1333), metavar=('H', 'W'),
                        help='image size (default 800 1333)')
    parser.add_argument('--images', type=int, default=5, help='images per repeat')
    parser.add_argument('--repeats', type=int, default=5, help='passes over the images')
    parser.add_argument('--warmup', type=int, default=2, help='untimed runs of each first')
    parser.add_argument('--threads', type=int, nargs='+', default=[1],
                        help='threads of every backend; several: one run each (default 1)')
    parser.add_argument('--backends', nargs='+', default=['onnxruntime', 'openvino'],
                        metavar='BACKEND', help='runtimes timed beside PyTorch, of '
                        f"{', '.join(RUNTIMES)} (default onnxruntime openvino)")
    parser.add_argument('--precision', default='f32',
                        help="the runtimes' inference precision (default f32)")
    parser.add_argument('--int8', action='store_true',
                        help='also time each model quantized to INT8 under OpenVINO')
    parser.add_argument('--calib-images', type=int, default=10,
                        help='calibration images of --int8 (default 10)')
    parser.add_argument('--work-dir', default='work_dirs/benchmark_onnx',
                        help='where the exported models go')
    parser.add_argument('--profile', action='store_true',
                        help="also print each runtime's time per operator type")
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of every config, key=value')
    return parser.parse_args()


def report(rows: list[dict], models: list, args: argparse.Namespace, threads: int) -> None:
    """Print one thread count's medians and ratios."""
    print(f'\n{args.shape[0]}x{args.shape[1]}, {threads} thread(s), '
          f'{rows[0]["runs"]} runs each (ms per image)')
    print(f'{"model":48s} {"backend":12s} {"median":>8s} {"p90":>8s}')
    for row in rows:
        print(f'{row["name"]:48s} {row["backend"]:12s} {row["median_ms"]:8.1f} '
              f'{row["p90_ms"]:8.1f}')
    median = {(r['name'], r['backend']): r['median_ms'] for r in rows}
    backends = list(dict.fromkeys(r['backend'] for r in rows if r['backend'] != 'pytorch'))
    for name, _, _ in models:
        print(f'{name}: ' + ', '.join(
            f'{b} / pytorch = {median[name, b] / median[name, "pytorch"]:.2f}'
            for b in backends))
    if len(models) == 2:
        (first, _, _), (second, _, _) = models
        print(f'{first} / {second}: ' + ', '.join(
            f'{b} {median[first, b] / median[second, b]:.2f}'
            for b in ('pytorch', *backends)))


def main() -> None:
    args = parse_args()
    checkpoints = args.checkpoints or [None] * len(args.configs)
    if len(checkpoints) != len(args.configs):
        raise SystemExit(f'--checkpoints: {len(checkpoints)} for {len(args.configs)} configs')
    os.makedirs(args.work_dir, exist_ok=True)
    models, int8 = [], {}
    try:
        for path, checkpoint in zip(args.configs, checkpoints):
            cfg = load_config(path, args.cfg_options)
            detector = load_detector(cfg, checkpoint)
            name = osp.splitext(osp.basename(path))[0]
            onnx_file = osp.join(args.work_dir, f'{name}.onnx')
            print(f'exporting {name} to {onnx_file}', flush=True)
            export_detector(detector, onnx_file, tuple(args.shape))
            models.append((name, detector, onnx_file))
            if args.int8:
                int8[name] = osp.join(args.work_dir, f'{name}_int8.xml')
                _quantize(cfg, onnx_file, int8[name], args)
        rows = []
        for threads in args.threads:
            print(f'{threads} thread(s)', flush=True)
            run = benchmark_latency(models, tuple(args.shape), args.images, args.repeats,
                                    args.warmup, threads, log=lambda s: print(s, flush=True),
                                    backends=args.backends, precision=args.precision,
                                    int8=int8 or None)
            rows += [dict(row, threads=threads) for row in run]
            report(run, models, args, threads)
    except ExportError as e:
        raise SystemExit(f'export error: {e}') from None
    print('\n' + '\n'.join(latency_table(rows, tuple(args.shape), pair=len(models) == 2)))
    if args.profile:
        profiles = [(backend, name, onnx_file, RUNTIMES[backend].title, args.precision)
                    for backend in args.backends for name, _, onnx_file in models]
        profiles += [('openvino', name, xml, 'OpenVINO INT8', 'f32') for name, xml in int8.items()]
        for backend, name, path, title, precision in profiles:
            print(f'\n{title} profile of {name} (ms per run, share):')
            for op, ms, share in profile_runtime(backend, path, tuple(args.shape),
                                                 args.threads[0], 3, precision)[:12]:
                print(f'  {op:32s} {ms:8.2f} {100 * share:5.1f}%')


def _quantize(cfg, onnx_file: str, out: str, args: argparse.Namespace) -> None:
    """``onnx_file`` quantized to ``out`` (INT8 IR), calibrated on the training set, or on the
    benchmark's random images where the set is not here."""
    log = lambda s: print(s, flush=True)  # noqa: E731
    try:
        calibration = calibration_images(cfg, args.calib_images, log=log)
    except CalibrationDataError as e:
        images = [image.numpy() for image in benchmark_images(tuple(args.shape),
                                                               args.calib_images)]
        log(f'{e}; calibrating on {len(images)} random images instead (for timing only)')
        calibration = (images, f'{len(images)} seeded random {args.shape[0]}x{args.shape[1]} '
                       'images (benchmark_onnx.py --int8: timing only)')
    quantize_detector(cfg, onnx_file, out, log=log, calibration=calibration)


if __name__ == '__main__':
    main()
