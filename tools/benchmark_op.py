"""Benchmark of tsd_mmdet's deformable RoIAlign (TSD's Prop.w, eq. 3-4, and Point.w, eq. 5-6).

Times forward and backward against torchvision's roi_align, the PyTorch reference and (on CUDA,
when mmcv imports) mmcv's DeformRoIPool, and prints a table.
"""
import argparse
import statistics
import time

import torch
import torchvision

from tsd_mmdet.ops import deform_roi_align, deform_roi_align_reference, has_extension

IMAGE_H, IMAGE_W = 800, 1344
CASES = {  # name: (N, C, H, W, K)
    'realistic': (2, 256, 100, 168, 512),
    'large': (2, 256, 100, 168, 4096),
}
OFFSETS = ('none', 'prop', 'point')


def parse_args():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--device', choices=('cpu', 'cuda'), default='cpu')
    parser.add_argument('--threads', type=int, default=2,
                        help='torch CPU threads (default: 2, the CPU goal is set for 2)')
    parser.add_argument('--cases', nargs='+', choices=tuple(CASES), default=list(CASES))
    parser.add_argument('--offsets', nargs='+', choices=OFFSETS, default=list(OFFSETS))
    parser.add_argument('--repeats', type=int, default=5, help='timed runs (median is reported)')
    parser.add_argument('--warmup', type=int, default=2, help='untimed runs before timing')
    parser.add_argument('--reference-repeats', type=int, default=3,
                        help='timed runs of the (slow) reference')
    parser.add_argument('--reference-warmup', type=int, default=0,
                        help='untimed runs of the reference before timing')
    parser.add_argument('--reference-max-rois', type=int, default=4096,
                        help='skip the reference for cases with more RoIs than this')
    parser.add_argument('--output-size', type=int, default=7)
    parser.add_argument('--sampling-ratio', type=int, default=2)
    parser.add_argument('--spatial-scale', type=float, default=1 / 8)
    parser.add_argument('--gamma', type=float, default=0.1)
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args()


def make_inputs(case, offset_kind, args):
    n, c, h, w, k = CASES[case]
    device = torch.device(args.device)
    gen = torch.Generator().manual_seed(args.seed)
    x = torch.randn(n, c, h, w, generator=gen)
    # Random boxes within the image: two corners, sorted.
    size = torch.tensor([IMAGE_W, IMAGE_H], dtype=torch.float32)
    p, q = (torch.rand(k, 2, generator=gen) * size for _ in range(2))
    batch = torch.randint(0, n, (k, 1), generator=gen).float()
    rois = torch.cat([batch, torch.minimum(p, q), torch.maximum(p, q)], 1)
    oh = args.output_size
    offset = None
    if offset_kind == 'prop':
        offset = torch.randn(k, 2, generator=gen) * 0.5
    elif offset_kind == 'point':
        offset = torch.randn(k, 2, oh, oh, generator=gen) * 0.5
    x = x.to(device).requires_grad_()
    rois = rois.to(device)
    if offset is not None:
        offset = offset.to(device).requires_grad_()
    return x, rois, offset


def _sync(device):
    if device == 'cuda':
        torch.cuda.synchronize()


def time_ops(ops, device):
    """Median forward and backward times (ms) of each ``(fn, inputs, repeats, warmup)``.

    Runs are interleaved across the ops (op 1, op 2, ..., op 1, ...; an op stops once it has its
    repeats) so that a busy machine slows them alike.
    """
    grads = [torch.randn_like(fn()) for fn, *_ in ops]
    for i in range(max(op[3] for op in ops)):
        for (fn, inputs, _, warmup), grad in zip(ops, grads):
            if i < warmup:
                torch.autograd.grad(fn(), inputs, grad)
    fwd = [[] for _ in ops]
    bwd = [[] for _ in ops]
    for r in range(max(op[2] for op in ops)):
        for i, ((fn, inputs, repeats, _), grad) in enumerate(zip(ops, grads)):
            if r >= repeats:
                continue
            _sync(device)
            t0 = time.perf_counter()
            out = fn()
            _sync(device)
            t1 = time.perf_counter()
            torch.autograd.grad(out, inputs, grad)
            _sync(device)
            t2 = time.perf_counter()
            fwd[i].append((t1 - t0) * 1e3)
            bwd[i].append((t2 - t1) * 1e3)
    return [(statistics.median(f), statistics.median(b)) for f, b in zip(fwd, bwd)]


