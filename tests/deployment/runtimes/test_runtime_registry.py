"""The runtime registry of tsd_mmdet.deployment: a third runtime is one registered class, and an
unknown backend name stops with one line.

Not an equation of the paper: the seam of docs/deploy.md ("Runtimes").
"""
import os.path as osp

import numpy as np
import onnx
import pytest
import torch
from mmdet.structures import DetDataSample

from tsd_mmdet.deployment import (
    METADATA_KEY,
    RUNTIMES,
    DeployedDetector,
    DeployedModel,
    ExportError,
    build_runtime,
    register_runtime,
)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


class _Empty(DeployedDetector):
    """A runtime in a few lines: reads the ONNX file's contract with onnx, detects nothing."""

    title = 'Empty'

    def load(self, path, threads, precision):
        self.proto = onnx.load(path, load_external_data=False)

    def metadata(self):
        return {p.key: p.value for p in self.proto.metadata_props}.get(METADATA_KEY)

    def signature(self):
        inputs = [(i.name, 'float32', len(i.type.tensor_type.shape.dim))
                  for i in self.proto.graph.input]
        return inputs, [o.name for o in self.proto.graph.output]

    def forward(self, image):
        n = self.meta['test_cfg']['rcnn']['max_per_img']
        outputs = [np.zeros((1, n, 5), np.float32), np.full((1, n), -1, np.int64)]
        return outputs + ([np.zeros((1, n, 28, 28), np.float32)] if self.with_mask else [])


@pytest.fixture
def empty_runtime():
    """``_Empty`` registered as 'empty' for one test."""
    register_runtime('empty')(_Empty)
    yield _Empty
    del RUNTIMES['empty']


def test_a_third_runtime_is_one_registered_class(exported, empty_runtime):
    model = exported('tsd-mask')
    runtime = build_runtime('empty', model.path)
    assert isinstance(runtime, empty_runtime) and runtime.name == 'empty'
    assert runtime.meta == model.onnx.meta
    runtime.check_config(model.cfg)  # the base class's check
    outputs = runtime(np.zeros((1, 3, 96, 96)))
    assert list(outputs) == ['dets', 'labels', 'masks'] and (outputs['labels'] == -1).all()
    # What test_onnx.py's Runner runs takes it by name.
    meta = dict(img_shape=(96, 96), ori_shape=(96, 96), scale_factor=(1.0, 1.0))
    got = DeployedModel(model.path, backend='empty')(
        [torch.zeros(3, 96, 96)], [DetDataSample(metainfo=meta)])[0].pred_instances
    assert len(got) == 0 and got.masks.shape == (0, 96, 96)
    with pytest.raises(ValueError, match="runtime 'empty' is already _Empty"):
        register_runtime('empty')(type('Other', (_Empty,), {}))


def test_unknown_backend_is_one_line(exported, run_python, tmp_path):
    assert {'onnxruntime', 'openvino'} <= set(RUNTIMES)
    with pytest.raises(ExportError) as info:
        build_runtime('tensorrt', exported('faster').path)
    assert str(info.value) == (
        "unknown backend 'tensorrt': choose one of onnxruntime, openvino (or register another "
        'with tsd_mmdet.deployment.register_runtime)')
    out = run_python(osp.join(ROOT, 'tools', 'deployment', 'test_onnx.py'),
                     osp.join(ROOT, 'configs', 'shapes', 'faster-rcnn_r18_fpn_shapes.py'),
                     exported('faster').path, '--backend', 'tensorrt', '--work-dir',
                     str(tmp_path), timeout=300)
    assert out.returncode != 0
    assert out.stderr.strip().splitlines()[-1] == f'export error: {info.value}'
