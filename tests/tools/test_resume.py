"""Interrupted training resumes from its last checkpoint and gives the same next loss.

Runs tools/train.py twice on tiny generated data: 3 iterations straight, then 2, then --resume to 3;
and resumes past a truncated latest checkpoint, or stops with one line when none can be read.
"""
import glob
import json
import os
import os.path as osp
import shutil
import subprocess
import sys

import pytest

pytest.importorskip('mmdet')
from tsd_mmdet.datasets import shapes as gs  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TSD = osp.join(ROOT, 'configs', 'shapes', 'tsd-faster-rcnn_r18_fpn_shapes.py')

# Deterministic iterations: no flip, and every iteration reseeded (RoI sampling draws from torch's
# RNG, which a resumed run has not advanced), so the runs differ only in what resume restores.
HOOK = '''
import random, numpy as np, torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
@HOOKS.register_module()
class ReseedEachIter(Hook):
    def before_train_iter(self, runner, batch_idx, data_batch=None):
        random.seed(runner.iter); np.random.seed(runner.iter); torch.manual_seed(runner.iter)
'''


def _train(config, work_dir, data_root, max_iters, extra=(), expect_ok=True):
    options = [
        f'data_root={data_root}/', f'train_cfg.max_iters={max_iters}', 'train_cfg.val_interval=100',
        'train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False', 'default_hooks.logger.interval=1',
        'default_hooks.checkpoint.interval=1', 'train_dataloader.dataset.pipeline.3.prob=0.0',
        'train_dataloader.dataset.pipeline.2.scale=(128,128)',
        'val_cfg=None', 'val_dataloader=None', 'val_evaluator=None', 'randomness.seed=0',
    ]
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


def test_resume_gives_same_next_loss(tmp_path):
    gs.generate_dataset(str(tmp_path / 'data'), num_train=6, num_val=2, min_image_size=96,
                        max_image_size=128, max_objects=3)
    (tmp_path / 'reseed_hook.py').write_text(HOOK)
    config = tmp_path / 'tsd_reseeded.py'
    config.write_text(f"_base_ = '{TSD}'\n"
                      "custom_imports = dict(imports=['tsd_mmdet', 'reseed_hook'])\n"
                      "custom_hooks = [dict(type='ReseedEachIter')]\n")
    straight, interrupted = str(tmp_path / 'straight'), str(tmp_path / 'interrupted')
    _train(config, straight, tmp_path / 'data', 3)
    _train(config, interrupted, tmp_path / 'data', 2)
    assert osp.exists(osp.join(interrupted, 'iter_2.pth'))
    log = _train(config, interrupted, tmp_path / 'data', 3, extra=['--resume'])
    assert 'resumed' in log.lower()
    a, b = _losses(straight), _losses(interrupted)
    assert sorted(a) == [1, 2, 3] and sorted(b) == [1, 2, 3]
    assert b[3] == pytest.approx(a[3], rel=1e-4, abs=1e-5), (a, b)
    assert a[1] != pytest.approx(a[3])  # the losses move, so equality above means something
    shutil.rmtree(tmp_path / 'data')


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
