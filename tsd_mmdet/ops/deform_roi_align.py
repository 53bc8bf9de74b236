"""Deformable RoIAlign: Python entry point, nn.Module, autograd and fake (meta) registrations.

Implements TSD's Prop.w (eq. 3-4) and Point.w (eq. 5-6) pooling on top of tsd_mmdet._C. Without
the extension the op's schema is defined here, over the PyTorch reference, so that
``torch.ops.tsd_mmdet.deform_roi_align`` exists (and exports) either way.
"""
import warnings

import torch
from torch import Tensor, nn
from torch.overrides import handle_torch_function, has_torch_function

from .reference import MAX_SAMPLING_GRID, check_deform_roi_align_args, deform_roi_align_reference

__all__ = ['MAX_SAMPLING_GRID', 'DeformRoIAlign', 'deform_roi_align', 'has_extension']

try:
    from tsd_mmdet import _C  # noqa: F401  (loading it registers torch.ops.tsd_mmdet.*)
except ImportError as exc:  # not built: fall back to the reference, with one warning
    _EXTENSION_ERROR: Exception | None = exc
else:
    _EXTENSION_ERROR = None

_USE_EXTENSION = _EXTENSION_ERROR is None
# The forward schema of csrc/deform_roi_align.cpp's TORCH_LIBRARY, defined from Python where the
# extension is not built (tests/ops checks that the two agree).
SCHEMA = ('deform_roi_align(Tensor input, Tensor rois, Tensor? offset, float spatial_scale, '
          'SymInt pooled_height, SymInt pooled_width, int sampling_ratio, float gamma, '
          'bool aligned) -> Tensor')
# A CPU-only build on a GPU machine: CUDA tensors take the reference too.
_HAS_CUDA_KERNEL = _USE_EXTENSION and torch._C._dispatch_has_kernel_for_dispatch_key(
    'tsd_mmdet::deform_roi_align', 'CUDA')
_WARNED: set[str] = set()  # fallback warnings already given


def has_extension() -> bool:
    """Whether ``deform_roi_align`` runs the compiled kernels (else the PyTorch reference)."""
    return _USE_EXTENSION


def _warn_fallback(reason: str) -> None:
    if reason not in _WARNED:
        _WARNED.add(reason)
        if reason == 'cuda':
            what = ('tsd_mmdet._C was built without CUDA kernels; deform_roi_align runs CUDA '
                    'tensors through the slow pure-PyTorch reference. Rebuild it with '
                    '`FORCE_CUDA=1 python setup.py build_ext --inplace`.')
        else:
            what = (f'tsd_mmdet._C is not built ({_EXTENSION_ERROR}); deform_roi_align falls '
                    'back to the slow pure-PyTorch reference. Build the extension with '
                    '`pip install --no-build-isolation -e .` or '
                    '`python setup.py build_ext --inplace`.')
        warnings.warn(what, RuntimeWarning, stacklevel=3)


# torch >= 2.4 registers the op's fake (meta) implementation and its autograd formula with
# torch.library.register_fake / register_autograd. torch 2.1-2.3 have neither: there the fake
# implementation is a Meta kernel registered through a Library, and autograd comes from an
# autograd.Function around the op (deform_roi_align below uses it).
_TORCH_VERSION = tuple(int(v) for v in torch.__version__.split('+')[0].split('.')[:2])
_HAS_REGISTER_FAKE = _TORCH_VERSION >= (2, 4)


def _deform_roi_align_fake(input, rois, offset, spatial_scale, pooled_height, pooled_width,
                           sampling_ratio, gamma, aligned):
    torch._check(input.dim() == 4, lambda: 'input must be a (N, C, H, W) tensor')
    torch._check(rois.dim() == 2 and rois.size(1) == 5, lambda: 'rois must be (K, 5)')
    return input.new_empty((rois.size(0), input.size(1), pooled_height, pooled_width))


def _deform_roi_align_backward_fake(grad, input, rois, offset, spatial_scale, pooled_height,
                                    pooled_width, sampling_ratio, gamma, aligned):
    grad_offset = input.new_empty((0,)) if offset is None else offset.new_empty(offset.shape)
    return input.new_empty(input.shape), grad_offset


def _setup_context(ctx, inputs, output):
    input, rois, offset, *params = inputs
    ctx.save_for_backward(input, rois, offset)
    ctx.params = params


