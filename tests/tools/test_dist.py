"""tools/dist_train.sh and tools/slurm_{train,test}.sh on CPU: two gloo ranks train (and test)
together (tsd_mmdet.utils.distributed's gloo set-up through TSDRunner). Slurm without a cluster: a
fake ``srun`` on PATH starts the tasks with the SLURM variables set, a fake ``scontrol`` names the
node."""
import os
import os.path as osp
import re
import subprocess
import sys

import pytest

pytest.importorskip('mmdet')
import torch  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOLS = osp.join(ROOT, 'tools')
BASELINE = osp.join(ROOT, 'configs', 'shapes', 'faster-rcnn_r18_fpn_shapes.py')
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason='tests the CPU fallback')


@no_cuda
def test_dist_train_two_cpu_ranks(tiny_data, tmp_path, free_port):
    work = tmp_path / 'work'
    options = [
        f'data_root={tiny_data}', 'train_cfg.max_iters=3', 'train_dataloader.batch_size=1',
        'default_hooks.logger.interval=1',
        'train_dataloader.dataset.pipeline.2.scale=(128,128)',
        'val_dataloader.dataset.pipeline.1.scale=(128,128)',
    ] + [f'{split}_dataloader.{key}' for split in ('train', 'val')
         for key in ('num_workers=0', 'persistent_workers=False')]
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(free_port()), OMP_NUM_THREADS='1')
    out = subprocess.run(
        ['bash', osp.join(TOOLS, 'dist_train.sh'), BASELINE, '2', '--work-dir', str(work),
         '--cfg-options', *options],
        cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-5000:]
    assert "backend 'nccl' -> 'gloo'" in log
    assert 'gloo process group up, rank 0 of 2' in log
    assert 'gloo process group up, rank 1 of 2' in log
    assert re.search(r'Iter\(train\) \[3/3\]', log)
    assert 'coco/bbox_mAP_50' in log
    assert (work / 'iter_3.pth').is_file()


# srun -p PARTITION --job-name=... --ntasks=N ... CMD: N copies of CMD with SLURM_* set, as srun.
FAKE_SRUN = r"""#!/usr/bin/env bash
ntasks=1
while [ $# -gt 0 ]; do
  case "$1" in
    -p|--partition|-J) shift ;;
    --ntasks=*) ntasks=${1#*=} ;;
    -*) ;;
    *) break ;;
  esac
  shift
done
echo "fake srun: $ntasks tasks of: $*" >&2
pids=()
for ((i = 0; i < ntasks; i++)); do
  SLURM_PROCID=$i SLURM_LOCALID=$i SLURM_NTASKS=$ntasks SLURM_NODELIST=fake-node0 "$@" &
  pids+=($!)
done
rc=0
for pid in "${pids[@]}"; do wait "$pid" || rc=$?; done
exit $rc
"""
FAKE_SCONTROL = """#!/usr/bin/env bash
[ "$1 $2" = "show hostname" ] && echo 127.0.0.1
"""


@no_cuda
def test_slurm_train_and_test_two_cpu_tasks(tiny_data, tmp_path, free_port):
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    for name, text in (('srun', FAKE_SRUN), ('scontrol', FAKE_SCONTROL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    work = tmp_path / 'work'
    options = [
        f'data_root={tiny_data}', 'train_cfg.max_iters=2', 'train_dataloader.batch_size=1',
        'default_hooks.logger.interval=1', 'model.test_cfg.rcnn.score_thr=0.0',
        'train_dataloader.dataset.pipeline.2.scale=(128,128)',
        'val_dataloader.dataset.pipeline.1.scale=(128,128)',
        'test_dataloader.dataset.pipeline.1.scale=(128,128)',
    ] + [f'{split}_dataloader.{key}' for split in ('train', 'val', 'test')
         for key in ('num_workers=0', 'persistent_workers=False')]
    env = dict(os.environ, PATH=f'{bin_dir}{os.pathsep}{os.environ["PATH"]}',
               PYTHON=sys.executable, GPUS='2', GPUS_PER_NODE='2', MASTER_PORT=str(free_port()),
               OMP_NUM_THREADS='1')
    out = subprocess.run(
        ['bash', osp.join(TOOLS, 'slurm_train.sh'), 'cpu', 'tsd', BASELINE, str(work),
         '--cfg-options', *options], cwd=str(tmp_path), env=env, capture_output=True, text=True,
        timeout=300)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-5000:]
    assert 'fake srun: 2 tasks of:' in log and '--launcher=slurm' in log
    assert 'gloo process group up, rank 0 of 2' in log
    assert 'gloo process group up, rank 1 of 2' in log
    assert re.search(r'Iter\(train\) \[2/2\]', log)
    assert (work / 'iter_2.pth').is_file()

    env['MASTER_PORT'] = str(free_port())
    out = subprocess.run(
        ['bash', osp.join(TOOLS, 'slurm_test.sh'), 'cpu', 'tsd', BASELINE,
         str(work / 'iter_2.pth'), '--work-dir', str(work / 'test'), '--cfg-options', *options],
        cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-5000:]
    assert 'gloo process group up, rank 1 of 2' in log
    assert re.search(r'coco/bbox_mAP: [\d.]+', log)
