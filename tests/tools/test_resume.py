"""Interrupted training resumes from its last checkpoint and ends where the uninterrupted run ends.

tools/train.py on tiny generated data, killed with SIGKILL between two saves and during a save, then
resumed with --resume: the final weights and the final validation equal those of the same seed's
uninterrupted run, bit for bit (RandomStateHook restores the random generators; the flips and the
RoI samples are random). And it resumes past a truncated latest checkpoint, or stops with one line
when none can be read.
"""
import glob
import json
import os
import os.path as osp
import subprocess
import sys

import pytest

pytest.importorskip('mmdet')
from tsd_mmdet.datasets import shapes as gs  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TSD = osp.join(ROOT, 'configs', 'shapes', 'tsd-faster-rcnn_r18_fpn_shapes.py')

# Kills the training process with SIGKILL: before iteration ``iteration`` (between saves), or in
# the middle of writing the checkpoint of iteration ``during_save_of`` (half the file written).
KILL = '''
import os, signal, torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class KillAt(Hook):
    def __init__(self, iteration=None, during_save_of=None):
        self.iteration, self.during_save_of = iteration, during_save_of

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter + 1 == self.iteration:
            os.kill(os.getpid(), signal.SIGKILL)

    def before_save_checkpoint(self, runner, checkpoint):
        if runner.iter + 1 == self.during_save_of:  # saved before the loop counts the iteration
            def half_save(obj, f, *args, **kwargs):
                f.write(b'PK\\x03\\x04 half a checkpoint')
                f.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            torch.save = half_save  # the next torch.save writes this checkpoint
'''


def _train(config, work_dir, data_root, max_iters, extra=(), expect_ok=True, interval=1,
           validate=False):
    options = [
        f'data_root={data_root}/', f'train_cfg.max_iters={max_iters}',
        'train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False', 'default_hooks.logger.interval=1',
        f'default_hooks.checkpoint.interval={interval}',
        'train_dataloader.dataset.pipeline.2.scale=(128,128)', 'randomness.seed=0',
    ]
    if validate:  # at the end only, on the tiny val split
        options += [f'train_cfg.val_interval={max_iters}', 'model.test_cfg.rcnn.score_thr=0.0',
                    'val_dataloader.dataset.pipeline.1.scale=(128,128)',
                    'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False']
    else:
        options += ['val_cfg=None', 'val_dataloader=None', 'val_evaluator=None']
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, str(osp.dirname(work_dir))]))
    proc = subprocess.run(
        [sys.executable, 'tools/train.py', config, '--work-dir', work_dir, *extra,
         '--cfg-options', *options], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=600)
    if not expect_ok:
        return proc
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def _losses(work_dir):
    losses = {}
    for path in glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')):
        with open(path) as f:
            for line in f:
                row = json.loads(line)
                if 'loss' in row:
                    losses[row['iter']] = row['loss']
    return losses


def _final(work_dir, iteration):
    import torch
    state = torch.load(osp.join(work_dir, f'iter_{iteration}.pth'), map_location='cpu',
                       weights_only=False)['state_dict']
    metrics = {}
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            for line in f:
                row = json.loads(line)
                metrics.update({k: v for k, v in row.items() if k.startswith('coco/')})
    return state, metrics


def test_killed_and_resumed_ends_where_the_uninterrupted_run_ends(tmp_path):
    gs.generate_dataset(str(tmp_path / 'data'), num_train=6, num_val=2, min_image_size=96,
                        max_image_size=128, max_objects=3)
    (tmp_path / 'kill_hook.py').write_text(KILL)
    data, runs = tmp_path / 'data', {}
    straight = str(tmp_path / 'straight')
    _train(TSD, straight, data, 6, interval=2, validate=True)
    runs['straight'] = _final(straight, 6)
    for name, kill in (('between saves', 'iteration=5'), ('during a save', 'during_save_of=4')):
        config = tmp_path / f'{name.replace(" ", "_")}.py'
        config.write_text(f"_base_ = '{TSD}'\n"
                          "custom_imports = dict(imports=['tsd_mmdet', 'kill_hook'])\n"
                          "custom_hooks = [dict(type='NonFiniteGuardHook'), "
                          f"dict(type='RandomStateHook'), dict(type='KillAt', {kill})]\n")
        work_dir = str(tmp_path / name.replace(' ', '_'))
        proc = _train(config, work_dir, data, 6, interval=2, validate=True, expect_ok=False)
        assert proc.returncode == -9, proc.stdout[-3000:] + proc.stderr[-3000:]  # SIGKILL
        last = 'iter_4.pth' if name == 'between saves' else 'iter_2.pth'
        with open(osp.join(work_dir, 'last_checkpoint')) as f:
            assert f.read().strip().endswith(last)
        log = _train(TSD, work_dir, data, 6, extra=['--resume'], interval=2, validate=True)
        assert f'Load checkpoint from {osp.join(work_dir, last)}' in log
        assert 'random generator states restored from the checkpoint' in log
        runs[name] = _final(work_dir, 6)
    weights, metrics = runs['straight']
    assert metrics and weights
    for name in ('between saves', 'during a save'):
        other_weights, other_metrics = runs[name]
        assert other_metrics == metrics, name
        assert other_weights.keys() == weights.keys()
        different = [k for k in weights if not torch_equal(weights[k], other_weights[k])]
        assert different == [], f'{name}: {len(different)} tensors differ, e.g. {different[:3]}'


def torch_equal(a, b):
    import torch
    return torch.equal(a, b)


def _truncate(path):
    with open(path, 'r+b') as f:
        f.truncate(os.path.getsize(path) // 2)


def test_resume_past_a_truncated_checkpoint(tmp_path):
    """The measured failure of issue 10: last_checkpoint names a half-written file."""
    gs.generate_dataset(str(tmp_path / 'data'), num_train=4, num_val=2, min_image_size=96,
                        max_image_size=128, max_objects=3)
    work_dir = str(tmp_path / 'run')
    _train(TSD, work_dir, tmp_path / 'data', 2)
    _truncate(osp.join(work_dir, 'iter_2.pth'))
    log = _train(TSD, work_dir, tmp_path / 'data', 3, extra=['--resume'])
    assert f'cannot resume from {osp.join(work_dir, "iter_2.pth")}' in log
    assert f'resuming from {osp.join(work_dir, "iter_1.pth")}' in log
    assert 'resumed' in log.lower() and osp.exists(osp.join(work_dir, 'iter_3.pth'))
    assert not [p for p in os.listdir(work_dir) if '.tmp' in p]

    # nothing readable: one clear line, no traceback
    for name in ('iter_1.pth', 'iter_2.pth', 'iter_3.pth'):
        if osp.exists(osp.join(work_dir, name)):
            _truncate(osp.join(work_dir, name))
    proc = _train(TSD, work_dir, tmp_path / 'data', 4, extra=['--resume'], expect_ok=False)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1].startswith('checkpoint error: cannot resume: ')
    assert 'Traceback' not in proc.stderr

    # tools/test.py on an unreadable checkpoint: the same, naming the file
    bad = osp.join(work_dir, 'iter_3.pth')
    proc = subprocess.run(
        [sys.executable, 'tools/test.py', TSD, bad, '--work-dir', str(tmp_path / 'test'),
         '--cfg-options', f'data_root={tmp_path / "data"}/'], cwd=ROOT, capture_output=True,
        text=True, timeout=600)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1] == (
        f'checkpoint error: cannot read checkpoint {bad}: PytorchStreamReader failed reading zip '
        'archive: failed finding central directory (truncated, empty or not a PyTorch checkpoint)')
