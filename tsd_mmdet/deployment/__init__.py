"""Deployment of TSD detectors: ONNX export of the op and of whole detectors, ONNX Runtime runs.

Implements the pooling of eq. 3-6 in standard ONNX operators (``RoiAlign``); the detectors'
equations are the heads', unchanged. Needs onnx, onnxscript and onnxruntime (requirements/).
"""
from .onnx_ops import CUSTOM_TRANSLATION_TABLE, OPSET, deform_roi_align_onnx

__all__ = ['CUSTOM_TRANSLATION_TABLE', 'OPSET', 'deform_roi_align_onnx']
