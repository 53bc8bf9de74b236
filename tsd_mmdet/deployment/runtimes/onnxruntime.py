"""ONNX Runtime as a runtime of tsd_mmdet.deployment, and where it spends its time per operator.

Not an equation of the paper: runs the exported graph (eq. 3-6 as ``RoiAlign``) on the CPU.
"""
import collections
import json
import os
import tempfile

import numpy as np
import onnxruntime as ort

from ..checks import ExportError
from ..contract import METADATA_KEY
from .base import POINTWISE_ROI_ALIGN, DeployedDetector, register_runtime

__all__ = ['OnnxDetector']

_DTYPES = {'tensor(float)': 'float32'}


@register_runtime('onnxruntime')
class OnnxDetector(DeployedDetector):
    """An ONNX file written by ``export_detector``, run by ONNX Runtime on the CPU (float32).

    ``threads`` are ONNX Runtime's intra-op threads (inter-op: 1); see :class:`DeployedDetector`.
    """

    title = 'ONNX Runtime'

    def load(self, path: str, threads: int | None, precision: str) -> None:
        if path.endswith('.xml'):
            raise ExportError(f'{path} is OpenVINO IR, which ONNX Runtime does not read: run it '
                              'with --backend openvino, or give the .onnx file')
        options = ort.SessionOptions()
        options.inter_op_num_threads = 1
        if threads is not None:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])

    def metadata(self) -> str | None:
        return self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)

    def signature(self) -> tuple[list[tuple[str, str, int]], list[str]]:
        return ([(i.name, _DTYPES.get(i.type, i.type), len(i.shape))
                 for i in self.session.get_inputs()],
                [o.name for o in self.session.get_outputs()])

    def forward(self, image: np.ndarray) -> list[np.ndarray]:
        return self.session.run(None, {'image': image})

    def profile(self, image: np.ndarray, runs: int) -> dict[str, float]:
        """Kernel time per operator type from ORT's profiler (a second session of the same file
        and threads, its JSON trace in a temporary folder); see :meth:`DeployedDetector.profile`."""
        options = ort.SessionOptions()
        options.inter_op_num_threads = 1
        if self.threads is not None:
            options.intra_op_num_threads = self.threads
        options.enable_profiling = True
        with tempfile.TemporaryDirectory() as folder:
            options.profile_file_prefix = os.path.join(folder, 'ort_profile')
            session = ort.InferenceSession(self.path, options,
                                           providers=['CPUExecutionProvider'])
            for _ in range(runs + 1):
                session.run(None, {'image': image})
            with open(session.end_profiling()) as f:
                events = json.load(f)
        total, seen = collections.Counter(), set()
        for event in events:
            if event.get('cat') != 'Node' or not event['name'].endswith('_kernel_time'):
                continue
            if event['name'] not in seen:  # each node's first event is of the untimed run
                seen.add(event['name'])
                continue
            op = event['args']['op_name']
            outputs = event['args'].get('output_type_shape') or [{}]
            if op == 'RoiAlign' and list(outputs[0].values())[0][-2:] == [1, 1]:
                op = POINTWISE_ROI_ALIGN
            total[op] += event['dur'] / 1e3
        return dict(total)
