"""AP across IoU criteria 0.5:0.9 and object sizes for one or two result files (Figure 6, Table 9).

The command line of ``tsd_mmdet.evaluation.iou_breakdown`` (its docstring says what is computed)::

    python tools/analysis_tools/iou_breakdown.py data/coco/annotations/instances_val2017.json \
        work_dirs/faster/results.bbox.json work_dirs/tsd/results.pkl --names baseline TSD \
        --out-table iou_breakdown.md --out-png iou_breakdown.png
"""
import argparse
import os


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='AP at IoU 0.5, 0.6, 0.7, 0.8, 0.9 overall and per object size '
        '(TSD paper, Figure 6 / Table 9) for one or two detection result files.')
    parser.add_argument('ann_file', help='COCO annotation json (the ground truth)')
    parser.add_argument('results', nargs='+',
                        help='one or two result files: COCO detection .json (CocoMetric '
                        'outfile_prefix -> *.bbox.json) or .pkl (mmdet tools/test.py --out)')
    parser.add_argument('--names', nargs='+', help='a name per result file (default: file names)')
    parser.add_argument('--out-table',
                        help='write the table here: .md for markdown, .csv for CSV')
    parser.add_argument('--out-png', help='write the AP-vs-IoU plot here')
    args = parser.parse_args(argv)
    if len(args.results) > 2:
        parser.error('give one or two result files')
    if args.names is None:
        args.names = [os.path.basename(p) for p in args.results]
    elif len(args.names) != len(args.results):
        parser.error('--names needs one name per result file')
    if args.out_table and not args.out_table.endswith(('.md', '.csv')):
        parser.error('--out-table must end with .md or .csv')
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    # Imported once the arguments are good: --help and usage errors answer without loading mmdet.
    from tsd_mmdet.evaluation.iou_breakdown import (
        format_table,
        iou_breakdown,
        load_coco,
        load_detections,
        plot_ap_vs_iou,
        table_rows,
    )

    coco_gt = load_coco(args.ann_file)
    aps = [iou_breakdown(coco_gt, load_detections(p, coco_gt)) for p in args.results]
    header, rows = table_rows(args.names, aps)
    print(format_table(header, rows), end='')
    if args.out_table:
        fmt = 'csv' if args.out_table.endswith('.csv') else 'markdown'
        with open(args.out_table, 'w') as f:
            f.write(format_table(header, rows, fmt))
        print(f'table written to {args.out_table}')
    if args.out_png:
        plot_ap_vs_iou(args.names, aps, args.out_png)
        print(f'plot written to {args.out_png}')


if __name__ == '__main__':
    main()
