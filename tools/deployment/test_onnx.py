"""Evaluate an exported detector under a runtime on the config's test set, as tools/test.py does.

The config's own dataloader and evaluator (COCO box and mask AP, OpenImages AP) run in mmengine's
Runner, with the model's predictions coming from the runtime (ONNX Runtime or OpenVINO,
tsd_mmdet.deployment); the printed table is tools/test.py's, so the two can be compared line by
line (docs/deploy.md).

    python tools/deployment/test_onnx.py CONFIG MODEL.onnx [--backend onnxruntime|openvino] \
        [--precision f32|bf16|f16] [--threads N] [--cfg-options ...] [--out results.pkl]

MODEL.onnx must come from tools/deployment/pytorch2onnx.py with the same config (with --backend
openvino, its OpenVINO IR MODEL.xml too): other classes, another input contract (mean, std,
channel order) or another test_cfg stop with one line.
"""
import argparse

from mmengine.config import DictAction

import tsd_mmdet  # noqa: F401  (registers TSD's modules)
from tsd_mmdet.deployment import RUNTIMES, ExportError, evaluate_deployed
from tsd_mmdet.utils.config import load_config


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='config file the model was exported from')
    parser.add_argument('model', help='ONNX file written by tools/deployment/pytorch2onnx.py (or '
                        'its OpenVINO IR .xml, with --backend openvino)')
    parser.add_argument('--out', help='dump predictions to a pickle file (as tools/test.py --out)')
    parser.add_argument('--work-dir', help='directory of the logs and metrics (default: '
                        'work_dirs/<config name>_onnx)')
    parser.add_argument('--backend', default='onnxruntime',
                        help=f"the runtime: {', '.join(RUNTIMES)} (default onnxruntime)")
    parser.add_argument('--precision', default='f32', help="inference precision: f32 (default; "
                        "ONNX Runtime's only), bf16 or f16 (OpenVINO)")
    parser.add_argument('--threads', type=int, help="the runtime's threads (default: its own "
                        'choice)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, key=value (as for tools/test.py); data_root=... '
        'and metainfo.classes=... reach every dataloader and metric')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options)
    try:
        evaluate_deployed(cfg, args.model, out=args.out, work_dir=args.work_dir,
                          threads=args.threads, backend=args.backend, precision=args.precision)
    except ExportError as e:
        raise SystemExit(f'export error: {e}') from None


if __name__ == '__main__':
    main()
