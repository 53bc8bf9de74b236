"""ONNX Runtime as a runtime of tsd_mmdet.deployment, and where it spends its time per operator.

Not an equation of the paper: runs the exported graph (eq. 3-6 as ``RoiAlign``) on the CPU.
"""
import collections
import json
import os

import numpy as np
import onnxruntime as ort
import torch

from ..checks import ExportError
from ..contract import METADATA_KEY
from .base import DeployedDetector, register_runtime

__all__ = ['OnnxDetector', 'profile_onnx']

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


def profile_onnx(onnx_file: str, shape: tuple[int, int], threads: int = 1, runs: int = 3,
                 profile_dir: str = '.') -> list[tuple[str, float, float]]:
    """Where ONNX Runtime spends its time: kernel time per operator type (ORT's profiler).

    The ``RoiAlign`` of TSD's Point.w translation (1x1 outputs over K * oh * ow sub-boxes) is
    counted apart from the other ``RoiAlign`` nodes, as ``RoiAlign (Point.w sub-boxes)``.

    Args:
        onnx_file (str): Exported model.
        shape (tuple[int, int]): (H, W) of the seeded random image.
        threads (int): Intra-op threads.
        runs (int): Profiled runs (after one untimed run).
        profile_dir (str): Where ORT writes its JSON trace.

    Returns:
        list[tuple[str, float, float]]: (operator, ms per run, share of the kernel time), most
        costly first.
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.enable_profiling = True
    options.profile_file_prefix = os.path.join(profile_dir, 'ort_profile')
    session = ort.InferenceSession(onnx_file, options, providers=['CPUExecutionProvider'])
    generator = torch.Generator().manual_seed(0)
    image = torch.randint(0, 256, (1, 3, *shape), generator=generator).float().numpy()
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
            op = 'RoiAlign (Point.w sub-boxes)'
        total[op] += event['dur']
    overall = sum(total.values()) or 1
    return [(op, us / 1e3 / runs, us / overall) for op, us in total.most_common()]
