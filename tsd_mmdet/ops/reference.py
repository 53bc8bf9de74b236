"""Pure-PyTorch deformable RoIAlign: test oracle and fallback of the compiled op (plus arg checks).

Implements TSD's Prop.w (eq. 3-4) and Point.w (eq. 5-6) pooling.
"""
import math
import numbers

import torch
from torch import Tensor

__all__ = ['MAX_SAMPLING_GRID', 'check_deform_roi_align_args', 'deform_roi_align_reference']

# Largest sample grid per bin side (kMaxSamplingGrid of csrc/deform_roi_align_common.h): an
# adaptive grid ceil(roi_size / output_size) above it is empty (the RoI pools to zeros), an
# explicit sampling_ratio above it is rejected. A 7x7 output reaches it at 3584 feature-map cells.
MAX_SAMPLING_GRID = 512

# Largest (sample points x channels) gathered at once, to bound the reference's memory.
_MAX_CHUNK_ELEMENTS = 1 << 23


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _shape(t: Tensor) -> tuple:
    return tuple(t.shape)


def check_deform_roi_align_args(input, rois, offset, output_size, spatial_scale, sampling_ratio,
                                gamma, aligned) -> tuple[int, int]:
    """Validate the arguments of ``deform_roi_align`` and return ``(oh, ow)``.

    Raises TypeError for wrong types/dtypes and ValueError for wrong shapes, values or devices,
    each message naming the argument.
    """
    if not isinstance(input, Tensor):
        raise TypeError(f'input must be a torch.Tensor, got {type(input).__name__}')
    if input.dim() != 4:
        raise ValueError(f'input must be a (N, C, H, W) tensor, got shape {_shape(input)}')
    if not input.is_floating_point():
        raise TypeError(f'input must be a floating-point tensor, got dtype {input.dtype}')
    if not isinstance(rois, Tensor):
        raise TypeError(f'rois must be a torch.Tensor, got {type(rois).__name__}')
    if rois.dim() != 2 or rois.size(1) != 5:
        raise ValueError(f'rois must be a (K, 5) tensor, got shape {_shape(rois)}')
    if rois.dtype != input.dtype:
        raise TypeError(f'rois must have the dtype of input ({input.dtype}), got {rois.dtype}')
    if rois.device != input.device:
        raise ValueError(f'rois must be on the device of input ({input.device}), '
                         f'got {rois.device}')

    if isinstance(output_size, (tuple, list)):
        if len(output_size) != 2:
            raise ValueError(f'output_size must be an int or a pair (oh, ow), got {output_size!r}')
        oh, ow = output_size
    else:
        oh = ow = output_size
    if not (_is_int(oh) and _is_int(ow)):
        raise TypeError(f'output_size must be an int or a pair of ints, got {output_size!r}')
    if oh <= 0 or ow <= 0:
        raise ValueError(f'output_size must be positive, got {output_size!r}')
    if not _is_real(spatial_scale):
        raise TypeError(f'spatial_scale must be a number, got {type(spatial_scale).__name__}')
    if not (math.isfinite(spatial_scale) and spatial_scale > 0):
        raise ValueError(f'spatial_scale must be finite and positive, got {spatial_scale}')
    if not _is_int(sampling_ratio):
        raise TypeError(f'sampling_ratio must be an int, got {type(sampling_ratio).__name__}')
    if sampling_ratio > MAX_SAMPLING_GRID:
        raise ValueError(f'sampling_ratio must be <= {MAX_SAMPLING_GRID}, got {sampling_ratio}')
    if not _is_real(gamma):
        raise TypeError(f'gamma must be a number, got {type(gamma).__name__}')
    if not math.isfinite(gamma):
        raise ValueError(f'gamma must be finite, got {gamma}')
    if not isinstance(aligned, bool):
        raise TypeError(f'aligned must be a bool, got {type(aligned).__name__}')

    if offset is not None:
        if not isinstance(offset, Tensor):
            raise TypeError(f'offset must be None or a torch.Tensor, got {type(offset).__name__}')
        k = rois.size(0)
        if _shape(offset) not in ((k, 2), (k, 2, oh, ow)):
            raise ValueError(f'offset must be a (K, 2) or (K, 2, oh, ow) = ({k}, 2) or '
                             f'({k}, 2, {oh}, {ow}) tensor, got shape {_shape(offset)}')
        if offset.dtype != input.dtype:
            raise TypeError(f'offset must have the dtype of input ({input.dtype}), '
                            f'got {offset.dtype}')
        if offset.device != input.device:
            raise ValueError(f'offset must be on the device of input ({input.device}), '
                             f'got {offset.device}')
    return int(oh), int(ow)


