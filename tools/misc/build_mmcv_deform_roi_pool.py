"""Build mmcv's DeformRoIPool CUDA kernels alone from mmcv's source release (no mmcv install).

The comparison op of tools/analysis_tools/benchmark_op.py (``--mmcv-src``) on a GPU machine
without mmcv; ``tsd_mmdet.ops.mmcv_deform_roi_pool`` says how. Building ahead (e.g. with all the
cores of the machine) lets the benchmark reuse the build::

    python tools/misc/build_mmcv_deform_roi_pool.py mmcv-2.1.0.tar.gz --build-dir /tmp/mmcv_drp
"""
import argparse

from tsd_mmdet.ops.mmcv_deform_roi_pool import build


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('mmcv_src', help="mmcv's source release (.tar.gz) or its unpacked folder")
    parser.add_argument('--build-dir', help='where to build (default: mmcv_deform_roi_pool in '
                        '$TORCH_EXTENSIONS_DIR or /tmp)')
    args = parser.parse_args()
    build(args.mmcv_src, args.build_dir, verbose=True)
    print('built mmcv DeformRoIPool (CUDA) from', args.mmcv_src)


if __name__ == '__main__':
    main()
