"""Convert a trained baseline checkpoint into a TSD checkpoint to fine-tune from (``load_from``).

Relates to eq. 2 and 9: the baseline's Shared2FC box head becomes the sibling head and both TSD
branches; the offset predictors (eq. 3, 5) stay at their init (tsd_mmdet.utils.baseline_to_tsd).

    python tools/model_converters/baseline_to_tsd.py CONFIG_TSD BASELINE_CKPT OUT_CKPT \
        [--cfg-options metainfo.classes="[a,b]" ...]

Works for Faster R-CNN, Mask R-CNN (the mask branch is copied) and Cascade R-CNN (per stage). A
baseline whose box head does not fit the config's (other num_classes, fc widths, stages, or
class-agnostic regression on one side only) is refused with the mismatches named. Prints what was
mapped, what was copied, what was left at init and what of the baseline was dropped; the same
report goes into the output's ``meta``. ``--cfg-options`` takes what training took, so that, e.g.,
``metainfo.classes`` sets ``num_classes`` as it did there.
"""
import argparse
import os
import os.path as osp

import torch
from mmdet.utils import register_all_modules
from mmengine.config import DictAction
from mmengine.runner import CheckpointLoader

from tsd_mmdet.utils import load_config
from tsd_mmdet.utils.baseline_to_tsd import ConversionError, convert, unwrap_state_dict


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='TSD config (e.g. configs/tsd/tsd-faster-rcnn_r50_fpn_1x_'
                        'coco.py); its model is what the checkpoint is converted to')
    parser.add_argument('baseline', help='baseline checkpoint (with or without a state_dict key)')
    parser.add_argument('out', help='TSD checkpoint to write')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config, as for tools/train.py')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the init of the weights the baseline has none for')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    register_all_modules()
    cfg = load_config(args.config, args.cfg_options)
    checkpoint = CheckpointLoader.load_checkpoint(args.baseline, map_location='cpu')
    try:
        state_dict, report = convert(cfg.model, unwrap_state_dict(checkpoint), seed=args.seed)
    except ConversionError as e:
        raise SystemExit(f'{args.baseline} cannot be converted to {args.config}: {e}') from None
    print('\n'.join(report.lines()))
    meta = dict(
        tsd_config=args.config,
        converted_from=args.baseline,
        conversion=report.as_meta(),
    )
    dataset_meta = (checkpoint.get('meta') or {}).get('dataset_meta')
    if dataset_meta is not None:
        meta['dataset_meta'] = dataset_meta
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    torch.save(dict(state_dict=state_dict, meta=meta), args.out)
    print(f'wrote {args.out}: load it with load_from={args.out!r} in the TSD config')


if __name__ == '__main__':
    main()
