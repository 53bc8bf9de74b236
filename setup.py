"""Build script for tsd-mmdet: the package plus its compiled op ``tsd_mmdet._C`` (csrc/).

CPU kernels always; CUDA kernels when a GPU is visible or ``FORCE_CUDA=1`` (CI compiles them).
"""
import glob
import os

from setuptools import find_packages, setup


def get_extensions():
    import torch
    from torch.utils.cpp_extension import CppExtension, CUDAExtension, CUDA_HOME

    sources = sorted(glob.glob('csrc/*.cpp'))
    include_dirs = [os.path.abspath('csrc')]
    # No -std here: torch's BuildExtension adds the standard its own headers were built with
    # (C++17 for torch 2.1 and 2.11, C++20 for 2.14). Forcing C++20 on torch 2.11 built an op whose
    # C++ exceptions (a bad batch index, say) crashed the process (segfault) on the GPU machine.
    extra = {'cxx': ['-O3']}
    define_macros = []
    extension = CppExtension
    with_cuda = torch.cuda.is_available() or os.getenv('FORCE_CUDA', '0') == '1'
    if with_cuda and CUDA_HOME is not None:
        extension = CUDAExtension
        sources += sorted(glob.glob('csrc/*.cu'))
        # ATen's CUDA headers include cusparse.h etc., which a bare nvcc toolkit may lack; torch's
        # pip wheels ship them (nvidia/cu13/include), matching the CUDA torch was built with.
        include_dirs += glob.glob(os.path.join(
            os.path.dirname(os.path.dirname(torch.__file__)), 'nvidia', 'cu*', 'include'))
        define_macros.append(('WITH_CUDA', None))
        extra['nvcc'] = ['-O3', '--expt-relaxed-constexpr']
    elif with_cuda:
        raise RuntimeError('FORCE_CUDA=1 but no CUDA toolkit found (set CUDA_HOME)')
    return [
        extension(
            'tsd_mmdet._C',
            sources,
            include_dirs=include_dirs,
            define_macros=define_macros,
            extra_compile_args=extra,
        )
    ]


def get_cmdclass():
    from torch.utils.cpp_extension import BuildExtension
    return {'build_ext': BuildExtension.with_options(use_ninja=True)}


setup(
    name='tsd-mmdet',
    version='0.1.0',
    description='Task-aware spatial disentanglement (TSD) for MMDetection 3.x two-stage detectors',
    license='Apache-2.0',
    python_requires='>=3.10',
    # What an existing mmdet 3.3 environment already has (README, "Install into your environment");
    # tools/misc/setup_env.sh installs exact versions itself and this package with --no-deps.
    install_requires=['torch>=2.1', 'mmengine>=0.10.0', 'mmcv>=2.0.0rc4,<2.2.0', 'mmdet>=3.3.0'],
    packages=find_packages(exclude=('tests', 'tests.*', 'configs', 'tools')),
    ext_modules=get_extensions(),
    cmdclass=get_cmdclass(),
    zip_safe=False,
)
