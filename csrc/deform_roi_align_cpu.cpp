// CPU kernels of deformable RoIAlign: forward and backward of TSD's Prop.w (eq. 3-4) and Point.w
// (eq. 5-6) pooling; with no offset they are torchvision's RoIAlign.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <optional>
#include <tuple>
#include <vector>

#include "deform_roi_align.h"
#include "deform_roi_align_common.h"

namespace tsd_mmdet {
namespace ops {

namespace {

// One valid bilinear sample: the four corner offsets within a plane and their weights.
template <typename acc_t>
struct Sample {
  int pos[4];
  acc_t w[4];
};

// Weights of the four corner values in d(sample)/dx and d(sample)/dy (backward with offset).
template <typename acc_t>
struct SampleGrad {
  acc_t gx[4];
  acc_t gy[4];
};

// Sample positions and weights of all RoIs, computed once per call and shared by all channels
// (torchvision's pre_calc, extended with the offset shift and the derivative weights). Only
// samples inside the feature map are kept: bin b of RoI k owns samples
// [bin_start[k * (nbins + 1) + b], bin_start[k * (nbins + 1) + b + 1]).
template <typename acc_t>
struct SamplePlan {
  std::vector<RoIGeometry<acc_t>> geometry;  // (K,)
  std::vector<int64_t> bin_start;            // (K * (nbins + 1),)
  std::vector<Sample<acc_t>> samples;
  std::vector<SampleGrad<acc_t>> grads;      // only with kGrad
};

template <typename scalar_t, typename acc_t, bool kGrad>
void build_plan(
    const scalar_t* rois,
    const scalar_t* offset,  // (K, 2) or (K, 2, ph, pw) data, or nullptr
    OffsetMode mode,
    int64_t num_rois,
    int64_t batch_size,
    int height,
    int width,
    int pooled_height,
    int pooled_width,
    int sampling_ratio,
    double spatial_scale,
    double gamma,
    bool aligned,
    SamplePlan<acc_t>& plan) {
  const int nbins = pooled_height * pooled_width;
  plan.geometry.resize(num_rois);
  plan.bin_start.resize(num_rois * (nbins + 1));
  std::vector<int64_t> roi_base(num_rois + 1, 0);
  for (int64_t k = 0; k < num_rois; k++) {
    const auto g = roi_geometry<acc_t>(
        rois + k * 5, static_cast<acc_t>(spatial_scale), pooled_height, pooled_width,
        sampling_ratio, aligned);
    TORCH_CHECK(g.batch >= 0 && g.batch < batch_size, "deform_roi_align: rois[", k, ", 0] = ",
                static_cast<double>(rois[k * 5]), " is not a batch index of input (N = ",
                batch_size, ")");
    plan.geometry[k] = g;
    roi_base[k + 1] = roi_base[k] + static_cast<int64_t>(nbins) * g.grid_h * g.grid_w;
  }
  plan.samples.resize(roi_base[num_rois]);
  if (kGrad) {
    plan.grads.resize(roi_base[num_rois]);
  }
  const acc_t gamma_ = static_cast<acc_t>(gamma);
  at::parallel_for(0, num_rois, 16, [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; k++) {
      const RoIGeometry<acc_t>& g = plan.geometry[k];
      int64_t* bin_start = plan.bin_start.data() + k * (nbins + 1);
      // Eq. 3/5: the shift is gamma * offset * (w, h) in feature-map units, added to the start.
      acc_t shift_w = 0, shift_h = 0;
      if (mode == OffsetMode::kProposal) {
        shift_w = gamma_ * g.roi_w * static_cast<acc_t>(offset[k * 2]);
        shift_h = gamma_ * g.roi_h * static_cast<acc_t>(offset[k * 2 + 1]);
      }
      int64_t n = roi_base[k];
      for (int ph = 0; ph < pooled_height; ph++) {
        for (int pw = 0; pw < pooled_width; pw++) {
          const int bin = ph * pooled_width + pw;
          bin_start[bin] = n;
          if (mode == OffsetMode::kPoint) {
            const scalar_t* off = offset + k * 2 * nbins + bin;
            shift_w = gamma_ * g.roi_w * static_cast<acc_t>(off[0]);
            shift_h = gamma_ * g.roi_h * static_cast<acc_t>(off[nbins]);
          }
          const acc_t start_w = g.start_w + shift_w;
          const acc_t start_h = g.start_h + shift_h;
          for (int iy = 0; iy < g.grid_h; iy++) {
            const acc_t y = sample_coord(start_h, ph, g.bin_h, iy, g.grid_h);
            for (int ix = 0; ix < g.grid_w; ix++) {
              const acc_t x = sample_coord(start_w, pw, g.bin_w, ix, g.grid_w);
              Sample<acc_t>& s = plan.samples[n];
              acc_t* gx = kGrad ? plan.grads[n].gx : nullptr;
              acc_t* gy = kGrad ? plan.grads[n].gy : nullptr;
              if (bilinear_sample<acc_t>(height, width, y, x, s.pos, s.w, gx, gy)) {
                n++;
              }
            }
          }
        }
      }
      bin_start[nbins] = n;
    }
  });
}

// Channels are processed in blocks of kLanes. A block of one image is first packed into a
// (H * W, stride) buffer in acc_t, which stays in cache while every RoI of that image is visited:
// a bilinear corner is then kLanes contiguous values, and the channel loops vectorise. The
// backward with an offset interleaves input and gradient rows (stride 2 * kLanes), so that a
// corner's values and gradients share one cache line.
constexpr int kLanes = 8;

// n values of T, zero-initialised, whose data() is aligned to a 64-byte cache line.
template <typename T>
class AlignedBuffer {
 public:
  explicit AlignedBuffer(int64_t n) : storage_(n + 64 / sizeof(T)) {
    const auto addr = reinterpret_cast<std::uintptr_t>(storage_.data());
    data_ = reinterpret_cast<T*>((addr + 63) & ~static_cast<std::uintptr_t>(63));
  }
  T* data() {
    return data_;
  }

