r"""The whole detector on a GPU: TSD against its baseline, training (fp32 and AMP) and inference.

Not an equation of the paper; Table 5's runtime comparison (TSD / baseline 1.097 on a V100) and a
training check. The detector part of tools/misc/gpu_check.sh, which installs the wheels of
tools/misc/build_gpu_wheels.sh (mmcv with CUDA ops, mmengine, mmdet) first. Random weights (mmdet's
initialisation, no download), random images and ground truth:

1. Faster R-CNN R50-FPN, TSD (configs/tsd/tsd-faster-rcnn_r50_fpn_1x_coco.py) and its baseline
   (mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py), ``--batch`` images of ``--size`` per step:
   ``--iters`` SGD iterations in fp32 and in AMP (fp16 autocast + dynamic loss scaling, as
   mmengine's AmpOptimWrapper): every loss finite, median seconds per iteration, peak memory;
2. inference latency, batch 1, fp32 and fp16 (autocast, as mmengine's TestLoop(fp16=True)), both
   models interleaved after a warm-up, median of ``--runs``;
3. one training step of TSD Mask R-CNN and TSD Cascade R-CNN R50-FPN: finite losses.

Writes ``detector.json`` and ``detector.md`` (a table for docs/benchmarks.md) into ``--out`` and
prints one line starting ``DETECTOR PASS`` or ``DETECTOR FAIL``. Without CUDA (``--device cpu``,
the dry run: ``--dry-run`` picks tiny sizes and counts) AMP runs the same code with autocast and
the loss scaler disabled, so that a first GPU run does not fail on a typo::

    python tools/misc/gpu_check_detector.py --out work_dirs/gpu_check            # on the GPU
    python tools/misc/gpu_check_detector.py --device cpu --dry-run --out /tmp/d  # here, ~1 min
"""
import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TSD = {
    'faster': 'configs/tsd/tsd-faster-rcnn_r50_fpn_1x_coco.py',
    'mask': 'configs/tsd/tsd-mask-rcnn_r50_fpn_1x_coco.py',
    'cascade': 'configs/tsd/tsd-cascade-rcnn_r50_fpn_1x_coco.py',
}
BASELINE = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'
PAPER_RATIO = 1.097  # Table 5: TSD / baseline inference time, Faster R-CNN R50, V100


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', default='work_dirs/gpu_check', help='folder for the results')
    parser.add_argument('--device', choices=('cuda', 'cpu'), default=None,
                        help='default: cuda where available')
    parser.add_argument('--size', type=int, nargs=2, default=(800, 1333), metavar=('H', 'W'))
    parser.add_argument('--batch', type=int, default=2, help='training images per step')
    parser.add_argument('--iters', type=int, default=30, help='training iterations per run')
    parser.add_argument('--runs', type=int, default=50, help='timed inference runs per model')
    parser.add_argument('--warmup', type=int, default=5, help='untimed runs first')
    parser.add_argument('--dry-run', action='store_true',
                        help='tiny: 128x192 images, 3 iterations, 3 runs, 1 warm-up')
    args = parser.parse_args(argv)
    if args.dry_run:
        args.size, args.iters, args.runs, args.warmup = (128, 192), 3, 3, 1
    return args


def build_detector(config: str, device: str, inference: bool = False, tiny: bool = False):
    """The detector of ``config`` with mmdet's initialisation and no pretrained download;
    ``tiny`` (the dry run): 64 proposals and 32 sampled RoIs per image instead of 2000 and 512."""
    import torch
    from mmdet.registry import MODELS

    from tsd_mmdet.utils import benchmark as bm
    model_cfg = bm.load_model_config(config).model
    if inference:
        model_cfg = bm.inference_model_cfg(model_cfg)  # TSD without its sibling head
    model_cfg.backbone.init_cfg = None  # torchvision://resnet50 is not reachable there
    if tiny:
        model_cfg.train_cfg.rpn_proposal.max_per_img = model_cfg.test_cfg.rpn.max_per_img = 64
        rcnn = model_cfg.train_cfg.rcnn
        for stage in rcnn if isinstance(rcnn, list) else [rcnn]:
            stage.sampler.num = 32
    torch.manual_seed(0)  # same backbone / neck / RPN weights for TSD and its baseline
    model = MODELS.build(model_cfg)
    model.init_weights()
    return model.to(device)


