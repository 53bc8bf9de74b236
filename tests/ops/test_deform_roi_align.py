"""Tests of tsd_mmdet.ops.deform_roi_align against torchvision's RoIAlign and the PyTorch reference.

Covers TSD's Prop.w (eq. 3-4) and Point.w (eq. 5-6) pooling: values, gradients, errors, compile.
"""
import functools
import importlib
import math
import os
import re
import subprocess
import sys
import warnings

import pytest
import torch
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st

import tsd_mmdet
from tsd_mmdet.ops import (
    DeformRoIAlign,
    deform_roi_align,
    deform_roi_align_reference,
    has_extension,
)
from tsd_mmdet.ops.reference import MAX_SAMPLING_GRID

_dra = importlib.import_module('tsd_mmdet.ops.deform_roi_align')

needs_ext = pytest.mark.skipif(not has_extension(), reason='tsd_mmdet._C is not built')
_skip_no_cuda = pytest.mark.skipif(not (has_extension() and torch.cuda.is_available()),
                                   reason='needs CUDA and tsd_mmdet._C built with CUDA')


def needs_cuda(test):
    """Mark a test `cuda` (registered in pyproject.toml) and skip it without a GPU."""
    return pytest.mark.cuda(_skip_no_cuda(test))


IMPLS = [pytest.param('extension', marks=needs_ext), 'reference']


def _run(impl, *args, **kwargs):
    if impl == 'extension':
        return deform_roi_align(*args, **kwargs)
    return deform_roi_align_reference(*args, **kwargs)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def make_rois(k, n, height, width, spatial_scale=1.0, dtype=torch.float64, generator=None,
              degenerate=0):
    """(k, 5) random non-integer boxes in image coordinates, some partly off the feature map.

    The last ``degenerate`` boxes have x2 < x1 or y2 < y1.
    """
    size = torch.tensor([width, height], dtype=torch.float64) / spatial_scale
    xy = (torch.rand(k, 2, generator=generator, dtype=torch.float64) * 1.2 - 0.1) * size
    wh = (torch.rand(k, 2, generator=generator, dtype=torch.float64) * 0.6 + 0.02) * size
    xy2 = xy + wh
    if degenerate:
        xy2[-degenerate:] = xy[-degenerate:] - wh[-degenerate:] * 0.3
    batch = torch.randint(0, n, (k, 1), generator=generator).to(torch.float64)
    return torch.cat([batch, xy, xy2], 1).to(dtype)


def make_offset(kind, k, oh, ow, dtype=torch.float64, scale=1.0, generator=None):
    if kind is None:
        return None
    shape = (k, 2) if kind == 'prop' else (k, 2, oh, ow)
    return torch.randn(shape, generator=generator, dtype=torch.float64).mul(scale).to(dtype)


def feature_size(rois, spatial_scale, aligned):
    """(w, h) of every RoI on the feature map, as the kernels compute it: (K, 2)."""
    shift = 0.5 if aligned else 0.0
    x1, y1, x2, y2 = (rois[:, i] * spatial_scale - shift for i in range(1, 5))
    wh = torch.stack([x2 - x1, y2 - y1], 1)
    return wh if aligned else wh.clamp(min=1.0)


# ---- forward vs torchvision -----------------------------------------------------------------

@pytest.mark.parametrize('impl', IMPLS)
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('aligned', [True, False])
@pytest.mark.parametrize('sampling_ratio', [0, 2])
@pytest.mark.parametrize('spatial_scale', [1.0, 0.125])
@pytest.mark.parametrize('offset_kind', [None, 'prop', 'point'])
def test_forward_matches_torchvision(impl, dtype, aligned, sampling_ratio, spatial_scale,
                                     offset_kind):
    x = torch.randn(2, 3, 11, 14, dtype=dtype)
    rois = make_rois(12, 2, 11, 14, spatial_scale, dtype, degenerate=2)
    offset = make_offset(offset_kind, 12, 3, 4, dtype)
    if offset is not None:
        offset.zero_()
    expected = torchvision.ops.roi_align(x, rois, (3, 4), spatial_scale, sampling_ratio,
                                         aligned=aligned)
    out = _run(impl, x, rois, offset, (3, 4), spatial_scale, sampling_ratio, 0.1, aligned)
    assert out.shape == (12, 3, 3, 4) and out.dtype == dtype
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize('impl', IMPLS)
@pytest.mark.parametrize('aligned', [True, False])
@pytest.mark.parametrize('sampling_ratio', [0, 2])
@pytest.mark.parametrize('spatial_scale', [1.0, 0.125])
def test_prop_equals_roi_align_of_translated_boxes(impl, aligned, sampling_ratio, spatial_scale):
    gamma = 0.3
    x = torch.randn(2, 4, 12, 15, dtype=torch.float64)
    rois = make_rois(10, 2, 12, 15, spatial_scale)
    offset = make_offset('prop', 10, 5, 5)
    # Eq. 3-4: translation gamma * offset * (w, h) on the feature map, / spatial_scale in the image.
    shift = gamma * offset * feature_size(rois, spatial_scale, aligned) / spatial_scale
    moved = rois.clone()
    moved[:, 1:] += shift.repeat(1, 2)
    expected = torchvision.ops.roi_align(x, moved, 5, spatial_scale, sampling_ratio,
                                         aligned=aligned)
    out = _run(impl, x, rois, offset, 5, spatial_scale, sampling_ratio, gamma, aligned)
    torch.testing.assert_close(out, expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize('impl', IMPLS)
def test_point_with_uniform_offset_equals_prop(impl):
    x = torch.randn(1, 2, 9, 9, dtype=torch.float64)
    rois = make_rois(5, 1, 9, 9)
    prop = make_offset('prop', 5, 3, 3)
    point = prop[:, :, None, None].expand(5, 2, 3, 3)
    torch.testing.assert_close(_run(impl, x, rois, point, 3), _run(impl, x, rois, prop, 3))


# ---- extension vs reference -------------------------------------------------------------------

@needs_ext
@pytest.mark.parametrize('offset_kind', [None, 'prop', 'point'])
@pytest.mark.parametrize('aligned', [True, False])
@pytest.mark.parametrize('sampling_ratio', [0, 2])
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_extension_matches_reference(offset_kind, aligned, sampling_ratio, dtype):
    x = torch.randn(2, 5, 13, 10, dtype=dtype, requires_grad=True)
    rois = make_rois(9, 2, 13, 10, 0.5, dtype)
    offset = make_offset(offset_kind, 9, 4, 3, dtype, scale=2.0)
    inputs = [x] if offset is None else [x, offset.requires_grad_()]
    args = (rois, offset, (4, 3), 0.5, sampling_ratio, 0.4, aligned)
    out = deform_roi_align(x, *args)
    ref = deform_roi_align_reference(x, *args)
    tol = {'rtol': 1e-5, 'atol': 1e-5} if dtype == torch.float32 else {}
    torch.testing.assert_close(out, ref, **tol)
    grad = torch.randn_like(out)
    got = torch.autograd.grad(out, inputs, grad)
    want = torch.autograd.grad(ref, inputs, grad)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, **tol)


# The intra-op thread count torch starts with (the CPU backward splits its work into that many
# chunks); read at import, before any test changes it. At least 2, so that 'default' splits the work
# also where the suite runs one thread per worker (tests/conftest.py).
DEFAULT_THREADS = max(2, torch.get_num_threads())


@pytest.fixture
def num_threads(request):
    """Run the test under ``request.param`` intra-op threads ('one' or 'default'), then restore."""
    before = torch.get_num_threads()
    torch.set_num_threads(1 if request.param == 'one' else DEFAULT_THREADS)
    yield torch.get_num_threads()
    torch.set_num_threads(before)


