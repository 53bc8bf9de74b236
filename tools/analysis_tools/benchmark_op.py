"""Benchmark of tsd_mmdet's deformable RoIAlign (TSD's Prop.w, eq. 3-4, and Point.w, eq. 5-6).

The command line of ``tsd_mmdet.ops.benchmark``: forward and backward times against torchvision's
roi_align, the PyTorch reference and (on CUDA) mmcv's DeformRoIPool, a table (``--markdown`` also
writes it as markdown), the goals and a one-line summary. Needs torch and torchvision alone
(tools/misc/gpu_check.sh runs it on a bare GPU machine)::

    python tools/analysis_tools/benchmark_op.py [--device cuda] [--cases realistic]
"""
import argparse

from tsd_mmdet.ops import benchmark


def parse_args(argv=None) -> argparse.Namespace:
    defaults = benchmark.OpBenchSettings()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--device', choices=('cpu', 'cuda'), default=defaults.device)
    parser.add_argument('--threads', type=int, default=defaults.threads,
                        help='torch CPU threads (default: 2, the CPU goal is set for 2)')
    parser.add_argument('--cases', nargs='+', choices=tuple(benchmark.CASES),
                        default=list(defaults.cases))
    parser.add_argument('--offsets', nargs='+', choices=benchmark.OFFSETS,
                        default=list(defaults.offsets))
    parser.add_argument('--repeats', type=int, default=defaults.repeats,
                        help='timed runs (median is reported)')
    parser.add_argument('--warmup', type=int, default=defaults.warmup,
                        help='untimed runs before timing')
    parser.add_argument('--reference-repeats', type=int, default=defaults.reference_repeats,
                        help='timed runs of the (slow) reference')
    parser.add_argument('--reference-warmup', type=int, default=defaults.reference_warmup,
                        help='untimed runs of the reference before timing')
    parser.add_argument('--reference-max-rois', type=int, default=defaults.reference_max_rois,
                        help='skip the reference for cases with more RoIs than this')
    parser.add_argument('--output-size', type=int, default=defaults.output_size)
    parser.add_argument('--sampling-ratio', type=int, default=defaults.sampling_ratio)
    parser.add_argument('--spatial-scale', type=float, default=defaults.spatial_scale)
    parser.add_argument('--gamma', type=float, default=defaults.gamma)
    parser.add_argument('--seed', type=int, default=defaults.seed)
    parser.add_argument('--mmcv-src', metavar='PATH',
                        help="CUDA: where mmcv does not import, build mmcv's DeformRoIPool alone "
                        "from mmcv's source release, .tar.gz or folder")
    parser.add_argument('--markdown', metavar='FILE', help='also write the table as markdown here')
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = vars(parse_args(argv))
    markdown = args.pop('markdown')
    settings = benchmark.OpBenchSettings(**{k: tuple(v) if isinstance(v, list) else v
                                            for k, v in args.items()})
    benchmark.run(settings, markdown)


if __name__ == '__main__':
    main()