def random_batch(model, batch: int, size: tuple, device: str, seed: int, masks: bool = False):
    """``batch`` random images with 8 random ground-truth boxes (and masks) each, seeded."""
    import numpy as np
    import torch
    from mmdet.testing import demo_mm_inputs
    head = model.roi_head.bbox_head
    num_classes = (head[0] if isinstance(head, torch.nn.ModuleList) else head).num_classes
    torch.manual_seed(seed)
    np.random.seed(seed)
    return demo_mm_inputs(batch_size=batch, image_shapes=(3, *size), num_items=[8] * batch,
                          num_classes=num_classes, with_mask=masks, device=device)


def amp_context(device: str, amp: bool):
    import torch
    if device == 'cuda':
        return torch.autocast('cuda', dtype=torch.float16, enabled=amp)
    return torch.autocast('cpu', enabled=False)  # the dry run: the same lines, fp32


def sync(device: str) -> None:
    import torch
    if device == 'cuda':
        torch.cuda.synchronize()


def peak_memory_gib(device: str):
    import torch
    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if device == 'cuda' else None


def reset_peak(device: str) -> None:
    import torch
    if device == 'cuda':
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def train(config: str, args, amp: bool, iters: int, masks: bool = False) -> dict:
    """``iters`` SGD iterations (mmdet's lr 0.02 for 16 images, scaled to the batch); seconds per
    iteration, losses finite, peak memory."""
    import torch
    device = args.device
    model = build_detector(config, device, tiny=args.dry_run)
    model.train()
    batch = random_batch(model, args.batch, tuple(args.size), device, seed=0, masks=masks)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02 * args.batch / 16, momentum=0.9,
                                weight_decay=1e-4)
    scaler = torch.amp.GradScaler(device, enabled=amp and device == 'cuda')
    reset_peak(device)
    seconds, nonfinite, last = [], [], {}
    for i in range(iters):
        sync(device)
        start = time.perf_counter()
        data = model.data_preprocessor(batch, True)
        with amp_context(device, amp):
            losses = model(**data, mode='loss')
        loss, log_vars = model.parse_losses(losses)
        optimizer.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        sync(device)
        seconds.append(time.perf_counter() - start)
        last = {k: float(v) for k, v in log_vars.items()}
        nonfinite += [f'{k}@{i}' for k, v in last.items() if not math.isfinite(v)]
    timed = seconds[min(args.warmup, len(seconds) - 1):]
    return dict(config=config, amp=amp, iters=iters, median_s=statistics.median(timed),
                peak_gib=peak_memory_gib(device), nonfinite=nonfinite[:10],
                finite=not nonfinite, last_losses=last,
                tsd_losses=sorted(k for k in last if 'pc' in k or 'tsd' in k))


def latency(args, fp16: bool) -> dict:
    """Batch 1 predict (preprocessing, forward, NMS), TSD and baseline interleaved."""
    import torch

    from tsd_mmdet.utils import benchmark as bm
    device = args.device
    models = tuple(build_detector(config, device, inference=True, tiny=args.dry_run).eval()
                   for config in (BASELINE, TSD['faster']))
    images = bm.load_images(None, max(args.runs, 1), tuple(args.size), seed=0)
    with amp_context(device, fp16), torch.no_grad():
        times = bm.time_inference(models, images, args.warmup, device)
    medians = [bm.median_ms(t) for t in times]
    return dict(fp16=fp16, baseline_ms=medians[0], tsd_ms=medians[1],
                ratio=medians[1] / medians[0], runs=len(images))


def guarded(name: str, fn, results: dict, failures: list):
    print(f'[detector] {name} ...', flush=True)
    start = time.perf_counter()
    try:
        results[name] = fn()
    except Exception as e:  # noqa: BLE001 -- one part's failure must not hide the others'
        results[name] = dict(error=f'{type(e).__name__}: {e}')
        failures.append(name)
        traceback.print_exc()
    print(f'[detector] {name}: {json.dumps(results[name], default=str)[:400]} '
          f'({time.perf_counter() - start:.0f} s)', flush=True)
    return results[name]


