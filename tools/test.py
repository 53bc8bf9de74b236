"""Test (and evaluate) a detector: mmdet's tools/test.py, with TSD registered and TSDRunner.

Same interface as mmdet 3.x's tools/test.py. On top of it: ``import tsd_mmdet``; ``--cfg-options
data_root=... metainfo.classes="[a,b]"`` reach every dataloader and metric
(``tsd_mmdet.utils.load_config``); a config without ``runner_type`` runs with ``TSDRunner`` (the
test data and metric checked before the loader is built, SyncBN -> BN and gloo without CUDA); an
unreadable checkpoint stops with one line.
"""
import argparse
import os
import os.path as osp
import warnings
from copy import deepcopy

from mmdet.engine.hooks.utils import trigger_visualization_hook
from mmdet.evaluation import DumpDetResults
from mmdet.utils import setup_cache_size_limit_of_dynamo
from mmengine import ConfigDict
from mmengine.config import DictAction
from mmengine.registry import RUNNERS

from tsd_mmdet.engine import CheckpointError
from tsd_mmdet.utils import close_process_group, load_config


def parse_args():
    parser = argparse.ArgumentParser(description='MMDet test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir', help='the directory to save the file containing evaluation metrics')
    parser.add_argument(
        '--out', type=str, help='dump predictions to a pickle file for offline evaluation')
    parser.add_argument('--show', action='store_true', help='show prediction results')
    parser.add_argument(
        '--show-dir',
        help='directory where painted images will be saved. If specified, it will be '
        'automatically saved to the work_dir/timestamp/show_dir')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='the interval of show (s)')
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
    parser.add_argument('--tta', action='store_true', help='test-time augmentation (flip)')
    # torch.distributed.launch passes --local-rank; torchrun sets LOCAL_RANK instead.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main():
    args = parse_args()

    # Reduce the number of repeated compilations and improve testing speed.
    setup_cache_size_limit_of_dynamo()

    cfg = load_config(args.config, args.cfg_options)
    cfg.launcher = args.launcher

    # work_dir is determined in this priority: CLI > segment in file > filename
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])

    cfg.load_from = args.checkpoint

    if args.show or args.show_dir:
        cfg = trigger_visualization_hook(cfg, args)

    if args.tta:
        if 'tta_model' not in cfg:
            warnings.warn('Cannot find ``tta_model`` in config, we will set it as default.',
                          stacklevel=1)
            cfg.tta_model = dict(
                type='DetTTAModel',
                tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.5), max_per_img=100))
        if 'tta_pipeline' not in cfg:
            warnings.warn('Cannot find ``tta_pipeline`` in config, we will set it as default.',
                          stacklevel=1)
            test_data_cfg = cfg.test_dataloader.dataset
            while 'dataset' in test_data_cfg:
                test_data_cfg = test_data_cfg['dataset']
            cfg.tta_pipeline = deepcopy(test_data_cfg.pipeline)
            flip_tta = dict(
                type='TestTimeAug',
                transforms=[
                    [dict(type='RandomFlip', prob=1.), dict(type='RandomFlip', prob=0.)],
                    [dict(type='PackDetInputs',
                          meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                     'scale_factor', 'flip', 'flip_direction'))],
                ])
            cfg.tta_pipeline[-1] = flip_tta
        cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline

    cfg.setdefault('runner_type', 'TSDRunner')
    runner = RUNNERS.build(cfg)

    # add `DumpResults` dummy metric
    if args.out is not None:
        assert args.out.endswith(('.pkl', '.pickle')), 'The dump file must be a pkl file.'
        runner.test_evaluator.metrics.append(DumpDetResults(out_file_path=args.out))

    try:
        runner.test()
    except CheckpointError as e:  # unreadable load_from / resume checkpoint: one line
        raise SystemExit(f'checkpoint error: {e}') from None
    del runner  # its DDP wrapper holds the process group (see close_process_group)
    close_process_group()


if __name__ == '__main__':
    main()