@needs_ext
@pytest.mark.parametrize('num_threads', ['one', 'default'], indirect=True)
@pytest.mark.parametrize('channels', [5, 16, 24, 256])
def test_extension_matches_reference_across_channel_blocks(channels, num_threads):
    """The CPU kernels work on blocks of 8 channels, split into one chunk per thread, and the
    offset gradient is a sum over every block: 5 channels are one partial block, 16 and 24 two and
    three, 256 a detector's 32. Forward, grad_input and both offset kinds' grad_offset equal the
    reference's, under one thread (every block in one chunk) and the default count."""
    gen = torch.Generator().manual_seed(channels)
    x = torch.randn(2, channels, 9, 11, dtype=torch.float64, generator=gen, requires_grad=True)
    rois = make_rois(7, 2, 9, 11, 0.5, generator=gen)
    for offset_kind in (None, 'prop', 'point'):
        offset = make_offset(offset_kind, 7, 3, 2, scale=2.0, generator=gen)
        inputs = [x] if offset is None else [x, offset.requires_grad_()]
        args = (rois, offset, (3, 2), 0.5, 0, 0.4, True)
        out = deform_roi_align(x, *args)
        ref = deform_roi_align_reference(x, *args)
        torch.testing.assert_close(out, ref)
        grad = torch.randn(out.shape, dtype=out.dtype, generator=gen)
        got = torch.autograd.grad(out, inputs, grad)
        want = torch.autograd.grad(ref, inputs, grad)
        for name, g, w in zip(('grad_input', 'grad_offset'), got, want):
            torch.testing.assert_close(g, w, msg=lambda m, n=name, k=offset_kind: f'{n} '
                                       f'({k} offset, {channels} channels, {num_threads} '
                                       f'threads): {m}')


def gradcheck_case(offset_kind, device='cpu'):
    """((x,) or (x, offset), rois) of the gradcheck tests: float64 leaves on ``device``. Large
    offsets push samples past the borders (clamped and out-of-bounds regions)."""
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 2, 7, 8, dtype=torch.float64, generator=gen)
    rois = make_rois(5, 2, 7, 8, 0.5, generator=gen)
    offset = make_offset(offset_kind, 5, 3, 2, scale=3.0, generator=gen)
    inputs = [x] if offset is None else [x, offset]
    return tuple(t.to(device).requires_grad_() for t in inputs), rois.to(device)


@pytest.mark.parametrize('impl', IMPLS)
@pytest.mark.parametrize('offset_kind', [None, 'prop', 'point'])
@pytest.mark.parametrize('aligned', [True, False])
@pytest.mark.parametrize('sampling_ratio', [0, 2])
def test_gradcheck(impl, offset_kind, aligned, sampling_ratio):
    inputs, rois = gradcheck_case(offset_kind)

    def fn(inp, off=None):
        return _run(impl, inp, rois, off, (3, 2), 0.5, sampling_ratio, 0.5, aligned)

    # The slow reference gets gradcheck's fast mode (random projections of the Jacobian).
    assert torch.autograd.gradcheck(fn, inputs, fast_mode=impl == 'reference')


# Random calls of the op (shapes, sampling, offsets, alignment, scale, gamma) for the fuzz tests.
FUZZ_CASES = dict(
    n=st.integers(1, 2), c=st.integers(1, 10), height=st.integers(1, 12),
    width=st.integers(1, 12), k=st.integers(0, 6), oh=st.integers(1, 4), ow=st.integers(1, 4),
    sampling_ratio=st.integers(-1, 3), offset_kind=st.sampled_from([None, 'prop', 'point']),
    aligned=st.booleans(), spatial_scale=st.sampled_from([0.25, 0.5, 1.0]),
    gamma=st.floats(-1.0, 1.0), seed=st.integers(0, 2**31 - 1))


@needs_ext
@settings(max_examples=30, deadline=None, derandomize=True)
@given(**FUZZ_CASES)
def test_fuzz_extension_vs_reference(n, c, height, width, k, oh, ow, sampling_ratio, offset_kind,
                                     aligned, spatial_scale, gamma, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, height, width, dtype=torch.float64, generator=gen, requires_grad=True)
    rois = make_rois(k, n, height, width, spatial_scale, generator=gen)
    offset = make_offset(offset_kind, k, oh, ow, scale=2.0, generator=gen)
    inputs = [x] if offset is None else [x, offset.requires_grad_()]
    args = (rois, offset, (oh, ow), spatial_scale, sampling_ratio, gamma, aligned)
    out = deform_roi_align(x, *args)
    ref = deform_roi_align_reference(x, *args)
    assert out.shape == (k, c, oh, ow)
    torch.testing.assert_close(out, ref)
    grad = torch.randn(out.shape, dtype=out.dtype, generator=gen)
    for g, w in zip(torch.autograd.grad(out, inputs, grad), torch.autograd.grad(ref, inputs, grad)):
        torch.testing.assert_close(g, w)


@needs_ext
def test_backward_is_deterministic():
    x = torch.randn(2, 16, 20, 20, requires_grad=True)
    rois = make_rois(64, 2, 20, 20, dtype=torch.float32)
    offset = make_offset('point', 64, 7, 7, torch.float32).requires_grad_()
    grad = torch.randn(64, 16, 7, 7)
    runs = [torch.autograd.grad(deform_roi_align(x, rois, offset), (x, offset), grad)
            for _ in range(2)]
    assert all(torch.equal(a, b) for a, b in zip(*runs))


@needs_ext
@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_cpu_half_precision(dtype):
    # Inputs representable in `dtype`, so that only the arithmetic differs from float32.
    x = torch.randn(1, 4, 10, 10).to(dtype)
    rois = make_rois(6, 1, 10, 10, dtype=torch.float32).to(dtype)
    offset = make_offset('point', 6, 3, 3, torch.float32).to(dtype)
    expected = deform_roi_align(x.float(), rois.float(), offset.float(), 3)
    out = deform_roi_align(x, rois, offset, 3)
    assert out.dtype == dtype
    torch.testing.assert_close(out.float(), expected, rtol=0.02, atol=0.02)


@needs_ext
def test_cpu_autocast():
    # Runs in float32 and returns the input's dtype, like torchvision's roi_align.
    x = torch.randn(1, 3, 9, 9).bfloat16()
    rois = make_rois(4, 1, 9, 9, dtype=torch.float32).bfloat16()
    expected = deform_roi_align(x.float(), rois.float(), None, 3)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = deform_roi_align(x, rois, None, 3)
        out_f = deform_roi_align(x.float(), rois.float(), None, 3)
    assert out.dtype == torch.bfloat16 and out_f.dtype == torch.float32
    torch.testing.assert_close(out, expected.bfloat16())
    torch.testing.assert_close(out_f, expected)


# ---- edge cases -----------------------------------------------------------------------------

@pytest.mark.parametrize('impl', IMPLS)
@pytest.mark.parametrize('offset_kind', [None, 'prop', 'point'])
def test_empty_rois(impl, offset_kind):
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    rois = torch.zeros(0, 5)
    offset = make_offset(offset_kind, 0, 2, 3, torch.float32)
    inputs = [x] if offset is None else [x, offset.requires_grad_()]
    out = _run(impl, x, rois, offset, (2, 3))
    assert out.shape == (0, 3, 2, 3)
    grads = torch.autograd.grad(out.sum(), inputs)
    assert grads[0].shape == x.shape and not grads[0].any()
    if offset is not None:
        assert grads[1].shape == offset.shape


