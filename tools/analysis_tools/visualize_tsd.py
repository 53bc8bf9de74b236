"""Draw what a TSD detector learnt: P, P-hat_r, P-hat_c and the detections (Figure 5 of the paper).

The command line of ``tsd_mmdet.visualization.derived_proposals`` (its docstring says what is
drawn). For each image, two panels side by side, saved as ``<out-dir>/<image name>.png``: the
top-N proposals P by TSD score (yellow), P-hat_r (red; red centres for a pointwise one) and the
sample centres of P-hat_c (pink); then the final detections (blue) and, for images of the
config's val dataset, the ground truth (green). Cascade models: ``--stage`` picks the stage.

    python tools/analysis_tools/visualize_tsd.py configs/shapes/tsd-faster-rcnn_r18_fpn_shapes.py \
        work_dirs/tsd/iter_800.pth --num-images 8 --out-dir vis/
    python tools/analysis_tools/visualize_tsd.py CONFIG CHECKPOINT --images 'data/val/00001*.jpg'
"""
import argparse
import os
import os.path as osp

import mmcv
import numpy as np
import torch
from mmcv.transforms import Compose
from mmdet.apis import init_detector
from mmdet.utils import get_test_pipeline_cfg
from mmengine.config import DictAction

from tsd_mmdet.utils import load_config
from tsd_mmdet.visualization import derived_proposals as vis_lib


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Draw the proposals P, the derived P-hat_r / P-hat_c and the final boxes of a '
        'TSD detector (TSD paper, Figure 5).')
    parser.add_argument('config', help='config of a detector with a TSD RoI head')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--images', nargs='+',
                        help='image paths or glob patterns; default: images of the val dataset')
    parser.add_argument('--num-images', type=int, default=4,
                        help='images to take from the val dataset when --images is not given')
    parser.add_argument('--out-dir', default='tsd_vis', help='where the PNGs go')
    parser.add_argument('--topk', type=int, default=5,
                        help='proposals to draw per image, by TSD score')
    parser.add_argument('--proposal-iou-thr', type=float, default=0.5,
                        help='skip a proposal overlapping a better drawn one by more than this '
                        'IoU (1 draws the plain top-k)')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='smallest score of a detection drawn in the second panel')
    parser.add_argument('--stage', type=int,
                        help='cascade models: the stage to show (default 0)')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, key=value; data_root=... and metainfo.classes=... '
        'reach every dataset, as in tools/test.py')
    return parser.parse_args(argv)


def main(argv=None) -> list[str]:
    """Run the tool; returns the PNG paths written."""
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    model = init_detector(cfg, args.checkpoint, device=args.device)
    try:
        vis_lib.tsd_stage(model, args.stage)
    except ValueError as e:
        raise SystemExit(f'{args.config}: {e}') from None
    class_names = tuple(model.dataset_meta['classes'])
    if args.images:
        items = vis_lib.collect_images(args.images)
    else:
        items, class_names = vis_lib.dataset_images(cfg, args.num_images)
    pipeline = Compose(get_test_pipeline_cfg(cfg))
    os.makedirs(args.out_dir, exist_ok=True)
    written, shifts = [], []
    for item in items:
        vis = vis_lib.tsd_outputs(model, pipeline, item['img_path'], args.topk,
                                  args.proposal_iou_thr, args.stage)
        img = mmcv.imread(item['img_path'], channel_order='rgb')
        out_file = osp.join(args.out_dir, osp.splitext(osp.basename(item['img_path']))[0] + '.png')
        vis_lib.draw_tsd(img, vis, class_names, out_file, item.get('gt'), args.score_thr)
        written.append(out_file)
        shifts.append((vis['shift_c'], vis['shift_r']))
        print(f'{out_file}  mean shift (fraction of the proposal size): '
              f'P-hat_c bins {vis["shift_c"]:.3f}, P-hat_r {vis["shift_r"]:.3f}')
    if shifts:
        shift_c, shift_r = np.mean(shifts, axis=0)
        print(f'mean over {len(shifts)} images: P-hat_c bins move by {shift_c:.3f}, P-hat_r by '
              f'{shift_r:.3f} of the proposal size (gamma * |delta|; 0 = offsets collapsed)')
    return written


if __name__ == '__main__':
    main()