 private:
  std::vector<T> storage_;
  T* data_;
};

// A 16-byte SIMD vector of T (GCC/Clang vector extension: SSE on x86-64, NEON on arm64); a row
// of kLanes values is kCount of them. Rows start at multiples of kLanes * sizeof(T) bytes.
template <typename T>
struct Vec {
  typedef T type __attribute__((vector_size(16)));
  static constexpr int kSize = 16 / sizeof(T);
  static constexpr int kCount = kLanes / kSize;
};

template <typename T>
inline typename Vec<T>::type vload(const T* p) {
  typename Vec<T>::type v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

template <typename T>
inline void vstore(T* p, typename Vec<T>::type v) {
  std::memcpy(p, &v, sizeof(v));
}

// RoIs grouped by image, in increasing index order: image n owns
// order[image_start[n]:image_start[n + 1]].
struct RoIsByImage {
  std::vector<int64_t> image_start;
  std::vector<int64_t> order;
};

template <typename acc_t>
RoIsByImage group_by_image(const std::vector<RoIGeometry<acc_t>>& geometry, int64_t batch_size) {
  RoIsByImage g;
  g.image_start.assign(batch_size + 1, 0);
  for (const auto& r : geometry) {
    g.image_start[r.batch + 1]++;
  }
  for (int64_t n = 0; n < batch_size; n++) {
    g.image_start[n + 1] += g.image_start[n];
  }
  g.order.resize(geometry.size());
  std::vector<int64_t> next(g.image_start.begin(), g.image_start.end() - 1);
  for (int64_t k = 0; k < static_cast<int64_t>(geometry.size()); k++) {
    g.order[next[geometry[k].batch]++] = k;
  }
  return g;
}

// dst[i * stride + j] = src[j * plane + i] for the nb channels of src, 0 for nb <= j < kLanes.
template <typename scalar_t, typename acc_t>
void pack_block(const scalar_t* src, int64_t plane, int nb, acc_t* dst, int stride) {
  if (nb == kLanes) {
    for (int64_t i = 0; i < plane; i++) {
      acc_t* d = dst + i * stride;
      for (int j = 0; j < kLanes; j++) {
        d[j] = static_cast<acc_t>(src[j * plane + i]);
      }
    }
    return;
  }
  const scalar_t* p[kLanes];
  for (int j = 0; j < kLanes; j++) {
    p[j] = src + std::min(j, nb - 1) * plane;
  }
  for (int64_t i = 0; i < plane; i++) {
    acc_t* d = dst + i * stride;
    for (int j = 0; j < kLanes; j++) {
      d[j] = j < nb ? static_cast<acc_t>(p[j][i]) : acc_t(0);
    }
  }
}

// dst[j * plane + i] = src[i * stride + j] for the nb channels of dst.
template <typename scalar_t, typename acc_t>
void unpack_block(const acc_t* src, int stride, int64_t plane, int nb, scalar_t* dst) {
  for (int j = 0; j < nb; j++) {
    scalar_t* d = dst + j * plane;
    for (int64_t i = 0; i < plane; i++) {
      d[i] = static_cast<scalar_t>(src[i * stride + j]);
    }
  }
}

// Forward of one packed channel block [c0, c0 + nb) of one image, for the given RoIs. Each channel
// sums its samples in torchvision's order, so the result is bit-identical to torchvision's.
template <typename scalar_t, typename acc_t>
void forward_block(
    const SamplePlan<acc_t>& plan,
    const acc_t* block,  // (H * W, kLanes)
    const int64_t* rois_begin,
    const int64_t* rois_end,
    int64_t c0,
    int nb,
    int64_t channels,
    int nbins,
    scalar_t* output) {
  using V = typename Vec<acc_t>::type;
  constexpr int NV = Vec<acc_t>::kCount;
  constexpr int VS = Vec<acc_t>::kSize;
  for (const int64_t* kp = rois_begin; kp != rois_end; kp++) {
    const int64_t k = *kp;
    const RoIGeometry<acc_t>& g = plan.geometry[k];
    const acc_t count = static_cast<acc_t>(std::max(g.grid_h * g.grid_w, 1));
    const int64_t* bin_start = plan.bin_start.data() + k * (nbins + 1);
    scalar_t* out = output + (k * channels + c0) * nbins;
    for (int bin = 0; bin < nbins; bin++) {
      V acc[NV] = {};
      for (int64_t i = bin_start[bin]; i < bin_start[bin + 1]; i++) {
        const Sample<acc_t>& s = plan.samples[i];
        const acc_t* r0 = block + static_cast<int64_t>(s.pos[0]) * kLanes;
        const acc_t* r1 = block + static_cast<int64_t>(s.pos[1]) * kLanes;
        const acc_t* r2 = block + static_cast<int64_t>(s.pos[2]) * kLanes;
        const acc_t* r3 = block + static_cast<int64_t>(s.pos[3]) * kLanes;
        for (int v = 0; v < NV; v++) {
          const int o = v * VS;
          acc[v] += s.w[0] * vload(r0 + o) + s.w[1] * vload(r1 + o) + s.w[2] * vload(r2 + o) +
              s.w[3] * vload(r3 + o);
        }
      }
      acc_t sum[kLanes];
      std::memcpy(sum, acc, sizeof(sum));
      for (int j = 0; j < nb; j++) {
        out[j * nbins + bin] = static_cast<scalar_t>(sum[j] / count);
      }
    }
  }
}

template <typename scalar_t>
void forward_kernel_impl(
    const scalar_t* input,
    const scalar_t* rois,
    const scalar_t* offset,
    OffsetMode mode,
    int64_t num_rois,
    int64_t batch_size,
    int64_t channels,
    int height,
    int width,
    int pooled_height,
    int pooled_width,
    int sampling_ratio,
    double spatial_scale,
    double gamma,
    bool aligned,
    scalar_t* output) {
  using acc_t = at::opmath_type<scalar_t>;
  SamplePlan<acc_t> plan;
  build_plan<scalar_t, acc_t, false>(
      rois, offset, mode, num_rois, batch_size, height, width, pooled_height, pooled_width,
      sampling_ratio, spatial_scale, gamma, aligned, plan);
  const RoIsByImage by_image = group_by_image(plan.geometry, batch_size);
  const int nbins = pooled_height * pooled_width;
  const int64_t plane = static_cast<int64_t>(height) * width;
  // Work items (channel block, image), channel-block major; outputs of items are disjoint.
  const int64_t num_cblocks = (channels + kLanes - 1) / kLanes;
  at::parallel_for(0, num_cblocks * batch_size, 1, [&](int64_t begin, int64_t end) {
    AlignedBuffer<acc_t> block(plane * kLanes);
    for (int64_t item = begin; item < end; item++) {
      const int64_t n = item % batch_size;
      const int64_t c0 = (item / batch_size) * kLanes;
      const int nb = static_cast<int>(std::min<int64_t>(kLanes, channels - c0));
      const int64_t* first = by_image.order.data() + by_image.image_start[n];
      const int64_t* last = by_image.order.data() + by_image.image_start[n + 1];
      if (first == last) {
        continue;
      }
      pack_block(input + (n * channels + c0) * plane, plane, nb, block.data(), kLanes);
      forward_block(plan, block.data(), first, last, c0, nb, channels, nbins, output);
    }
  });
}

// Backward of one packed channel block of one image: accumulates d(loss)/d(input) into the packed
// `grad_block` and, with an offset, adds d(loss)/d(offset) of these channels to `partial`
// (K, 2, nbins).
template <bool kOffset, typename scalar_t, typename acc_t>
void backward_block(
    const SamplePlan<acc_t>& plan,
    const scalar_t* grad,
    acc_t* block,  // (H * W, stride): gradient at lanes [0, kLanes), or with kOffset input at
                   // [0, kLanes) and gradient at [kLanes, 2 * kLanes)
    const int64_t* rois_begin,
    const int64_t* rois_end,
    int64_t c0,
    int nb,
    int64_t channels,
    int nbins,
    acc_t gamma,
    acc_t* partial) {
  constexpr int stride = kOffset ? 2 * kLanes : kLanes;
  acc_t* grad_block = kOffset ? block + kLanes : block;
  using V = typename Vec<acc_t>::type;
  constexpr int NV = Vec<acc_t>::kCount;
  constexpr int VS = Vec<acc_t>::kSize;
  for (const int64_t* kp = rois_begin; kp != rois_end; kp++) {
    const int64_t k = *kp;
    const RoIGeometry<acc_t>& g = plan.geometry[k];
    const int count = g.grid_h * g.grid_w;
    if (count == 0) {
      continue;
    }
    const int64_t* bin_start = plan.bin_start.data() + k * (nbins + 1);
    const scalar_t* go = grad + (k * channels + c0) * nbins;
    // d shift / d offset = gamma * (w, h) (eq. 3/5).
    const acc_t sx = gamma * g.roi_w;
    const acc_t sy = gamma * g.roi_h;
    for (int bin = 0; bin < nbins; bin++) {
      acc_t gs[kLanes] = {};
      for (int j = 0; j < nb; j++) {
        gs[j] = static_cast<acc_t>(go[j * nbins + bin]) / static_cast<acc_t>(count);
      }
      V gv[NV], dx[NV] = {}, dy[NV] = {};
      std::memcpy(gv, gs, sizeof(gs));
      for (int64_t i = bin_start[bin]; i < bin_start[bin + 1]; i++) {
        const Sample<acc_t>& s = plan.samples[i];
        // Corners may coincide (clamped border): each corner is loaded after the previous store.
        for (int c = 0; c < 4; c++) {
          acc_t* r = grad_block + static_cast<int64_t>(s.pos[c]) * stride;
          for (int v = 0; v < NV; v++) {
            vstore(r + v * VS, vload(r + v * VS) + s.w[c] * gv[v]);
          }
        }
        if (kOffset) {
          const SampleGrad<acc_t>& d = plan.grads[i];
          const acc_t* r0 = block + static_cast<int64_t>(s.pos[0]) * stride;
          const acc_t* r1 = block + static_cast<int64_t>(s.pos[1]) * stride;
          const acc_t* r2 = block + static_cast<int64_t>(s.pos[2]) * stride;
          const acc_t* r3 = block + static_cast<int64_t>(s.pos[3]) * stride;
          for (int v = 0; v < NV; v++) {
            const int o = v * VS;
            const V v0 = vload(r0 + o), v1 = vload(r1 + o), v2 = vload(r2 + o),
                    v3 = vload(r3 + o);
            dx[v] += gv[v] * (d.gx[0] * v0 + d.gx[1] * v1 + d.gx[2] * v2 + d.gx[3] * v3);
            dy[v] += gv[v] * (d.gy[0] * v0 + d.gy[1] * v1 + d.gy[2] * v2 + d.gy[3] * v3);
          }
        }
      }
      if (kOffset) {
        acc_t xs[kLanes], ys[kLanes];
        std::memcpy(xs, dx, sizeof(xs));
        std::memcpy(ys, dy, sizeof(ys));
        acc_t sum_x = 0, sum_y = 0;
        for (int j = 0; j < kLanes; j++) {
          sum_x += xs[j];
          sum_y += ys[j];
        }
        partial[k * 2 * nbins + bin] += sum_x * sx;
        partial[k * 2 * nbins + nbins + bin] += sum_y * sy;
      }
    }
  }
}

// Backward. Work items (channel block, image) own disjoint slices of grad_input, so the scatter
// is race-free, and deterministic (each slice accumulates its RoIs in index order). Items are
// split into num_chunks contiguous chunks; the offset gradient (a sum over channels) goes to a
// per-chunk partial buffer, summed afterwards in a fixed order.
template <typename scalar_t, bool kOffset>
void backward_kernel_impl(
    const scalar_t* grad,
    const scalar_t* input,
    const scalar_t* rois,
    const scalar_t* offset,
    OffsetMode mode,
    int64_t num_rois,
    int64_t batch_size,
    int64_t channels,
    int height,
    int width,
    int pooled_height,
    int pooled_width,
    int sampling_ratio,
    double spatial_scale,
    double gamma,
    bool aligned,
    int64_t num_chunks,
    scalar_t* grad_input,                       // (N, C, H, W), fully written
    at::opmath_type<scalar_t>* grad_partial) {  // (num_chunks, K, 2, nbins), zeroed
  using acc_t = at::opmath_type<scalar_t>;
  SamplePlan<acc_t> plan;
  build_plan<scalar_t, acc_t, kOffset>(
      rois, offset, mode, num_rois, batch_size, height, width, pooled_height, pooled_width,
      sampling_ratio, spatial_scale, gamma, aligned, plan);
  const RoIsByImage by_image = group_by_image(plan.geometry, batch_size);
  const int nbins = pooled_height * pooled_width;
  const int64_t plane = static_cast<int64_t>(height) * width;
  const int64_t num_cblocks = (channels + kLanes - 1) / kLanes;
  const int64_t num_items = num_cblocks * batch_size;
  at::parallel_for(0, num_chunks, 1, [&](int64_t begin, int64_t end) {
    constexpr int stride = kOffset ? 2 * kLanes : kLanes;
    AlignedBuffer<acc_t> buffer(plane * stride);
    acc_t* block = buffer.data();
    for (int64_t chunk = begin; chunk < end; chunk++) {
      acc_t* partial = kOffset ? grad_partial + chunk * num_rois * 2 * nbins : nullptr;
      const int64_t item_end = (chunk + 1) * num_items / num_chunks;
      for (int64_t item = chunk * num_items / num_chunks; item < item_end; item++) {
        const int64_t n = item % batch_size;
        const int64_t c0 = (item / batch_size) * kLanes;
        const int nb = static_cast<int>(std::min<int64_t>(kLanes, channels - c0));
        const int64_t* first = by_image.order.data() + by_image.image_start[n];
        const int64_t* last = by_image.order.data() + by_image.image_start[n + 1];
        acc_t* grad_block = kOffset ? block + kLanes : block;
        for (int64_t i = 0; i < plane; i++) {
          std::fill(grad_block + i * stride, grad_block + i * stride + kLanes, acc_t(0));
        }
        if (first != last) {
          if (kOffset) {
            pack_block(input + (n * channels + c0) * plane, plane, nb, block, stride);
          }
          backward_block<kOffset>(plan, grad, block, first, last, c0, nb, channels, nbins,
                                  static_cast<acc_t>(gamma), partial);
        }
        unpack_block(grad_block, stride, plane, nb, grad_input + (n * channels + c0) * plane);
      }
    }
  });
}

at::Tensor deform_roi_align_forward_cpu(
    const at::Tensor& input,
    const at::Tensor& rois,
    const OptionalTensor& offset,
    double spatial_scale,
    int64_t pooled_height,
    int64_t pooled_width,
    int64_t sampling_ratio,
    double gamma,
    bool aligned) {
  const OffsetMode mode = check_deform_roi_align_args(
      "deform_roi_align", input, rois, offset, pooled_height, pooled_width, sampling_ratio,
      c10::DeviceType::CPU);
  const int64_t num_rois = rois.size(0);
  const int64_t channels = input.size(1);
  at::Tensor output = at::empty({num_rois, channels, pooled_height, pooled_width},
                                input.options());
  if (output.numel() == 0) {
    return output;
  }
  const at::Tensor input_c = input.contiguous();
  const at::Tensor rois_c = rois.contiguous();
  const at::Tensor offset_c = mode == OffsetMode::kNone ? at::Tensor() : offset->contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, input.scalar_type(), "deform_roi_align_forward_cpu", [&] {
        forward_kernel_impl<scalar_t>(
            input_c.const_data_ptr<scalar_t>(), rois_c.const_data_ptr<scalar_t>(),
            mode == OffsetMode::kNone ? nullptr : offset_c.const_data_ptr<scalar_t>(), mode,
            num_rois, input.size(0), channels, static_cast<int>(input.size(2)),
            static_cast<int>(input.size(3)), static_cast<int>(pooled_height),
            static_cast<int>(pooled_width), static_cast<int>(sampling_ratio), spatial_scale,
            gamma, aligned, output.mutable_data_ptr<scalar_t>());
      });
  return output;
}

std::tuple<at::Tensor, at::Tensor> deform_roi_align_backward_cpu(
    const at::Tensor& grad,
    const at::Tensor& input,
    const at::Tensor& rois,
    const OptionalTensor& offset,
    double spatial_scale,
    int64_t pooled_height,
    int64_t pooled_width,
    int64_t sampling_ratio,
    double gamma,
    bool aligned) {
  const OffsetMode mode = check_deform_roi_align_args(
      "_deform_roi_align_backward", input, rois, offset, pooled_height, pooled_width,
      sampling_ratio, c10::DeviceType::CPU);
  const int64_t num_rois = rois.size(0);
  const int64_t channels = input.size(1);
  TORCH_CHECK(grad.device() == input.device() && grad.scalar_type() == input.scalar_type(),
              "_deform_roi_align_backward: grad must match input's device and dtype");
  TORCH_CHECK(grad.dim() == 4 && grad.size(0) == num_rois && grad.size(1) == channels &&
                  grad.size(2) == pooled_height && grad.size(3) == pooled_width,
              "_deform_roi_align_backward: grad must be (K, C, ph, pw), got ", grad.sizes());
  const auto acc_type = at::toOpMathType(input.scalar_type());
  // Every element is written by the kernel; zeroed here only when the kernel does not run.
  at::Tensor grad_input = at::empty(input.sizes(), input.options());
  const int64_t nbins = pooled_height * pooled_width;
  const int64_t num_items = (channels + kLanes - 1) / kLanes * input.size(0);
  const int64_t num_chunks =
      std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), num_items));
  at::Tensor partial;
  if (mode != OffsetMode::kNone) {
    partial = at::zeros({num_chunks, num_rois, 2, nbins}, input.options().dtype(acc_type));
  }
  if (grad.numel() == 0 || input.numel() == 0) {
    grad_input.zero_();
  } else {
    const at::Tensor grad_c = grad.contiguous();
    const at::Tensor input_c = input.contiguous();
    const at::Tensor rois_c = rois.contiguous();
    const at::Tensor offset_c =
        mode == OffsetMode::kNone ? at::Tensor() : offset->contiguous();
    AT_DISPATCH_FLOATING_TYPES_AND2(
        at::kHalf, at::kBFloat16, input.scalar_type(), "deform_roi_align_backward_cpu", [&] {
          using acc_t = at::opmath_type<scalar_t>;
          auto run = [&](auto kernel) {
            kernel(grad_c.const_data_ptr<scalar_t>(), input_c.const_data_ptr<scalar_t>(),
                   rois_c.const_data_ptr<scalar_t>(),
                   mode == OffsetMode::kNone ? nullptr : offset_c.const_data_ptr<scalar_t>(),
                   mode, num_rois, input.size(0), channels, static_cast<int>(input.size(2)),
                   static_cast<int>(input.size(3)), static_cast<int>(pooled_height),
                   static_cast<int>(pooled_width), static_cast<int>(sampling_ratio),
                   spatial_scale, gamma, aligned, num_chunks,
                   grad_input.mutable_data_ptr<scalar_t>(),
                   mode == OffsetMode::kNone ? nullptr : partial.mutable_data_ptr<acc_t>());
          };
          if (mode == OffsetMode::kNone) {
            run(backward_kernel_impl<scalar_t, false>);
          } else {
            run(backward_kernel_impl<scalar_t, true>);
          }
        });
  }
  at::Tensor grad_offset;
  if (mode == OffsetMode::kNone) {
    grad_offset = at::empty({0}, input.options());
  } else {
    at::Tensor summed = partial.sum(0);  // (K, 2, nbins)
    grad_offset = mode == OffsetMode::kProposal
        ? summed.sum(2)
        : summed.view({num_rois, 2, pooled_height, pooled_width});
    grad_offset = grad_offset.to(input.scalar_type());
  }
  return std::make_tuple(grad_input, grad_offset);
}

}  // namespace

TORCH_LIBRARY_IMPL(tsd_mmdet, CPU, m) {
  m.impl("deform_roi_align", TORCH_FN(deform_roi_align_forward_cpu));
  m.impl("_deform_roi_align_backward", TORCH_FN(deform_roi_align_backward_cpu));
}

}  // namespace ops
}  // namespace tsd_mmdet