def mmcv_pool(args):
    """mmcv's DeformRoIPool (CUDA only), or None where unavailable."""
    if args.device != 'cuda':
        return None
    try:
        from mmcv.ops import DeformRoIPool
    except Exception:  # mmcv missing or built without ops
        return None
    return DeformRoIPool(args.output_size, args.spatial_scale, args.sampling_ratio, args.gamma)


def bench_case(case, offset_kind, args, pool):
    """[(op name, (fwd ms, bwd ms))] for one case, ours first."""
    k = CASES[case][4]
    oh = args.output_size
    x, rois, offset = make_inputs(case, offset_kind, args)
    inputs = [x] if offset is None else [x, offset]
    common = (oh, args.spatial_scale, args.sampling_ratio, args.gamma, True)
    timing = (args.repeats, args.warmup)
    names = ['tsd deform_roi_align', 'torchvision roi_align']
    ops = [(lambda: deform_roi_align(x, rois, offset, *common), inputs, *timing),
           # torchvision has no offset: plain RoIAlign with the same sampling.
           (lambda: torchvision.ops.roi_align(x, rois, oh, args.spatial_scale,
                                              args.sampling_ratio, aligned=True), [x], *timing)]
    if pool is not None:
        # mmcv takes a (K, 2, oh, ow) offset; Prop.w is the same shift in every bin.
        mm_off = offset
        if offset is not None and offset.dim() == 2:
            mm_off = offset[:, :, None, None].expand(k, 2, oh, oh)
        names.append('mmcv DeformRoIPool')
        ops.append((lambda: pool(x, rois, mm_off), inputs, *timing))
    if k <= args.reference_max_rois:
        names.append('reference (PyTorch)')
        ops.append((lambda: deform_roi_align_reference(x, rois, offset, *common), inputs,
                    args.reference_repeats, args.reference_warmup))
    return list(zip(names, time_ops(ops, args.device)))


def main():
    args = parse_args()
    if args.device == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('--device cuda: no CUDA device available')
    torch.set_num_threads(args.threads)
    oh = args.output_size
    pool = mmcv_pool(args)
    print(f'device={args.device} threads={torch.get_num_threads()} extension={has_extension()} '
          f'torch={torch.__version__} torchvision={torchvision.__version__}')
    print(f'output {oh}x{oh}, sampling_ratio={args.sampling_ratio}, '
          f'spatial_scale={args.spatial_scale:g}, boxes within {IMAGE_H}x{IMAGE_W}; '
          f'median of {args.repeats} interleaved runs after {args.warmup} warm-up (reference: '
          f'{args.reference_repeats} runs after {args.reference_warmup} warm-up)')
    header = (f'{"case":<10} {"offset":<6} {"op":<24} {"fwd ms":>9} {"bwd ms":>9} '
              f'{"f+b ms":>9} {"f+b / ours":>11}')
    print(header)
    print('-' * len(header))
    summary = []
    for case in args.cases:
        for offset_kind in args.offsets:
            rows = bench_case(case, offset_kind, args, pool)
            ours = sum(rows[0][1])
            for name, (f, b) in rows:
                print(f'{case:<10} {offset_kind:<6} {name:<24} {f:9.2f} {b:9.2f} {f + b:9.2f} '
                      f'{(f + b) / ours:10.2f}x')
            summary.append((case, offset_kind, rows))
    print()
    print('ours / torchvision (f+b; CPU goal <= 1.5, aim <= 1.0) and reference / ours '
          '(f+b; CPU goal >= 10):')
    for case, offset_kind, rows in summary:
        times = {name: f + b for name, (f, b) in rows}
        ours = times['tsd deform_roi_align']
        tv = times['torchvision roi_align']
        line = f'  {case:<10} {offset_kind:<6} vs torchvision {ours / tv:.2f}'
        if 'reference (PyTorch)' in times:
            line += f', reference is {times["reference (PyTorch)"] / ours:.1f}x slower'
        print(line)


if __name__ == '__main__':
    main()
