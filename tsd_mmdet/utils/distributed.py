"""Make a GPU-minded mmdet config run on a machine without CUDA, distributed runs included.

Not an equation of the paper. mmdet's default runtime asks for the nccl backend, and mmengine's
``init_dist`` for the pytorch launcher calls ``torch.cuda.set_device`` and wraps the model with
``device_ids=[local_rank]``; all three fail without a GPU. Without CUDA, ``adapt_to_cpu`` therefore
turns SyncBN into BN, and for ``--launcher pytorch`` (torchrun, tools/dist_train.sh) and
``--launcher slurm`` (srun, tools/slurm_train.sh; the rank, world size and master address from the
SLURM variables and ``scontrol``, as mmengine's ``_init_dist_slurm`` reads them) it starts the
process group with gloo itself (mmengine then skips ``init_dist``) and wraps the model for CPU.
Every change is logged. ``TSDRunner.from_cfg`` calls it, so mmdet's own tools get it too.
``close_process_group`` ends a distributed run (train or test) with a barrier and a clean teardown.
"""
import datetime
import gc
import os
import subprocess

import torch
import torch.distributed as torch_dist
from mmengine.config import Config
from mmengine.logging import print_log


def _syncbn_to_bn(node) -> int:
    """Replace ``type='SyncBN'`` (mmcv) and ``'SyncBatchNorm'`` by ``'BN'``; return the count."""
    count = 0
    if isinstance(node, dict):
        if node.get('type') in ('SyncBN', 'SyncBatchNorm', 'MMSyncBN'):
            node['type'] = 'BN'
            count += 1
        for value in node.values():
            count += _syncbn_to_bn(value)
    elif isinstance(node, list):
        for value in node:
            count += _syncbn_to_bn(value)
    return count


def adapt_to_cpu(cfg: Config, launcher: str) -> None:
    """Without CUDA: SyncBN -> BN, and for the pytorch and slurm launchers a gloo process group
    and a CPU model wrapper. Does nothing when CUDA is available."""
    if torch.cuda.is_available():
        return
    if _syncbn_to_bn(cfg.model):
        print_log('no CUDA: SyncBN layers in the model config are built as BN instead',
                  logger='current')
    if cfg.get('sync_bn'):
        print_log(f'no CUDA: ignoring sync_bn={cfg.sync_bn!r} (SyncBatchNorm needs a GPU)',
                  logger='current')
        cfg.sync_bn = None
    if launcher == 'none':
        return
    if launcher not in ('pytorch', 'slurm'):
        raise RuntimeError(f'no CUDA: distributed CPU runs support --launcher pytorch and '
                           f'slurm, not {launcher!r} (mmengine sets a CUDA device for it)')
    if launcher == 'slurm':
        _slurm_environment()
    dist_cfg = cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})
    if dist_cfg.get('backend', 'nccl') != 'gloo':
        print_log(f"no CUDA: distributed backend {dist_cfg.get('backend', 'nccl')!r} -> 'gloo'",
                  logger='current')
        dist_cfg['backend'] = 'gloo'
    if not torch_dist.is_initialized():
        timeout = dist_cfg.get('timeout')
        kwargs = {} if timeout is None else dict(timeout=datetime.timedelta(seconds=timeout))
        torch_dist.init_process_group(backend='gloo', **kwargs)
        print_log(f'no CUDA: gloo process group up, rank {torch_dist.get_rank()} of '
                  f'{torch_dist.get_world_size()}', logger='current')
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel', broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    if wrapper.get('type', 'MMDistributedDataParallel') == 'MMDistributedDataParallel':
        wrapper['device_ids'] = None  # mmengine's default [local_rank] names a CUDA device
    cfg.model_wrapper_cfg = wrapper


def _slurm_environment() -> None:
    """MASTER_ADDR / MASTER_PORT / WORLD_SIZE / RANK / LOCAL_RANK from srun's variables, as
    mmengine's ``_init_dist_slurm`` sets them (it also sets a CUDA device, hence not called)."""
    try:
        rank, world = int(os.environ['SLURM_PROCID']), int(os.environ['SLURM_NTASKS'])
        nodes = os.environ['SLURM_NODELIST']
    except KeyError as e:
        raise RuntimeError(f'--launcher slurm: {e.args[0]} is not set; start the job with srun '
                           '(tools/slurm_train.sh)') from None
    if 'MASTER_ADDR' not in os.environ:
        os.environ['MASTER_ADDR'] = subprocess.getoutput(
            f'scontrol show hostname {nodes} | head -n1')
    os.environ.setdefault('MASTER_PORT', '29500')
    os.environ.update(WORLD_SIZE=str(world), RANK=str(rank),
                      LOCAL_RANK=os.environ.get('SLURM_LOCALID', str(rank)))


def close_process_group() -> None:
    """End a distributed run cleanly: wait for every rank, then destroy the process group.

    Call it after dropping the runner: its DDP wrapper holds the process group, and while anything
    does, ``destroy_process_group`` only unregisters it and gloo's threads (``gloo_tcp_loop``,
    ``pt_gloo_runloop``) live on until interpreter teardown, where a rank can die with
    ``terminate called without an active exception`` (SIGABRT) after its work is done (about one
    two-rank CPU run in twenty). Does nothing outside a distributed run.
    """
    if torch_dist.is_available() and torch_dist.is_initialized():
        gc.collect()  # the runner's reference cycles, so the group's last owner is the registry
        torch_dist.barrier()
        torch_dist.destroy_process_group()
