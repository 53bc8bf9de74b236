"""Latency of exported detectors under ONNX Runtime against eager PyTorch, and where ORT spends it.

Implements no equation: times the same images through ``model.predict`` (the compiled op, eq. 3-6)
and through the exported graph (eq. 3-6 as ``RoiAlign``), interleaved, with the same threads.
"""
import collections
import json
import os
import time

import numpy as np
import onnxruntime as ort
import torch
from mmdet.structures import DetDataSample
from torch import nn

from tsd_mmdet.ops import has_extension

from .checks import ExportError
from .runtime import OnnxDetector

__all__ = ['benchmark_latency', 'profile_onnx']


def _eager(detector: nn.Module):
    """``image -> model.predict`` with the data preprocessor, as tools/test.py runs it."""

    def run(image: torch.Tensor) -> None:
        h, w = image.shape[-2:]
        sample = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w),
                                             scale_factor=(1.0, 1.0)))
        with torch.no_grad():
            data = detector.data_preprocessor(dict(inputs=[image[0]], data_samples=[sample]))
            detector.predict(data['inputs'], data['data_samples'], rescale=False)

    return run


def _onnx(onnx_detector: OnnxDetector):
    return lambda image: onnx_detector(image.numpy())


def benchmark_latency(models: list[tuple[str, nn.Module, str]], shape: tuple[int, int],
                      num_images: int = 5, repeats: int = 5, warmup: int = 2,
                      threads: int = 1, log=print) -> list[dict]:
    """Per-image latency of each model in eager PyTorch and in ONNX Runtime.

    Every (model, backend) runs ``warmup`` times first; then, ``repeats`` times over the same
    seeded random images, each image goes through every (model, backend) in turn, the order
    reversed every other repeat, so that drifts of the machine hit all of them alike. PyTorch and
    ONNX Runtime get the same number of threads (ORT: intra-op ``threads``, inter-op 1).

    Args:
        models (list): ``(name, detector, onnx_file)``: an eval-mode detector and its export.
        shape (tuple[int, int]): (H, W) of the images.
        num_images (int): Images per repeat.
        repeats (int): Passes over the images.
        warmup (int): Untimed runs of each (model, backend) first.
        threads (int): Threads of both backends.
        log (callable): Progress output.

    Returns:
        list[dict]: Per (model, backend): ``name``, ``backend``, ``median_ms``, ``p90_ms``,
        ``runs``.

    Raises:
        ExportError: the compiled op is not built (eager would time the Python reference).
    """
    if not has_extension():
        raise ExportError('tsd_mmdet._C is not built: eager timings would be the PyTorch '
                          'reference\'s; build it (python setup.py build_ext --inplace)')
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        runners = []
        for name, detector, onnx_file in models:
            runners.append((name, 'pytorch', _eager(detector.eval())))
            runners.append((name, 'onnxruntime', _onnx(OnnxDetector(onnx_file, threads))))
        generator = torch.Generator().manual_seed(0)
        images = [torch.randint(0, 256, (1, 3, *shape), generator=generator).float()
                  for _ in range(num_images)]
        for *_, run in runners:
            for _ in range(warmup):
                run(images[0])
        times = collections.defaultdict(list)
        for rep in range(repeats):
            order = runners if rep % 2 == 0 else runners[::-1]
            for image in images:
                for name, backend, run in order:
                    start = time.perf_counter()
                    run(image)
                    times[name, backend].append(time.perf_counter() - start)
            log(f'repeat {rep + 1}/{repeats} done')
    finally:
        torch.set_num_threads(previous)
    return [dict(name=name, backend=backend, runs=len(times[name, backend]),
                 median_ms=1e3 * float(np.median(times[name, backend])),
                 p90_ms=1e3 * float(np.percentile(times[name, backend], 90)))
            for name, backend, _ in runners]


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
