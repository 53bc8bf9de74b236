"""ONNX translation of ``tsd_mmdet::deform_roi_align``: standard ``RoiAlign`` (opset >= 16) only.

Implements TSD's pooling of P (RoIAlign), Prop.w (eq. 3-4: the translated box) and Point.w
(eq. 5-6: one 1x1 ``RoiAlign`` per bin over the bin's own shifted box), as
:func:`torch.onnx.export` translations (``dynamo=True``, ``custom_translation_table``).
"""
import torch
from onnxscript import opset18 as op
from onnxscript.onnx_types import INT64

import tsd_mmdet.ops  # noqa: F401  (defines torch.ops.tsd_mmdet.deform_roi_align, with or without _C)

__all__ = ['CUSTOM_TRANSLATION_TABLE', 'OPSET', 'deform_roi_align_onnx']

OPSET = 18  # the opset of these functions, and of torch's own ONNX library (torchlib)


def _batch_indices(rois):
    """(K,) int64 image index of each RoI: column 0 of ``rois`` (K, 5), truncated as the op does."""
    return op.Cast(op.Reshape(op.Slice(rois, [0], [1], [1]), [-1]), to=INT64.dtype)


def _feature_boxes(rois, spatial_scale: float, aligned: bool):
    """Start (K, 2) and size (K, 2), x first, of each RoI on the feature map, computed as the op
    computes them (csrc/deform_roi_align_common.h, roi_geometry): aligned shifts by -0.5 pixel,
    not aligned makes sizes below one cell 1."""
    scale = op.CastLike(spatial_scale, rois)
    shift = op.CastLike(0.5 if aligned else 0.0, rois)
    start = op.Sub(op.Mul(op.Slice(rois, [1], [3], [1]), scale), shift)
    end = op.Sub(op.Mul(op.Slice(rois, [3], [5], [1]), scale), shift)
    size = op.Sub(end, start)
    if not aligned:
        size = op.Max(size, op.CastLike(1.0, rois))
    return start, size


def _roi_align(input, boxes, batch_indices, pooled_height: int, pooled_width: int,
               sampling_ratio: int):
    """``RoiAlign`` over boxes (R, 4) already on the feature map and shifted by +0.5, which
    'half_pixel' takes back: no rescaling, and no clamping of small boxes."""
    return op.RoiAlign(input, boxes, batch_indices, coordinate_transformation_mode='half_pixel',
                       mode='avg', output_height=pooled_height, output_width=pooled_width,
                       sampling_ratio=max(sampling_ratio, 0), spatial_scale=1.0)


def _pool_plain(input, rois, spatial_scale: float, pooled_height: int, pooled_width: int,
                sampling_ratio: int, aligned: bool):
    """No offset: RoIAlign of P, exactly torchvision's translation."""
    return op.RoiAlign(input, op.Slice(rois, [1], [5], [1]), _batch_indices(rois),
                       coordinate_transformation_mode='half_pixel' if aligned
                       else 'output_half_pixel',
                       mode='avg', output_height=pooled_height, output_width=pooled_width,
                       sampling_ratio=max(sampling_ratio, 0), spatial_scale=spatial_scale)


def _pool_proposalwise(input, rois, offset, spatial_scale: float, pooled_height: int,
                       pooled_width: int, sampling_ratio: int, gamma: float, aligned: bool):
    """Prop.w (eq. 3-4): RoIAlign of P translated by ``gamma * offset * (w, h)``; offset (K, 2)."""
    start, size = _feature_boxes(rois, spatial_scale, aligned)
    half = op.CastLike(0.5, rois)
    start = op.Add(op.Add(start, op.Mul(op.Mul(op.CastLike(gamma, rois), size), offset)), half)
    boxes = op.Concat(start, op.Add(start, size), axis=1)
    return _roi_align(input, boxes, _batch_indices(rois), pooled_height, pooled_width,
                      sampling_ratio)


