"""tsd_mmdet.compat: mmengine checkpoints load under torch >= 2.6 after ``import tsd_mmdet``.

Covers the loaders ``load_from``, ``--resume`` and test use (mmengine's ``_load_checkpoint``).
"""
import io
import pickle

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip('mmdet')


def _save_runner_like_checkpoint(path):
    from mmengine.logging import MessageHub
    from mmengine.runner.checkpoint import save_checkpoint

    model = nn.Linear(3, 2)
    hub = MessageHub.get_instance('tsd-ckpt-test')
    hub.update_scalar('train/loss', 0.5)
    meta = dict(epoch=3, iter=42, seed=np.int64(7), message_hub=hub.state_dict())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    save_checkpoint(dict(state_dict=model.state_dict(), meta=meta,
                         optimizer=optimizer.state_dict()), str(path))
    return model


def test_plain_torch_load_refuses_mmengine_checkpoints(tmp_path):
    """The failure the fix exists for: torch's default refuses this checkpoint."""
    path = tmp_path / 'ckpt.pth'
    _save_runner_like_checkpoint(path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)


def test_round_trip_after_import(tmp_path):
    from mmengine.runner.checkpoint import _load_checkpoint, load_checkpoint

    import tsd_mmdet  # noqa: F401

    path = tmp_path / 'ckpt.pth'
    saved = _save_runner_like_checkpoint(path)
    ckpt = _load_checkpoint(str(path), map_location='cpu')
    assert ckpt['meta']['iter'] == 42
    assert 'train/loss' in ckpt['meta']['message_hub']['log_scalars']
    assert 'momentum_buffer' in str(ckpt['optimizer']['state'])

    fresh = nn.Linear(3, 2)
    load_checkpoint(fresh, str(path), map_location='cpu', strict=True)
    for a, b in zip(saved.parameters(), fresh.parameters()):
        torch.testing.assert_close(a, b)


def test_other_torch_load_calls_keep_safe_default(tmp_path):
    import tsd_mmdet  # noqa: F401

    path = tmp_path / 'ckpt.pth'
    _save_runner_like_checkpoint(path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)


def test_install_makes_the_three_documented_changes_once():
    from mmengine.runner import checkpoint, runner
    from mmengine.utils.dl_utils import hub

    from tsd_mmdet import compat
    from tsd_mmdet.engine import checkpoint_io

    assert compat.install() is False  # ``import tsd_mmdet`` installed them already
    for module in (checkpoint, hub):
        assert isinstance(module.torch, compat._TorchWithTrustedLoad)
        assert module.torch.__name__ == 'torch' and module.torch.Tensor is torch.Tensor
    for module in (checkpoint, runner):
        assert module.save_checkpoint is checkpoint_io.save_checkpoint_atomic
        assert module.find_latest_checkpoint is checkpoint_io.find_latest_readable_checkpoint
    assert checkpoint_io.MMENGINE_SAVE_CHECKPOINT.__module__ == 'mmengine.runner.checkpoint'
    for name in ('mmengine.runner.checkpoint', 'mmengine.utils.dl_utils.hub',
                 'mmengine.runner.runner', 'save_checkpoint', 'find_latest_checkpoint'):
        assert name in compat.__doc__


@pytest.mark.parametrize('source', ['path', 'buffer'])
@pytest.mark.parametrize('how', ['keyword', 'positional'])
def test_patched_load_forwards_every_argument(tmp_path, source, how):
    """mmengine's loaders call ``torch.load`` with a path (local files) or a file object (remote
    backends read into a BytesIO), with map_location: the patched load reads both with
    weights_only=False and passes the arguments on."""
    from mmengine.runner import checkpoint

    import tsd_mmdet  # noqa: F401

    path = tmp_path / 'ckpt.pth'
    _save_runner_like_checkpoint(path)
    seen = []

    def map_location(storage, location):
        seen.append(location)
        return storage

    f = str(path) if source == 'path' else io.BytesIO(path.read_bytes())
    args, kwargs = ((map_location,), {}) if how == 'positional' else ((), dict(
        map_location=map_location))
    ckpt = checkpoint.torch.load(f, *args, **kwargs)
    assert ckpt['meta']['iter'] == 42 and set(seen) == {'cpu'}


def test_unreadable_file_error_says_why(tmp_path):
    from mmengine.runner.checkpoint import _load_checkpoint

    from tsd_mmdet.engine import CheckpointError  # importing tsd_mmdet installs the patches

    path = tmp_path / 'ckpt.pth'
    _save_runner_like_checkpoint(path)
    path.write_bytes(path.read_bytes()[:100])  # truncated
    with pytest.raises(CheckpointError) as info:
        _load_checkpoint(str(path), map_location='cpu')
    assert str(info.value) == (
        f'cannot read checkpoint {path}: PytorchStreamReader failed reading zip archive: failed '
        'finding central directory (truncated, empty or not a PyTorch checkpoint)')
