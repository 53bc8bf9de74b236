"""The backend-neutral contract of a deployed detector: its metadata, input, outputs and checks.

Not an equation of the paper: what every runtime of tsd_mmdet.deployment shares (classes, input
shape, sample image, the metadata checked against a config, detections matched one to one).
"""
import json

import numpy as np
import torch
from mmdet.registry import DATASETS
from mmdet.structures.bbox import bbox_overlaps
from mmengine.config import Config
from torch import nn

import tsd_mmdet

from .checks import ExportError, innermost_dataset
from .detector import ExportDetector

__all__ = ['INPUT', 'MATCH_IOU', 'MATCH_SCORE', 'METADATA_KEY', 'OUTPUTS', 'check_metadata',
           'compare_with_pytorch', 'config_classes', 'match_detections', 'model_metadata',
           'sample_image', 'test_input_shape']

METADATA_KEY = 'tsd_mmdet'  # the model file's metadata entry that describes the export (JSON)
INPUT = ('image', 'float32', 4)  # the one input: name, element type, rank
OUTPUTS = ('dets', 'labels', 'masks')  # in this order; 'masks' for Mask R-CNN only
MATCH_IOU = 0.99  # a deployed detection matches PyTorch's: same label, IoU >= this,
MATCH_SCORE = 1e-3  # and scores within this


def config_classes(cfg: Config) -> list[str] | None:
    """The class names the config tests: its test set's ``metainfo.classes``, else the config's
    top-level ``metainfo.classes`` (configs/shapes), else the dataset type's own (e.g. COCO's 80);
    None where only the data knows them (OpenImages reads them from its label file)."""
    dataset = innermost_dataset(cfg.test_dataloader.dataset)
    classes = ((dataset.get('metainfo') or {}).get('classes')
               or (cfg.get('metainfo') or {}).get('classes')
               or DATASETS.get(dataset.type).METAINFO.get('classes'))
    return None if classes is None else list(classes)


def test_input_shape(cfg: Config) -> tuple[int, int]:
    """(H, W) of the test pipeline's ``Resize`` scale (given as (w, h)), or 800 x 1333."""
    dataset = innermost_dataset(cfg.test_dataloader.dataset)
    for step in dataset.get('pipeline', []):
        if step.get('type') == 'Resize' and step.get('scale') is not None:
            w, h = step['scale']
            return int(h), int(w)
    return 800, 1333


def sample_image(cfg: Config, shape: tuple[int, int]) -> tuple[torch.Tensor, str]:
    """One input for the check run: the config's first test image through its test pipeline,
    or, where that set cannot be read, a seeded random image of ``shape``.

    Returns:
        tuple[Tensor, str]: (1, 3, H, W) float32 image and where it comes from.
    """
    try:
        dataset = DATASETS.build(cfg.test_dataloader.dataset)
        item = dataset[0]
    except Exception as e:  # no data here: any error of the dataset or its pipeline
        generator = torch.Generator().manual_seed(0)
        image = torch.randint(0, 256, (1, 3, *shape), generator=generator).float()
        return image, f'a random {shape[0]}x{shape[1]} image (the test set: {type(e).__name__})'
    return item['inputs'][None].float(), f"{item['data_samples'].img_path}"


def _num_classes(roi_head) -> int:
    heads = roi_head.bbox_head
    return (heads[-1] if isinstance(heads, nn.ModuleList) else heads).num_classes


def model_metadata(detector: nn.Module, wrapper: ExportDetector, classes: list[str] | None,
                   min_size: int) -> dict:
    """What a model file is checked against its config with (stored as JSON, ``METADATA_KEY``)."""
    pre = detector.data_preprocessor
    return dict(
        classes=classes,
        num_classes=_num_classes(detector.roi_head),
        with_mask=wrapper.with_mask,
        min_size=min_size,
        preprocess=dict(
            mean=pre.mean.flatten().tolist() if pre._enable_normalize else None,
            std=pre.std.flatten().tolist() if pre._enable_normalize else None,
            bgr_to_rgb=bool(pre._channel_conversion),
            pad_size_divisor=pre.pad_size_divisor,
            pad_value=pre.pad_value),
        test_cfg=dict(rpn=detector.rpn_head.test_cfg.to_dict(),
                      rcnn=detector.roi_head.test_cfg.to_dict()),
        versions=dict(tsd_mmdet=tsd_mmdet.__version__, torch=torch.__version__))


