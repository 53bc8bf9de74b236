"""The ONNX translation of tsd_mmdet::deform_roi_align (RoiAlign only) against the op itself.

Covers TSD's pooling of P, Prop.w (eq. 3-4) and Point.w (eq. 5-6) under ONNX Runtime: the compiled
op and the PyTorch reference are the oracles; the model is exported once per (offset kind,
sampling_ratio, aligned) with a dynamic number of RoIs and a dynamic map size.
"""
import functools
import os
import subprocess
import sys

import onnxruntime as ort
import pytest
import torch
from torch.export import Dim

import tsd_mmdet
from tsd_mmdet.deployment import CUSTOM_TRANSLATION_TABLE, OPSET
from tsd_mmdet.ops import deform_roi_align_reference, has_extension

SCALE = 0.25  # stride 4
POOL = 7
GAMMA = 0.1
TOL = 1e-4
CHANNELS, HEIGHT, WIDTH = 4, 20, 24  # two images of 80 x 96 pixels


class _Pool(torch.nn.Module):
    def __init__(self, sampling_ratio: int, aligned: bool):
        super().__init__()
        self.sampling_ratio = sampling_ratio
        self.aligned = aligned

    def forward(self, input, rois, offset=None):
        return torch.ops.tsd_mmdet.deform_roi_align(input, rois, offset, SCALE, POOL, POOL,
                                                    self.sampling_ratio, GAMMA, self.aligned)


