"""Export a trained detector to ONNX (standard operators only) and check it with ONNX Runtime.

TSD's pooling (eq. 3-6) becomes ONNX RoiAlign (tsd_mmdet.deployment); docs/deploy.md has the
contract of the exported graph and what does not export.

    python tools/deployment/pytorch2onnx.py CONFIG CHECKPOINT --out MODEL.onnx [--shape H W] \
        [--openvino-ir] [--cfg-options ...]

Writes MODEL.onnx, checks it with onnx.checker, runs it with ONNX Runtime on one image (the
config's first test image, or a random one where the test set cannot be read) and prints how
many of PyTorch's detections it matches one to one (same label, IoU >= 0.99, score within 1e-3)
and the largest difference over the matched pairs. --openvino-ir also writes MODEL.xml and
MODEL.bin (OpenVINO IR, the same metadata) and checks them with OpenVINO likewise. A config or
checkpoint that cannot be exported stops with one line (``export error: ...``) naming the module
or the mismatch.
"""
import argparse
import os.path as osp
import time

from mmengine.config import DictAction

import tsd_mmdet  # noqa: F401  (registers TSD's modules)
from tsd_mmdet.deployment import (
    ExportError,
    OnnxDetector,
    OpenVinoDetector,
    compare_with_pytorch,
    export_detector,
    load_detector,
    sample_image,
    save_openvino_ir,
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
    parser.add_argument('--openvino-ir', action='store_true',
                        help='also write OpenVINO IR beside the ONNX file (MODEL.xml, MODEL.bin)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, key=value (as for tools/test.py); data_root=... '
        'and metainfo.classes=... reach every dataloader')
    return parser.parse_args()


def _report(title: str, diff: dict) -> str:
    ties = f" (and {diff['cut_ties']} tied at the max_per_img cut)" if diff['cut_ties'] else ''
    return (f"{diff['detections']} detections ({title}: {diff['onnx_detections']}); "
            f"{diff['unmatched']} without a match{ties}; largest difference of boxes and scores "
            f"{diff['dets']:.3g}" + (f", of mask probabilities {diff['masks']:.3g}"
                                     if 'masks' in diff else '') + ' (matched pairs)')


def main() -> None:
    args = parse_args()
    steps = 4 if args.openvino_ir else 3
    try:
        cfg = load_config(args.config, args.cfg_options)
        detector = load_detector(cfg, args.checkpoint)
        shape = tuple(args.shape) if args.shape else test_input_shape(cfg)
        print(f'[1/{steps}] exporting {args.config} with an example input of '
              f'{shape[0]}x{shape[1]} (torch.export, then the ONNX translation; about a minute)',
              flush=True)
        start = time.perf_counter()
        export_detector(detector, args.out, shape)
        print(f'[2/{steps}] wrote {args.out} in {time.perf_counter() - start:.0f} s; '
              'onnx.checker: passed', flush=True)
        image, source = sample_image(cfg, shape)
        print(f'[3/{steps}] ONNX Runtime against PyTorch on {source}', flush=True)
        print(_report('ONNX Runtime', compare_with_pytorch(detector, OnnxDetector(args.out),
                                                           image)), flush=True)
        if args.openvino_ir:
            xml = osp.splitext(args.out)[0] + '.xml'
            save_openvino_ir(args.out, xml)
            print(f'[4/{steps}] wrote {xml}; OpenVINO against PyTorch on {source}', flush=True)
            print(_report('OpenVINO', compare_with_pytorch(detector, OpenVinoDetector(xml),
                                                           image)))
    except ExportError as e:
        raise SystemExit(f'export error: {e}') from None


if __name__ == '__main__':
    main()
