"""Runner-level pieces of tsd-mmdet: they work under mmdet's own tools (registered on import).

Not tied to an equation of the paper: the runner that checks data first, the training guard, the
random-state hook that makes resumes exact, and the checkpoint I/O that ``tsd_mmdet.compat``
installs into mmengine.
"""
from .checkpoint_io import CheckpointError, resolve_resume_checkpoint, save_checkpoint_atomic
from .hooks import NonFiniteGuardHook, NonFiniteLossError, RandomStateHook
from .runner import TSDRunner

__all__ = ['CheckpointError', 'NonFiniteGuardHook', 'NonFiniteLossError', 'RandomStateHook',
           'TSDRunner', 'resolve_resume_checkpoint', 'save_checkpoint_atomic']