def _same(a, b) -> bool:
    """Equal, numbers compared as float32 (the mean and std are float32 buffers in the model)."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and np.allclose(a, b, rtol=1e-6, atol=0)
    return a == b


def check_metadata(meta: dict, cfg: Config, path: str) -> None:
    """Raise :class:`ExportError` where the config differs from what the model file ``path`` was
    exported with (its metadata ``meta``): classes, the input contract (mean, std, channel order,
    padding), ``test_cfg``, or a mask metric for a model without masks.

    Args:
        meta (dict): The file's ``METADATA_KEY`` entry (:func:`model_metadata`).
        cfg (Config): The config the model is about to be tested with.
        path (str): The model file, named in the message.
    """
    where = f'{path} was exported'
    classes = config_classes(cfg)
    heads = cfg.model.roi_head.bbox_head
    num_classes = (heads[-1] if isinstance(heads, list) else heads).num_classes
    if (classes is not None and meta['classes'] is not None
            and classes != meta['classes']) or num_classes != meta['num_classes']:
        raise ExportError(f"{where} for classes {meta['classes']} ({meta['num_classes']}), the "
                          f'config tests {classes} ({num_classes}): pass the classes it was '
                          'trained on (--cfg-options metainfo.classes=...) or export it again')
    pre = cfg.model.get('data_preprocessor', {})
    theirs = dict(
        mean=pre.get('mean'), std=pre.get('std'),
        bgr_to_rgb=bool(pre.get('bgr_to_rgb', False) or pre.get('rgb_to_bgr', False)),
        pad_size_divisor=pre.get('pad_size_divisor', 1), pad_value=pre.get('pad_value', 0))
    ours = meta['preprocess']
    diff = [k for k in theirs if not _same(theirs[k], ours[k])]
    if diff:
        raise ExportError(f'{where} with another input contract: model.data_preprocessor.'
                          f'{diff[0]} is {ours[diff[0]]!r} in it, {theirs[diff[0]]!r} in the '
                          'config: export it again from this config')
    test_cfg = json.loads(json.dumps(cfg.model.test_cfg.to_dict()))
    for part in ('rpn', 'rcnn'):
        if test_cfg.get(part) != meta['test_cfg'][part]:
            raise ExportError(f"{where} with model.test_cfg.{part} = {meta['test_cfg'][part]}, "
                              f'the config has {test_cfg.get(part)}: export it again with the '
                              'same --cfg-options')
    evaluators = cfg.test_evaluator if isinstance(cfg.test_evaluator, list) else \
        [cfg.test_evaluator]
    for metric in evaluators:
        names = metric.get('metric', [])
        if not meta['with_mask'] and 'segm' in (names if isinstance(names, list) else [names]):
            raise ExportError(f'{where} without masks, and the test metric asks for segm: '
                              'test it with a box-only config')


def match_detections(ours: dict, theirs: dict) -> tuple[list[tuple[int, int]], list[int]]:
    """Pair two detectors' outputs on one image one to one, as a reader would compare them.

    Rows are not compared in order: detections whose scores differ by float rounding only (a
    barely trained model has many) may come out in either order. Each of ``ours`` (best first)
    takes the free row of ``theirs`` with the same label, IoU >= ``MATCH_IOU`` and score within
    ``MATCH_SCORE`` that overlaps it most.

    Args:
        ours, theirs (dict): ``bboxes`` (n, 4), ``scores`` (n,), ``labels`` (n,) tensors, the
            valid rows only.

    Returns:
        tuple[list, list]: the matched ``(ours, theirs)`` row pairs, and the rows of ``ours``
        without a match.
    """
    ious = bbox_overlaps(ours['bboxes'], theirs['bboxes'])
    free = torch.ones(len(theirs['labels']), dtype=torch.bool)
    pairs, unmatched = [], []
    for i in range(len(ours['labels'])):
        ok = (free & (theirs['labels'] == ours['labels'][i]) & (ious[i] >= MATCH_IOU)
              & ((theirs['scores'] - ours['scores'][i]).abs() <= MATCH_SCORE))
        if not ok.any():
            unmatched.append(i)
            continue
        j = int(torch.where(ok, ious[i], -1).argmax())
        free[j] = False
        pairs.append((i, j))
    return pairs, unmatched


def compare_with_pytorch(detector: nn.Module, deployed, image: torch.Tensor) -> dict:
    """A runtime's detections against PyTorch's on one image, matched one to one.

    Args:
        detector (nn.Module): The exported detector.
        deployed (DeployedDetector): Its model file under a runtime (any callable
            ``image (1, 3, H, W) array -> dict(dets, labels[, masks])`` with ``with_mask``).
        image (Tensor): (1, 3, H, W) input.

    Returns:
        dict: ``detections`` and ``onnx_detections`` (valid rows of PyTorch's and of the
        runtime's), ``unmatched`` (rows of PyTorch without a match in the runtime's,
        :func:`match_detections`), ``cut_ties`` (of those, the ones that are a tie at the
        ``max_per_img`` cut: both outputs full and the score within ``MATCH_SCORE`` of PyTorch's
        last, so either detector may keep it), ``dets`` (largest absolute difference of box
        coordinates and scores over the matched pairs) and, with masks, ``masks`` (likewise for
        the mask probabilities).
    """
    with torch.no_grad():
        ours = [t[0] for t in ExportDetector(detector)(image)]
    theirs = {k: torch.from_numpy(v[0]) for k, v in deployed(image.numpy()).items()}
    mine, other = ours[1] >= 0, theirs['labels'] >= 0

    def rows(dets, labels, valid):
        return dict(bboxes=dets[valid, :4], scores=dets[valid, 4], labels=labels[valid])

    a, b = rows(ours[0], ours[1], mine), rows(theirs['dets'], theirs['labels'], other)
    pairs, unmatched = match_detections(a, b)
    full = bool(mine.all() and other.all())
    last = float(a['scores'].min()) if len(a['scores']) else 0.0
    ties = [i for i in unmatched if full and float(a['scores'][i]) <= last + MATCH_SCORE]
    i = torch.tensor([p[0] for p in pairs], dtype=torch.long)
    j = torch.tensor([p[1] for p in pairs], dtype=torch.long)
    dets_a, dets_b = ours[0][mine][i], theirs['dets'][other][j]
    result = dict(detections=int(mine.sum()), onnx_detections=int(other.sum()),
                  unmatched=len(unmatched) - len(ties), cut_ties=len(ties),
                  dets=float((dets_a - dets_b).abs().max()) if len(pairs) else 0.0)
    if deployed.with_mask:
        masks_a, masks_b = ours[2][mine][i], theirs['masks'][other][j]
        result['masks'] = float((masks_a - masks_b).abs().max()) if len(pairs) else 0.0
    return result
