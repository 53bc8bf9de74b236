"""Export of a loaded detector to ONNX: trace (torch.export), translate, check, describe.

Implements no equation itself: the graph is :class:`~tsd_mmdet.deployment.detector.ExportDetector`
(eq. 3-6 through the heads), translated with the op's table (``RoiAlign``, eq. 3-6).
"""
import contextlib
import json
import logging
import os
import os.path as osp
import warnings

import onnx
import torch
from torch import nn
from torch.export import Dim

from .checks import ExportError
from .contract import METADATA_KEY, model_metadata
from .detector import ExportDetector
from .onnx_ops import CUSTOM_TRANSLATION_TABLE, OPSET

__all__ = ['export_detector']


@contextlib.contextmanager
def _quiet_exporter():
    """Silence two known harmless messages of the exporter's stack: torchvision's nms fake kernel
    (a FutureWarning of torch about its API) and onnx_ir's note on torchlib's empty ``index_put``
    attribute."""
    ir_logger = logging.getLogger('onnx_ir._convenience')
    level = ir_logger.level
    ir_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings('ignore', message='`create_unbacked_symint` is deprecated',
                                    category=FutureWarning)
            yield
    finally:
        ir_logger.setLevel(level)


def export_detector(detector: nn.Module, out: str, shape: tuple[int, int]) -> None:
    """Export ``detector`` to the ONNX file ``out`` and check it with ``onnx.checker``.

    The graph is :class:`ExportDetector`'s contract: input ``image`` (1, 3, H, W) float32 with
    dynamic H and W (each above the largest feature stride), outputs ``dets`` (1, N, 5),
    ``labels`` (1, N) and for Mask R-CNN ``masks`` (1, N, 28, 28). The file's metadata records
    what :meth:`DeployedDetector.check_config` compares, the class names of
    ``detector.dataset_meta`` (as :func:`load_detector` sets them) included.

    Args:
        detector (nn.Module): A supported detector (see ``check_exportable``), eval mode.
        out (str): ONNX file to write (weights inside, or beside it above 2 GB).
        shape (tuple[int, int]): (H, W) of the example input traced.
    """
    wrapper = ExportDetector(detector)
    classes = (getattr(detector, 'dataset_meta', None) or {}).get('classes')
    # A level of size 1 would be specialised (broadcasting) by torch.export: every level >= 2.
    min_size = int(max(max(s) for s in detector.rpn_head.prior_generator.strides)) + 1
    if min(shape) < min_size:
        raise ExportError(f'--shape {shape[0]} {shape[1]}: each side must be at least {min_size} '
                          '(above the largest feature stride)')
    example = torch.rand(1, 3, *shape, generator=torch.Generator().manual_seed(0)) * 255
    dims = {'image': {2: Dim('height', min=min_size), 3: Dim('width', min=min_size)}}
    with torch.no_grad(), _quiet_exporter():
        program = torch.export.export(wrapper, (example,), dynamic_shapes=dims, strict=False)
        onnx_program = torch.onnx.export(
            program, dynamo=True, custom_translation_table=CUSTOM_TRANSLATION_TABLE,
            opset_version=OPSET, input_names=['image'], output_names=wrapper.output_names,
            dynamic_shapes={'image': {2: 'height', 3: 'width'}}, verbose=False)
    onnx_program.model.metadata_props[METADATA_KEY] = json.dumps(
        model_metadata(detector, wrapper, classes, min_size))
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    onnx_program.save(out)
    onnx.checker.check_model(out)  # by path: also for weights stored beside the model
