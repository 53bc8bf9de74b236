"""Quantize an exported detector to INT8 (NNCF post-training quantization) as OpenVINO IR.

The ONNX file of tools/deployment/pytorch2onnx.py is calibrated on images of the config's training
set through its test pipeline (the graph's input contract) and written as OpenVINO IR with the
same input and outputs; it runs through the same tools as the fp32 file (docs/deploy.md):

    python tools/deployment/quantize.py CONFIG MODEL.onnx --out MODEL_int8.xml \
        [--calib-images 100] [--seed 0] [--keep-fp32 PATTERN ...] [--cfg-options ...]
    python tools/deployment/test_onnx.py CONFIG MODEL_int8.xml --backend openvino
    python tools/deployment/benchmark_onnx.py CONFIG ... --int8

--keep-fp32 leaves the modules whose path matches a pattern (regular expression) in fp32; default
'roi_extractor' (the RoI extractors' box arithmetic: the derived proposals of eq. 3-6), which
INT8 costs 5.8 box AP on TSD (docs/deploy.md); --keep-fp32 with no pattern quantizes everything.
"""
import argparse

from mmengine.config import DictAction

import tsd_mmdet  # noqa: F401  (registers TSD's modules)
from tsd_mmdet.deployment import KEEP_FP32, ExportError, quantize_detector
from tsd_mmdet.utils.config import load_config


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='config file the model was exported from')
    parser.add_argument('model', help='ONNX file written by tools/deployment/pytorch2onnx.py')
    parser.add_argument('--out', required=True, help='OpenVINO IR to write (.xml; .bin beside)')
    parser.add_argument('--calib-images', type=int, default=100,
                        help='calibration images from the training set (default 100)')
    parser.add_argument('--seed', type=int, default=0, help='seed of their choice (default 0)')
    parser.add_argument('--keep-fp32', nargs='*', default=list(KEEP_FP32), metavar='PATTERN',
                        help='module paths (regular expressions) left in fp32 (default: '
                        f"{' '.join(KEEP_FP32)}; none: quantize everything)")
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, key=value (as for tools/test.py); data_root=... '
        'reaches every dataloader')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options)
    try:
        quantize_detector(cfg, args.model, args.out, args.calib_images, args.seed,
                          args.keep_fp32, log=lambda s: print(s, flush=True))
    except ExportError as e:
        raise SystemExit(f'export error: {e}') from None


if __name__ == '__main__':
    main()
