"""Export a trained detector to ONNX (standard operators only) and check it with ONNX Runtime.

TSD's pooling (eq. 3-6) becomes ONNX RoiAlign (tsd_mmdet.deployment); docs/deploy.md has the
contract of the exported graph and what does not export.

    python tools/deployment/pytorch2onnx.py CONFIG CHECKPOINT --out MODEL.onnx [--shape H W] \
        [--cfg-options ...]

Writes MODEL.onnx, checks it with onnx.checker, runs it with ONNX Runtime on one image (the
config's first test image, or a random one where the test set cannot be read) and prints how
many of PyTorch's detections it matches one to one (same label, IoU >= 0.99, score within 1e-3)
and the largest difference over the matched pairs. A config or checkpoint that cannot be exported
stops with one line (``export error: ...``) naming the module or the mismatch.
"""
import argparse
import time

from mmengine.config import DictAction

import tsd_mmdet  # noqa: F401  (registers TSD's modules)
from tsd_mmdet.deployment import (
    ExportError,
    OnnxDetector,
    compare_with_pytorch,
    export_detector,
    load_detector,
    sample_image,
    test_input_shape,
)
from tsd_mmdet.utils.config import load_config


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='config file of the trained detector')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', required=True, help='ONNX file to write')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help="example input traced (any size works afterwards); default: the "
                        "test pipeline's Resize scale")
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, key=value (as for tools/test.py); data_root=... '
        'and metainfo.classes=... reach every dataloader')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    try:
        cfg = load_config(args.config, args.cfg_options)
        detector = load_detector(cfg, args.checkpoint)
        shape = tuple(args.shape) if args.shape else test_input_shape(cfg)
        print(f'[1/3] exporting {args.config} with an example input of {shape[0]}x{shape[1]} '
              '(torch.export, then the ONNX translation; about a minute)', flush=True)
        start = time.perf_counter()
        export_detector(detector, args.out, shape)
        print(f'[2/3] wrote {args.out} in {time.perf_counter() - start:.0f} s; onnx.checker: '
              'passed', flush=True)
        image, source = sample_image(cfg, shape)
        print(f'[3/3] ONNX Runtime against PyTorch on {source}', flush=True)
        diff = compare_with_pytorch(detector, OnnxDetector(args.out), image)
    except ExportError as e:
        raise SystemExit(f'export error: {e}') from None
    ties = f" (and {diff['cut_ties']} tied at the max_per_img cut)" if diff['cut_ties'] else ''
    print(f"{diff['detections']} detections (ONNX Runtime: {diff['onnx_detections']}); "
          f"{diff['unmatched']} without a match{ties}; largest difference of boxes and scores "
          f"{diff['dets']:.3g}" + (f", of mask probabilities {diff['masks']:.3g}"
                                   if 'masks' in diff else '') + ' (matched pairs)')


if __name__ == '__main__':
    main()