def _backward(ctx, grad):
    input, rois, offset = ctx.saved_tensors
    grad_input, grad_offset = torch.ops.tsd_mmdet._deform_roi_align_backward(
        grad, input, rois, offset, *ctx.params)
    if offset is None:
        grad_offset = None
    return grad_input, None, grad_offset, None, None, None, None, None, None


class _DeformRoIAlignFunction(torch.autograd.Function):
    """Autograd of the op for torch < 2.4 (no torch.library.register_autograd there)."""

    @staticmethod
    def forward(ctx, input, rois, offset, *params):
        _setup_context(ctx, (input, rois, offset, *params), None)
        return torch.ops.tsd_mmdet.deform_roi_align(input, rois, offset, *params)

    @staticmethod
    def backward(ctx, grad):
        return _backward(ctx, grad)


def _reference_kernel(input, rois, offset, spatial_scale, pooled_height, pooled_width,
                      sampling_ratio, gamma, aligned):
    """The op's kernel where _C is not built: the PyTorch reference (no autograd formula; the
    Python entry point below calls the differentiable reference directly)."""
    return deform_roi_align_reference(input, rois, offset, (pooled_height, pooled_width),
                                      spatial_scale, sampling_ratio, gamma, aligned)


if _EXTENSION_ERROR is None:
    if _HAS_REGISTER_FAKE:
        torch.library.register_fake('tsd_mmdet::deform_roi_align')(_deform_roi_align_fake)
        torch.library.register_fake('tsd_mmdet::_deform_roi_align_backward')(
            _deform_roi_align_backward_fake)
        torch.library.register_autograd(
            'tsd_mmdet::deform_roi_align', _backward, setup_context=_setup_context)
    else:
        _META_LIBRARY = torch.library.Library('tsd_mmdet', 'IMPL')  # kept alive with the module
        _META_LIBRARY.impl('deform_roi_align', _deform_roi_align_fake, 'Meta')
        _META_LIBRARY.impl('_deform_roi_align_backward', _deform_roi_align_backward_fake, 'Meta')
else:  # the schema, the reference as its kernel and the fake kernel, so that export works
    _LIBRARY = torch.library.Library('tsd_mmdet', 'DEF')  # kept alive with the module
    _LIBRARY.define(SCHEMA)
    _LIBRARY.impl('deform_roi_align', _reference_kernel, 'CompositeExplicitAutograd')
    if _HAS_REGISTER_FAKE:
        torch.library.register_fake('tsd_mmdet::deform_roi_align', lib=_LIBRARY)(
            _deform_roi_align_fake)
    else:
        _LIBRARY.impl('deform_roi_align', _deform_roi_align_fake, 'Meta')


