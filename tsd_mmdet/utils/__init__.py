"""Utilities mmdet/mmengine do not give: the checkpoint-loading fix for torch >= 2.6.

Not tied to an equation of the paper; imported by ``tsd_mmdet`` so the fix applies on import.
"""
from .checkpoint import patch_mmengine_checkpoint_loading

patch_mmengine_checkpoint_loading()

__all__ = ['patch_mmengine_checkpoint_loading']
