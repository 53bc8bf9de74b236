"""NonFiniteGuardHook: no non-finite loss or gradient ever reaches the weights of a training run.

Not an equation of the paper (it guards the total loss of eq. 9, or any detector's). One NaN step
makes every weight NaN, and mmengine would go on training and save NaN checkpoints over good ones.
"""
import functools
import logging
import os.path as osp

import torch
from mmdet.registry import HOOKS
from mmengine.dist import all_reduce, get_world_size
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.optim import AmpOptimWrapper, OptimWrapper

__all__ = ['NonFiniteGuardHook', 'NonFiniteLossError']

ACTIONS = ('stop', 'skip')


class NonFiniteLossError(SystemExit):
    """Training stopped before a step on a non-finite loss or gradient.

    A ``SystemExit``: uncaught, the process ends with its one-line message and status 1, without
    a trace, under any training script (``pytest.raises`` and ``except`` still catch it).
    """


@HOOKS.register_module()
class NonFiniteGuardHook(Hook):
    """Refuse every optimizer step on a non-finite loss or gradient.

    At ``before_train`` it wraps the runner's optim wrapper (``OptimWrapper`` or
    ``AmpOptimWrapper``, so ``--amp`` keeps it):

    - ``backward(loss)``: the loss is checked first; in distributed runs the ranks agree through one
      all-reduced flag (a rank that skipped its backward would leave the others waiting in DDP's).
      A non-finite loss never goes through backward.
    - ``step()``: with an fp32 ``OptimWrapper`` the gradients are checked before the optimizer
      step. Under AMP the loss scaler already skips a step whose (scaled) gradients overflow and
      lowers its scale, which is how mixed precision trains; only the loss is checked there.

    ``action='stop'`` (default): training ends, before any step, with one line (a
    :class:`NonFiniteLossError`, also logged) naming the iteration, the loss terms that were not
    finite (or the parameters whose gradients were not) and the image files of the batch. The
    weights are those of the last finite step and the last checkpoint is good, so after fixing the
    data ``--resume`` continues from it. ``action='skip'``: the step is dropped (no backward, no
    update), counted (``train/nonfinite_skips`` in the log) and warned about; training stops as
    above after ``max_consecutive_skips`` skipped iterations in a row.

    Our configs enable it: ``custom_hooks = [dict(type='NonFiniteGuardHook')]``.

    Args:
        action (str): 'stop' or 'skip'. Defaults to 'stop'.
        max_consecutive_skips (int): With 'skip', stop at this many skips in a row. Defaults to 10.
    """

    priority = 'VERY_HIGH'

    def __init__(self, action: str = 'stop', max_consecutive_skips: int = 10) -> None:
        if action not in ACTIONS:
            raise ValueError(f'NonFiniteGuardHook: action must be one of {ACTIONS}, got {action!r}')
        if not (isinstance(max_consecutive_skips, int) and max_consecutive_skips >= 1):
            raise ValueError('NonFiniteGuardHook: max_consecutive_skips must be a positive int, '
                             f'got {max_consecutive_skips!r}')
        self.action = action
        self.max_consecutive_skips = max_consecutive_skips
        self.skips = 0  # iterations skipped in all
        self.consecutive_skips = 0
        self._log_vars: dict = {}
        self._files: list[str] = []
        self._skip_step = False

    def before_train(self, runner) -> None:
        wrapper = runner.optim_wrapper
        if not isinstance(wrapper, OptimWrapper):
            raise TypeError('NonFiniteGuardHook guards one OptimWrapper / AmpOptimWrapper, got '
                            f'{type(wrapper).__name__}')
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        self._install(runner, model, wrapper)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._skip_step = False
        self._log_vars = {}
        samples = (data_batch or {}).get('data_samples', []) if isinstance(data_batch, dict) \
            else []
        self._files = [osp.basename(str(s.metainfo.get('img_path', '?'))) for s in samples]

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if not self._skip_step:
            self.consecutive_skips = 0
        if self.skips:
            runner.message_hub.update_scalar('train/nonfinite_skips', self.skips)

    def _install(self, runner, model, wrapper: OptimWrapper) -> None:
        """Wrap ``model.parse_losses`` (to see the loss terms) and the wrapper's backward / step."""
        if getattr(wrapper, '_nonfinite_guard', None) is self:
            return
        parse_losses, backward, step = model.parse_losses, wrapper.backward, wrapper.step
        check_gradients = not isinstance(wrapper, AmpOptimWrapper)
        params = [(name, p) for name, p in model.named_parameters() if p.requires_grad]

        @functools.wraps(parse_losses)
        def guarded_parse_losses(losses):
            loss, log_vars = parse_losses(losses)
            self._log_vars = log_vars
            return loss, log_vars

        @functools.wraps(backward)
        def guarded_backward(loss, **kwargs):
            terms = self._nonfinite_terms(loss)
            if _any_rank(bool(terms), loss.device):
                self._refuse(runner, 'loss', terms or ['a loss term on another rank'])
                return
            backward(loss, **kwargs)

        # wraps: keeps what others put on the wrapped step (mmengine's schedulers mark theirs
        # ``_with_counter`` and warn when the mark is gone).
        @functools.wraps(step)
        def guarded_step(**kwargs):
            if self._skip_step:
                return
            if check_gradients:
                grads = [p.grad for _, p in params if p.grad is not None]
                if grads and not torch.stack([torch.isfinite(g).all() for g in grads]).all():
                    bad = [name for name, p in params
                           if p.grad is not None and not torch.isfinite(p.grad).all()]
                    self._refuse(runner, 'gradient', bad)
                    return
            step(**kwargs)

        model.parse_losses = guarded_parse_losses
        wrapper.backward = guarded_backward
        wrapper.step = guarded_step
        wrapper._nonfinite_guard = self

    def _nonfinite_terms(self, loss: torch.Tensor) -> list[str]:
        """Names of the non-finite loss terms (``loss`` itself when only the sum overflowed)."""
        if torch.isfinite(loss).all():
            return []
        terms = [f'{k}={float(v.detach().float().mean()):g}' for k, v in self._log_vars.items()
                 if k != 'loss' and isinstance(v, torch.Tensor) and not torch.isfinite(v).all()]
        return terms or [f'loss={float(loss.detach().float()):g}']

    def _refuse(self, runner, what: str, names: list[str]) -> None:
        """Stop, or skip this iteration's step (``self.action``), on a non-finite ``what``."""
        iteration = runner.iter + 1
        shown = ', '.join(names[:6]) + (f' (+{len(names) - 6} more)' if len(names) > 6 else '')
        found = (f'non-finite {what} at iteration {iteration}: {shown}; images of the batch: '
                 f'{", ".join(self._files) or "?"}')
        self._skip_step = True
        if self.action == 'skip':
            self.skips += 1
            self.consecutive_skips += 1
            if self.consecutive_skips < self.max_consecutive_skips:
                print_log(f'{found}: step skipped ({self.consecutive_skips} in a row, '
                          f'{self.skips} in all)', logger='current', level=logging.WARNING)
                return
            found += f' ({self.consecutive_skips} skipped iterations in a row)'
        message = (f'{found}. Stopped before the optimizer step: the weights are those of the '
                   f'last finite step{_last_checkpoint(runner)}; fix the data, then train again '
                   'with --resume')
        print_log(message, logger='current', level=logging.ERROR)
        raise NonFiniteLossError(message)


def _any_rank(flag: bool, device: torch.device) -> bool:
    """``flag`` or-ed over the ranks of a distributed run (just ``flag`` otherwise)."""
    if get_world_size() == 1:
        return flag
    value = torch.tensor([float(flag)], device=device)
    all_reduce(value, op='sum')
    return bool(value.item() > 0)


def _last_checkpoint(runner) -> str:
    """`` and the last checkpoint, PATH, is good`` when the work dir has one, else ''."""
    try:
        with open(osp.join(runner.work_dir, 'last_checkpoint')) as f:
            return f' and the last checkpoint, {f.read().strip()}, is good'
    except OSError:
        return ''
