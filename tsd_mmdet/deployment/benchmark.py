"""Latency of exported detectors under the runtimes (ONNX Runtime, OpenVINO) against eager PyTorch.

Implements no equation: times the same images through ``model.predict`` (the compiled op, eq. 3-6)
and through the exported graph (eq. 3-6 as ``RoiAlign``), interleaved, with the same threads.
"""
import collections
import time
from collections.abc import Sequence

import numpy as np
import torch
from mmdet.structures import DetDataSample
from torch import nn

from tsd_mmdet.ops import has_extension

from .checks import ExportError
from .runtimes import DeployedDetector, build_runtime

__all__ = ['INT8_BACKEND', 'benchmark_images', 'benchmark_latency', 'latency_table',
           'profile_runtime']

INT8_BACKEND = 'openvino-int8'  # how the rows name an INT8 model under OpenVINO


def benchmark_images(shape: tuple[int, int], num: int) -> list[torch.Tensor]:
    """``num`` seeded random (1, 3, H, W) float images, the same in every call."""
    generator = torch.Generator().manual_seed(0)
    return [torch.randint(0, 256, (1, 3, *shape), generator=generator).float()
            for _ in range(num)]


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


def _deployed(deployed: DeployedDetector):
    return lambda image: deployed(image.numpy())


def benchmark_latency(models: list[tuple[str, nn.Module, str]], shape: tuple[int, int],
                      num_images: int = 5, repeats: int = 5, warmup: int = 2,
                      threads: int = 1, log=print, backends: Sequence[str] = ('onnxruntime',),
                      precision: str = 'f32', int8: dict[str, str] | None = None) -> list[dict]:
    """Per-image latency of each model in eager PyTorch, in each runtime of ``backends`` and,
    with ``int8``, of its INT8 model under OpenVINO (backend ``'openvino-int8'``).

    Every (model, backend) runs ``warmup`` times first; then, ``repeats`` times over the same
    seeded random images, each image goes through every (model, backend) in turn, the order
    reversed every other repeat, so that drifts of the machine hit all of them alike. PyTorch and
    the runtimes get the same number of threads (ONNX Runtime: intra-op ``threads``, inter-op 1;
    OpenVINO: ``INFERENCE_NUM_THREADS``).

    Args:
        models (list): ``(name, detector, onnx_file)``: an eval-mode detector and its export.
        shape (tuple[int, int]): (H, W) of the images.
        num_images (int): Images per repeat.
        repeats (int): Passes over the images.
        warmup (int): Untimed runs of each (model, backend) first.
        threads (int): Threads of every backend.
        log (callable): Progress output.
        backends (Sequence[str]): The runtimes (``RUNTIMES``), timed after PyTorch in this order.
        precision (str): The runtimes' inference precision (each must have it).
        int8 (dict, optional): Model name -> its INT8 OpenVINO IR
            (:func:`~tsd_mmdet.deployment.quantize_detector`), timed last of each model.

    Returns:
        list[dict]: Per (model, backend): ``name``, ``backend``, ``median_ms``, ``p90_ms``,
        ``runs``.

    Raises:
        ExportError: the compiled op is not built (eager would time the Python reference), an
            unknown backend, or a precision a runtime does not have.
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
            for backend in backends:
                runners.append((name, backend, _deployed(
                    build_runtime(backend, onnx_file, threads, precision))))
            if int8 is not None:
                runners.append((name, INT8_BACKEND, _deployed(
                    build_runtime('openvino', int8[name], threads, 'f32'))))
        images = benchmark_images(shape, num_images)
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


def profile_runtime(backend: str, path: str, shape: tuple[int, int], threads: int = 1,
                    runs: int = 3, precision: str = 'f32') -> list[tuple[str, float, float]]:
    """Where a runtime spends its time on the first benchmark image: its own profiler's time per
    operator type (:meth:`DeployedDetector.profile`), the RoiAlign of Point.w apart.

    Args:
        backend (str): A registered runtime (``RUNTIMES``).
        path (str): The exported model.
        shape (tuple[int, int]): (H, W) of the seeded random image.
        threads (int): The runtime's threads.
        runs (int): Profiled runs, after one untimed run.
        precision (str): The runtime's inference precision.

    Returns:
        list[tuple[str, float, float]]: (operator, ms per run, share of the profiled time), most
        costly first.

    Raises:
        ExportError: an unknown backend, or one without a profiler.
    """
    deployed = build_runtime(backend, path, threads, precision)
    total = deployed.profile(benchmark_images(shape, 1)[0].numpy(), runs)
    overall = sum(total.values()) or 1.0
    return [(op, ms / runs, ms / overall)
            for op, ms in sorted(total.items(), key=lambda item: -item[1])]


def latency_table(rows: list[dict], shape: tuple[int, int], pair: bool = False) -> list[str]:
    """Markdown lines of :func:`benchmark_latency`'s rows, one per (model, threads): the median
    (p90) per image under each backend, and each runtime's time over eager PyTorch's; with
    ``pair`` (the first model TSD, the second its baseline), a line of TSD / baseline per thread
    count under each backend.

    Args:
        rows (list[dict]): Rows of :func:`benchmark_latency`, each with a ``threads`` key added.
        shape (tuple[int, int]): (H, W) of the images.
        pair (bool): Add the TSD / baseline lines.

    Returns:
        list[str]: The table's lines (header first).
    """
    backends = list(dict.fromkeys(r['backend'] for r in rows))
    runtimes = [b for b in backends if b != 'pytorch']
    median = {(r['name'], r['threads'], r['backend']): r['median_ms'] for r in rows}
    p90 = {(r['name'], r['threads'], r['backend']): r['p90_ms'] for r in rows}
    names = list(dict.fromkeys(r['name'] for r in rows))
    threads = list(dict.fromkeys(r['threads'] for r in rows))
    lines = ['| model | input | threads | ' + ' | '.join(f'{b} median / p90 (ms)' for b in backends)
             + ' | ' + ' | '.join(f'{b} / pytorch' for b in runtimes) + ' |',
             '| ' + ' | '.join(['---'] * (3 + len(backends) + len(runtimes))) + ' |']
    for t in threads:
        for name in names:
            cells = [f'{median[name, t, b]:.1f} / {p90[name, t, b]:.1f}' for b in backends]
            cells += [f'{median[name, t, b] / median[name, t, "pytorch"]:.2f}' for b in runtimes]
            lines.append(f'| {name} | {shape[0]}x{shape[1]} | {t} | ' + ' | '.join(cells) + ' |')
        if pair and len(names) == 2:
            first, second = names
            cells = [f'{median[first, t, b] / median[second, t, b]:.2f}' for b in backends]
            lines.append(f'| {first} / {second} | | {t} | ' + ' | '.join(cells)
                         + ' |' * (len(runtimes) + 1))
    return lines
