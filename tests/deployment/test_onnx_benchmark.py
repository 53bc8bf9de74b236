"""The latency benchmark (PyTorch, ONNX Runtime, OpenVINO) and the runtimes' profiles, tiny case.

Not an equation of the paper; the profile names the RoiAlign of Point.w (eq. 5-6) apart.
"""
import pytest

from tsd_mmdet.deployment import (
    POINTWISE_ROI_ALIGN,
    ExportError,
    benchmark_latency,
    profile_runtime,
)
from tsd_mmdet.ops import has_extension


@pytest.mark.skipif(not has_extension(), reason='times the compiled op: tsd_mmdet._C not built')
def test_benchmark_latency_times_both_backends(exported):
    model = exported('tsd-faster')
    lines = []
    rows = benchmark_latency([(model.name, model.detector, model.path)], (128, 160),
                             num_images=2, repeats=2, warmup=1, threads=1, log=lines.append)
    assert [(r['name'], r['backend']) for r in rows] == [('tsd-faster', 'pytorch'),
                                                         ('tsd-faster', 'onnxruntime')]
    for row in rows:
        assert row['runs'] == 4 and 0 < row['median_ms'] <= row['p90_ms']
    assert lines == ['repeat 1/2 done', 'repeat 2/2 done']


@pytest.mark.skipif(not has_extension(), reason='times the compiled op: tsd_mmdet._C not built')
def test_benchmark_latency_interleaves_the_runtimes(exported):
    model = exported('tsd-faster')
    rows = benchmark_latency([(model.name, model.detector, model.path)], (128, 160),
                             num_images=1, repeats=2, warmup=1, threads=1, log=lambda _: None,
                             backends=('onnxruntime', 'openvino'))
    assert [r['backend'] for r in rows] == ['pytorch', 'onnxruntime', 'openvino']
    for row in rows:
        assert row['runs'] == 2 and 0 < row['median_ms'] <= row['p90_ms']


@pytest.mark.parametrize('backend, conv', [('onnxruntime', 'Conv'), ('openvino', 'Convolution')])
def test_profile_names_the_pointwise_roi_align(exported, backend, conv):
    profile = profile_runtime(backend, exported('tsd-faster').path, (128, 160), runs=2)
    ops = {op: (ms, share) for op, ms, share in profile}
    assert {conv, 'RoiAlign', POINTWISE_ROI_ALIGN} <= set(ops)
    assert abs(sum(share for _, share in ops.values()) - 1) < 1e-6
    assert all(ms >= 0 for ms, _ in ops.values()) and ops[conv][0] > 0
    assert [ms for _, ms, _ in profile] == sorted((ms for _, ms, _ in profile), reverse=True)
    # The baseline has no Point.w.
    assert POINTWISE_ROI_ALIGN not in {op for op, _, _ in profile_runtime(
        backend, exported('faster').path, (128, 160), runs=1)}


def test_profile_of_a_runtime_without_a_profiler(exported, monkeypatch):
    from tsd_mmdet.deployment.runtimes.base import DeployedDetector
    from tsd_mmdet.deployment.runtimes.onnxruntime import OnnxDetector
    monkeypatch.setattr(OnnxDetector, 'profile', DeployedDetector.profile)
    with pytest.raises(ExportError, match='ONNX Runtime has no per-operator profile'):
        profile_runtime('onnxruntime', exported('tsd-faster').path, (128, 160), runs=1)


def test_latency_table_has_a_row_per_model_and_threads_and_the_ratios():
    from tsd_mmdet.deployment import latency_table
    times = {('tsd', 1): (400, 200, 100), ('base', 1): (200, 100, 80),
             ('tsd', 2): (220, 110, 60), ('base', 2): (110, 55, 50)}
    rows = [dict(name=name, threads=t, backend=b, median_ms=ms, p90_ms=ms + 1, runs=3)
            for (name, t), values in times.items()
            for b, ms in zip(('pytorch', 'onnxruntime', 'openvino'), values)]
    lines = latency_table(rows, (800, 1333), pair=True)
    assert lines[0] == ('| model | input | threads | pytorch median / p90 (ms) | onnxruntime '
                        'median / p90 (ms) | openvino median / p90 (ms) | onnxruntime / pytorch '
                        '| openvino / pytorch |')
    assert all(line.count('|') == lines[0].count('|') for line in lines)
    assert lines[2] == ('| tsd | 800x1333 | 1 | 400.0 / 401.0 | 200.0 / 201.0 | 100.0 / 101.0 | '
                        '0.50 | 0.25 |')
    assert lines[4] == '| tsd / base | | 1 | 2.00 | 2.00 | 1.25 | | |'
    assert lines[7] == '| tsd / base | | 2 | 2.00 | 2.00 | 1.20 | | |'
    assert len(lines) == 8
    assert len(latency_table(rows, (800, 1333))) == 6