def markdown(results: dict, env: dict, args) -> str:
    r = results
    lines = [f'{env["device_name"]}, torch {env["torch"]}, batch {args.batch} x {args.size[0]}x'
             f'{args.size[1]} for training ({args.iters} iterations, median after {args.warmup}), '
             f'batch 1 for inference (median of {args.runs} after {args.warmup} warm-up runs; '
             f'random weights and images)', '',
             '| step | precision | baseline | TSD | TSD / baseline '
             '| peak memory (GiB) baseline / TSD |',
             '|---|---|---|---|---|---|']
    for precision, amp in (('fp32', False), ('AMP fp16', True)):
        b, t = r.get(f'train baseline amp={amp}', {}), r.get(f'train tsd amp={amp}', {})
        if 'median_s' in b and 'median_s' in t:
            lines.append(f'| training iteration | {precision} | {b["median_s"]:.3f} s | '
                         f'{t["median_s"]:.3f} s | {t["median_s"] / b["median_s"]:.3f} | '
                         f'{b["peak_gib"] or "n/a"} / {t["peak_gib"] or "n/a"} |')
    for precision, fp16 in (('fp32', False), ('fp16', True)):
        lat = r.get(f'latency fp16={fp16}', {})
        if 'ratio' in lat:
            lines.append(f'| inference | {precision} | {lat["baseline_ms"]:.1f} ms | '
                         f'{lat["tsd_ms"]:.1f} ms | {lat["ratio"]:.3f} (paper {PAPER_RATIO}) | |')
    for family in ('mask', 'cascade'):
        step = r.get(f'train {family} step', {})
        state = ('finite losses' if step.get('finite')
                 else f'FAILED: {step.get("error") or step.get("nonfinite")}')
        lines.append(f'| TSD {family.capitalize()} R-CNN training step | fp32 | | {state} | | |')
    return '\n'.join(lines) + '\n'


def main(argv=None) -> int:
    args = parse_args(argv)
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    import torch
    from mmdet.utils import register_all_modules
    from mmengine.logging import MMLogger

    import tsd_mmdet  # noqa: F401  (TSD's registry entries, mmengine's torch.load fix)
    register_all_modules()
    MMLogger.get_instance('mmengine', log_level='WARNING')  # not init_weights' line per parameter
    args.device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    if args.device == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('error: --device cuda but torch sees no GPU')
    import mmcv
    import mmdet
    env = dict(python=platform.python_version(), torch=torch.__version__,
               cuda=torch.version.cuda, mmcv=mmcv.__version__, mmdet=mmdet.__version__,
               device=args.device,
               device_name=torch.cuda.get_device_name() if args.device == 'cuda' else 'CPU')
    print('[detector]', json.dumps(env), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results, failures = {'env': env}, []
    start = time.perf_counter()
    for amp in (False, True):
        for name, config in (('baseline', BASELINE), ('tsd', TSD['faster'])):
            guarded(f'train {name} amp={amp}',
                    lambda c=config, a=amp: train(c, args, a, args.iters), results, failures)
    for fp16 in (False, True):
        guarded(f'latency fp16={fp16}', lambda f=fp16: latency(args, f), results, failures)
    for family in ('mask', 'cascade'):
        guarded(f'train {family} step',
                lambda f=family: train(TSD[f], args, False, 1, masks=f == 'mask'),
                results, failures)
    failures += [k for k, v in results.items()
                 if isinstance(v, dict) and v.get('finite') is False and k not in failures]
    (out / 'detector.json').write_text(json.dumps(results, indent=1, default=str))
    (out / 'detector.md').write_text(markdown(results, env, args))
    print(markdown(results, env, args))

    def ratio(key, field='median_s'):
        t, b = results.get(key.format('tsd'), {}), results.get(key.format('baseline'), {})
        return f'{t[field] / b[field]:.2f}' if field in t and field in b else 'n/a'

    lat = {fp16: results[f'latency fp16={fp16}'].get('ratio') for fp16 in (False, True)}
    line = (f'DETECTOR {"FAIL" if failures else "PASS"}: {env["device_name"]} | train TSD/baseline '
            f'fp32 {ratio("train {} amp=False")} amp {ratio("train {} amp=True")} | infer '
            f'TSD/baseline fp32 {lat[False] and round(lat[False], 3)} fp16 '
            f'{lat[True] and round(lat[True], 3)} (paper {PAPER_RATIO}) | mask/cascade step '
            f'{"ok" if not {"train mask step", "train cascade step"} & set(failures) else "FAILED"}'
            f'{" | failed: " + ", ".join(failures) if failures else ""} | '
            f'{time.perf_counter() - start:.0f}s')
    print(line)
    (out / 'detector_summary.txt').write_text(line + '\n')
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
