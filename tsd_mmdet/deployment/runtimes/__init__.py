"""The runtimes of tsd_mmdet.deployment, one module each, registered by name (``--backend``).

Not an equation of the paper. Every module of this package is imported here, so that a runtime
is one module: a :class:`DeployedDetector` subclass decorated with ``@register_runtime('name')``.
"""
import importlib
import pkgutil

from .base import (
    POINTWISE_ROI_ALIGN,
    RUNTIMES,
    DeployedDetector,
    build_runtime,
    register_runtime,
)
from .onnxruntime import OnnxDetector
from .openvino import OpenVinoDetector, save_openvino_ir

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f'{__name__}.{_module.name}')

__all__ = ['POINTWISE_ROI_ALIGN', 'RUNTIMES', 'DeployedDetector', 'OnnxDetector',
           'OpenVinoDetector', 'build_runtime', 'register_runtime', 'save_openvino_ir']
