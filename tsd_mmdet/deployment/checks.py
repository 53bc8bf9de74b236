"""What export supports, checked before tracing: one-line errors naming the module and the fix.

Not an equation of the paper: the guard rails of tsd_mmdet.deployment (detectors, configs).
"""
from mmengine.config import Config
from torch import nn

from ..models.roi_heads import TSDStageMixin

__all__ = ['ExportError', 'check_config', 'check_exportable', 'innermost_dataset']

# Exact class names: a subclass may change what a supported method computes.
DETECTORS = ('FasterRCNN', 'MaskRCNN', 'CascadeRCNN')
RPN_HEADS = ('RPNHead',)
# mmdet's baselines by exact name; a TSD head by its contract (TSDStageMixin.tsd_inference)
ROI_HEADS = ('StandardRoIHead', 'CascadeRoIHead')
TSD_INFERENCE = ('standard', 'cascade')
EXTRACTORS = ('SingleRoIExtractor', 'TSDRoIExtractor')
ROI_LAYERS = ('RoIAlign', 'DeformRoIAlign')  # mmcv's (average pooling) and ours
BBOX_HEADS = ('BBoxHead', 'ConvFCBBoxHead', 'Shared2FCBBoxHead', 'Shared4Conv1FCBBoxHead',
              'TSDBBoxHead')
MASK_HEADS = ('FCNMaskHead',)
BOX_CODERS = ('DeltaXYWHBBoxCoder',)
TTA_TRANSFORMS = ('TestTimeAug', 'MultiScaleFlipAug')
# necks whose sizes torch.export specialises to the traced image, and why (none now: Libra
# R-CNN's BFP has an export-mode forward, necks.ExportBFP)
UNTRACEABLE_NECKS: dict[str, str] = {}
SUPPORTED = ("Faster R-CNN, Mask R-CNN and Cascade R-CNN (and Libra R-CNN, Dynamic R-CNN, PISA) "
             "with a TSD RoI head whose inference is Faster's or Cascade's, or mmdet's "
             'StandardRoIHead / CascadeRoIHead')


class ExportError(ValueError):
    """A detector, config or model file that cannot be exported or does not match: one line."""


def innermost_dataset(dataset_cfg):
    """The dataset config inside wrappers (RepeatDataset, ClassBalancedDataset, ...)."""
    while 'dataset' in dataset_cfg:
        dataset_cfg = dataset_cfg['dataset']
    return dataset_cfg


def _name(module) -> str:
    return type(module).__name__


def _require(path: str, module, allowed: tuple[str, ...]) -> None:
    if _name(module) not in allowed:
        raise ExportError(f'{path} is {_name(module)}, which export does not support (supported: '
                          f"{', '.join(allowed)}); export handles {SUPPORTED}")


def _as_list(modules) -> list:
    return list(modules) if isinstance(modules, nn.ModuleList) else [modules]


def _check_nms(path: str, cfg) -> None:
    nms = cfg.get('nms') or {}
    if nms.get('type', 'nms') != 'nms':
        raise ExportError(f"{path}.nms.type is {nms.get('type')!r}; export has only 'nms' "
                          "(ONNX NonMaxSuppression): set it to 'nms'")


