"""Deployment of TSD detectors: ONNX export of the op and of whole detectors, run by runtimes.

Implements the pooling of eq. 3-6 in standard ONNX operators (``RoiAlign``); the detectors'
equations are the heads', unchanged. The contract (``contract``), the loading (``loading``) and the
evaluation and latency are backend-neutral; ``export`` produces the ONNX file; each runtime
(ONNX Runtime, OpenVINO) is one module of ``runtimes``; ``quantize`` makes an INT8 OpenVINO IR of
the ONNX file. Needs onnx, onnxscript, onnxruntime, openvino and nncf (requirements/).
"""
from .benchmark import (
    INT8_BACKEND,
    benchmark_images,
    benchmark_latency,
    latency_table,
    profile_runtime,
)
from .checks import ExportError, check_config, check_exportable
from .contract import (
    METADATA_KEY,
    check_metadata,
    compare_with_pytorch,
    config_classes,
    match_detections,
    model_metadata,
    sample_image,
    test_input_shape,
)
from .detector import ExportDetector, ExportRoIExtractor
from .evaluation import DeployedModel, evaluate_deployed, to_instances
from .export import export_detector
from .loading import build_initialised_model, load_detector
from .onnx_ops import CUSTOM_TRANSLATION_TABLE, OPSET, deform_roi_align_onnx
from .quantize import (
    KEEP_FP32,
    CalibrationDataError,
    calibration_images,
    keep_fp32_nodes,
    quantize_detector,
)
from .runtimes import (
    POINTWISE_ROI_ALIGN,
    RUNTIMES,
    DeployedDetector,
    OnnxDetector,
    OpenVinoDetector,
    build_runtime,
    register_runtime,
    save_openvino_ir,
)

__all__ = [
    'CUSTOM_TRANSLATION_TABLE', 'CalibrationDataError', 'DeployedDetector', 'DeployedModel',
    'ExportDetector', 'ExportError', 'ExportRoIExtractor', 'INT8_BACKEND', 'KEEP_FP32',
    'METADATA_KEY', 'OPSET', 'OnnxDetector', 'OpenVinoDetector', 'POINTWISE_ROI_ALIGN',
    'RUNTIMES', 'benchmark_images', 'benchmark_latency', 'build_initialised_model',
    'build_runtime', 'calibration_images', 'check_config', 'check_exportable', 'check_metadata',
    'compare_with_pytorch', 'config_classes', 'deform_roi_align_onnx', 'evaluate_deployed',
    'export_detector', 'keep_fp32_nodes', 'latency_table', 'load_detector', 'match_detections',
    'model_metadata', 'profile_runtime', 'quantize_detector', 'register_runtime',
    'sample_image', 'save_openvino_ir', 'test_input_shape', 'to_instances'
]
