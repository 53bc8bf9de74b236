"""The changes ``import tsd_mmdet`` makes to mmengine 0.10.7, all of them, each stated here.

Not an equation of the paper. ``install()`` (idempotent; called by ``tsd_mmdet/__init__.py``, so
mmdet's own tools get it through ``custom_imports``) makes three:

1. **Trusted load of mmengine's own checkpoints** (``mmengine.runner.checkpoint`` and
   ``mmengine.utils.dl_utils.hub`` get a ``torch`` whose ``load`` defaults to
   ``weights_only=False``). torch 2.6 made ``torch.load`` default to ``weights_only=True``, which
   refuses the message-hub and optimizer state mmengine pickles, and mmengine 0.10.7 calls it
   without the argument in every loader (``load_from``, ``--resume``, testing a checkpoint, http,
   ``torchvision://``). Every other ``torch.load`` in the process keeps torch's safe default: load
   checkpoints you trust. A file that cannot be read (truncated, empty, not a checkpoint) raises
   :class:`~tsd_mmdet.engine.checkpoint_io.CheckpointError` naming it, instead of torch's bare
   "PytorchStreamReader failed reading zip archive".
2. **Atomic checkpoint saving**: ``save_checkpoint`` (in ``mmengine.runner.checkpoint`` and
   ``mmengine.runner.runner``) becomes
   :func:`~tsd_mmdet.engine.checkpoint_io.save_checkpoint_atomic`: a local checkpoint is written
   to a temporary file, flushed, fsynced and renamed into place, so the final name only ever holds
   a complete file.
3. **Resume past an unreadable checkpoint**: ``find_latest_checkpoint`` (same two modules) becomes
   :func:`~tsd_mmdet.engine.checkpoint_io.find_latest_readable_checkpoint`: when the checkpoint
   ``last_checkpoint`` names cannot be read, auto-resume takes the newest readable one of the work
   dir with a warning, or stops with one clear line when there is none.
"""
import importlib
import os
import pickle
import types

import torch

from .engine import checkpoint_io
from .engine.checkpoint_io import CheckpointError, first_sentence

__all__ = ['install']

_TRUSTED_LOAD_MODULES = ('mmengine.runner.checkpoint', 'mmengine.utils.dl_utils.hub')
_CHECKPOINT_IO_MODULES = ('mmengine.runner.checkpoint', 'mmengine.runner.runner')


class _TorchWithTrustedLoad(types.ModuleType):
    """``torch`` as seen by mmengine's checkpoint loaders (change 1): all attributes are torch's,
    but ``load`` defaults to ``weights_only=False`` where the caller did not choose."""

    def __init__(self) -> None:
        super().__init__('torch')

    def __getattr__(self, name: str):
        return getattr(torch, name)

    @staticmethod
    def load(f, *args, weights_only: bool = False, **kwargs):
        if not isinstance(f, (str, os.PathLike)):
            return torch.load(f, *args, weights_only=weights_only, **kwargs)
        try:
            return torch.load(f, *args, weights_only=weights_only, **kwargs)
        except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError) as e:
            if isinstance(e, FileNotFoundError):
                raise
            raise CheckpointError(
                f'cannot read checkpoint {os.fspath(f)}: {first_sentence(e)} (truncated, empty or '
                'not a PyTorch checkpoint)') from e


def install() -> bool:
    """Make the three changes of the module docstring (idempotent).

    Returns:
        bool: True if this call changed anything.
    """
    changed = False
    for name in _TRUSTED_LOAD_MODULES:
        module = importlib.import_module(name)
        if not isinstance(getattr(module, 'torch', None), _TorchWithTrustedLoad):
            module.torch = _TorchWithTrustedLoad()
            changed = True
    for name in _CHECKPOINT_IO_MODULES:
        module = importlib.import_module(name)
        for attr, ours in (('save_checkpoint', checkpoint_io.save_checkpoint_atomic),
                           ('find_latest_checkpoint',
                            checkpoint_io.find_latest_readable_checkpoint)):
            if getattr(module, attr) is not ours:
                setattr(module, attr, ours)
                changed = True
    return changed
