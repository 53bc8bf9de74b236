"""The main job (`make demo`): make data, train a small TSD Faster R-CNN, evaluate, draw it.

Runs the project's tools in order: tools/train.py (which generates data/shapes/ when missing),
tools/test.py (COCO AP table), tools/analysis_tools/iou_breakdown.py (AP at IoU .5-.9, Figure 6)
and tools/analysis_tools/visualize_tsd.py (P, P_r-hat and P_c-hat, Figure 5). Any COCO dataset
works through --cfg-options (see the config's header): every step, the IoU breakdown's ground
truth included, reads the config as the tools do (``tsd_mmdet.utils.load_config``). Re-running
resumes an interrupted training.
"""
import argparse
import os
import os.path as osp
import subprocess
import sys
import time

from mmengine.config import DictAction

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_CONFIG = 'configs/shapes/tsd-faster-rcnn_r18_fpn_shapes.py'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG, help='detector config (a TSD one)')
    parser.add_argument('--work-dir', default='work_dirs/demo', help='where everything is written')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='config overrides passed to every tool, e.g. data_root=/my/coco/')
    parser.add_argument('--num-vis', type=int, default=4, help='validation images to draw')
    parser.add_argument('--fresh', action='store_true',
                        help='train from scratch even if the work dir has a checkpoint')
    return parser.parse_args(argv)


def run(step: str, cmd: list) -> None:
    print(f'\n==> {step}\n$ {" ".join(cmd)}', flush=True)
    start = time.time()
    subprocess.run(cmd, cwd=ROOT, check=True)
    print(f'<== {step}: {time.time() - start:.0f} s', flush=True)


def main(argv=None) -> None:
    args = parse_args(argv)
    py = sys.executable
    work_dir = osp.abspath(args.work_dir)
    opts = ['--cfg-options', *args.cfg_options] if args.cfg_options else []

    train = [py, 'tools/train.py', args.config, '--work-dir', work_dir, *opts]
    if not args.fresh and osp.exists(osp.join(work_dir, 'last_checkpoint')):
        train.append('--resume')
    run('train', train)

    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    results = osp.join(work_dir, 'results.pkl')
    run('evaluate (COCO metric)', [py, 'tools/test.py', args.config, checkpoint, '--work-dir',
                                   osp.join(work_dir, 'test'), '--out', results, *opts])

    from tsd_mmdet.utils import load_config

    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    cfg_options = parser.parse_args(opts).cfg_options
    cfg = load_config(osp.join(ROOT, args.config), cfg_options)
    run('AP across IoU thresholds', [
        py, 'tools/analysis_tools/iou_breakdown.py', cfg.test_evaluator.ann_file, results,
        '--names', 'TSD', '--out-table', osp.join(work_dir, 'iou_breakdown.md'),
        '--out-png', osp.join(work_dir, 'iou_breakdown.png')])
    run('what TSD learned (P, P_r-hat, P_c-hat)', [
        py, 'tools/analysis_tools/visualize_tsd.py', args.config, checkpoint, '--num-images',
        str(args.num_vis), '--out-dir', osp.join(work_dir, 'vis'), '--device', 'cpu', *opts])
    print(f'\nDone. Results, plots and pictures are in {work_dir}', flush=True)
    print(f'  {osp.join(work_dir, "iou_breakdown.png")}\n  {osp.join(work_dir, "vis")}{os.sep}')


if __name__ == '__main__':
    main()