@pytest.mark.parametrize('impl', IMPLS)
def test_samples_outside_contribute_zero(impl):
    x = torch.randn(1, 2, 6, 6, requires_grad=True)
    rois = torch.tensor([[0.0, 20.0, 20.0, 30.0, 30.0], [0.0, 1.0, 1.0, 4.0, 4.0]])
    offset = torch.tensor([[0.0, 0.0], [50.0, 0.0]], requires_grad=True)  # second moves away
    out = _run(impl, x, rois, offset, 2, 1.0, 2, 1.0)
    assert not out.any()
    gx, go = torch.autograd.grad(out.sum(), (x, offset))
    assert not gx.any() and not go.any()


@pytest.mark.parametrize('impl', IMPLS)
def test_non_contiguous_inputs(impl):
    x = torch.randn(2, 6, 10, 12, dtype=torch.float64)
    rois = make_rois(7, 2, 10, 12)
    offset = make_offset('point', 7, 3, 3)
    expected = _run(impl, x, rois, offset, 3, 1.0, 2)
    x_nc = x.to(memory_format=torch.channels_last)
    rois_nc = torch.cat([rois, torch.zeros(7, 3, dtype=rois.dtype)], 1)[:, :5]
    offset_nc = offset.permute(0, 1, 3, 2).contiguous().permute(0, 1, 3, 2)
    assert not (x_nc.is_contiguous() or rois_nc.is_contiguous() or offset_nc.is_contiguous())
    x_nc.requires_grad_()
    offset_nc.requires_grad_()
    out = _run(impl, x_nc, rois_nc, offset_nc, 3, 1.0, 2)
    torch.testing.assert_close(out, expected)
    # Non-contiguous (expanded) output gradient.
    gx, go = torch.autograd.grad(out.sum(), (x_nc, offset_nc))
    x_c, off_c = x.clone().requires_grad_(), offset.clone().requires_grad_()
    want = torch.autograd.grad(_run(impl, x_c, rois, off_c, 3, 1.0, 2).sum(), (x_c, off_c))
    torch.testing.assert_close(gx, want[0])
    torch.testing.assert_close(go, want[1])


# ---- non-finite and enormous RoIs, non-finite offsets, empty maps (same on every device) -------

# RoIs with no samples: their output is zeros, with zero gradients. 'overflowing' is finite in
# the image but its float32 width overflows; 'enormous' has an adaptive grid of ~1e9 samples per
# bin side (a hang on a GPU, and a failed allocation on CPU, without the bound).
BAD_ROIS = {
    'inf_x2': [0.0, 1.0, 1.0, math.inf, 6.0],
    'neg_inf_x1': [0.0, -math.inf, 1.0, 5.0, 6.0],
    'inf_y2': [0.0, 1.0, 1.0, 5.0, math.inf],
    'nan_y1': [0.0, 1.0, math.nan, 5.0, 6.0],
    'nan_box': [0.0, math.nan, math.nan, math.nan, math.nan],
    'overflowing': [0.0, -3e38, 0.0, 3e38, 5.0],
    'enormous': [0.0, 0.0, 0.0, 2e9, 2e9],
}
GOOD_ROIS = [[0.0, 1.0, 1.0, 5.0, 6.0], [0.0, 2.5, 0.5, 7.0, 7.5]]


def _pool_with_grads(impl, x, rois, offset, grad, *args):
    """(output, grad_input, grad_offset or None) of one call on fresh leaves."""
    x = x.detach().clone().requires_grad_()
    offset = None if offset is None else offset.detach().clone().requires_grad_()
    out = _run(impl, x, rois, offset, *args)
    inputs = [x] if offset is None else [x, offset]
    grads = torch.autograd.grad(out, inputs, grad)
    return out, grads[0], grads[1] if offset is not None else None


@pytest.mark.parametrize('impl', IMPLS)
@pytest.mark.parametrize('bad', list(BAD_ROIS))
@pytest.mark.parametrize('sampling_ratio', [0, 2])
@pytest.mark.parametrize('aligned', [True, False])
@pytest.mark.parametrize('offset_kind', [None, 'prop', 'point'])
def test_bad_roi_pools_to_zeros(impl, bad, sampling_ratio, aligned, offset_kind):
    # The bad RoI sits between two good ones, which must come out as if it were not there.
    x = torch.randn(1, 3, 8, 8)
    good = torch.tensor(GOOD_ROIS)
    rois = torch.cat([good[:1], torch.tensor([BAD_ROIS[bad]]), good[1:]])
    offset = make_offset(offset_kind, 3, 2, 3, torch.float32)
    grad = torch.randn(3, 3, 2, 3)
    args = ((2, 3), 1.0, sampling_ratio, 0.5, aligned)
    out, gx, go = _pool_with_grads(impl, x, rois, offset, grad, *args)
    assert not out[1].any()
    keep = [0, 2]
    want = _pool_with_grads(impl, x, good, None if offset is None else offset[keep], grad[keep],
                            *args)
    torch.testing.assert_close(out[keep], want[0])
    torch.testing.assert_close(gx, want[1])
    if offset is not None:
        assert not go[1].any()  # zero, not NaN
        torch.testing.assert_close(go[keep], want[2])


@pytest.mark.parametrize('impl', IMPLS)
def test_adaptive_grid_bound(impl):
    # aligned=False, scale 1, output 1x1: the adaptive grid is ceil(x2 - x1) by ceil(y2 - y1).
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    at_bound = torch.tensor([[0.0, -2.0, -2.0, MAX_SAMPLING_GRID - 2.0, 2.0]],
                            dtype=torch.float64)
    above = at_bound.clone()
    above[0, 3] += 0.5  # grid_w = MAX_SAMPLING_GRID + 1
    out = _run(impl, x, at_bound, None, 1, 1.0, 0, 0.1, False)
    expected = torchvision.ops.roi_align(x, at_bound, 1, 1.0, 0, aligned=False)
    assert expected.abs().min() > 0
    torch.testing.assert_close(out, expected)
    out = _run(impl, x, above, None, 1, 1.0, 0, 0.1, False)
    assert not out.any()
    assert not torch.autograd.grad(out.sum(), x)[0].any()


@pytest.mark.parametrize('impl', IMPLS)
@pytest.mark.parametrize('value', [math.inf, -math.inf, math.nan])
@pytest.mark.parametrize('offset_kind', ['prop', 'point'])
def test_non_finite_offset_contributes_zero(impl, value, offset_kind):
    # The samples moved to a non-finite position are outside the map: zero, with zero gradients.
    x = torch.randn(1, 2, 8, 8, requires_grad=True)
    rois = torch.tensor(GOOD_ROIS)
    offset = make_offset(offset_kind, 2, 2, 2, torch.float32)
    moved = (1, 0) if offset_kind == 'prop' else (1, 0, 0, 1)
    offset[moved] = value
    offset.requires_grad_()
    out = _run(impl, x, rois, offset, 2, 1.0, 2, 0.5)
    gx, go = torch.autograd.grad(out, (x, offset), torch.randn_like(out))
    assert torch.isfinite(out).all() and torch.isfinite(gx).all() and torch.isfinite(go).all()
    if offset_kind == 'prop':
        assert not out[1].any() and not go[1].any()
    else:
        assert not out[1, :, 0, 1].any() and not go[1, :, 0, 1].any()
        assert out[1].any() and go[1].any()  # the other bins of RoI 1 still sample
    assert out[0].any() and go[0].any()


