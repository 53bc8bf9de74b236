// Argument checks shared by the CPU and CUDA deformable RoIAlign kernels (TSD, eq. 3-6): the second
// line of defence behind the Python wrapper's checks (tsd_mmdet/ops/deform_roi_align.py).
#pragma once

#include <ATen/ATen.h>
#include <torch/version.h>

#include <optional>

#include "deform_roi_align_common.h"

namespace tsd_mmdet {
namespace ops {

// The C++ type of the schema's `Tensor?`: std::optional from torch 2.4 on (c10::optional became an
// alias of it there, and later went away); before that the dispatcher only knows c10::optional,
// its own class (torch 2.1-2.3).
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
using OptionalTensor = std::optional<at::Tensor>;
#else
using OptionalTensor = c10::optional<at::Tensor>;
#endif

// How the offset is given: none (plain RoIAlign), (K, 2) proposal-wise translation (Prop.w,
// eq. 3-4), or (K, 2, ph, pw) pointwise deformation (Point.w, eq. 5-6).
enum class OffsetMode : int { kNone = 0, kProposal = 1, kPoint = 2 };

inline OffsetMode check_deform_roi_align_args(
    const char* fn,
    const at::Tensor& input,
    const at::Tensor& rois,
    const OptionalTensor& offset,
    int64_t pooled_height,
    int64_t pooled_width,
    int64_t sampling_ratio,
    c10::DeviceType device_type) {
  TORCH_CHECK(input.device().type() == device_type, fn, ": input must be a ",
              c10::DeviceTypeName(device_type), " tensor");
  TORCH_CHECK(rois.device() == input.device(), fn, ": rois must be on input's device");
  TORCH_CHECK(input.dim() == 4, fn, ": input must be a (N, C, H, W) tensor, got ", input.dim(),
              " dims");
  TORCH_CHECK(rois.dim() == 2 && rois.size(1) == 5, fn, ": rois must be a (K, 5) tensor, got ",
              rois.sizes());
  TORCH_CHECK(rois.scalar_type() == input.scalar_type(), fn,
              ": rois must have input's dtype");
  TORCH_CHECK(pooled_height > 0 && pooled_width > 0, fn, ": output size must be positive, got (",
              pooled_height, ", ", pooled_width, ")");
  TORCH_CHECK(sampling_ratio <= kMaxSamplingGrid, fn, ": sampling_ratio must be <= ",
              kMaxSamplingGrid, ", got ", sampling_ratio);
  TORCH_CHECK(input.size(2) * input.size(3) < (int64_t(1) << 31), fn,
              ": input planes larger than 2^31 elements are not supported");
  if (!offset.has_value()) {
    return OffsetMode::kNone;
  }
  const at::Tensor& off = *offset;
  TORCH_CHECK(off.device() == input.device(), fn, ": offset must be on input's device");
  TORCH_CHECK(off.scalar_type() == input.scalar_type(), fn,
              ": offset must have input's dtype");
  const int64_t k = rois.size(0);
  if (off.dim() == 2) {
    TORCH_CHECK(off.size(0) == k && off.size(1) == 2, fn,
                ": offset must be (K, 2) or (K, 2, ph, pw), got ", off.sizes());
    return OffsetMode::kProposal;
  }
  TORCH_CHECK(off.dim() == 4 && off.size(0) == k && off.size(1) == 2 &&
                  off.size(2) == pooled_height && off.size(3) == pooled_width,
              fn, ": offset must be (K, 2) or (K, 2, ph, pw) = (", k, ", 2, ", pooled_height,
              ", ", pooled_width, "), got ", off.sizes());
  return OffsetMode::kPoint;
}

}  // namespace ops
}  // namespace tsd_mmdet
