"""Train a detector: mmdet's tools/train.py, with TSD registered and TSDRunner by default.

Same interface as mmdet 3.x's tools/train.py. On top of it: ``import tsd_mmdet`` registers TSD's
modules; ``--cfg-options data_root=... metainfo.classes="[a,b]"`` reach every dataloader, metric
and ``num_classes`` (``tsd_mmdet.utils.load_config``); a config without ``runner_type`` runs with
``TSDRunner`` (the generated data made when missing, the data checked before the loaders are
built, SyncBN -> BN and gloo without CUDA); an unreadable checkpoint stops with one line.
"""
import argparse
import os
import os.path as osp

from mmdet.utils import setup_cache_size_limit_of_dynamo
from mmengine.config import DictAction
from mmengine.registry import RUNNERS

from tsd_mmdet.engine import CheckpointError
from tsd_mmdet.utils import close_process_group, load_config


def parse_args():
    parser = argparse.ArgumentParser(description='Train a detector')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--amp', action='store_true', default=False,
        help='enable automatic-mixed-precision training')
    parser.add_argument(
        '--auto-scale-lr', action='store_true', help='enable automatically scaling LR.')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='If specify checkpoint path, resume from it, while if not specify, try to auto '
        'resume from the latest checkpoint in the work directory.')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override some settings in the used config, the key-value pair in xxx=yyy format '
        'will be merged into config file. If the value to be overwritten is a list, it should '
        'be like key="[a,b]" or key=a,b It also allows nested list/tuple values, e.g. '
        'key="[(a,b),(c,d)]" Note that the quotation marks are necessary and that no white '
        'space is allowed. data_root=... and metainfo.classes=... reach every dataloader.')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
        help='job launcher')
    # torch.distributed.launch passes --local-rank; torchrun sets LOCAL_RANK instead.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main():
    args = parse_args()

    # Reduce the number of repeated compilations and improve training speed.
    setup_cache_size_limit_of_dynamo()

    cfg = load_config(args.config, args.cfg_options)
    cfg.launcher = args.launcher

    # work_dir is determined in this priority: CLI > segment in file > filename
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])

    if args.amp is True:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'

    if args.auto_scale_lr:
        if 'auto_scale_lr' in cfg and 'enable' in cfg.auto_scale_lr and \
                'base_batch_size' in cfg.auto_scale_lr:
            cfg.auto_scale_lr.enable = True
        else:
            raise RuntimeError('Can not find "auto_scale_lr" or "auto_scale_lr.enable" or '
                               '"auto_scale_lr.base_batch_size" in your configuration file.')

    # resume is determined in this priority: resume from > auto_resume
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume

    cfg.setdefault('runner_type', 'TSDRunner')
    runner = RUNNERS.build(cfg)
    try:
        runner.train()
    except CheckpointError as e:  # unreadable load_from / resume checkpoint: one line
        raise SystemExit(f'checkpoint error: {e}') from None
    del runner  # its DDP wrapper holds the process group (see close_process_group)
    close_process_group()


if __name__ == '__main__':
    main()
