"""Atomic checkpoint saving and resume past an unreadable one (tsd_mmdet.engine.checkpoint_io).

Unit level, on files written by mmengine's ``save_checkpoint`` as patched by ``import tsd_mmdet``;
tests/tools/test_resume.py runs the same through tools/train.py and tools/test.py.
"""
import os
import time

import pytest
import torch

pytest.importorskip('mmdet')

import tsd_mmdet  # noqa: E402,F401  (installs the patches)
from tsd_mmdet.engine import checkpoint_io  # noqa: E402
from tsd_mmdet.engine.checkpoint_io import (  # noqa: E402
    CheckpointError,
    first_sentence,
    resolve_resume_checkpoint,
    unreadable_reason,
)


def _save(path, value=1.0):
    from mmengine.runner.checkpoint import save_checkpoint
    save_checkpoint(dict(state_dict={'w': torch.full((4, ), value)}, meta=dict(iter=1)), str(path))


def _truncate(path, fraction=0.5):
    size = os.path.getsize(path)
    with open(path, 'r+b') as f:
        f.truncate(int(size * fraction))


def _work_dir(tmp_path, names):
    """Checkpoints saved one after the other (increasing mtime); last_checkpoint names the last."""
    for i, name in enumerate(names):
        _save(tmp_path / name, float(i))
        stamp = time.time() - 100 + i
        os.utime(tmp_path / name, (stamp, stamp))
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / names[-1]))
    return str(tmp_path)


def test_readable_checks():
    assert unreadable_reason('/nonexistent/iter_1.pth') == 'no such file'


def test_truncated_and_empty_files_are_unreadable(tmp_path):
    _save(tmp_path / 'a.pth')
    assert unreadable_reason(str(tmp_path / 'a.pth')) is None
    _truncate(tmp_path / 'a.pth')
    assert unreadable_reason(str(tmp_path / 'a.pth')) == (
        'RuntimeError: PytorchStreamReader failed reading zip archive: failed finding central '
        'directory')
    (tmp_path / 'b.pth').write_bytes(b'')
    assert unreadable_reason(str(tmp_path / 'b.pth')) == 'empty file'


def test_readable_latest_is_kept(tmp_path):
    work_dir = _work_dir(tmp_path, ['iter_1.pth', 'iter_2.pth'])
    from mmengine.runner.runner import find_latest_checkpoint  # what Runner.load_or_resume calls
    assert find_latest_checkpoint(work_dir) == str(tmp_path / 'iter_2.pth')


@pytest.mark.parametrize('damage', ['truncate', 'empty', 'missing'])
def test_unreadable_latest_falls_back_to_newest_readable(tmp_path, damage, monkeypatch):
    warnings = []
    monkeypatch.setattr(checkpoint_io, '_warn', warnings.append)
    work_dir = _work_dir(tmp_path, ['iter_1.pth', 'iter_2.pth', 'best_coco_bbox_mAP_iter_3.pth',
                                    'iter_3.pth'])
    bad = tmp_path / 'iter_3.pth'
    if damage == 'truncate':
        _truncate(bad)
    elif damage == 'empty':
        bad.write_bytes(b'')
    else:
        bad.unlink()
    from mmengine.runner.runner import find_latest_checkpoint
    # best_* is newer but holds no optimizer state: iter_2 is the newest to resume from.
    assert find_latest_checkpoint(work_dir) == str(tmp_path / 'iter_2.pth')
    assert len(warnings) == 1 and str(bad) in warnings[0] and 'iter_2.pth' in warnings[0]


def test_newest_is_by_modification_time_not_by_name(tmp_path, monkeypatch):
    """mmengine names checkpoints iter_9, iter_10 (no zero padding): iter_10 is newer but sorts
    before iter_9 by name."""
    monkeypatch.setattr(checkpoint_io, '_warn', lambda message: None)
    work_dir = _work_dir(tmp_path, ['iter_9.pth', 'iter_10.pth', 'iter_11.pth'])
    _truncate(tmp_path / 'iter_11.pth')
    assert resolve_resume_checkpoint(work_dir, str(tmp_path / 'iter_11.pth')) == str(
        tmp_path / 'iter_10.pth')


def test_no_readable_checkpoint_is_one_clear_error(tmp_path):
    work_dir = _work_dir(tmp_path, ['iter_1.pth', 'iter_2.pth'])
    _truncate(tmp_path / 'iter_1.pth')
    _truncate(tmp_path / 'iter_2.pth', 0.1)
    with pytest.raises(CheckpointError) as info:
        resolve_resume_checkpoint(work_dir, str(tmp_path / 'iter_2.pth'))
    reason = unreadable_reason(str(tmp_path / 'iter_2.pth'))
    assert str(info.value) == (
        f'cannot resume: {tmp_path}/iter_2.pth (named by {tmp_path}/last_checkpoint) cannot be '
        f'read ({reason}) and no other checkpoint in {tmp_path} can; delete the work dir or train '
        'without --resume')