def _bilinear_corners(y: Tensor, x: Tensor, height: int, width: int):
    """torchvision's bilinear rule at points (y, x), any shape P.

    Returns the flat corner indices ``y * width + x`` (4 tensors, shape P) and their weights
    (4 tensors, shape P, zero for points outside [-1, height] x [-1, width]). Coordinates are
    clamped at 0 and at height-1 / width-1; the weights are differentiable in (y, x) and constant
    where a coordinate is clamped.
    """
    # Comparisons are False for NaN: such points are outside too.
    valid = (y >= -1.0) & (y <= height) & (x >= -1.0) & (x <= width)
    y = torch.where(valid, y, torch.zeros_like(y)).clamp(min=0)
    x = torch.where(valid, x, torch.zeros_like(x)).clamp(min=0)
    y_low = y.long()  # y >= 0: truncation is floor
    x_low = x.long()
    y_edge = y_low >= height - 1
    x_edge = x_low >= width - 1
    y_low = torch.where(y_edge, height - 1, y_low)
    x_low = torch.where(x_edge, width - 1, x_low)
    y_high = torch.where(y_edge, y_low, y_low + 1)
    x_high = torch.where(x_edge, x_low, x_low + 1)
    y = torch.where(y_edge, y_low.to(y.dtype), y)
    x = torch.where(x_edge, x_low.to(x.dtype), x)
    ly = y - y_low
    lx = x - x_low
    hy = 1.0 - ly
    hx = 1.0 - lx
    mask = valid.to(y.dtype)
    index = (y_low * width + x_low, y_low * width + x_high,
             y_high * width + x_low, y_high * width + x_high)
    weight = (hy * hx * mask, hy * lx * mask, ly * hx * mask, ly * lx * mask)
    return index, weight


def _pool_group(flat: Tensor, batch: Tensor, start_h: Tensor, start_w: Tensor, bin_h: Tensor,
                bin_w: Tensor, grid_h: int, grid_w: int, height: int, width: int) -> Tensor:
    """Average of grid_h x grid_w bilinear samples per bin for RoIs sharing one sample grid.

    flat: (N * H * W, C) input; batch: (R,) image indices; start_h/start_w: (R, oh, ow) bin-grid
    origins, already shifted by the offset; bin_h/bin_w: (R,). Returns (R, C, oh, ow).
    """
    r, oh, ow = start_h.shape
    dtype = start_h.dtype
    # Sample coordinates in torchvision's operation order: start + p * bin + (i + .5) * bin / grid.
    ph = torch.arange(oh, dtype=dtype, device=flat.device).view(1, oh, 1, 1, 1)
    pw = torch.arange(ow, dtype=dtype, device=flat.device).view(1, 1, ow, 1, 1)
    iy = torch.arange(grid_h, dtype=dtype, device=flat.device).view(1, 1, 1, grid_h, 1)
    ix = torch.arange(grid_w, dtype=dtype, device=flat.device).view(1, 1, 1, 1, grid_w)
    bh = bin_h.view(r, 1, 1, 1, 1)
    bw = bin_w.view(r, 1, 1, 1, 1)
    y = start_h.view(r, oh, ow, 1, 1) + ph * bh + (iy + 0.5) * bh / grid_h
    x = start_w.view(r, oh, ow, 1, 1) + pw * bw + (ix + 0.5) * bw / grid_w
    y, x = torch.broadcast_tensors(y, x)  # (R, oh, ow, grid_h, grid_w)
    index, weight = _bilinear_corners(y, x, height, width)
    base = (batch * (height * width)).view(r, 1, 1, 1, 1)
    value = 0
    for idx, w in zip(index, weight):
        value = value + w.reshape(-1, 1) * flat.index_select(0, (base + idx).reshape(-1))
    value = value.view(r, oh, ow, grid_h * grid_w, flat.size(1)).to(dtype)
    count = max(grid_h * grid_w, 1)
    return (value.sum(3) / count).permute(0, 3, 1, 2)


