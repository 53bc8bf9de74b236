"""A markdown table of finished training runs: last validation metrics and minutes per run.

The command line of ``tsd_mmdet.utils.run_table`` (its docstring says what is read)::

    python tools/analysis_tools/run_table.py work_dirs/families/mask-rcnn_r18_fpn_shapes \
        work_dirs/families/tsd-mask-rcnn_r18_fpn_shapes --names baseline TSD [--losses 0.25]
"""
import argparse
import os.path as osp
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('work_dirs', nargs='+', help='work dirs of finished runs')
    parser.add_argument('--names', nargs='+', help='row names (default: the work dirs\' names)')
    parser.add_argument('--losses', type=float, metavar='FRACTION',
                        help='add the mean training losses over this last fraction of iterations')
    args = parser.parse_args(argv)
    missing = [d for d in args.work_dirs if not osp.isdir(d)]
    if missing:
        print(f'error: no such work dir: {", ".join(missing)}', file=sys.stderr)
        return 2
    # Imported once the arguments are good: usage errors answer without loading mmdet.
    from tsd_mmdet.utils.run_table import table

    try:
        print(table(args.work_dirs, args.names, args.losses))
    except ValueError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