@pytest.mark.parametrize('impl', IMPLS)
@pytest.mark.parametrize('size', [(0, 5), (5, 0), (0, 0)])
@pytest.mark.parametrize('sampling_ratio', [0, 2])
@pytest.mark.parametrize('offset_kind', [None, 'prop', 'point'])
def test_empty_feature_map_pools_to_zeros(impl, size, sampling_ratio, offset_kind):
    # Both RoIs have samples in [-1, 0], inside torchvision's band for a 0-sized dimension.
    x = torch.randn(2, 3, *size, requires_grad=True)
    rois = torch.tensor([[0.0, 0.0, 0.0, 1.0, 1.0], [1.0, -0.25, 0.0, 3.0, 0.75]])
    offset = make_offset(offset_kind, 2, 2, 2, torch.float32, scale=0.1)
    inputs = [x] if offset is None else [x, offset.requires_grad_()]
    out = _run(impl, x, rois, offset, 2, 1.0, sampling_ratio, 0.1)
    assert out.shape == (2, 3, 2, 2) and not out.any()
    grads = torch.autograd.grad(out, inputs, torch.randn_like(out))
    assert grads[0].shape == x.shape
    if offset is not None:
        assert grads[1].shape == offset.shape and not grads[1].any()


# ---- errors raised by the C++ checks (in a child process) -------------------------------------

def _python_child(code: str, timeout: float) -> subprocess.CompletedProcess:
    """Runs ``code`` in a child Python that imports tsd_mmdet from this checkout."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(tsd_mmdet.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (root, os.environ.get('PYTHONPATH')) if p))
    return subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True,
                          timeout=timeout)


# Inputs only the C++ checks catch (a batch index needs the RoIs' values; the others bypass the
# Python checks through torch.ops). Raised in a child: on the GPU machine's image (torch 2.11,
# Python 3.12.3) such an error crashed the process (segfault) instead of raising, and took the
# test worker with it; here a crash fails these tests, saying where.
CPP_ERRORS = {
    'batch_index_2': ('deform_roi_align(x, rois(2.0))', 'batch index'),
    'batch_index_nan': ('deform_roi_align(x, rois(nan))', 'batch index'),
    'batch_index_inf': ('deform_roi_align(x, rois(inf))', 'batch index'),
    'batch_index_neg_inf': ('deform_roi_align(x, rois(-inf))', 'batch index'),
    'batch_index_1e30': ('deform_roi_align(x, rois(1e30))', 'batch index'),
    'batch_index_neg_1': ('deform_roi_align(x, rois(-1.0))', 'batch index'),
    'rois_shape': ('op(x, torch.zeros(2, 4), None, 1.0, 2, 2, 0, 0.1, True)',
                   r'rois must be a \(K, 5\) tensor'),
    'offset_shape': ('op(x, torch.zeros(2, 5), torch.zeros(2, 3), 1.0, 2, 2, 0, 0.1, True)',
                     'offset must be'),
    'output_size': ('op(x, torch.zeros(2, 5), None, 1.0, 0, 2, 0, 0.1, True)',
                    'output size must be positive'),
    'sampling_ratio': ('op(x, torch.zeros(2, 5), None, 1.0, 2, 2, 2**32 + 2, 0.1, True)',
                       'sampling_ratio must be <= 512'),
}
_CPP_ERRORS_SCRIPT = """
from math import inf, nan
import torch
from tsd_mmdet.ops import deform_roi_align
op = torch.ops.tsd_mmdet.deform_roi_align
x = torch.randn(2, 1, 5, 5)
def rois(index):
    return torch.tensor([[index, 0.0, 0.0, 3.0, 3.0]])
for name, call in {calls!r}.items():
    print('start', name, flush=True)  # a crash in this call leaves this as the last line
    try:
        eval(call)
        print('no error', name, flush=True)
    except RuntimeError as error:
        print('raised', name, str(error).splitlines()[0], flush=True)
