// Operator schema, autocast wrappers and Python module of tsd_mmdet._C: deformable RoIAlign,
// the Prop.w (eq. 3-4) and Point.w (eq. 5-6) pooling of TSD. Kernels: deform_roi_align_{cpu,cuda}.
#include <Python.h>

#include <ATen/autocast_mode.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include <optional>
#include <tuple>

#include "deform_roi_align.h"

namespace tsd_mmdet {
namespace ops {

namespace {

at::Tensor deform_roi_align(
    const at::Tensor& input,
    const at::Tensor& rois,
    const OptionalTensor& offset,
    double spatial_scale,
    int64_t pooled_height,
    int64_t pooled_width,
    int64_t sampling_ratio,
    double gamma,
    bool aligned) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("tsd_mmdet::deform_roi_align", "")
                       .typed<decltype(deform_roi_align)>();
  return op.call(
      input, rois, offset, spatial_scale, pooled_height, pooled_width, sampling_ratio, gamma,
      aligned);
}

// Like torchvision's roi_align: run in float32 under autocast, return the input's dtype.
template <c10::DispatchKey autocast_key, c10::DeviceType device_type>
at::Tensor deform_roi_align_autocast(
    const at::Tensor& input,
    const at::Tensor& rois,
    const OptionalTensor& offset,
    double spatial_scale,
    int64_t pooled_height,
    int64_t pooled_width,
    int64_t sampling_ratio,
    double gamma,
    bool aligned) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(autocast_key);
  OptionalTensor offset_f;
  if (offset.has_value()) {
    offset_f = at::autocast::cached_cast(at::kFloat, *offset, device_type);
  }
  return deform_roi_align(
             at::autocast::cached_cast(at::kFloat, input, device_type),
             at::autocast::cached_cast(at::kFloat, rois, device_type),
             offset_f,
             spatial_scale,
             pooled_height,
             pooled_width,
             sampling_ratio,
             gamma,
             aligned)
      .to(input.scalar_type());
}

}  // namespace

TORCH_LIBRARY(tsd_mmdet, m) {
  m.def(
      "deform_roi_align(Tensor input, Tensor rois, Tensor? offset, float spatial_scale, "
      "SymInt pooled_height, SymInt pooled_width, int sampling_ratio, float gamma, "
      "bool aligned) -> Tensor");
  // Returns (grad_input, grad_offset); grad_offset is an empty tensor when offset is None.
  m.def(
      "_deform_roi_align_backward(Tensor grad, Tensor input, Tensor rois, Tensor? offset, "
      "float spatial_scale, SymInt pooled_height, SymInt pooled_width, int sampling_ratio, "
      "float gamma, bool aligned) -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(tsd_mmdet, Autocast, m) {
  m.impl(
      "deform_roi_align",
      TORCH_FN((deform_roi_align_autocast<c10::DispatchKey::Autocast, c10::DeviceType::CUDA>)));
}

TORCH_LIBRARY_IMPL(tsd_mmdet, AutocastCPU, m) {
  m.impl(
      "deform_roi_align",
      TORCH_FN((deform_roi_align_autocast<c10::DispatchKey::AutocastCPU, c10::DeviceType::CPU>)));
}

}  // namespace ops
}  // namespace tsd_mmdet

// `import tsd_mmdet._C` loads this library, whose static initialisers register the operators
// above under torch.ops.tsd_mmdet; the module itself is empty.
PyMODINIT_FUNC PyInit__C(void) {
  static struct PyModuleDef module_def = {
      PyModuleDef_HEAD_INIT,
      "_C",
      "Compiled operators of tsd_mmdet (registered under torch.ops.tsd_mmdet).",
      -1,
      nullptr,
  };
  return PyModule_Create(&module_def);
}
