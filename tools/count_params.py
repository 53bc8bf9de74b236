"""Count the parameters of a TSD config's inference and training models and of a baseline config.

Checks Table 1's #param (TSD w/o PC with R50-FPN: 58.9M, Faster R-CNN R50-FPN: 41.8M). Models are
built from the config without init_weights, so no weights are downloaded.

    python tools/count_params.py [CONFIG] [--baseline BASELINE_CONFIG]
"""
import argparse

from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from mmengine.config import Config, ConfigDict
from mmengine.hub import get_config
from torch import nn

DEFAULT_CONFIG = 'configs/tsd/tsd-faster-rcnn_r50_fpn_1x_coco.py'
DEFAULT_BASELINE = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'


def count_parameters(model: nn.Module) -> int:
    """Number of parameters of ``model`` (trainable or not, buffers excluded)."""
    return sum(p.numel() for p in model.parameters())


def inference_model_cfg(model_cfg: ConfigDict) -> ConfigDict:
    """Copy of a model config without its training-only parts (sibling head and PC).

    Configs whose roi_head has no ``sibling_head`` are returned unchanged (as a copy).
    """
    model_cfg = model_cfg.copy()
    roi_head = model_cfg.get('roi_head')
    if roi_head is not None and 'sibling_head' in roi_head:
        model_cfg.roi_head = roi_head.copy()
        model_cfg.roi_head.update(sibling_head=None, pc_cls=None, pc_loc=None)
    return model_cfg


def load_config(config: str) -> Config:
    """A config file, or a package config such as ``mmdet::faster_rcnn/...py``."""
    return get_config(config) if '::' in config else Config.fromfile(config)


def config_parameters(config: str, inference: bool = False) -> int:
    """Parameter count of ``config``'s model: the inference model if ``inference``."""
    model_cfg = load_config(config).model
    if inference:
        model_cfg = inference_model_cfg(model_cfg)
    return count_parameters(MODELS.build(model_cfg))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Print the parameter counts of a config (inference model: without the '
        'training-only sibling head; training model: as configured) and of a baseline config.')
    parser.add_argument('config', nargs='?', default=DEFAULT_CONFIG, help='TSD config file')
    parser.add_argument(
        '--baseline',
        default=DEFAULT_BASELINE,
        help='baseline config (file or mmdet:: path), default: %(default)s')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    register_all_modules()
    rows = [(f'{args.config} (inference)', config_parameters(args.config, inference=True)),
            (f'{args.config} (training)', config_parameters(args.config)),
            (f'{args.baseline} (baseline)', config_parameters(args.baseline))]
    for name, n in rows:
        print(f'{name}: {n:,} parameters ({n / 1e6:.2f}M)')


if __name__ == '__main__':
    main()