def deform_roi_align(input: Tensor, rois: Tensor, offset: Tensor | None = None, output_size=7,
                     spatial_scale: float = 1.0, sampling_ratio: int = 0, gamma: float = 0.1,
                     aligned: bool = True) -> Tensor:
    """RoIAlign whose samples move by a learned offset (TSD's derived proposals, eq. 3-6).

    With ``offset=None`` (or zero) this is ``torchvision.ops.roi_align(input, rois, output_size,
    spatial_scale, sampling_ratio, aligned)``.

    Args:
        input: (N, C, H, W) feature map.
        rois: (K, 5) boxes ``(batch_index, x1, y1, x2, y2)`` in image coordinates, same dtype and
            device as ``input``.
        offset: None; (K, 2) proposal-wise translation (Prop.w, eq. 3-4): every sample of RoI k
            moves by ``gamma * offset[k] * (w_k, h_k)``; or (K, 2, oh, ow) pointwise deformation
            (Point.w, eq. 5-6): the samples of bin (i, j) move by
            ``gamma * offset[k, :, i, j] * (w_k, h_k)``. Channel 0 is the x shift, 1 the y shift;
            (w_k, h_k) is the RoI size on the feature map. Same dtype and device as ``input``.
        output_size: int or (oh, ow).
        spatial_scale: image-to-feature-map scale (e.g. 1/8 for stride 8).
        sampling_ratio: samples per bin side, at most ``MAX_SAMPLING_GRID`` (512); <= 0 for
            adaptive ``ceil(roi_size / output_size)``.
        gamma: offset magnitude (eq. 3/5).
        aligned: shift the boxes by -0.5 pixel (RoIAlign v2), as torchvision's ``aligned``.

    Returns:
        (K, C, oh, ow) pooled features. Differentiable in ``input`` and ``offset``.

    Bad input gives the same result on CPU, on CUDA and in the PyTorch reference:

    - A RoI that is not finite on the feature map (an inf or NaN coordinate, or a size that
      overflows) has no samples: its output is zeros, with zero gradients for ``input`` and its
      ``offset``.
    - With adaptive sampling, a RoI whose grid ``ceil(roi_size / output_size)`` exceeds
      ``MAX_SAMPLING_GRID`` (512) samples per bin side in either direction has no samples either
      (zeros, zero gradients); this bounds the work per output value. A 7x7 output reaches it for
      a RoI 3584 feature-map cells wide. An explicit ``sampling_ratio`` above it is a ValueError.
    - A non-finite ``offset`` moves its samples to non-finite positions, which count as outside
      the map: like any sample outside ``[-1, H] x [-1, W]`` they add zero (and get zero
      gradients).
    - An empty feature map (``H == 0`` or ``W == 0``) with RoIs present pools to zeros; the
      gradient of ``offset`` is zero.
    - A batch index ``rois[k, 0]`` that does not truncate to an image of ``input`` (including inf
      and NaN) is an error: a RuntimeError on CPU, a device-side assertion on CUDA.

    The op is a leaf of ``torch.fx`` graphs: ``symbolic_trace`` records one call of it, from
    :class:`DeformRoIAlign` (``torch.fx.wrap``, as torchvision's ops) and from any module that calls
    the function (the ``__torch_function__`` protocol, which fx's Proxy answers).
    """
    tensors = tuple(t for t in (input, rois, offset) if t is not None)
    if has_torch_function(tensors):  # fx Proxies, tensor subclasses
        return handle_torch_function(deform_roi_align, tensors, input, rois, offset, output_size,
                                     spatial_scale, sampling_ratio, gamma, aligned)
    oh, ow = check_deform_roi_align_args(input, rois, offset, output_size, spatial_scale,
                                         sampling_ratio, gamma, aligned)
    if not _USE_EXTENSION or (input.is_cuda and not _HAS_CUDA_KERNEL):
        _warn_fallback('build' if not _USE_EXTENSION else 'cuda')
        return deform_roi_align_reference(input, rois, offset, (oh, ow), spatial_scale,
                                          sampling_ratio, gamma, aligned)
    op = torch.ops.tsd_mmdet.deform_roi_align if _HAS_REGISTER_FAKE else \
        _DeformRoIAlignFunction.apply
    return op(input, rois, offset, float(spatial_scale), oh, ow, int(sampling_ratio), float(gamma),
              aligned)


# A leaf of torch.fx graphs, as torchvision's ops are: symbolic_trace records one call of the op
# instead of tracing into its argument checks (which need real tensors).
torch.fx.wrap('deform_roi_align')


class DeformRoIAlign(nn.Module):
    """Module form of :func:`deform_roi_align`: ``forward(input, rois, offset=None)``.

    input (N, C, H, W), rois (K, 5), offset None, (K, 2) (Prop.w) or (K, 2, oh, ow) (Point.w);
    returns (K, C, oh, ow).
    """

    def __init__(self, output_size, spatial_scale: float, sampling_ratio: int = 0,
                 gamma: float = 0.1, aligned: bool = True):
        super().__init__()
        # Validate the hyper-parameters now rather than at the first forward.
        probe = torch.empty(1, 1, 1, 1)
        oh, ow = check_deform_roi_align_args(probe, probe.new_empty(0, 5), None, output_size,
                                             spatial_scale, sampling_ratio, gamma, aligned)
        self.output_size = (oh, ow)
        self.spatial_scale = float(spatial_scale)
        self.sampling_ratio = int(sampling_ratio)
        self.gamma = float(gamma)
        self.aligned = aligned

    def forward(self, input: Tensor, rois: Tensor, offset: Tensor | None = None) -> Tensor:
        return deform_roi_align(input, rois, offset, self.output_size, self.spatial_scale,
                                self.sampling_ratio, self.gamma, self.aligned)

    def extra_repr(self) -> str:
        return (f'output_size={self.output_size}, spatial_scale={self.spatial_scale}, '
                f'sampling_ratio={self.sampling_ratio}, gamma={self.gamma}, '
                f'aligned={self.aligned}')
