"""The ablation that checks the method on the generated data: baseline, D_head, TSD, PC, variants.

The command line of ``tsd_mmdet.utils.ablation`` (its docstring says what is run and recorded)::

    python tools/analysis_tools/ablation.py --seeds 0 1 2 [--variants 'TSD + PC' ...]
    python tools/analysis_tools/ablation.py --table-only   # rewrite docs/results.md's tables
"""
import argparse

from tsd_mmdet.utils.ablation import RECORD, VARIANTS, run


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--variants', nargs='+', choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument('--work-dir', default='work_dirs/ablation')
    parser.add_argument('--out', default='docs/results.md', help='markdown table to write')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='extra overrides for every run (e.g. data_root=...); runs with '
                        'overrides are not recorded')
    parser.add_argument('--record', default=RECORD,
                        help="finished runs, kept across machines ('' for none)")
    parser.add_argument('--table-only', action='store_true',
                        help='train nothing: rewrite the table (and record) from finished runs')
    args = parser.parse_args(argv)
    run(args.seeds, args.variants, args.work_dir, args.out, args.cfg_options, args.record,
        args.table_only)


if __name__ == '__main__':
    main()
