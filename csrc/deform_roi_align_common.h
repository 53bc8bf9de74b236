// Host/device helpers shared by the CPU and CUDA deformable RoIAlign kernels (TSD, eq. 3-6):
// RoI geometry exactly as torchvision's roi_align, and bilinear weights with their x/y derivatives.
#pragma once

#include <c10/macros/Macros.h>

#include <cmath>
#include <cstdint>
#include <limits>

namespace tsd_mmdet {
namespace ops {

// Largest sample grid per bin side: the adaptive grid ceil(roi_size / output_size) of a RoI above
// it (or of a RoI that is not finite) is empty, and an explicit sampling_ratio above it is
// rejected (check_deform_roi_align_args). It bounds the work of one output element (at most
// kMaxSamplingGrid^2 samples) and keeps grid_h * grid_w far from int overflow, while covering
// every realistic RoI: a 7x7 output reaches it for a RoI 3584 feature-map cells wide. Must equal
// MAX_SAMPLING_GRID of tsd_mmdet/ops/reference.py.
constexpr int kMaxSamplingGrid = 512;

// Whether v is neither infinite nor NaN (comparisons with NaN are false).
template <typename acc_t>
C10_HOST_DEVICE inline bool is_finite(acc_t v) {
  return v >= -std::numeric_limits<acc_t>::max() && v <= std::numeric_limits<acc_t>::max();
}

// Adaptive samples per bin side: ceil(extent / pooled), or 0 when that is not in
// [1, kMaxSamplingGrid] (negative, NaN, infinite or too large), so that no out-of-range value is
// ever converted to int. ceil in double is exact for a float argument, so this equals
// torchvision's float ceil.
template <typename acc_t>
C10_HOST_DEVICE inline int adaptive_grid(acc_t extent, int pooled) {
  const double q = ::ceil(static_cast<double>(extent / static_cast<acc_t>(pooled)));
  return q >= 1.0 && q <= static_cast<double>(kMaxSamplingGrid) ? static_cast<int>(q) : 0;
}

// Where one RoI lies on the feature map, computed as torchvision's roi_align does.
// acc_t: float for float/half/bfloat16 inputs, double for double.
template <typename acc_t>
struct RoIGeometry {
  int64_t batch;  // image index into input's dim 0; -1 when rois[k, 0] is not a valid integer
  acc_t start_w;  // left edge on the feature map (aligned: minus 0.5)
  acc_t start_h;  // top edge
  acc_t roi_w;    // width (w_k of eq. 3/5), clamped to >= 1 when !aligned
  acc_t roi_h;    // height (h_k)
  acc_t bin_w;    // roi_w / pooled_width
  acc_t bin_h;    // roi_h / pooled_height
  int grid_h;     // samples per bin along y (sampling_ratio, or adaptive ceil(roi_h / ph))
  int grid_w;     // samples per bin along x
};

// The geometry of RoI `roi`. A RoI whose box on the feature map is not finite (an infinite or NaN
// coordinate, or a size that overflows) has no samples and all-zero geometry: it pools to zeros
// and has zero gradients, on every device. sampling_ratio must be <= kMaxSamplingGrid.
template <typename acc_t, typename scalar_t>
C10_HOST_DEVICE inline RoIGeometry<acc_t> roi_geometry(
    const scalar_t* roi,  // 5 values: batch index, x1, y1, x2, y2 (image coordinates)
    acc_t spatial_scale,
    int pooled_height,
    int pooled_width,
    int sampling_ratio,
    bool aligned) {
  RoIGeometry<acc_t> g;
  // Truncated like torchvision's cast; NaN, infinite or huge indices become -1 (invalid) rather
  // than an undefined float-to-int conversion.
  const acc_t b = static_cast<acc_t>(roi[0]);
  g.batch = b > static_cast<acc_t>(-1) && b < static_cast<acc_t>(int64_t(1) << 62)
      ? static_cast<int64_t>(b)
      : int64_t(-1);
  // Do not round: this implementation detail is critical (as in torchvision).
  const acc_t shift = aligned ? static_cast<acc_t>(0.5) : static_cast<acc_t>(0.0);
  g.start_w = static_cast<acc_t>(roi[1]) * spatial_scale - shift;
  g.start_h = static_cast<acc_t>(roi[2]) * spatial_scale - shift;
  const acc_t end_w = static_cast<acc_t>(roi[3]) * spatial_scale - shift;
  const acc_t end_h = static_cast<acc_t>(roi[4]) * spatial_scale - shift;
  g.roi_w = end_w - g.start_w;
  g.roi_h = end_h - g.start_h;
  // Tested before the clamp below, which would turn a NaN size into 1.
  if (!(is_finite(g.start_w) && is_finite(g.start_h) && is_finite(g.roi_w) &&
        is_finite(g.roi_h))) {
    g.start_w = g.start_h = g.roi_w = g.roi_h = g.bin_w = g.bin_h = static_cast<acc_t>(0);
    g.grid_h = g.grid_w = 0;
    return g;
  }
  if (!aligned) {
    // Force malformed RoIs to be 1x1.
    g.roi_w = g.roi_w > static_cast<acc_t>(1) ? g.roi_w : static_cast<acc_t>(1);
    g.roi_h = g.roi_h > static_cast<acc_t>(1) ? g.roi_h : static_cast<acc_t>(1);
  }
  g.bin_h = g.roi_h / static_cast<acc_t>(pooled_height);
  g.bin_w = g.roi_w / static_cast<acc_t>(pooled_width);
  g.grid_h = sampling_ratio > 0 ? sampling_ratio : adaptive_grid(g.roi_h, pooled_height);
  g.grid_w = sampling_ratio > 0 ? sampling_ratio : adaptive_grid(g.roi_w, pooled_width);
  return g;
}

// Coordinate of sample i (of grid samples) inside bin p, in torchvision's operation order:
// start + p * bin + (i + 0.5) * bin / grid. `start` already includes the eq. 4/6 shift.
template <typename acc_t>
C10_HOST_DEVICE inline acc_t sample_coord(acc_t start, int p, acc_t bin, int i, int grid) {
  return start + p * bin +
      static_cast<acc_t>(i + .5f) * bin / static_cast<acc_t>(grid);
}

// Bilinear interpolation at (y, x) on a height x width plane, with torchvision's boundary rules:
// outside [-1, height] x [-1, width], at a NaN coordinate, or anywhere on an empty plane
// (height or width 0) the sample is 0 (returns false); otherwise coordinates are
// clamped at 0 and at height-1/width-1. Fills the four corner offsets pos[] (y * width + x), their
// weights w[], and, when gx/gy are given, the weights of the corner values in d(value)/dx and
// d(value)/dy. A clamped coordinate has zero derivative, as the forward is constant there.
template <typename acc_t>
C10_HOST_DEVICE inline bool bilinear_sample(
    int height,
    int width,
    acc_t y,
    acc_t x,
    int* pos,
    acc_t* w,
    acc_t* gx,
    acc_t* gy) {
  // Written as !(in range) so that NaN coordinates count as outside. An empty plane has no
  // corner to read (clamping would give index -1).
  if (height <= 0 || width <= 0) {
    return false;
  }
  if (!(y >= static_cast<acc_t>(-1.0) && y <= static_cast<acc_t>(height) &&
        x >= static_cast<acc_t>(-1.0) && x <= static_cast<acc_t>(width))) {
    return false;
  }
  acc_t fy = 1, fx = 1;  // 1 where the coordinate is not clamped
  if (y <= 0) {
    y = 0;
    fy = 0;
  }
  if (x <= 0) {
    x = 0;
    fx = 0;
  }
  int y_low = static_cast<int>(y);
  int x_low = static_cast<int>(x);
  int y_high, x_high;
  if (y_low >= height - 1) {
    y_high = y_low = height - 1;
    y = static_cast<acc_t>(y_low);
    fy = 0;
  } else {
    y_high = y_low + 1;
  }
  if (x_low >= width - 1) {
    x_high = x_low = width - 1;
    x = static_cast<acc_t>(x_low);
    fx = 0;
  } else {
    x_high = x_low + 1;
  }
  const acc_t ly = y - y_low;
  const acc_t lx = x - x_low;
  const acc_t hy = static_cast<acc_t>(1) - ly;
  const acc_t hx = static_cast<acc_t>(1) - lx;
  pos[0] = y_low * width + x_low;
  pos[1] = y_low * width + x_high;
  pos[2] = y_high * width + x_low;
  pos[3] = y_high * width + x_high;
  w[0] = hy * hx;
  w[1] = hy * lx;
  w[2] = ly * hx;
  w[3] = ly * lx;
  if (gx != nullptr) {
    // value = hy*hx*v1 + hy*lx*v2 + ly*hx*v3 + ly*lx*v4
    gx[0] = -hy * fx;
    gx[1] = hy * fx;
    gx[2] = -ly * fx;
    gx[3] = ly * fx;
    gy[0] = -hx * fy;
    gy[1] = -lx * fy;
    gy[2] = hx * fy;
    gy[3] = lx * fy;
  }
  return true;
}

}  // namespace ops
}  // namespace tsd_mmdet
