"""Utilities mmdet/mmengine do not give: config loading, CPU distributed set-up, the converter.

Not tied to an equation of the paper.
"""
from .config import apply_data_overrides, load_config
from .distributed import adapt_to_cpu, close_process_group

__all__ = ['adapt_to_cpu', 'apply_data_overrides', 'close_process_group', 'load_config']
