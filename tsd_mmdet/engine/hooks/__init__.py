"""Hooks of tsd-mmdet, registered in mmdet's HOOKS (our configs list them in ``custom_hooks``).

Not tied to an equation of the paper: they guard training runs.
"""
from .nonfinite_guard_hook import NonFiniteGuardHook, NonFiniteLossError

__all__ = ['NonFiniteGuardHook', 'NonFiniteLossError']
