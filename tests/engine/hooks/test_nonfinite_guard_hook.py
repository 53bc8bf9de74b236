"""NonFiniteGuardHook in-process: no step on a non-finite loss or gradient: stop, skip, AMP.

A toy mmengine model and real optim wrappers, driven as IterBasedTrainLoop drives them
(``before_train``, then per iteration ``before_train_iter``, ``model.train_step``,
``after_train_iter``). tests/tools/test_train_test.py runs the hook in a real training.
"""
import types

import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.model import BaseModel
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmengine.structures import BaseDataElement
from torch import nn

from tsd_mmdet.engine.hooks import NonFiniteGuardHook, NonFiniteLossError
from tsd_mmdet.engine.hooks import nonfinite_guard_hook as guard_module


class ToyDetector(BaseModel):
    """Two loss terms; ``bad`` in the batch makes one term NaN, ``bad_grad`` a gradient NaN."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode='loss', bad=None, bad_grad=False):
        out = self.fc(inputs).sum()
        loss_bbox = out * 0 + float('nan') if bad == 'loss_bbox' else out.abs()
        loss_cls = out.pow(2) * 0.1
        if bad_grad:  # a finite value whose gradient is NaN: d sqrt(x) / dx at 0 is inf, * 0
            loss_cls = loss_cls + torch.sqrt(self.fc.weight.sum() * 0) * 0
        return dict(loss_bbox=loss_bbox, loss_cls=loss_cls, acc=out.detach() * 0)


def _batch(bad=None, bad_grad=False, files=('a.jpg', 'b.jpg')):
    samples = [BaseDataElement(metainfo=dict(img_path=f'/data/train/{f}')) for f in files]
    return dict(inputs=torch.ones(3, 2), data_samples=samples, bad=bad, bad_grad=bad_grad)


def _train_step(model, batch, wrapper):
    """BaseModel.train_step without the data preprocessor (the toy batch is its own input)."""
    with wrapper.optim_context(model):
        losses = model(**batch)
    loss, log_vars = model.parse_losses(losses)
    wrapper.update_params(loss)
    return log_vars


@pytest.fixture
def setup(tmp_path):
    def make(action='stop', max_consecutive_skips=10, wrapper_cls=OptimWrapper):
        torch.manual_seed(0)
        model = ToyDetector()
        wrapper = wrapper_cls(optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
        runner = types.SimpleNamespace(model=model, optim_wrapper=wrapper, iter=0,
                                       work_dir=str(tmp_path),
                                       message_hub=MessageHub.get_instance('guard-test'))
        hook = NonFiniteGuardHook(action=action, max_consecutive_skips=max_consecutive_skips)
        hook.before_train(runner)
        return hook, runner

    return make


def _iterate(hook, runner, batch):
    hook.before_train_iter(runner, runner.iter, batch)
    _train_step(runner.model, batch, runner.optim_wrapper)
    hook.after_train_iter(runner, runner.iter, batch, None)
    runner.iter += 1


def _weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


def test_finite_iterations_step_as_usual(setup):
    hook, runner = setup()
    before = _weights(runner.model)
    _iterate(hook, runner, _batch())
    assert not _same(before, _weights(runner.model))


def test_stop_on_a_nonfinite_loss_term_before_backward(setup, tmp_path):
    hook, runner = setup()
    _iterate(hook, runner, _batch())
    (tmp_path / 'last_checkpoint').write_text(f'{tmp_path}/iter_1.pth')
    good = _weights(runner.model)
    with pytest.raises(NonFiniteLossError) as err:
        _iterate(hook, runner, _batch(bad='loss_bbox'))
    message = str(err.value)
    assert message.startswith('non-finite loss at iteration 2: loss_bbox=nan; images of the '
                              'batch: a.jpg, b.jpg. Stopped before the optimizer step')
    assert f'the last checkpoint, {tmp_path}/iter_1.pth, is good' in message
    assert 'loss_cls' not in message
    assert _same(good, _weights(runner.model))
    assert all(p.grad is None or not p.grad.any() for p in runner.model.parameters())
    assert isinstance(err.value, SystemExit) and err.value.code == message


def test_stop_on_a_nonfinite_gradient_with_a_finite_loss(setup):
    hook, runner = setup()
    good = _weights(runner.model)
    with pytest.raises(NonFiniteLossError, match=r'non-finite gradient at iteration 1: '
                       r'fc\.weight; images of the batch: a\.jpg, b\.jpg'):
        _iterate(hook, runner, _batch(bad_grad=True))
    assert _same(good, _weights(runner.model))


def test_skip_counts_and_stops_after_n_in_a_row(setup):
    hook, runner = setup(action='skip', max_consecutive_skips=3)
    good = _weights(runner.model)
    for _ in range(2):
        _iterate(hook, runner, _batch(bad='loss_bbox'))
    assert _same(good, _weights(runner.model))
    assert (hook.skips, hook.consecutive_skips) == (2, 2)
    assert runner.message_hub.get_scalar('train/nonfinite_skips').current() == 2
    _iterate(hook, runner, _batch())  # a good iteration resets the run of skips
    assert not _same(good, _weights(runner.model))
    assert (hook.skips, hook.consecutive_skips) == (2, 0)
    for _ in range(2):
        _iterate(hook, runner, _batch(bad='loss_bbox'))
    with pytest.raises(NonFiniteLossError, match=r'non-finite gradient at iteration 6: fc\.weight'
                       r'.*\(3 skipped iterations in a row\)'):
        _iterate(hook, runner, _batch(bad_grad=True))


def test_another_rank_with_a_nonfinite_loss_stops_this_one_too(setup, monkeypatch):
    """Ranks agree through one all-reduced flag: this rank's loss is finite, another's is not."""
    hook, runner = setup()
    monkeypatch.setattr(guard_module, 'get_world_size', lambda: 2)
    monkeypatch.setattr(guard_module, 'all_reduce', lambda value, op: value.add_(1))
    good = _weights(runner.model)
    with pytest.raises(NonFiniteLossError, match='a loss term on another rank'):
        _iterate(hook, runner, _batch())
    assert _same(good, _weights(runner.model))


@pytest.fixture
def amp_wrapper(monkeypatch):
    """mmengine's AmpOptimWrapper (it asserts CUDA, so it is told there is one) with a CPU
    GradScaler: what ``--amp`` builds, on this machine."""
    from mmengine.optim.optimizer import amp_optimizer_wrapper
    monkeypatch.setattr(amp_optimizer_wrapper, 'is_cuda_available', lambda: True)

    def build(optimizer):
        wrapper = AmpOptimWrapper(optimizer=optimizer, loss_scale='dynamic')
        wrapper.loss_scaler = torch.amp.GradScaler('cpu', init_scale=2.0 ** 16)
        wrapper.cast_dtype = torch.bfloat16
        return wrapper

    return build


def test_amp_leaves_overflowing_gradients_to_the_loss_scaler(setup, amp_wrapper):
    """Under AMP a step whose scaled gradients overflow is skipped by the loss scaler (which then
    lowers its scale): that is how mixed precision trains, not an error."""
    hook, runner = setup(wrapper_cls=amp_wrapper)
    assert isinstance(runner.optim_wrapper, AmpOptimWrapper)
    good = _weights(runner.model)
    _iterate(hook, runner, _batch(bad_grad=True))
    assert _same(good, _weights(runner.model))  # the scaler skipped the step
    assert runner.optim_wrapper.loss_scaler.get_scale() < 2.0 ** 16
    _iterate(hook, runner, _batch())
    assert not _same(good, _weights(runner.model))


def test_amp_stops_on_a_nonfinite_loss(setup, amp_wrapper):
    hook, runner = setup(wrapper_cls=amp_wrapper)
    good = _weights(runner.model)
    with pytest.raises(NonFiniteLossError, match='non-finite loss at iteration 1: loss_bbox=nan'):
        _iterate(hook, runner, _batch(bad='loss_bbox'))
    assert _same(good, _weights(runner.model))


def test_bad_arguments():
    with pytest.raises(ValueError, match="action must be one of \\('stop', 'skip'\\)"):
        NonFiniteGuardHook(action='ignore')
    with pytest.raises(ValueError, match='max_consecutive_skips must be a positive int'):
        NonFiniteGuardHook(action='skip', max_consecutive_skips=0)


def test_marks_on_the_wrapped_step_survive(tmp_path):
    """mmengine's param schedulers mark the step they count (``_with_counter``) and warn when a
    later wrapper drops the mark; the guard keeps it."""
    model = ToyDetector()
    wrapper = OptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    counted = wrapper.step

    def with_counter(**kwargs):
        return counted(**kwargs)

    with_counter._with_counter = True
    wrapper.step = with_counter
    runner = types.SimpleNamespace(model=model, optim_wrapper=wrapper, iter=0,
                                   work_dir=str(tmp_path),
                                   message_hub=MessageHub.get_instance('guard-test-2'))
    NonFiniteGuardHook().before_train(runner)
    assert wrapper.step is not with_counter and wrapper.step._with_counter
