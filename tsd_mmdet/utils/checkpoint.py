"""Lets mmengine 0.10.7 load its own checkpoints under torch >= 2.6 (load_from, --resume, test).

Not an equation of the paper: torch 2.6 made ``torch.load`` default to ``weights_only=True``, which
refuses the message-hub and optimizer state that mmengine pickles; mmengine 0.10.7 calls
``torch.load`` without the argument in every checkpoint loader (local, http, torchvision://, ...).
We give only those mmengine modules a ``torch`` whose ``load`` defaults to ``weights_only=False``;
every other ``torch.load`` in the process keeps torch's safe default. Load checkpoints you trust.
A checkpoint file that cannot be read (truncated, empty, not a checkpoint) raises
:class:`~tsd_mmdet.utils.safe_resume.CheckpointError` naming the file, instead of torch's bare
"PytorchStreamReader failed reading zip archive" (``load_from``, ``--resume``, tools/test.py).
"""
import os
import pickle
import types

import torch

from .safe_resume import CheckpointError, first_sentence

_PATCHED_MODULES = ('mmengine.runner.checkpoint', 'mmengine.utils.dl_utils.hub')


class _TorchWithTrustedLoad(types.ModuleType):
    """``torch`` as seen by mmengine's checkpoint loaders: all attributes are torch's, but
    ``load`` defaults to ``weights_only=False`` where the caller did not choose."""

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


def patch_mmengine_checkpoint_loading() -> bool:
    """Install the fix (idempotent). Returns True if any mmengine module was patched."""
    import importlib

    patched = False
    for name in _PATCHED_MODULES:
        module = importlib.import_module(name)
        if not isinstance(getattr(module, 'torch', None), _TorchWithTrustedLoad):
            module.torch = _TorchWithTrustedLoad()
            patched = True
    return patched