"""


@functools.cache
def _cpp_errors_in_child() -> tuple[dict, str]:
    """({case: 'raised <message>' or 'no error'}, what went wrong with the child, or '')."""
    code = _CPP_ERRORS_SCRIPT.format(calls={k: v[0] for k, v in CPP_ERRORS.items()})
    try:
        result = _python_child(code, timeout=120)
    except subprocess.TimeoutExpired:
        return {}, 'the C++ errors did not finish within 120 s'
    outcome, last = {}, None
    for line in result.stdout.splitlines():
        kind, _, rest = line.partition(' ')
        name, _, message = rest.partition(' ')
        if kind == 'start':
            last = name
        else:
            outcome[name] = f'{kind} {message}'.strip()
    problem = ''
    if result.returncode != 0:
        problem = (f'the child exited with {result.returncode} (a negative value is a signal: -11 '
                   f'is a segfault) in case {last!r}: {result.stderr[-2000:]}')
    return outcome, problem


@needs_ext
@pytest.mark.parametrize('case', list(CPP_ERRORS))
def test_cpp_error_raises(case):
    outcome, problem = _cpp_errors_in_child()
    assert case in outcome, problem or f'no outcome for {case}'
    assert outcome[case].startswith('raised '), outcome[case]
    assert re.search(CPP_ERRORS[case][1], outcome[case]), outcome[case]


# ---- bad input --------------------------------------------------------------------------------

def _good_args():
    x = torch.randn(2, 3, 8, 8)
    rois = torch.tensor([[0.0, 1.0, 1.0, 5.0, 6.0], [1.0, 2.0, 0.5, 7.0, 7.5]])
    return {'input': x, 'rois': rois, 'offset': torch.zeros(2, 2), 'output_size': (2, 3),
            'spatial_scale': 1.0, 'sampling_ratio': 0, 'gamma': 0.1, 'aligned': True}


BAD_INPUTS = [
    ('input', [1.0], TypeError, 'input must be a torch.Tensor'),
    ('input', torch.randn(3, 8, 8), ValueError, r'input must be a \(N, C, H, W\) tensor'),
    ('input', torch.ones(2, 3, 8, 8, dtype=torch.int64), TypeError, 'input must be a floating'),
    ('rois', None, TypeError, 'rois must be a torch.Tensor'),
    ('rois', torch.zeros(3, 4), ValueError,
     r'rois must be a \(K, 5\) tensor, got shape \(3, 4\)'),
    ('rois', torch.zeros(2, 5, 1), ValueError, r'rois must be a \(K, 5\) tensor'),
    ('rois', torch.zeros(2, 5, dtype=torch.float64), TypeError, 'rois must have the dtype'),
    ('rois', torch.zeros(2, 5, device='meta'), ValueError, 'rois must be on the device'),
    ('offset', torch.zeros(3, 2), ValueError, r'offset must be a \(K, 2\) or \(K, 2, oh, ow\)'),
    ('offset', torch.zeros(2, 2, 3, 2), ValueError, r'got shape \(2, 2, 3, 2\)'),
    ('offset', torch.zeros(2, 3), ValueError, 'offset must be'),
    ('offset', torch.zeros(2, 2, dtype=torch.float64), TypeError, 'offset must have the dtype'),
    ('offset', torch.zeros(2, 2, device='meta'), ValueError, 'offset must be on the device'),
    ('offset', [[0.0, 0.0]], TypeError, 'offset must be None or a torch.Tensor'),
    ('output_size', 0, ValueError, 'output_size must be positive'),
    ('output_size', (2, -1), ValueError, 'output_size must be positive'),
    ('output_size', (2, 2, 2), ValueError, 'output_size must be an int or a pair'),
    ('output_size', 2.5, TypeError, 'output_size must be an int'),
    ('output_size', True, TypeError, 'output_size must be an int'),
    ('spatial_scale', '1', TypeError, 'spatial_scale must be a number'),
    ('spatial_scale', 0.0, ValueError, 'spatial_scale must be finite and positive'),
    ('spatial_scale', math.inf, ValueError, 'spatial_scale must be finite and positive'),
    ('sampling_ratio', 2.0, TypeError, 'sampling_ratio must be an int'),
    ('sampling_ratio', MAX_SAMPLING_GRID + 1, ValueError, 'sampling_ratio must be <= 512'),
    ('gamma', None, TypeError, 'gamma must be a number'),
    ('gamma', math.nan, ValueError, 'gamma must be finite'),
    ('gamma', -math.inf, ValueError, 'gamma must be finite'),
    ('aligned', 1, TypeError, 'aligned must be a bool'),
]


@pytest.mark.parametrize('fn', [deform_roi_align, deform_roi_align_reference])
@pytest.mark.parametrize('name,value,exc,match', BAD_INPUTS,
                         ids=[f'{b[0]}-{i}' for i, b in enumerate(BAD_INPUTS)])
def test_bad_input_raises(fn, name, value, exc, match):
    args = _good_args()
    fn(**args)  # the unmodified arguments are fine
    args[name] = value
    with pytest.raises(exc, match=match):
        fn(**args)


# ---- module, compile, registration, fallback --------------------------------------------------

def test_module_defaults():
    m = DeformRoIAlign(7, 0.25)
    assert (m.output_size, m.spatial_scale, m.sampling_ratio, m.gamma, m.aligned) == (
        (7, 7), 0.25, 0, 0.1, True)


@pytest.mark.parametrize('impl', IMPLS)
def test_samples_exactly_on_the_border_band_count(impl):
    """A sample at exactly -1 or H (W) is still inside torchvision's band (clamped to the edge);
    one 1x1 bin with one sample at each of those four positions."""
    x = torch.randn(1, 2, 5, 6, dtype=torch.float64)
    # aligned=False, sampling_ratio=1: the sample is the box centre.
    rois = torch.tensor([[0, -2.0, 1.0, 0.0, 3.0],    # x = -1
                         [0, 5.0, 1.0, 7.0, 3.0],     # x = 6 = W
                         [0, 1.0, -2.0, 3.0, 0.0],    # y = -1
                         [0, 1.0, 4.0, 3.0, 6.0]],    # y = 5 = H
                        dtype=torch.float64)
    expected = torchvision.ops.roi_align(x, rois, 1, 1.0, 1, aligned=False)
    assert expected.abs().min() > 0
    torch.testing.assert_close(_run(impl, x, rois, None, 1, 1.0, 1, 0.1, False), expected)


def test_module():
    m = DeformRoIAlign(output_size=(2, 3), spatial_scale=0.5, sampling_ratio=2, gamma=0.2)
    assert repr(m) == ('DeformRoIAlign(output_size=(2, 3), spatial_scale=0.5, sampling_ratio=2, '
                       'gamma=0.2, aligned=True)')
    x = torch.randn(2, 3, 8, 8)
    rois = make_rois(4, 2, 8, 8, 0.5, torch.float32)
    offset = make_offset('point', 4, 2, 3, torch.float32)
    torch.testing.assert_close(m(x, rois, offset),
                               deform_roi_align(x, rois, offset, (2, 3), 0.5, 2, 0.2, True))
    torch.testing.assert_close(m(x, rois), deform_roi_align(x, rois, None, (2, 3), 0.5, 2))
    unaligned = DeformRoIAlign((2, 3), 0.5, sampling_ratio=2, aligned=False)
    torch.testing.assert_close(unaligned(x, rois),
                               torchvision.ops.roi_align(x, rois, (2, 3), 0.5, 2, aligned=False))
    with pytest.raises(ValueError, match='output_size must be positive'):
        DeformRoIAlign(0, 1.0)
    with pytest.raises(ValueError, match='gamma must be finite'):
        DeformRoIAlign(7, 1.0, gamma=math.nan)


@needs_ext
@pytest.mark.parametrize('offset_kind', [None, 'prop', 'point'])
def test_pre_2_4_autograd_function(offset_kind, monkeypatch):
    """torch 2.1-2.3 have no torch.library.register_autograd: deform_roi_align goes through
    _DeformRoIAlignFunction there. Forced here, it gives the registered op's values and passes
    gradcheck (in float64) on input and offset."""
    module = importlib.import_module('tsd_mmdet.ops.deform_roi_align')
    x = torch.randn(2, 3, 6, 7, dtype=torch.float64, requires_grad=True)
    rois = make_rois(4, 2, 6, 7)
    offset = make_offset(offset_kind, 4, 2, 2)
    want = deform_roi_align(x, rois, offset, 2, 1.0, 2, 0.1, True)
    monkeypatch.setattr(module, '_HAS_REGISTER_FAKE', False)
    got = deform_roi_align(x, rois, offset, 2, 1.0, 2, 0.1, True)
    assert got.grad_fn is not None and 'DeformRoIAlignFunction' in type(got.grad_fn).__name__
    torch.testing.assert_close(got, want)
    inputs = (x,) if offset is None else (x, offset.requires_grad_())
    assert torch.autograd.gradcheck(
        lambda *t: deform_roi_align(t[0], rois, t[1] if len(t) > 1 else None, 2, 1.0, 2, 0.1,
                                    True), inputs)


@needs_ext
@pytest.mark.parametrize('offset_kind', [None, 'prop', 'point'])
def test_torch_compile_fullgraph(offset_kind):
    check_compile_fullgraph(offset_kind, 'cpu', 'aot_eager')


def check_compile_fullgraph(offset_kind, device, backend):
    """torch.compile(fullgraph=True) of the op with a pointwise tail (for inductor to fuse) gives
    the eager value and gradients, on ``device`` with ``backend``."""
    torch._dynamo.reset()
    x = torch.randn(2, 3, 9, 11, device=device, requires_grad=True)
    rois = make_rois(5, 2, 9, 11, 0.5, torch.float32).to(device)
    offset = make_offset(offset_kind, 5, 3, 3, torch.float32)
    offset = None if offset is None else offset.to(device).requires_grad_()
    inputs = [x] if offset is None else [x, offset]

    def fn(inp, off):
        return (deform_roi_align(inp, rois, off, 3, 0.5, 2, 0.1, True).relu() * 2).sum()

    compiled = torch.compile(fn, fullgraph=True, backend=backend)
    got = compiled(x, offset)
    want = fn(x, offset)
    torch.testing.assert_close(got, want)
    for g, w in zip(torch.autograd.grad(got, inputs), torch.autograd.grad(want, inputs)):
        torch.testing.assert_close(g, w)
    torch._dynamo.reset()


@needs_ext
@pytest.mark.skipif(not hasattr(torch.library, 'opcheck'),
                    reason='torch.library.opcheck is torch >= 2.4 (the op registers its fake '
                    'kernel and autograd the older way there; the other tests cover them)')
@pytest.mark.parametrize('offset_kind', [None, 'prop', 'point'])
def test_opcheck(offset_kind):
    x = torch.randn(2, 3, 6, 7, dtype=torch.float64, requires_grad=True)
    rois = make_rois(4, 2, 6, 7)
    offset = make_offset(offset_kind, 4, 2, 2)
    if offset is not None:
        offset.requires_grad_()
    torch.library.opcheck(torch.ops.tsd_mmdet.deform_roi_align.default,
                          (x, rois, offset, 1.0, 2, 2, 2, 0.1, True))


def test_fallback_warns_once_and_matches(monkeypatch):
    monkeypatch.setattr(_dra, '_USE_EXTENSION', False)
    monkeypatch.setattr(_dra, '_WARNED', set())
    monkeypatch.setattr(_dra, '_EXTENSION_ERROR', ImportError('forced by the test'))
    assert not has_extension()
    x = torch.randn(1, 2, 8, 8, dtype=torch.float64)
    rois = make_rois(3, 1, 8, 8)
    offset = make_offset('prop', 3, 2, 2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        first = deform_roi_align(x, rois, offset, 2)
        second = deform_roi_align(x, rois, None, 2)
        unaligned = deform_roi_align(x, rois, None, 2, 1.0, 2, 0.1, False)
    warned = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    # Attributed to the caller, not to a line of tsd_mmdet (stacklevel).
    assert len(warned) == 1 and os.path.dirname(tsd_mmdet.__file__) not in warned[0].filename
    assert str(warned[0].message) == (
        'tsd_mmdet._C is not built (forced by the test); deform_roi_align falls back to the slow '
        'pure-PyTorch reference. Build the extension with `pip install --no-build-isolation -e .` '
        'or `python setup.py build_ext --inplace`.')
    torch.testing.assert_close(first, deform_roi_align_reference(x, rois, offset, 2))
    torch.testing.assert_close(second, torchvision.ops.roi_align(x, rois, 2, aligned=True))
    torch.testing.assert_close(unaligned,
                               torchvision.ops.roi_align(x, rois, 2, 1.0, 2, aligned=False))


def test_cuda_fallback_warning_names_the_fix(monkeypatch):
    """A build without CUDA kernels on a GPU machine: one warning saying how to rebuild (the
    reason deform_roi_align gives for CUDA tensors then)."""
    monkeypatch.setattr(_dra, '_WARNED', set())
    with pytest.warns(RuntimeWarning) as caught:
        _dra._warn_fallback('cuda')
        _dra._warn_fallback('cuda')
    assert [str(w.message) for w in caught] == [
        'tsd_mmdet._C was built without CUDA kernels; deform_roi_align runs CUDA tensors through '
        'the slow pure-PyTorch reference. Rebuild it with '
        '`FORCE_CUDA=1 python setup.py build_ext --inplace`.']


@needs_ext
def test_fake_kernels_check_and_shape():
    """The fake (meta) kernels that torch.compile and export trace with: the output shape, the
    backward's grad_offset shape (empty without an offset, as the real kernel returns), and the
    shape checks that a direct torch.ops call gets."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    op = torch.ops.tsd_mmdet
    x, rois, offset = torch.randn(2, 3, 6, 7), make_rois(4, 2, 6, 7, dtype=torch.float32), None
    grad = torch.randn(4, 3, 2, 5)
    real = op._deform_roi_align_backward(grad, x, rois, offset, 1.0, 2, 5, 0, 0.1, True)
    with FakeTensorMode(allow_non_fake_inputs=True):
        assert op.deform_roi_align(x, rois, None, 1.0, 2, 5, 0, 0.1, True).shape == (4, 3, 2, 5)
        fake = op._deform_roi_align_backward(grad, x, rois, offset, 1.0, 2, 5, 0, 0.1, True)
        with pytest.raises(RuntimeError, match=re.escape('input must be a (N, C, H, W) tensor')):
            op.deform_roi_align(x[0], rois, None, 1.0, 2, 5, 0, 0.1, True)
        with pytest.raises(RuntimeError, match=re.escape('rois must be (K, 5)')):
            op.deform_roi_align(x, rois[:, :4], None, 1.0, 2, 5, 0, 0.1, True)
        with pytest.raises(RuntimeError, match=re.escape('rois must be (K, 5)')):
            op.deform_roi_align(x, rois[None], None, 1.0, 2, 5, 0, 0.1, True)
    assert [tuple(t.shape) for t in fake] == [tuple(t.shape) for t in real] == [x.shape, (0,)]


