"""Deployment of TSD detectors: ONNX export of the op and of whole detectors, ONNX Runtime runs.

Implements the pooling of eq. 3-6 in standard ONNX operators (``RoiAlign``); the detectors'
equations are the heads', unchanged. Needs onnx, onnxscript and onnxruntime (requirements/).
"""
from .benchmark import benchmark_latency, profile_onnx
from .checks import ExportError, check_config, check_exportable
from .detector import ExportDetector, ExportRoIExtractor
from .evaluation import OnnxRuntimeDetector, evaluate_onnx, to_instances
from .export import (
    compare_with_pytorch,
    config_classes,
    export_detector,
    load_detector,
    match_detections,
    sample_image,
    test_input_shape,
)
from .onnx_ops import CUSTOM_TRANSLATION_TABLE, OPSET, deform_roi_align_onnx
from .runtime import OnnxDetector

__all__ = [
    'CUSTOM_TRANSLATION_TABLE', 'OPSET', 'ExportDetector', 'ExportError', 'ExportRoIExtractor',
    'OnnxDetector', 'OnnxRuntimeDetector', 'benchmark_latency', 'check_config',
    'check_exportable', 'compare_with_pytorch', 'config_classes', 'deform_roi_align_onnx',
    'evaluate_onnx', 'export_detector', 'load_detector', 'match_detections', 'profile_onnx',
    'sample_image',
    'test_input_shape', 'to_instances'
]