def deform_roi_align_reference(input: Tensor, rois: Tensor, offset: Tensor | None = None,
                               output_size=7, spatial_scale: float = 1.0, sampling_ratio: int = 0,
                               gamma: float = 0.1, aligned: bool = True) -> Tensor:
    """Deformable RoIAlign in plain PyTorch (differentiable in ``input`` and ``offset``).

    Args:
        input: (N, C, H, W) feature map.
        rois: (K, 5) boxes ``(batch_index, x1, y1, x2, y2)`` in image coordinates.
        offset: None (RoIAlign), (K, 2) proposal-wise translation (Prop.w, eq. 3-4) or
            (K, 2, oh, ow) pointwise deformation (Point.w, eq. 5-6); channel 0 shifts x, 1 y. The
            samples of bin (i, j) of RoI k move by ``gamma * offset[k, :, (i, j)] * (w_k, h_k)``,
            (w_k, h_k) the RoI size on the feature map.
        output_size: int or (oh, ow).
        spatial_scale: image-to-feature-map scale.
        sampling_ratio: samples per bin side; <= 0 for adaptive ``ceil(roi_size / output_size)``.
        gamma: offset magnitude (eq. 3/5).
        aligned: shift the boxes by -0.5 pixel (RoIAlign v2).

    Returns:
        (K, C, oh, ow) pooled features.
    """
    oh, ow = check_deform_roi_align_args(input, rois, offset, output_size, spatial_scale,
                                         sampling_ratio, gamma, aligned)
    n, c, height, width = input.shape
    k = rois.size(0)
    # Coordinates in at least float32 (half inputs are computed in float, as the kernels do).
    dtype = torch.promote_types(input.dtype, torch.float32)
    r = rois.detach().to(dtype)  # boxes get no gradient (as in RoIAlign)
    batch = r[:, 0].long()
    shift = 0.5 if aligned else 0.0
    start_w = r[:, 1] * spatial_scale - shift
    start_h = r[:, 2] * spatial_scale - shift
    roi_w = (r[:, 3] * spatial_scale - shift) - start_w
    roi_h = (r[:, 4] * spatial_scale - shift) - start_h
    # A RoI that is not finite on the feature map gets no samples and all-zero geometry (zeros out,
    # zero gradients), as in the kernels; tested before the clamp, which maps NaN sizes to 1.
    finite = (torch.isfinite(start_w) & torch.isfinite(start_h) & torch.isfinite(roi_w)
              & torch.isfinite(roi_h))
    start_w, start_h, roi_w, roi_h = (torch.where(finite, v, torch.zeros_like(v))
                                      for v in (start_w, start_h, roi_w, roi_h))
    if not aligned:  # force malformed RoIs to be 1x1
        roi_w = torch.where(finite, roi_w.clamp(min=1.0), roi_w)
        roi_h = torch.where(finite, roi_h.clamp(min=1.0), roi_h)
    bin_w = roi_w / ow
    bin_h = roi_h / oh
    if sampling_ratio > 0:
        grid_h = torch.where(finite, sampling_ratio, 0)
        grid_w = grid_h
    else:  # adaptive: ceil(size / output_size), or no samples outside [1, MAX_SAMPLING_GRID]
        grid_h, grid_w = (torch.where(finite & (g >= 1) & (g <= MAX_SAMPLING_GRID), g, 0).long()
                          for g in (torch.ceil(roi_h / oh), torch.ceil(roi_w / ow)))
    if height == 0 or width == 0:  # an empty map: every sample is outside (zeros out)
        grid_h = grid_w = torch.zeros_like(grid_h)

    # Bin-grid origins (K, oh, ow), shifted by gamma * offset * (w, h) (eq. 3-6).
    start_w = start_w.view(k, 1, 1).expand(k, oh, ow)
    start_h = start_h.view(k, 1, 1).expand(k, oh, ow)
    if offset is not None:
        off = offset.to(dtype)
        if off.dim() == 2:
            off = off.view(k, 2, 1, 1)
        start_w = start_w + gamma * roi_w.view(k, 1, 1) * off[:, 0]
        start_h = start_h + gamma * roi_h.view(k, 1, 1) * off[:, 1]
        start_w, start_h = torch.broadcast_tensors(start_w, start_h)

    # (N * H * W, C): every bilinear corner is one row gather.
    flat = input.permute(0, 2, 3, 1).reshape(n * height * width, c)
    output = input.new_zeros((k, c, oh, ow), dtype=dtype)
    # RoIs with the same sample grid are pooled together (one group unless sampling is adaptive);
    # K = 0 still runs one empty group so that the output stays connected to input and offset.
    grids = torch.stack([grid_h, grid_w], 1)
    groups = torch.unique(grids, dim=0).tolist() if k > 0 else [[1, 1]]
    for gh, gw in groups:
        members = ((grid_h == gh) & (grid_w == gw)).nonzero().flatten()
        step = max(1, _MAX_CHUNK_ELEMENTS // max(1, oh * ow * gh * gw * c))
        for begin in range(0, max(members.numel(), 1), step):
            rows = members[begin:begin + step]
            pooled = _pool_group(flat, batch[rows], start_h[rows], start_w[rows], bin_h[rows],
                                 bin_w[rows], gh, gw, height, width)
            output = output.index_copy(0, rows, pooled.to(dtype))
    return output.to(input.dtype)