_WITHOUT_EXTENSION_SCRIPT = """
import sys
sys.modules['tsd_mmdet._C'] = None  # as if the extension were not built
import torch
from tsd_mmdet.ops import deform_roi_align_reference, has_extension
assert not has_extension()
op = torch.ops.tsd_mmdet.deform_roi_align.default
x, rois, offset = torch.randn(2, 3, 8, 9), torch.tensor([[1.0, 0.5, 1, 6, 7]]), torch.randn(1, 2)
out = op(x, rois, offset, 1.0, 2, 2, 2, 0.1, True)
ref = deform_roi_align_reference(x, rois, offset, 2, 1.0, 2, 0.1, True)
meta = op(x.to('meta'), rois.to('meta'), offset.to('meta'), 1.0, 2, 2, 2, 0.1, True)
print(op._schema)
print(float((out - ref).abs().max()), tuple(meta.shape))
"""


def test_op_is_defined_without_the_extension():
    # Export needs the op's schema and fake kernel, not the kernels: without _C the schema is
    # defined from Python (the compiled one's), over the reference, with the same fake kernel.
    result = _python_child(_WITHOUT_EXTENSION_SCRIPT, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    schema, values = result.stdout.strip().splitlines()[-2:]
    assert schema == 'tsd_mmdet::' + _dra.SCHEMA
    if has_extension():
        assert schema == str(torch.ops.tsd_mmdet.deform_roi_align.default._schema)
    assert values == '0.0 (1, 3, 2, 2)'


def test_reference_handles_realistic_size_quickly():
    # 512 RoIs on a 256-channel stride-8 map: the fallback must stay usable.
    x = torch.randn(1, 32, 50, 84)
    rois = make_rois(512, 1, 50, 84, 0.125, torch.float32)
    offset = make_offset('point', 512, 7, 7, torch.float32)
    out = deform_roi_align_reference(x, rois, offset, 7, 0.125, 2)
    assert out.shape == (512, 32, 7, 7) and torch.isfinite(out).all()


# ---- CUDA (skipped without a GPU) -------------------------------------------------------------

def _cuda_case(dtype=torch.float32, offset_kind='point'):
    x = torch.randn(2, 8, 20, 24)
    rois = make_rois(16, 2, 20, 24, 0.5, torch.float32)
    offset = make_offset(offset_kind, 16, 4, 5, torch.float32, scale=2.0)
    return x, rois, offset


@needs_cuda
@pytest.mark.parametrize('offset_kind', [None, 'prop', 'point'])
@pytest.mark.parametrize('sampling_ratio', [0, 2])
@pytest.mark.parametrize('aligned', [True, False])
def test_cuda_matches_cpu(offset_kind, sampling_ratio, aligned):
    x, rois, offset = _cuda_case(offset_kind=offset_kind)
    args = ((4, 5), 0.5, sampling_ratio, 0.3, aligned)
    grad = torch.randn(16, 8, 4, 5)

    def run(device):
        xd = x.to(device).requires_grad_()
        od = None if offset is None else offset.to(device).requires_grad_()
        out = deform_roi_align(xd, rois.to(device), od, *args)
        inputs = [xd] if od is None else [xd, od]
        return [out, *torch.autograd.grad(out, inputs, grad.to(device))]

    for got, want in zip(run('cuda'), run('cpu')):
        torch.testing.assert_close(got.cpu(), want, rtol=1e-4, atol=1e-4)


@needs_cuda
def test_cuda_matches_torchvision():
    x, rois, _ = _cuda_case()
    x, rois = x.cuda(), rois.cuda()
    expected = torchvision.ops.roi_align(x, rois, (4, 5), 0.5, 0, aligned=True)
    torch.testing.assert_close(deform_roi_align(x, rois, None, (4, 5), 0.5, 0), expected)


@needs_cuda
@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
@pytest.mark.parametrize('offset_kind', [None, 'prop', 'point'])
def test_cuda_half_precision(dtype, offset_kind):
    # Inputs representable in `dtype`, so that only the arithmetic differs from float32.
    x, rois, offset = _cuda_case(offset_kind=offset_kind)
    x, rois = x.cuda().to(dtype).float(), rois.cuda().to(dtype).float()
    offset = None if offset is None else offset.cuda().to(dtype).float()
    grad = torch.randn(16, 8, 4, 5, device='cuda').to(dtype).float()

    def run(dt):
        xd = x.to(dt).requires_grad_()
        od = None if offset is None else offset.to(dt).requires_grad_()
        out = deform_roi_align(xd, rois.to(dt), od, (4, 5), 0.5, 2, 0.3)
        inputs = [xd] if od is None else [xd, od]
        return [out, *torch.autograd.grad(out, inputs, grad.to(dt))]

    for got, want in zip(run(dtype), run(torch.float32)):
        assert got.dtype == dtype
        torch.testing.assert_close(got.float(), want, rtol=0.05, atol=0.05)


@needs_cuda
def test_cuda_autocast():
    # Runs in float32 and returns the input's dtype, like torchvision's roi_align.
    x, rois, offset = (t.cuda().half() for t in _cuda_case())
    expected = deform_roi_align(x.float(), rois.float(), offset.float(), (4, 5), 0.5)
    with torch.autocast('cuda', dtype=torch.float16):
        out = deform_roi_align(x, rois, offset, (4, 5), 0.5)
        out_f = deform_roi_align(x.float(), rois.float(), offset.float(), (4, 5), 0.5)
    assert out.dtype == torch.float16 and out_f.dtype == torch.float32
    torch.testing.assert_close(out, expected.half())
    torch.testing.assert_close(out_f, expected)


@needs_cuda
def test_cuda_empty_rois():
    x = torch.randn(1, 3, 8, 8, device='cuda', requires_grad=True)
    offset = torch.zeros(0, 2, 2, 2, device='cuda', requires_grad=True)
    out = deform_roi_align(x, torch.zeros(0, 5, device='cuda'), offset, 2)
    assert out.shape == (0, 3, 2, 2)
    gx, go = torch.autograd.grad(out.sum(), (x, offset))
    assert not gx.any() and go.shape == offset.shape


@needs_cuda
@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_cuda_half_grad_input_accumulates_in_float(dtype):
    # 512 copies of one RoI put ~390 on each pixel, in steps of ~1: summed in half/bfloat16 it
    # would stall near 64 (bfloat16) instead.
    x = torch.randn(1, 1, 8, 8)
    rois = torch.tensor([[0.0, 0.0, 0.0, 8.0, 8.0]]).repeat(512, 1)

    def grad_input(device, dt):
        xd = x.to(device, dt).requires_grad_()
        out = deform_roi_align(xd, rois.to(device, dt), None, 7, 1.0, 2)
        return torch.autograd.grad(out, xd, torch.ones_like(out))[0]

    want = grad_input('cuda', torch.float32)
    assert want.max() > 300
    got = grad_input('cuda', dtype)
    assert got.dtype == dtype
    # Summed in float and rounded once: within one rounding of the float32 sum.
    torch.testing.assert_close(got.float(), want, rtol=1e-2, atol=1e-2)
    torch.testing.assert_close(got.cpu(), grad_input('cpu', dtype), rtol=1e-2, atol=1e-2)


# Child process of test_cuda_bad_rois_finish: runs every bad RoI on CUDA, so that a kernel that
# loops (nearly) forever fails the test by its timeout instead of hanging the test run.
_CUDA_BAD_ROIS_SCRIPT = """
from math import inf, nan
import torch
from tsd_mmdet.ops import deform_roi_align
x = torch.randn(1, 3, 8, 8, device='cuda', requires_grad=True)
rois = torch.tensor({rois!r}, device='cuda')
offset = torch.zeros(rois.size(0), 2, 2, 3, device='cuda', requires_grad=True)
for sampling_ratio in (0, 2):
    for off in (None, offset):
        out = deform_roi_align(x, rois, off, (2, 3), 1.0, sampling_ratio)
        grads = torch.autograd.grad(out.sum(), [x] if off is None else [x, off])
        torch.cuda.synchronize()
        assert not out.any() and not any(g.any() for g in grads)
print('ok')
"""


@functools.cache
def _cuda_bad_rois_in_child() -> str:
    """Runs _CUDA_BAD_ROIS_SCRIPT in a child with a timeout; returns '' or what went wrong."""
    code = _CUDA_BAD_ROIS_SCRIPT.format(rois=list(BAD_ROIS.values()))
    try:
        result = _python_child(code, timeout=120)
    except subprocess.TimeoutExpired:
        return 'bad RoIs did not finish within 120 s on CUDA'
    if result.returncode != 0 or 'ok' not in result.stdout:
        return result.stderr or 'no output'
    return ''


@needs_cuda
def test_cuda_bad_rois_finish():
    failure = _cuda_bad_rois_in_child()
    assert not failure, failure


@needs_cuda
@pytest.mark.parametrize('bad', list(BAD_ROIS))
@pytest.mark.parametrize('sampling_ratio', [0, 2])
@pytest.mark.parametrize('offset_kind', [None, 'prop', 'point'])
def test_cuda_bad_roi_matches_cpu(bad, sampling_ratio, offset_kind):
    # Only once the child has shown that the kernels finish on these RoIs (no hang here).
    failure = _cuda_bad_rois_in_child()
    assert not failure, failure
    x = torch.randn(1, 3, 8, 8)
    good = torch.tensor(GOOD_ROIS)
    rois = torch.cat([good[:1], torch.tensor([BAD_ROIS[bad]]), good[1:]])
    offset = make_offset(offset_kind, 3, 2, 3, torch.float32)
    grad = torch.randn(3, 3, 2, 3)
    args = ((2, 3), 1.0, sampling_ratio, 0.5, True)
    on_cuda = _pool_with_grads('extension', x.cuda(), rois.cuda(),
                               None if offset is None else offset.cuda(), grad.cuda(), *args)
    on_cpu = _pool_with_grads('extension', x, rois, offset, grad, *args)
    assert not on_cuda[0][1].any()
    for got, want in zip(on_cuda, on_cpu):
        if want is not None:
            torch.testing.assert_close(got.cpu(), want, rtol=1e-4, atol=1e-4)


@needs_cuda
@pytest.mark.parametrize('value', [math.inf, math.nan])
def test_cuda_non_finite_offset_matches_cpu(value):
    x, rois, offset = _cuda_case()
    offset[3] = value
    offset[5, 1, 2, 3] = value
    grad = torch.randn(16, 8, 4, 5)
    args = ((4, 5), 0.5, 2, 0.3)
    on_cuda = _pool_with_grads('extension', x.cuda(), rois.cuda(), offset.cuda(), grad.cuda(),
                               *args)
    on_cpu = _pool_with_grads('extension', x, rois, offset, grad, *args)
    for got, want in zip(on_cuda, on_cpu):
        assert torch.isfinite(got).all()
        torch.testing.assert_close(got.cpu(), want, rtol=1e-4, atol=1e-4)


@needs_cuda
@pytest.mark.parametrize('size', [(0, 5), (5, 0), (0, 0)])
@pytest.mark.parametrize('offset_kind', [None, 'point'])
def test_cuda_empty_feature_map(size, offset_kind):
    x = torch.randn(2, 3, *size, device='cuda', requires_grad=True)
    rois = torch.tensor([[0.0, 0.0, 0.0, 1.0, 1.0], [1.0, -0.25, 0.0, 3.0, 0.75]], device='cuda')
    offset = make_offset(offset_kind, 2, 2, 2, torch.float32, scale=0.1)
    offset = None if offset is None else offset.cuda().requires_grad_()
    out = deform_roi_align(x, rois, offset, 2, 1.0, 2, 0.1)
    inputs = [x] if offset is None else [x, offset]
    grads = torch.autograd.grad(out, inputs, torch.randn_like(out))
    torch.cuda.synchronize()  # an illegal read would surface here
    assert out.shape == (2, 3, 2, 2) and not out.any()
    assert grads[0].shape == x.shape
    if offset is not None:
        assert not grads[1].any()


@needs_cuda
@pytest.mark.parametrize('offset_kind', [None, 'prop', 'point'])
@pytest.mark.parametrize('sampling_ratio', [0, 2])
def test_cuda_float64_matches_cpu(offset_kind, sampling_ratio):
    # The float64 backward has the most registers: it must launch at kThreads (launch bounds).
    x, rois, offset = (None if t is None else t.double()
                       for t in _cuda_case(offset_kind=offset_kind))
    grad = torch.randn(16, 8, 4, 5, dtype=torch.float64)
    args = ((4, 5), 0.5, sampling_ratio, 0.3)
    on_cuda = _pool_with_grads('extension', x.cuda(), rois.cuda(),
                               None if offset is None else offset.cuda(), grad.cuda(), *args)
    on_cpu = _pool_with_grads('extension', x, rois, offset, grad, *args)
    for got, want in zip(on_cuda, on_cpu):
        if want is not None:
            assert got.dtype == torch.float64
            torch.testing.assert_close(got.cpu(), want)


@needs_cuda
@pytest.mark.parametrize('offset_kind', [None, 'point'])
def test_cuda_channels_last(offset_kind):
    x, rois, offset = _cuda_case(offset_kind=offset_kind)
    grad = torch.randn(16, 8, 4, 5)
    args = ((4, 5), 0.5, 2, 0.3)
    x_cl = x.cuda().to(memory_format=torch.channels_last)
    assert not x_cl.is_contiguous()
    on_cuda = _pool_with_grads('extension', x_cl, rois.cuda(),
                               None if offset is None else offset.cuda(), grad.cuda(), *args)
    on_cpu = _pool_with_grads('extension', x, rois, offset, grad, *args)
    for got, want in zip(on_cuda, on_cpu):
        if want is not None:
            torch.testing.assert_close(got.cpu(), want, rtol=1e-4, atol=1e-4)


@needs_cuda
@pytest.mark.parametrize('offset_kind', [None, 'prop', 'point'])
@pytest.mark.parametrize('aligned', [True, False])
@pytest.mark.parametrize('sampling_ratio', [0, 2])
def test_cuda_gradcheck(offset_kind, aligned, sampling_ratio):
    # float64 on the GPU: input and both offset kinds, samples past the borders included. The
    # backward's atomics may add in any order: nondet_tol allows float64 rounding, no more.
    inputs, rois = gradcheck_case(offset_kind, 'cuda')

    def fn(inp, off=None):
        return deform_roi_align(inp, rois, off, (3, 2), 0.5, sampling_ratio, 0.5, aligned)

    assert torch.autograd.gradcheck(fn, inputs, nondet_tol=1e-12)


@needs_cuda
@settings(max_examples=40, deadline=None, derandomize=True)
@given(**FUZZ_CASES)
def test_fuzz_cuda_vs_reference(n, c, height, width, k, oh, ow, sampling_ratio, offset_kind,
                                aligned, spatial_scale, gamma, seed):
    # The CUDA kernels in float64 against the PyTorch reference on CPU: values and gradients.
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, height, width, dtype=torch.float64, generator=gen)
    rois = make_rois(k, n, height, width, spatial_scale, generator=gen)
    offset = make_offset(offset_kind, k, oh, ow, scale=2.0, generator=gen)
    args = ((oh, ow), spatial_scale, sampling_ratio, gamma, aligned)
    grad = torch.randn(k, c, oh, ow, dtype=torch.float64, generator=gen)
    on_cuda = _pool_with_grads('extension', x.cuda(), rois.cuda(),
                               None if offset is None else offset.cuda(), grad.cuda(), *args)
    want = _pool_with_grads('reference', x, rois, offset, grad, *args)
    assert on_cuda[0].shape == (k, c, oh, ow)
    for got, expected in zip(on_cuda, want):
        if expected is not None:
            torch.testing.assert_close(got.cpu(), expected)