def test_first_sentence():
    error = RuntimeError('PytorchStreamReader failed reading zip archive: failed finding central '
                         'directory. Some advice follows.\nAnd another paragraph.')
    assert first_sentence(error) == ('PytorchStreamReader failed reading zip archive: failed '
                                     'finding central directory')
    assert first_sentence(EOFError('Ran out of input.')) == 'Ran out of input'
    assert first_sentence(EOFError('  ')) == 'EOFError'


def test_legacy_format_checkpoint_is_readable(tmp_path):
    """A checkpoint in torch's pre-zip format cannot be memory-mapped: the plain load reads it
    (mmengine's meta with numpy values needs weights_only=False there too)."""
    import numpy as np
    path = tmp_path / 'legacy.pth'
    torch.save(dict(state_dict={'w': torch.ones(2)}, meta=dict(seed=np.int64(3))), path,
               _use_new_zipfile_serialization=False)
    assert unreadable_reason(str(path)) is None


def test_nothing_to_resume(tmp_path):
    from mmengine.runner.runner import find_latest_checkpoint
    assert find_latest_checkpoint(str(tmp_path)) is None


def test_loading_an_unreadable_file_names_it(tmp_path):
    from mmengine.runner.checkpoint import _load_checkpoint
    _save(tmp_path / 'ckpt.pth')
    _truncate(tmp_path / 'ckpt.pth')
    with pytest.raises(CheckpointError, match=f'cannot read checkpoint {tmp_path}/ckpt.pth'):
        _load_checkpoint(str(tmp_path / 'ckpt.pth'), map_location='cpu')
    with pytest.raises(FileNotFoundError):
        _load_checkpoint(str(tmp_path / 'absent.pth'), map_location='cpu')


def test_interrupted_save_keeps_the_previous_file(tmp_path, monkeypatch):
    """An interrupt between writing and renaming leaves the old complete file and no temp file."""
    path = tmp_path / 'iter_4.pth'
    _save(path, 1.0)

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, 'replace', interrupted)
    with pytest.raises(KeyboardInterrupt):
        _save(path, 2.0)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ['iter_4.pth']
    from mmengine.runner.checkpoint import _load_checkpoint
    assert _load_checkpoint(str(path), map_location='cpu')['state_dict']['w'][0] == 1.0


def test_interrupt_while_writing_leaves_no_file_under_the_final_name(tmp_path, monkeypatch):
    path = tmp_path / 'iter_5.pth'
    real_save = torch.save

    def save_then_interrupt(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        f.truncate(10)  # half-written bytes on disk when the interrupt comes
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, 'save', save_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        _save(path)
    assert list(tmp_path.iterdir()) == []


def test_save_flushes_and_fsyncs_before_the_rename(tmp_path, monkeypatch):
    """Durability, without a power cut: the temporary file reaches the disk (flushed out of
    Python's buffer, then fsynced) before it is renamed over the final name. Renamed first, a
    power loss could leave the final name holding a file whose data never reached the disk."""
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        stat = os.fstat(fd)  # what the OS holds at that moment, not Python's buffer
        events.append(('fsync', stat.st_ino, stat.st_size))
        real_fsync(fd)

    def replace(src, dst):
        stat = os.stat(src)
        events.append(('replace', stat.st_ino, stat.st_size, os.fspath(src), os.fspath(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, 'fsync', fsync)
    monkeypatch.setattr(os, 'replace', replace)
    path = tmp_path / 'iter_6.pth'
    _save(path, 6.0)  # through mmengine's save_checkpoint, as the runner calls it
    monkeypatch.undo()
    size = os.path.getsize(path)
    assert [e[0] for e in events] == ['fsync', 'replace'], events
    (_, synced_inode, synced_size), (_, inode, _, src, dst) = events
    assert synced_inode == inode == os.stat(path).st_ino  # the file that was synced is renamed
    assert synced_size == size > 0  # every byte was out of Python's buffer before the fsync
    assert dst == str(path) and os.path.dirname(src) == str(tmp_path) and src != dst
    assert sorted(p.name for p in tmp_path.iterdir()) == ['iter_6.pth']
    from mmengine.runner.checkpoint import _load_checkpoint
    assert _load_checkpoint(str(path), map_location='cpu')['state_dict']['w'][0] == 6.0


@pytest.mark.parametrize('where', ['backend_args', 'file_client_args', 'url'])
def test_other_backends_go_to_mmengine_unchanged(tmp_path, monkeypatch, where):
    """Only local files are written through a temporary file; a checkpoint for another backend
    goes to mmengine's own save_checkpoint with every argument as given."""
    calls = []
    monkeypatch.setattr(checkpoint_io, 'MMENGINE_SAVE_CHECKPOINT', lambda *a: calls.append(a))
    checkpoint = dict(state_dict={})
    args = {'backend_args': (str(tmp_path / 'a.pth'), None, dict(backend='local')),
            'file_client_args': (str(tmp_path / 'a.pth'), dict(backend='disk'), None),
            'url': ('s3://bucket/a.pth', None, None)}[where]
    checkpoint_io.save_checkpoint_atomic(checkpoint, *args)
    assert calls == [(checkpoint, *args)]
    assert list(tmp_path.iterdir()) == []
