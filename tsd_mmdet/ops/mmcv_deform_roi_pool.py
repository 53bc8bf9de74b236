"""mmcv's DeformRoIPool CUDA kernels, built alone from mmcv's source release (no mmcv install).

The comparison op of ``tsd_mmdet.ops.benchmark`` on a GPU machine without mmcv: the same pooling as
TSD's Point.w (eq. 5-6, aligned), built with torch's JIT loader from mmcv's own kernel and launcher
files. Needs torch alone. tools/misc/build_mmcv_deform_roi_pool.py builds it ahead of a benchmark.
"""
import glob
import os
import tarfile
import tempfile

import torch

# The binding: mmcv's launchers (mmcv/ops/csrc/pytorch/cuda/deform_roi_pool_cuda.cu) under names
# of our own; mmcv's registry and the rest of its ops stay out.
_BINDING = r"""
#include <torch/extension.h>
using at::Tensor;
void DeformRoIPoolForwardCUDAKernelLauncher(Tensor input, Tensor rois, Tensor offset,
    Tensor output, int pooled_height, int pooled_width, float spatial_scale,
    int sampling_ratio, float gamma);
void DeformRoIPoolBackwardCUDAKernelLauncher(Tensor grad_output, Tensor input, Tensor rois,
    Tensor offset, Tensor grad_input, Tensor grad_offset, int pooled_height, int pooled_width,
    float spatial_scale, int sampling_ratio, float gamma);
PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &DeformRoIPoolForwardCUDAKernelLauncher);
  m.def("backward", &DeformRoIPoolBackwardCUDAKernelLauncher);
}
"""
_KERNEL = os.path.join('mmcv', 'ops', 'csrc', 'pytorch', 'cuda', 'deform_roi_pool_cuda.cu')


def find_source(path, unpack_to):
    """mmcv's source tree from a folder or a source release (``mmcv-2.1.0.tar.gz``).

    A release has its op sources unpacked into ``unpack_to`` (``build`` gives a folder in its build
    directory, so nothing is left behind in the temporary directory and a rebuild reuses it).
    """
    if os.path.isdir(path):
        for root in (path, *(os.path.join(path, d) for d in sorted(os.listdir(path)))):
            if os.path.isfile(os.path.join(root, _KERNEL)):
                return root
        raise FileNotFoundError(f'{path}: no {_KERNEL} in it or in a folder beside it')
    if not tarfile.is_tarfile(path):
        raise FileNotFoundError(f'{path}: neither a folder nor a source release (.tar.gz)')
    with tarfile.open(path) as tar:
        members = [m for m in tar.getmembers() if '/mmcv/ops/csrc/' in m.name and m.isfile()]
        tar.extractall(unpack_to, members=members, filter='data')
    return find_source(unpack_to, unpack_to)


def build(mmcv_src, build_dir=None, verbose=False):
    """Compiles (or reuses) the op; returns the loaded module with ``forward``/``backward``."""
    from torch.utils.cpp_extension import load
    build_dir = build_dir or os.path.join(
        os.environ.get('TORCH_EXTENSIONS_DIR', tempfile.gettempdir()), 'mmcv_deform_roi_pool')
    os.makedirs(build_dir, exist_ok=True)
    root = find_source(mmcv_src, os.path.join(build_dir, 'mmcv-src'))
    binding = os.path.join(build_dir, 'binding.cpp')
    with open(binding, 'w') as f:
        f.write(_BINDING)
    common = os.path.join(root, 'mmcv', 'ops', 'csrc', 'common')
    # As in setup.py: the CUDA headers ATen includes (cusparse.h, ...) from torch's pip wheels,
    # where a bare nvcc toolkit lacks them.
    wheels = glob.glob(os.path.join(os.path.dirname(os.path.dirname(torch.__file__)), 'nvidia',
                                    'cu*', 'include'))
    return load('mmcv_deform_roi_pool', [binding, os.path.join(root, _KERNEL)],
                extra_include_paths=[common, os.path.join(common, 'cuda'), *wheels],
                extra_cflags=['-O3'], extra_cuda_cflags=['-O3'], build_directory=build_dir,
                verbose=verbose)


class _Function(torch.autograd.Function):

    @staticmethod
    def forward(ctx, ext, x, rois, offset, output_size, spatial_scale, sampling_ratio, gamma):
        ph, pw = output_size
        out = x.new_zeros(rois.size(0), x.size(1), ph, pw)
        ext.forward(x, rois, offset, out, ph, pw, spatial_scale, sampling_ratio, gamma)
        ctx.save_for_backward(x, rois, offset)
        ctx.args = (ext, ph, pw, spatial_scale, sampling_ratio, gamma)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, rois, offset = ctx.saved_tensors
        ext, *args = ctx.args
        grad_input = torch.zeros_like(x)
        grad_offset = torch.zeros_like(offset)
        ext.backward(grad.contiguous(), x, rois, offset, grad_input, grad_offset, *args)
        return (None, grad_input, None, grad_offset if offset.numel() else None,
                None, None, None, None)


class MMCVDeformRoIPool(torch.nn.Module):
    """mmcv.ops.DeformRoIPool's interface and kernels: ``pool(x, rois, offset=None)``."""

    def __init__(self, mmcv_src, output_size, spatial_scale=1.0, sampling_ratio=0, gamma=0.1):
        super().__init__()
        self.ext = build(mmcv_src)
        size = output_size if isinstance(output_size, tuple) else (output_size, output_size)
        self.args = (size, float(spatial_scale), int(sampling_ratio), float(gamma))

    def forward(self, x, rois, offset=None):
        if offset is None:  # as mmcv: an empty offset, which the kernels skip
            offset = x.new_zeros(0)
        return _Function.apply(self.ext, x.contiguous(), rois.contiguous(),
                               offset.contiguous(), *self.args)