def _pool_pointwise(input, rois, offset, spatial_scale: float, pooled_height: int,
                    pooled_width: int, sampling_ratio: int, gamma: float, aligned: bool):
    """Point.w (eq. 5-6): bin (i, j) of RoI k is a 1x1 RoIAlign over its own box
    ``[start + (j, i) * bin, + bin]`` shifted by ``gamma * offset[k, :, i, j] * (w, h)``; offset
    (K, 2, oh, ow). K * oh * ow sub-boxes, the RoI's own sample grid per bin (a fixed
    ``sampling_ratio`` is the same; the adaptive ``ceil(bin)`` of a sub-box equals the RoI's
    ``ceil(size / pooled)`` up to rounding)."""
    start, size = _feature_boxes(rois, spatial_scale, aligned)
    bins = op.Div(size, op.CastLike([float(pooled_width), float(pooled_height)], rois))
    # Bin origins (1, oh, ow, 2): (j, i) per bin, x first.
    cols = op.CastLike(op.Range(0, pooled_width, 1), rois)
    rows = op.CastLike(op.Range(0, pooled_height, 1), rois)
    grid = op.Concat(
        op.Expand(op.Reshape(cols, [1, 1, -1, 1]), [1, pooled_height, pooled_width, 1]),
        op.Expand(op.Reshape(rows, [1, -1, 1, 1]), [1, pooled_height, pooled_width, 1]),
        axis=3)
    shift = op.Mul(op.Mul(op.CastLike(gamma, rois), op.Unsqueeze(size, [1, 2])),
                   op.Transpose(offset, perm=[0, 2, 3, 1]))  # (K, oh, ow, 2)
    bin_start = op.Add(op.Add(op.Add(op.Unsqueeze(start, [1, 2]), shift),
                              op.Mul(grid, op.Unsqueeze(bins, [1, 2]))),
                       op.CastLike(0.5, rois))
    boxes = op.Concat(bin_start, op.Add(bin_start, op.Unsqueeze(bins, [1, 2])), axis=3)
    num_rois = op.Shape(rois, start=0, end=1)
    bins_shape = op.Constant(value_ints=[pooled_height, pooled_width])
    batch = op.Expand(op.Reshape(_batch_indices(rois), [-1, 1, 1]),
                      op.Concat(num_rois, bins_shape, axis=0))
    pooled = _roi_align(input, op.Reshape(boxes, [-1, 4]), op.Reshape(batch, [-1]), 1, 1,
                        sampling_ratio)  # (K * oh * ow, C, 1, 1)
    channels = op.Shape(input, start=1, end=2)
    pooled = op.Reshape(pooled, op.Concat(num_rois, bins_shape, channels, axis=0))
    return op.Transpose(pooled, perm=[0, 3, 1, 2])


def deform_roi_align_onnx(input, rois, offset, spatial_scale: float, pooled_height: int,
                          pooled_width: int, sampling_ratio: int, gamma: float, aligned: bool):
    """ONNX graph of ``tsd_mmdet::deform_roi_align`` (the op's schema), by offset kind.

    input (N, C, H, W), rois (K, 5), offset None, (K, 2) or (K, 2, oh, ow); returns
    (K, C, oh, ow). Same samples and out-of-map rule as the op; differences: with adaptive
    sampling (``sampling_ratio <= 0``) a shifted box's grid ``ceil(size / pooled)`` is computed
    from its recomputed size and can differ by one where that quotient is within rounding of an
    integer, and the op's guards for non-finite RoIs and grids above ``MAX_SAMPLING_GRID`` are
    not reproduced (ONNX Runtime's RoiAlign has none).
    """
    args = (spatial_scale, pooled_height, pooled_width, sampling_ratio)
    if offset is None:
        return _pool_plain(input, rois, *args, aligned)
    rank = len(offset.shape)
    if rank == 2:
        return _pool_proposalwise(input, rois, offset, *args, gamma, aligned)
    if rank == 4:
        return _pool_pointwise(input, rois, offset, *args, gamma, aligned)
    raise ValueError(f'deform_roi_align: offset must be (K, 2) or (K, 2, oh, ow), got rank {rank}')


# ``custom_translation_table`` of torch.onnx.export for a model that uses the op.
CUSTOM_TRANSLATION_TABLE = {torch.ops.tsd_mmdet.deform_roi_align.default: deform_roi_align_onnx}
