// CUDA kernels of deformable RoIAlign: forward and backward of TSD's Prop.w (eq. 3-4) and Point.w
// (eq. 5-6) pooling, float32/float64/float16/bfloat16 (half types accumulate in float, grad_input
// included).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/Atomic.cuh>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <algorithm>
#include <optional>
#include <tuple>

#include "deform_roi_align.h"
#include "deform_roi_align_common.h"

namespace tsd_mmdet {
namespace ops {

namespace {

// Grid-stride loop over [0, n).
#define TSD_CUDA_KERNEL_LOOP(i, n)                                                   \
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(blockDim.x) * gridDim.x)

// Threads per block; every kernel declares it in __launch_bounds__, so that the compiler keeps
// its register use launchable at this size (the float64 backward included).
constexpr int kThreads = 512;

inline unsigned int num_blocks(int64_t n) {
  return static_cast<unsigned int>(
      std::min<int64_t>((n + kThreads - 1) / kThreads, int64_t(4096)));
}

// Start of the sample grid of bin `bin` of RoI `k`: the RoI start shifted by
// gamma * offset * (w, h) (eq. 3-4 for a (K, 2) offset, eq. 5-6 for (K, 2, ph, pw)).
template <typename scalar_t, typename acc_t>
__device__ __forceinline__ void shifted_start(
    const RoIGeometry<acc_t>& g,
    const scalar_t* offset,
    int mode,
    int64_t k,
    int bin,
    int nbins,
    acc_t gamma,
    acc_t& start_w,
    acc_t& start_h) {
  start_w = g.start_w;
  start_h = g.start_h;
  if (mode == static_cast<int>(OffsetMode::kProposal)) {
    start_w += gamma * g.roi_w * static_cast<acc_t>(offset[k * 2]);
    start_h += gamma * g.roi_h * static_cast<acc_t>(offset[k * 2 + 1]);
  } else if (mode == static_cast<int>(OffsetMode::kPoint)) {
    const scalar_t* off = offset + k * 2 * nbins + bin;
    start_w += gamma * g.roi_w * static_cast<acc_t>(off[0]);
    start_h += gamma * g.roi_h * static_cast<acc_t>(off[nbins]);
  }
}

// One thread per output element (k, c, ph, pw).
template <typename scalar_t>
__global__ void __launch_bounds__(kThreads) deform_roi_align_forward_kernel(
    int64_t nthreads,
    const scalar_t* __restrict__ input,
    const scalar_t* __restrict__ rois,
    const scalar_t* __restrict__ offset,
    int mode,
    int64_t batch_size,
    int channels,
    int height,
    int width,
    int pooled_height,
    int pooled_width,
    int sampling_ratio,
    at::opmath_type<scalar_t> spatial_scale,
    at::opmath_type<scalar_t> gamma,
    bool aligned,
    scalar_t* __restrict__ output) {
  using acc_t = at::opmath_type<scalar_t>;
  const int nbins = pooled_height * pooled_width;
  TSD_CUDA_KERNEL_LOOP(index, nthreads) {
    const int pw = static_cast<int>(index % pooled_width);
    const int ph = static_cast<int>((index / pooled_width) % pooled_height);
    const int64_t c = (index / nbins) % channels;
    const int64_t k = index / nbins / channels;
    const auto g = roi_geometry<acc_t>(
        rois + k * 5, spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned);
    CUDA_KERNEL_ASSERT(g.batch >= 0 && g.batch < batch_size);  // rois[k, 0] indexes input
    acc_t start_w, start_h;
    shifted_start(g, offset, mode, k, ph * pooled_width + pw, nbins, gamma, start_w, start_h);
    const scalar_t* plane = input + (g.batch * channels + c) * height * width;
    acc_t sum = 0;
    for (int iy = 0; iy < g.grid_h; iy++) {
      const acc_t y = sample_coord(start_h, ph, g.bin_h, iy, g.grid_h);
      for (int ix = 0; ix < g.grid_w; ix++) {
        const acc_t x = sample_coord(start_w, pw, g.bin_w, ix, g.grid_w);
        int pos[4];
        acc_t w[4];
        if (bilinear_sample<acc_t>(height, width, y, x, pos, w, nullptr, nullptr)) {
          sum += w[0] * static_cast<acc_t>(plane[pos[0]]) +
              w[1] * static_cast<acc_t>(plane[pos[1]]) +
              w[2] * static_cast<acc_t>(plane[pos[2]]) +
              w[3] * static_cast<acc_t>(plane[pos[3]]);
        }
      }
    }
    const int count = g.grid_h * g.grid_w;
    output[index] = static_cast<scalar_t>(sum / static_cast<acc_t>(count > 1 ? count : 1));
  }
}

// One thread per output element: scatters into grad_input_acc (N, C, H, W) with atomics and, with
// an offset, adds its share of d(loss)/d(offset) to grad_offset_acc (K, 2, nbins). Both are in
// acc_t: a half/bfloat16 pixel that many samples hit would otherwise stop growing once its running
// sum is a few hundred times one contribution.
template <typename scalar_t>
__global__ void __launch_bounds__(kThreads) deform_roi_align_backward_kernel(
    int64_t nthreads,
    const scalar_t* __restrict__ grad,
    const scalar_t* __restrict__ input,
    const scalar_t* __restrict__ rois,
    const scalar_t* __restrict__ offset,
    int mode,
    int64_t batch_size,
    int channels,
    int height,
    int width,
    int pooled_height,
    int pooled_width,
    int sampling_ratio,
    at::opmath_type<scalar_t> spatial_scale,
    at::opmath_type<scalar_t> gamma,
    bool aligned,
    at::opmath_type<scalar_t>* __restrict__ grad_input_acc,
    at::opmath_type<scalar_t>* __restrict__ grad_offset_acc) {
  using acc_t = at::opmath_type<scalar_t>;
  const int nbins = pooled_height * pooled_width;
  const bool with_offset = mode != static_cast<int>(OffsetMode::kNone);
  TSD_CUDA_KERNEL_LOOP(index, nthreads) {
    const int pw = static_cast<int>(index % pooled_width);
    const int ph = static_cast<int>((index / pooled_width) % pooled_height);
    const int bin = ph * pooled_width + pw;
    const int64_t c = (index / nbins) % channels;
    const int64_t k = index / nbins / channels;
    const auto g = roi_geometry<acc_t>(
        rois + k * 5, spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned);
    CUDA_KERNEL_ASSERT(g.batch >= 0 && g.batch < batch_size);  // rois[k, 0] indexes input
    const int count = g.grid_h * g.grid_w;
    if (count == 0) {
      continue;
    }
    acc_t start_w, start_h;
    shifted_start(g, offset, mode, k, bin, nbins, gamma, start_w, start_h);
    const int64_t plane_offset = (g.batch * channels + c) * height * width;
    const scalar_t* plane = input + plane_offset;
    const acc_t gv = static_cast<acc_t>(grad[index]) / static_cast<acc_t>(count);
    acc_t dx = 0, dy = 0;
    for (int iy = 0; iy < g.grid_h; iy++) {
      const acc_t y = sample_coord(start_h, ph, g.bin_h, iy, g.grid_h);
      for (int ix = 0; ix < g.grid_w; ix++) {
        const acc_t x = sample_coord(start_w, pw, g.bin_w, ix, g.grid_w);
        int pos[4];
        acc_t w[4], gx[4], gy[4];
        if (!bilinear_sample<acc_t>(height, width, y, x, pos, w, gx, gy)) {
          continue;
        }
        for (int i = 0; i < 4; i++) {
          gpuAtomicAddNoReturn(grad_input_acc + plane_offset + pos[i], w[i] * gv);
        }
        if (with_offset) {
          for (int i = 0; i < 4; i++) {
            const acc_t v = static_cast<acc_t>(plane[pos[i]]);
            dx += gx[i] * v;
            dy += gy[i] * v;
          }
        }
      }
    }
    if (with_offset) {
      // d shift / d offset = gamma * (w, h) (eq. 3/5).
      acc_t* go = grad_offset_acc + k * 2 * nbins + bin;
      gpuAtomicAdd(go, gv * dx * gamma * g.roi_w);
      gpuAtomicAdd(go + nbins, gv * dy * gamma * g.roi_h);
    }
  }
}

at::Tensor deform_roi_align_forward_cuda(
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
      "deform_roi_align", input, rois, offset, pooled_height, pooled_width,
      sampling_ratio, c10::DeviceType::CUDA);
  at::cuda::CUDAGuard device_guard(input.device());
  const int64_t num_rois = rois.size(0);
  const int64_t channels = input.size(1);
  at::Tensor output =
      at::empty({num_rois, channels, pooled_height, pooled_width}, input.options());
  const int64_t n = output.numel();
  if (n == 0) {
    return output;
  }
  const at::Tensor input_c = input.contiguous();
  const at::Tensor rois_c = rois.contiguous();
  const at::Tensor offset_c = mode == OffsetMode::kNone ? at::Tensor() : offset->contiguous();
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, input.scalar_type(), "deform_roi_align_forward_cuda", [&] {
        using acc_t = at::opmath_type<scalar_t>;
        deform_roi_align_forward_kernel<scalar_t><<<num_blocks(n), kThreads, 0, stream>>>(
            n, input_c.const_data_ptr<scalar_t>(), rois_c.const_data_ptr<scalar_t>(),
            mode == OffsetMode::kNone ? nullptr : offset_c.const_data_ptr<scalar_t>(),
            static_cast<int>(mode), input.size(0), static_cast<int>(channels),
            static_cast<int>(input.size(2)),
            static_cast<int>(input.size(3)), static_cast<int>(pooled_height),
            static_cast<int>(pooled_width), static_cast<int>(sampling_ratio),
            static_cast<acc_t>(spatial_scale), static_cast<acc_t>(gamma), aligned,
            output.mutable_data_ptr<scalar_t>());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
  return output;
}

std::tuple<at::Tensor, at::Tensor> deform_roi_align_backward_cuda(
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
      sampling_ratio, c10::DeviceType::CUDA);
  const int64_t num_rois = rois.size(0);
  const int64_t channels = input.size(1);
  TORCH_CHECK(grad.device() == input.device() && grad.scalar_type() == input.scalar_type(),
              "_deform_roi_align_backward: grad must match input's device and dtype");
  TORCH_CHECK(grad.dim() == 4 && grad.size(0) == num_rois && grad.size(1) == channels &&
                  grad.size(2) == pooled_height && grad.size(3) == pooled_width,
              "_deform_roi_align_backward: grad must be (K, C, ph, pw), got ", grad.sizes());
  at::cuda::CUDAGuard device_guard(input.device());
  const int64_t nbins = pooled_height * pooled_width;
  const auto acc_type = at::toOpMathType(input.scalar_type());
  // Summed in acc_t and rounded once at the end, as the CPU kernel does; for float and double
  // this is grad_input itself.
  at::Tensor grad_input_acc = at::zeros(input.sizes(), input.options().dtype(acc_type));
  at::Tensor grad_offset_acc;
  if (mode != OffsetMode::kNone) {
    grad_offset_acc = at::zeros({num_rois, 2, nbins}, input.options().dtype(acc_type));
  }
  const int64_t n = grad.numel();
  if (n > 0 && input.numel() > 0) {
    at::globalContext().alertNotDeterministic("deform_roi_align_backward_cuda");
    const at::Tensor grad_c = grad.contiguous();
    const at::Tensor input_c = input.contiguous();
    const at::Tensor rois_c = rois.contiguous();
    const at::Tensor offset_c =
        mode == OffsetMode::kNone ? at::Tensor() : offset->contiguous();
    cudaStream_t stream = at::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES_AND2(
        at::kHalf, at::kBFloat16, input.scalar_type(), "deform_roi_align_backward_cuda", [&] {
          using acc_t = at::opmath_type<scalar_t>;
          deform_roi_align_backward_kernel<scalar_t><<<num_blocks(n), kThreads, 0, stream>>>(
              n, grad_c.const_data_ptr<scalar_t>(), input_c.const_data_ptr<scalar_t>(),
              rois_c.const_data_ptr<scalar_t>(),
              mode == OffsetMode::kNone ? nullptr : offset_c.const_data_ptr<scalar_t>(),
              static_cast<int>(mode), input.size(0), static_cast<int>(channels),
              static_cast<int>(input.size(2)), static_cast<int>(input.size(3)),
              static_cast<int>(pooled_height), static_cast<int>(pooled_width),
              static_cast<int>(sampling_ratio), static_cast<acc_t>(spatial_scale),
              static_cast<acc_t>(gamma), aligned, grad_input_acc.mutable_data_ptr<acc_t>(),
              mode == OffsetMode::kNone ? nullptr : grad_offset_acc.mutable_data_ptr<acc_t>());
          C10_CUDA_KERNEL_LAUNCH_CHECK();
        });
  }
  const at::Tensor grad_input = grad_input_acc.to(input.scalar_type());
  at::Tensor grad_offset;
  if (mode == OffsetMode::kNone) {
    grad_offset = at::empty({0}, input.options());
  } else {
    grad_offset = mode == OffsetMode::kProposal
        ? grad_offset_acc.sum(2)
        : grad_offset_acc.view({num_rois, 2, pooled_height, pooled_width});
    grad_offset = grad_offset.to(input.scalar_type());
  }
  return std::make_tuple(grad_input, grad_offset);
}

}  // namespace

TORCH_LIBRARY_IMPL(tsd_mmdet, CUDA, m) {
  m.impl("deform_roi_align", TORCH_FN(deform_roi_align_forward_cuda));
  m.impl("_deform_roi_align_backward", TORCH_FN(deform_roi_align_backward_cuda));
}

}  // namespace ops
}  // namespace tsd_mmdet
