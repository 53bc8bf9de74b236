"""Loading a detector for deployment: the config's model on the CPU, from a checkpoint or at init.

Not an equation of the paper: builds the detectors whose inference tsd_mmdet.deployment exports.
"""
import copy
import logging

import torch
from mmdet.registry import MODELS
from mmengine.config import Config, ConfigDict
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint
from torch import nn

from tsd_mmdet.engine import CheckpointError

from .checks import ExportError, check_config, check_exportable
from .contract import config_classes

__all__ = ['build_initialised_model', 'load_detector']


def _drop_pretrained_init(node) -> None:
    """Set every ``init_cfg`` of type Pretrained in a config tree to None, in place."""
    if isinstance(node, dict):
        init_cfg = node.get('init_cfg')
        if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
            node['init_cfg'] = None
        for value in node.values():
            _drop_pretrained_init(value)
    elif isinstance(node, list):
        for value in node:
            _drop_pretrained_init(value)


def build_initialised_model(model_cfg: ConfigDict, seed: int = 0) -> nn.Module:
    """The model of ``model_cfg`` on CPU, initialised as configured but without downloading.

    ``Pretrained`` init configs are dropped (a checkpoint or the baseline's weights replace them),
    so nothing is fetched; the rest, the offset predictors' Normal(std=1e-3) included, initialise
    as in training, under ``seed`` and without touching the caller's random state. mmengine's
    per-parameter init log (one entry per tensor) is kept out of the console.
    """
    model_cfg = copy.deepcopy(model_cfg)
    _drop_pretrained_init(model_cfg)
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = MODELS.build(model_cfg)
            model.init_weights()
    finally:
        logger.setLevel(level)
    return model


def load_detector(cfg: Config, checkpoint: str | None) -> nn.Module:
    """The config's detector on the CPU in eval mode, with the checkpoint's weights.

    Args:
        cfg (Config): Detector config (``--cfg-options`` applied).
        checkpoint (str, optional): Checkpoint file; its weights must fit the model exactly, and
            the class names in its ``meta`` (if any) must be the config's. None: random weights,
            initialised as for training (nothing downloaded), for latency measurements.

    Returns:
        nn.Module: The detector.

    Raises:
        ExportError: an unsupported config or detector, or a checkpoint that does not fit.
    """
    check_config(cfg)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    classes = config_classes(cfg)
    if checkpoint is None:
        detector = build_initialised_model(cfg.model)
        check_exportable(detector)
        detector.dataset_meta = dict(classes=classes)
        return detector.eval()
    detector = MODELS.build(cfg.model)
    check_exportable(detector)
    try:
        ckpt = load_checkpoint(detector, checkpoint, map_location='cpu', strict=True,
                               logger='silent')
    except (CheckpointError, FileNotFoundError, OSError) as e:
        raise ExportError(f'cannot read checkpoint {checkpoint}: {e}') from None
    except RuntimeError as e:  # missing, unexpected or mis-shaped weights
        problem = ' '.join(str(e).split())[:300]
        raise ExportError(f'checkpoint {checkpoint} does not fit the model of the config '
                          f'(another model or num_classes?): {problem}') from None
    saved = ((ckpt.get('meta') or {}).get('dataset_meta') or {}).get('classes')
    if saved is not None and classes is not None and list(saved) != classes:
        raise ExportError(f'checkpoint {checkpoint} was trained on classes {list(saved)}, the '
                          f'config tests {classes}: pass --cfg-options metainfo.classes=...')
    detector.dataset_meta = dict(classes=classes if saved is None else list(saved))
    return detector.eval()
