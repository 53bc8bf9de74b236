"""OpenVINO as a runtime of tsd_mmdet.deployment: the exported ONNX file as it is, or its IR.

Not an equation of the paper: runs the exported graph (eq. 3-6 as ``RoiAlign``) on the CPU, and
writes OpenVINO IR (``.xml`` / ``.bin``) that carries the ONNX file's metadata.
"""
import collections
import os
import os.path as osp

import numpy as np

from ..checks import ExportError
from ..contract import METADATA_KEY
from .base import POINTWISE_ROI_ALIGN, DeployedDetector, register_runtime

__all__ = ['OpenVinoDetector', 'save_openvino_ir']

# Where OpenVINO keeps an ONNX file's metadata entry in a model's rt_info (read_model puts
# metadata_props there; the IR written by save_openvino_ir keeps it at the same place).
RT_INFO = ('framework', METADATA_KEY)


def _openvino():
    try:
        import openvino
    except ImportError:
        raise ExportError('openvino is not installed: pip install -c requirements/constraints.txt '
                          'openvino (requirements/base.txt has it)') from None
    return openvino


@register_runtime('openvino')
class OpenVinoDetector(DeployedDetector):
    """An ONNX file written by ``export_detector``, or the OpenVINO IR ``.xml`` made of it by
    :func:`save_openvino_ir`, compiled by OpenVINO for the CPU.

    ``threads`` is ``INFERENCE_NUM_THREADS``; ``precision`` is ``INFERENCE_PRECISION_HINT``:
    'f32' by default (on CPUs with bf16 / AMX OpenVINO would otherwise pick bf16 by itself), or
    'bf16' / 'f16' (a CPU without the type computes in another one: read
    ``compiled.get_property('INFERENCE_PRECISION_HINT')``). See :class:`DeployedDetector`.
    """

    title = 'OpenVINO'
    precisions = ('f32', 'bf16', 'f16')

    def load(self, path: str, threads: int | None, precision: str) -> None:
        ov = _openvino()
        core = ov.Core()
        self.model = core.read_model(path)
        config = {'INFERENCE_PRECISION_HINT': precision, 'PERFORMANCE_HINT': 'LATENCY'}
        if threads is not None:
            config['INFERENCE_NUM_THREADS'] = threads
        self.compiled = core.compile_model(self.model, 'CPU', config)
        self.request = self.compiled.create_infer_request()

    def metadata(self) -> str | None:
        return _metadata(self.model)

    def signature(self) -> tuple[list[tuple[str, str, int]], list[str]]:
        return ([(i.get_any_name(), i.get_element_type().to_dtype().name,
                  i.get_partial_shape().rank.get_length()) for i in self.model.inputs],
                [o.get_any_name() for o in self.model.outputs])

    def forward(self, image: np.ndarray) -> list[np.ndarray]:
        results = self.request.infer({0: image})
        return [results[output] for output in self.compiled.outputs]

    def profile(self, image: np.ndarray, runs: int) -> dict[str, float]:
        """Real time per executed node type from OpenVINO's per-layer counters (``PERF_COUNT``,
        a second compilation with the same threads and precision). OpenVINO names its own types
        ('Convolution', 'FullyConnected', fused nodes under the first one's type); its
        ``ROIAlign`` is reported as 'RoiAlign', Point.w's (1x1 outputs) apart. See
        :meth:`DeployedDetector.profile`."""
        ov = _openvino()
        core = ov.Core()
        model = core.read_model(self.path)
        pointwise = {node.get_friendly_name() for node in model.get_ordered_ops()
                     if node.get_type_name() == 'ROIAlign'
                     and node.get_attributes().get('pooled_h') == 1
                     and node.get_attributes().get('pooled_w') == 1}
        config = {'INFERENCE_PRECISION_HINT': self.precision, 'PERFORMANCE_HINT': 'LATENCY',
                  'PERF_COUNT': True}
        if self.threads is not None:
            config['INFERENCE_NUM_THREADS'] = self.threads
        request = core.compile_model(model, 'CPU', config).create_infer_request()
        request.infer({0: image})
        total = collections.Counter()
        for _ in range(runs):
            request.infer({0: image})  # the counters are the last inference's
            for info in request.get_profiling_info():
                if info.status != info.Status.EXECUTED:
                    continue
                op = 'RoiAlign' if info.node_type == 'ROIAlign' else info.node_type
                if op == 'RoiAlign' and info.node_name in pointwise:
                    op = POINTWISE_ROI_ALIGN
                total[op] += info.real_time.total_seconds() * 1e3
        return dict(total)


def _metadata(model) -> str | None:
    return model.get_rt_info(list(RT_INFO)).astype(str) if model.has_rt_info(list(RT_INFO)) \
        else None


def save_openvino_ir(onnx_file: str, xml_file: str) -> None:
    """Convert an exported ONNX file to OpenVINO IR: ``xml_file`` and the weights beside it
    (``.bin``), float32 weights as in the ONNX file, its ``METADATA_KEY`` entry kept.

    Args:
        onnx_file (str): File written by ``export_detector``.
        xml_file (str): The IR to write (ends with ``.xml``).

    Raises:
        ExportError: ``xml_file`` does not end with .xml, or ``onnx_file`` cannot be read or has
            no metadata.
    """
    if not xml_file.endswith('.xml'):
        raise ExportError(f'OpenVINO IR is an .xml file (and a .bin beside it), got {xml_file}')
    ov = _openvino()
    try:
        model = ov.Core().read_model(onnx_file)
    except Exception as e:  # OpenVINO raises RuntimeError or its own types
        raise ExportError(f'OpenVINO cannot load {onnx_file}: '
                          f'{str(e).strip().splitlines()[0][:300]}') from None
    meta = _metadata(model)
    if meta is None:
        raise ExportError(f'{onnx_file} has no {METADATA_KEY!r} metadata: export it with '
                          'tools/deployment/pytorch2onnx.py')
    model.set_rt_info(meta, list(RT_INFO))
    os.makedirs(osp.dirname(osp.abspath(xml_file)), exist_ok=True)
    ov.save_model(model, xml_file, compress_to_fp16=False)
