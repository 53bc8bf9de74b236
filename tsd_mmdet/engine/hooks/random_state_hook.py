"""RandomStateHook: a resumed training draws the random numbers an uninterrupted one would.

Not an equation of the paper. mmengine's checkpoints keep the weights, the optimizer, the
schedulers and the iteration, and a resumed run replays the data order (the sampler is seeded and
the loop skips the batches already trained), but not the random generators of the training
process: the R-CNN samplers (``torch.randperm``) and, without dataloader workers, the random
transforms then draw other numbers than the uninterrupted run from the resumed iteration on.
"""
import random

import numpy as np
import torch
from mmdet.registry import HOOKS
from mmengine.hooks import Hook

__all__ = ['RandomStateHook']

KEY = 'random_state'


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Save the Python, NumPy and torch (CPU and CUDA) generator states in every checkpoint, and
    put them back when training resumes from one.

    The states are restored where the uninterrupted run was when it saved them: before the
    first batch of the resumed epoch is loaded, or, in an iteration-based loop that resumes mid-way,
    after the loop has skipped the batches already trained (which, without dataloader workers,
    draws from the process's generators again) and before it loads the next one. The run then
    continues from exactly that state: same flips, same RoI samples, same weights (bit for bit on
    the CPU, tests/tools/test_resume.py). A checkpoint without the states (an older one, or one
    of another tool) resumes as mmengine does, with a warning. Distributed runs: the checkpoint
    holds rank 0's states only (mmengine saves it on rank 0), so other ranks continue from their
    re-seeded generators.

    Our configs enable it: ``custom_hooks = [..., dict(type='RandomStateHook')]``.
    """

    priority = 'VERY_LOW'

    def __init__(self) -> None:
        self._pending: dict | None = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint[KEY] = dict(
            python=random.getstate(),
            numpy=np.random.get_state(),
            torch=torch.get_rng_state(),
            cuda=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [])

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if not getattr(runner, '_resume', False):
            return  # load_from: new training, not a continuation
        self._pending = checkpoint.get(KEY)
        if self._pending is None:
            runner.logger.warning('the checkpoint holds no random generator states '
                                  '(RandomStateHook): the resumed run draws other random numbers '
                                  'than an uninterrupted one would')

    def before_train_epoch(self, runner) -> None:
        if self._pending is None:
            return
        state, self._pending = self._pending, None
        loop = runner.train_loop
        skipped = getattr(loop, '_iter', 0)
        if hasattr(loop, 'dataloader_iterator') and skipped > 0:  # iteration-based, mid-way
            loop.dataloader_iterator = _RestoreAfter(
                loop.dataloader_iterator, skipped, lambda: _restore(runner, state))
        else:
            _restore(runner, state)


class _RestoreAfter:
    """An iterator that calls ``restore()`` once ``skip`` items have been taken from it, before
    taking the next one."""

    def __init__(self, iterator, skip: int, restore) -> None:
        self._iterator, self._skip, self._restore = iterator, skip, restore

    def __iter__(self):
        return self

    def __next__(self):
        if self._skip == 0 and self._restore is not None:
            self._restore()
            self._restore = None
        self._skip -= 1
        return next(self._iterator)

    def __getattr__(self, name: str):
        return getattr(self._iterator, name)


def _restore(runner, state: dict) -> None:
    random.setstate(state['python'])
    np.random.set_state(state['numpy'])
    torch.set_rng_state(state['torch'])
    if state['cuda'] and torch.cuda.is_available() and \
            len(state['cuda']) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state['cuda'])
    runner.logger.info(f'random generator states restored from the checkpoint (iteration '
                       f'{runner.iter})')
