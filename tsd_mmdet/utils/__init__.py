"""Utilities mmdet/mmengine do not give: checkpoint loading for torch >= 2.6, safe save and resume.

Not tied to an equation of the paper; imported by ``tsd_mmdet`` so the fixes apply on import.
"""
from .checkpoint import patch_mmengine_checkpoint_loading
from .safe_resume import (
    CheckpointError,
    patch_mmengine_checkpoint_io,
    resolve_resume_checkpoint,
    save_checkpoint_atomic,
)

patch_mmengine_checkpoint_loading()
patch_mmengine_checkpoint_io()

__all__ = [
    'CheckpointError', 'patch_mmengine_checkpoint_io', 'patch_mmengine_checkpoint_loading',
    'resolve_resume_checkpoint', 'save_checkpoint_atomic'
]
