"""Checkpoints that survive an interrupt: atomic saving, and resume past an unreadable checkpoint.

Not an equation of the paper. mmengine 0.10.7 writes a checkpoint straight under its final name
(an interrupt while saving leaves a truncated ``iter_N.pth``, which ``last_checkpoint`` may name),
and ``--resume`` then dies in ``torch.load`` with "failed finding central directory". Here:

- local checkpoints are written to a temporary file in the same folder and renamed into place
  (``os.replace``), so the final name only ever holds a complete file;
- auto-resume (``resume=True`` without ``load_from``) checks the checkpoint that
  ``last_checkpoint`` names; when it cannot be read, it resumes from the newest readable checkpoint
  of the work dir with a warning naming the bad file, or raises :class:`CheckpointError` (one clear
  line) when none is readable.

``tsd_mmdet.compat`` installs both into mmengine's runner on ``import tsd_mmdet``, so mmdet's own
tools/train.py gets them through ``custom_imports``.
"""
import glob
import logging
import os
import os.path as osp

import torch
from mmengine.runner import checkpoint as _mmengine_checkpoint

# mmengine's own functions, taken before tsd_mmdet.compat replaces them with the ones below.
MMENGINE_SAVE_CHECKPOINT = _mmengine_checkpoint.save_checkpoint
MMENGINE_FIND_LATEST_CHECKPOINT = _mmengine_checkpoint.find_latest_checkpoint


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be read (truncated, empty, not a checkpoint)."""


def first_sentence(error: BaseException) -> str:
    """The first sentence of an exception's message (torch appends paragraphs of advice), or its
    type's name when it has no message."""
    text = str(error).strip()
    if not text:
        return type(error).__name__
    return text.splitlines()[0].split('. ')[0].rstrip('.')


def unreadable_reason(path: str) -> str | None:
    """Why ``path`` cannot be loaded as a checkpoint, or None if it can.

    Loads it memory-mapped (cheap: tensors are not read), falling back to a plain load for files
    that are not in torch's zip format.
    """
    if not osp.isfile(path):
        return 'no such file'
    if osp.getsize(path) == 0:
        return 'empty file'
    try:
        torch.load(path, map_location='cpu', weights_only=False, mmap=True)
        return None
    except Exception:  # noqa: BLE001  (mmap needs the zip format: retry plainly)
        pass
    try:
        torch.load(path, map_location='cpu', weights_only=False)
        return None
    except Exception as e:  # noqa: BLE001  (any failure means: not loadable)
        return f'{type(e).__name__}: {first_sentence(e)}'


def _warn(message: str) -> None:
    from mmengine.logging import print_log
    print_log(message, logger='current', level=logging.WARNING)


def resolve_resume_checkpoint(work_dir: str, last_saved: str | None) -> str | None:
    """The checkpoint to resume from: ``last_saved`` if readable, else the newest readable one.

    Args:
        work_dir (str): The run's work dir.
        last_saved (str, optional): The path ``work_dir/last_checkpoint`` names (None: nothing to
            resume).

    Returns:
        str | None: ``last_saved`` when it can be read; otherwise the newest (by modification
        time) readable ``*.pth`` of ``work_dir`` other than ``best_*`` (which lack the optimizer
        state), with a warning naming the bad file; None when ``last_saved`` is None.

    Raises:
        CheckpointError: ``last_saved`` cannot be read and no other checkpoint in ``work_dir`` can.
    """
    if last_saved is None:
        return None
    reason = unreadable_reason(last_saved)
    if reason is None:
        return last_saved
    bad = osp.abspath(last_saved)
    candidates = [p for p in glob.glob(osp.join(work_dir, '*.pth'))
                  if osp.abspath(p) != bad and not osp.basename(p).startswith('best_')]
    candidates.sort(key=lambda p: (osp.getmtime(p), p), reverse=True)
    for path in candidates:
        if unreadable_reason(path) is None:
            _warn(f'cannot resume from {last_saved} (named by last_checkpoint): {reason}; '
                  f'resuming from {path}, the newest readable checkpoint in {work_dir}')
            return path
    raise CheckpointError(
        f'cannot resume: {last_saved} (named by {osp.join(work_dir, "last_checkpoint")}) cannot '
        f'be read ({reason}) and no other checkpoint in {work_dir} can; delete the work dir or '
        'train without --resume')


def save_checkpoint_atomic(checkpoint: dict, filename: str, file_client_args=None,
                           backend_args=None) -> None:
    """mmengine's ``save_checkpoint``; local files are written to ``filename.tmp<pid>`` and renamed.

    An interrupt (or a full disk) while writing leaves the previous file under ``filename``, if
    any, and no temporary file. Other backends (``pavi://``, ``s3://``, ``backend_args``) go to
    mmengine unchanged.
    """
    if file_client_args is not None or backend_args is not None or '://' in str(filename):
        return MMENGINE_SAVE_CHECKPOINT(checkpoint, filename, file_client_args, backend_args)
    filename = str(filename)
    os.makedirs(osp.dirname(osp.abspath(filename)), exist_ok=True)
    tmp = f'{filename}.tmp{os.getpid()}'
    try:
        with open(tmp, 'wb') as f:
            torch.save(checkpoint, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, filename)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise


def find_latest_readable_checkpoint(path: str) -> str | None:
    """mmengine's ``find_latest_checkpoint`` with :func:`resolve_resume_checkpoint` after it."""
    return resolve_resume_checkpoint(path, MMENGINE_FIND_LATEST_CHECKPOINT(path))