def _inputs(kind, k, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(2, CHANNELS, HEIGHT, WIDTH, generator=generator)
    rois = _rois(k, generator)
    shape = (k, 2) if kind == 'prop' else (k, 2, POOL, POOL)
    offset = None if kind is None else torch.randn(shape, generator=generator)
    return x, rois, offset


def _rois(k, generator):
    """k float boxes in image pixels over 2 images: inside, partly off and (the last two, for
    k >= 4) fully off the map."""
    size = torch.tensor([WIDTH, HEIGHT]) / SCALE
    xy = (torch.rand(k, 2, generator=generator) * 1.3 - 0.15) * size
    wh = (torch.rand(k, 2, generator=generator) * 0.5 + 0.02) * size
    if k >= 4:
        xy[-2:] = torch.tensor([[-60.0, -60.0], [size[0] + 20.0, 10.0]])
    batch = torch.randint(0, 2, (k, 1), generator=generator).float()
    return torch.cat([batch, xy, xy + wh], 1)


@functools.cache
def _session(kind, sampling_ratio, aligned):
    """The op exported once (dynamic K, H, W) and loaded in ONNX Runtime."""
    x, rois, offset = _inputs(kind, 8)
    dims = {'input': {2: Dim.DYNAMIC, 3: Dim.DYNAMIC}, 'rois': {0: Dim.DYNAMIC}}
    args = (x, rois) if offset is None else (x, rois, offset)
    if offset is not None:
        dims['offset'] = {0: Dim.DYNAMIC}
    program = torch.onnx.export(_Pool(sampling_ratio, aligned).eval(), args, dynamo=True,
                                custom_translation_table=CUSTOM_TRANSLATION_TABLE,
                                opset_version=OPSET, dynamic_shapes=dims, verbose=False)
    model = program.model_proto
    assert {node.domain for node in model.graph.node} <= {''}  # standard operators only
    return ort.InferenceSession(model.SerializeToString(), providers=['CPUExecutionProvider'])


def _run_onnx(kind, sampling_ratio, aligned, x, rois, offset):
    session = _session(kind, sampling_ratio, aligned)
    feed = {'input': x.numpy(), 'rois': rois.numpy()}
    if offset is not None:
        feed['offset'] = offset.numpy()
    return torch.from_numpy(session.run(None, feed)[0])


def _oracles(sampling_ratio, aligned, x, rois, offset):
    """The reference always; the compiled op where it is built."""
    args = (x, rois, offset, SCALE, POOL, POOL, sampling_ratio, GAMMA, aligned)
    out = {'reference': deform_roi_align_reference(x, rois, offset, POOL, SCALE, sampling_ratio,
                                                   GAMMA, aligned)}
    if has_extension():
        out['compiled'] = torch.ops.tsd_mmdet.deform_roi_align(*args)
    return out


def _per_roi_error(a, b):
    return (a - b).abs().flatten(1).max(1).values if a.numel() else a.new_zeros(0)


@pytest.mark.parametrize('kind', [None, 'prop', 'point'])
@pytest.mark.parametrize('sampling_ratio, aligned', [(2, True), (2, False), (0, True)])
def test_matches_the_op_on_float_boxes(kind, sampling_ratio, aligned):
    # 40 float boxes over two images, partly and fully off the map. With a fixed grid the samples
    # are the op's; with the adaptive grid (0) a box's grid ceil(size / 7) can differ by one where
    # the quotient is within rounding of an integer, which float boxes of random size never are
    # here (0 of 40 over the tolerance, measured): see the pixel-aligned test below for the rest.
    x, rois, offset = _inputs(kind, 40)
    got = _run_onnx(kind, sampling_ratio, aligned, x, rois, offset)
    assert got.shape == (40, CHANNELS, POOL, POOL)
    assert got[-2:].abs().max() == 0  # fully off the map: no sample inside
    for name, want in _oracles(sampling_ratio, aligned, x, rois, offset).items():
        assert (got - want).abs().max() <= TOL, name


@pytest.mark.parametrize('kind', [None, 'prop', 'point'])
def test_no_rois(kind):
    x, rois, offset = _inputs(kind, 0)
    got = _run_onnx(kind, 2, True, x, rois, offset)
    assert got.shape == (0, CHANNELS, POOL, POOL)


def test_other_map_size_than_exported():
    # The graph keeps H, W and K dynamic: a 13 x 31 map with 5 RoIs, Point.w.
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(2, CHANNELS, 13, 31, generator=generator)
    _, rois, offset = _inputs('point', 5, seed=1)
    got = _run_onnx('point', 2, True, x, rois, offset)
    want = deform_roi_align_reference(x, rois, offset, POOL, SCALE, 2, GAMMA, True)
    assert (got - want).abs().max() <= TOL


# Boxes on the pixel grid whose feature-map size is a multiple of the 7 bins (28, 56 or 84
# pixels at stride 4): ceil(size / 7) is exactly an integer there, and the translation recomputes
# the size of a shifted box (Prop.w) or of a bin's sub-box (Point.w) by a subtraction that can land
# one rounding step above it, so the adaptive grid takes one more sample row or column. Such a RoI
# pools other samples (not a precision error: up to ~1 here). Measured on these 200 seeded boxes:
# Prop.w 39 RoIs over the tolerance (one grid per box), Point.w 189 (one of its 49 sub-boxes
# suffices); no offset 0 (the boxes go to RoiAlign as they are). A fixed sampling_ratio (the
# shapes configs, 1) has none; detector proposals are decoded floats, not on this grid.
ADAPTIVE_PIXEL_ALIGNED = {None: 0, 'prop': 39, 'point': 189}


@pytest.mark.parametrize('kind', [None, 'prop', 'point'])
def test_adaptive_grid_on_pixel_aligned_boxes(kind):
    generator = torch.Generator().manual_seed(2)
    k = 200
    x = torch.randn(2, CHANNELS, HEIGHT, WIDTH, generator=generator)
    xy = torch.randint(0, 60, (k, 2), generator=generator).float()
    wh = torch.randint(1, 4, (k, 2), generator=generator).float() * POOL / SCALE
    rois = torch.cat([torch.randint(0, 2, (k, 1), generator=generator).float(), xy, xy + wh], 1)
    shape = (k, 2) if kind == 'prop' else (k, 2, POOL, POOL)
    offset = None if kind is None else torch.randn(shape, generator=generator) * 0.5
    got = _run_onnx(kind, 0, True, x, rois, offset)
    for name, want in _oracles(0, True, x, rois, offset).items():
        over = int((_per_roi_error(got, want) > TOL).sum())
        assert over == ADAPTIVE_PIXEL_ALIGNED[kind], name
    # The fixed grid on the same boxes: none over.
    got = _run_onnx(kind, 2, True, x, rois, offset)
    for name, want in _oracles(2, True, x, rois, offset).items():
        assert (got - want).abs().max() <= TOL, name


_NO_EXTENSION_SCRIPT = """
import sys
sys.modules['tsd_mmdet._C'] = None  # as if the extension were not built
import torch
from tsd_mmdet.ops import has_extension
from tsd_mmdet.deployment import CUSTOM_TRANSLATION_TABLE, OPSET
assert not has_extension()

class Pool(torch.nn.Module):
    def forward(self, x, rois, offset):
        return torch.ops.tsd_mmdet.deform_roi_align(x, rois, offset, 1.0, 2, 2, 2, 0.1, True)

x, rois, offset = torch.randn(1, 2, 6, 6), torch.tensor([[0.0, 1, 1, 4, 5]]), torch.randn(1, 2)
program = torch.onnx.export(Pool().eval(), (x, rois, offset), dynamo=True, verbose=False,
                            custom_translation_table=CUSTOM_TRANSLATION_TABLE, opset_version=OPSET)
print(sorted({n.op_type for n in program.model_proto.graph.node}))
"""


def test_exports_without_the_compiled_extension():
    # Export traces with the op's fake kernel only: the Python-defined op (tests/ops) suffices.
    root = os.path.dirname(os.path.dirname(os.path.abspath(tsd_mmdet.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (root, os.environ.get('PYTHONPATH')) if p))
    out = subprocess.run([sys.executable, '-c', _NO_EXTENSION_SCRIPT], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "'RoiAlign'" in out.stdout.strip().splitlines()[-1]
