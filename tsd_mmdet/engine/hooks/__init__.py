"""Hooks of tsd-mmdet, registered in mmdet's HOOKS (our configs list them in ``custom_hooks``).

Not tied to an equation of the paper: they guard training runs and make resumed runs continue
exactly.
"""
from .nonfinite_guard_hook import NonFiniteGuardHook, NonFiniteLossError
from .random_state_hook import RandomStateHook

__all__ = ['NonFiniteGuardHook', 'NonFiniteLossError', 'RandomStateHook']