@needs_cuda
@pytest.mark.parametrize('offset_kind', [None, 'point'])
def test_cuda_samples_outside_contribute_zero(offset_kind):
    x = torch.randn(1, 2, 6, 6, device='cuda', requires_grad=True)
    rois = torch.tensor([[0.0, 20.0, 20.0, 30.0, 30.0], [0.0, -40.0, -40.0, -30.0, -30.0]],
                        device='cuda')
    offset = None
    if offset_kind is not None:  # pushes the samples further away still
        offset = torch.full((2, 2, 2, 2), 5.0, device='cuda', requires_grad=True)
    out = deform_roi_align(x, rois, offset, 2, 1.0, 2, 1.0)
    assert not out.any()
    grads = torch.autograd.grad(out.sum(), [x] if offset is None else [x, offset])
    assert not any(g.any() for g in grads)


@needs_cuda
@pytest.mark.parametrize('backend', ['aot_eager', 'inductor'])
@pytest.mark.parametrize('offset_kind', [None, 'prop', 'point'])
def test_cuda_torch_compile_fullgraph(backend, offset_kind):
    check_compile_fullgraph(offset_kind, 'cuda', backend)


@needs_cuda
@pytest.mark.parametrize('num_rois', [512, 4096])
def test_cuda_detector_size_matches_torchvision(num_rois):
    # A detector's size (256 channels, a stride-8 map of an 800x1344 image): no offset and Prop.w
    # against torchvision's CUDA roi_align of the (translated) boxes, forward and grad_input.
    gen = torch.Generator().manual_seed(num_rois)
    x = torch.randn(2, 256, 100, 168, generator=gen).cuda()
    rois = make_rois(num_rois, 2, 100, 168, 0.125, torch.float32, generator=gen).cuda()
    shift = torch.randn(num_rois, 2, generator=gen).cuda() * 0.5
    grad = torch.randn(num_rois, 256, 7, 7, generator=gen).cuda()
    args = (7, 0.125, 2)
    wh = rois[:, 3:5] - rois[:, 1:3]
    moved = rois.clone()
    moved[:, 1:3] += 0.1 * shift * wh
    moved[:, 3:5] += 0.1 * shift * wh
    for offset, boxes in ((None, rois), (shift, moved)):
        got = _pool_with_grads('extension', x, rois, offset, grad, *args, 0.1, True)
        want_x = x.detach().clone().requires_grad_()
        want = torchvision.ops.roi_align(want_x, boxes, *args, aligned=True)
        (want_gx,) = torch.autograd.grad(want, want_x, grad)
        torch.testing.assert_close(got[0], want, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(got[1], want_gx, rtol=1e-4, atol=1e-4)


class _CallsTheFunction(torch.nn.Module):
    def forward(self, x, rois, offset):
        return deform_roi_align(x, rois, offset, (3, 2), 0.5, 2, 0.1, True) + 1


class _CallsTheModule(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.pool = DeformRoIAlign((3, 2), 0.5, sampling_ratio=2)

    def forward(self, x, rois, offset):
        return self.pool(x, rois, offset) * 2


@pytest.mark.parametrize('module', [_CallsTheFunction, _CallsTheModule])
def test_fx_symbolic_trace_keeps_the_op_as_a_leaf(module):
    """torch.fx traces a module that calls the op (function or DeformRoIAlign) into a graph with
    one call of it, and the traced module computes what the module does."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, 9)
    rois = torch.tensor([[0., 1., 2., 9., 12.], [1., 0., 0., 6., 5.]])
    offset = torch.randn(2, 2, 3, 2)
    model = module()
    traced = torch.fx.symbolic_trace(model)
    calls = [getattr(n.target, '__name__', n.target) for n in traced.graph.nodes
             if n.op == 'call_function']
    assert sorted(calls) == sorted(['deform_roi_align',
                                    'add' if module is _CallsTheFunction else 'mul'])
    torch.testing.assert_close(traced(x, rois, offset), model(x, rois, offset), rtol=0, atol=0)