def check_exportable(detector: nn.Module) -> None:
    """Raise :class:`ExportError` naming the first module that export does not support.

    Args:
        detector (nn.Module): A built mmdet detector.
    """
    roi_head = getattr(detector, 'roi_head', None)
    if isinstance(roi_head, TSDStageMixin) and roi_head.tsd_inference not in TSD_INFERENCE:
        raise ExportError(f"model.roi_head is {_name(roi_head)}, whose inference is neither "
                          "Faster R-CNN's nor Cascade R-CNN's (its own test-time flow), which "
                          f'export does not reproduce; export handles {SUPPORTED}')
    _require('model', detector, DETECTORS)
    for path, module in detector.named_modules():
        if type(module).__module__.startswith('mmcv.ops') and _name(module) != 'RoIAlign':
            raise ExportError(
                f"model.{path} is mmcv's {_name(module)}, which has no ONNX translation here "
                '(e.g. a backbone with DCN, dcn=...): export a config without it')
    for path, module in detector.named_modules():
        if _name(module) in UNTRACEABLE_NECKS:
            raise ExportError(f'model.{path} is {_name(module)}, {UNTRACEABLE_NECKS[_name(module)]}'
                              ', which export (free H, W) cannot trace: export a config without it')
    pre = detector.data_preprocessor
    if getattr(pre, 'batch_augments', None):
        raise ExportError('model.data_preprocessor.batch_augments is set; export supports none '
                          '(they are training-time augmentations): remove them')
    _require('model.rpn_head', detector.rpn_head, RPN_HEADS)
    _require('model.rpn_head.bbox_coder', detector.rpn_head.bbox_coder, BOX_CODERS)
    rpn_cfg = detector.rpn_head.test_cfg
    if not rpn_cfg.get('nms_pre', -1) > 0:
        raise ExportError('model.test_cfg.rpn.nms_pre must be > 0 for export (a fixed number of '
                          f"candidates per level), got {rpn_cfg.get('nms_pre')}")
    _check_nms('model.test_cfg.rpn', rpn_cfg)
    if isinstance(roi_head, TSDStageMixin):
        cascade = roi_head.tsd_inference == 'cascade'
    else:
        _require('model.roi_head', roi_head, ROI_HEADS)
        cascade = _name(roi_head) == 'CascadeRoIHead'
    if roi_head.with_shared_head:
        raise ExportError('model.roi_head.shared_head is set, which export does not support: '
                          'use a config without a shared head')
    if cascade and roi_head.with_mask:
        raise ExportError('model.roi_head is a Cascade R-CNN with a mask head (Cascade Mask '
                          'R-CNN), which export does not support: export Mask R-CNN or '
                          'Cascade R-CNN')
    _check_nms('model.test_cfg.rcnn', roi_head.test_cfg)
    for i, extractor in enumerate(_as_list(roi_head.bbox_roi_extractor)):
        path = 'model.roi_head.bbox_roi_extractor' + (f'.{i}' if cascade else '')
        _require(path, extractor, EXTRACTORS)
        for j, layer in enumerate(extractor.roi_layers):
            _require(f'{path}.roi_layers.{j}', layer, ROI_LAYERS)
            if getattr(layer, 'pool_mode', 'avg') != 'avg':
                raise ExportError(f"{path}.roi_layers.{j} pools with pool_mode='"
                                  f"{layer.pool_mode}'; export has 'avg' only")
    for i, head in enumerate(_as_list(roi_head.bbox_head)):
        path = 'model.roi_head.bbox_head' + (f'.{i}' if cascade else '')
        _require(path, head, BBOX_HEADS)
        _require(f'{path}.bbox_coder', head.bbox_coder, BOX_CODERS)
    if roi_head.with_mask:
        _require('model.roi_head.mask_head', roi_head.mask_head, MASK_HEADS)
        if roi_head.share_roi_extractor:
            raise ExportError('model.roi_head shares its RoI extractor with the mask head, '
                              'which export does not support: give it a mask_roi_extractor')
        _require('model.roi_head.mask_roi_extractor', roi_head.mask_roi_extractor, EXTRACTORS)
        for j, layer in enumerate(roi_head.mask_roi_extractor.roi_layers):
            _require(f'model.roi_head.mask_roi_extractor.roi_layers.{j}', layer, ROI_LAYERS)


def check_config(cfg: Config) -> None:
    """Raise :class:`ExportError` for a config whose test-time set-up export cannot reproduce:
    test-time augmentation (a TTA model or a TTA transform in the test pipeline).

    Args:
        cfg (Config): A detector config.
    """
    if cfg.model.get('type') == 'DetTTAModel' or 'module' in cfg.model:
        raise ExportError(f"model is the test-time augmentation wrapper {cfg.model.get('type')}, "
                          'which export does not support: export the detector itself')
    dataset = innermost_dataset(cfg.test_dataloader.dataset)
    for i, step in enumerate(dataset.get('pipeline', [])):
        if step.get('type') in TTA_TRANSFORMS:
            raise ExportError(
                f"test_dataloader.dataset.pipeline.{i} is {step['type']} (test-time "
                'augmentation), which export does not support: use a pipeline with one Resize')
