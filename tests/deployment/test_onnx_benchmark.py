"""The latency benchmark (PyTorch, ONNX Runtime, OpenVINO) and ORT's profile on a tiny case.

Not an equation of the paper; the profile names the RoiAlign of Point.w (eq. 5-6) apart.
"""
import pytest

from tsd_mmdet.deployment import benchmark_latency, profile_onnx
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


def test_profile_names_the_pointwise_roi_align(exported, tmp_path):
    profile = profile_onnx(exported('tsd-faster').path, (128, 160), runs=2,
                           profile_dir=str(tmp_path))
    ops = {op: (ms, share) for op, ms, share in profile}
    assert {'Conv', 'RoiAlign', 'RoiAlign (Point.w sub-boxes)', 'NonMaxSuppression'} <= set(ops)
    assert abs(sum(share for _, share in ops.values()) - 1) < 1e-6
    assert all(ms > 0 for ms, _ in ops.values())
    # The baseline has no Point.w.
    assert 'RoiAlign (Point.w sub-boxes)' not in {op for op, _, _ in profile_onnx(
        exported('faster').path, (128, 160), runs=1, profile_dir=str(tmp_path))}
