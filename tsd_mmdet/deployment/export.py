"""Export of a trained detector to ONNX: load, trace (torch.export), translate, check, describe.

Implements no equation itself: the graph is :class:`~tsd_mmdet.deployment.detector.ExportDetector`
(eq. 3-6 through the heads), translated with the op's table (``RoiAlign``, eq. 3-6).
"""
import contextlib
import json
import logging
import os
import os.path as osp
import warnings

import onnx
import torch
from mmdet.registry import DATASETS, MODELS
from mmdet.structures.bbox import bbox_overlaps
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint
from torch import nn
from torch.export import Dim

import tsd_mmdet
from tsd_mmdet.engine import CheckpointError
from tsd_mmdet.utils.baseline_to_tsd import build_initialised_model

from .checks import ExportError, check_config, check_exportable
from .detector import ExportDetector
from .onnx_ops import CUSTOM_TRANSLATION_TABLE, OPSET

__all__ = ['METADATA_KEY', 'compare_with_pytorch', 'config_classes', 'export_detector',
           'load_detector', 'match_detections', 'model_metadata', 'sample_image',
           'test_input_shape']

METADATA_KEY = 'tsd_mmdet'  # the ONNX metadata entry that describes the export (JSON)


def config_classes(cfg: Config) -> list[str] | None:
    """The class names the config tests: its test set's ``metainfo.classes``, else the config's
    top-level ``metainfo.classes`` (configs/shapes), else the dataset type's own (e.g. COCO's 80);
    None where only the data knows them (OpenImages reads them from its label file)."""
    dataset = cfg.test_dataloader.dataset
    while 'dataset' in dataset:
        dataset = dataset.dataset
    classes = ((dataset.get('metainfo') or {}).get('classes')
               or (cfg.get('metainfo') or {}).get('classes')
               or DATASETS.get(dataset.type).METAINFO.get('classes'))
    return None if classes is None else list(classes)


def test_input_shape(cfg: Config) -> tuple[int, int]:
    """(H, W) of the test pipeline's ``Resize`` scale (given as (w, h)), or 800 x 1333."""
    dataset = cfg.test_dataloader.dataset
    while 'dataset' in dataset:
        dataset = dataset.dataset
    for step in dataset.get('pipeline', []):
        if step.get('type') == 'Resize' and step.get('scale') is not None:
            w, h = step['scale']
            return int(h), int(w)
    return 800, 1333


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


def _num_classes(roi_head) -> int:
    heads = roi_head.bbox_head
    return (heads[-1] if isinstance(heads, nn.ModuleList) else heads).num_classes


def model_metadata(detector: nn.Module, wrapper: ExportDetector, classes: list[str] | None,
                   min_size: int) -> dict:
    """What test_onnx.py checks a model file against its config with (stored as JSON)."""
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


@contextlib.contextmanager
def _quiet_exporter():
    """Silence two known harmless messages of the exporter's stack: torchvision's nms fake kernel
    (a FutureWarning of torch about its API) and onnx_ir's note on torchlib's empty ``index_put``
    attribute."""
    ir_logger = logging.getLogger('onnx_ir._convenience')
    level = ir_logger.level
    ir_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings('ignore', message='`create_unbacked_symint` is deprecated',
                                    category=FutureWarning)
            yield
    finally:
        ir_logger.setLevel(level)


def export_detector(detector: nn.Module, out: str, shape: tuple[int, int]) -> None:
    """Export ``detector`` to the ONNX file ``out`` and check it with ``onnx.checker``.

    The graph is :class:`ExportDetector`'s contract: input ``image`` (1, 3, H, W) float32 with
    dynamic H and W (each above the largest feature stride), outputs ``dets`` (1, N, 5),
    ``labels`` (1, N) and for Mask R-CNN ``masks`` (1, N, 28, 28). The file's metadata records
    what :meth:`OnnxDetector.check_config` compares, the class names of
    ``detector.dataset_meta`` (as :func:`load_detector` sets them) included.

    Args:
        detector (nn.Module): A supported detector (see ``check_exportable``), eval mode.
        out (str): ONNX file to write (weights inside, or beside it above 2 GB).
        shape (tuple[int, int]): (H, W) of the example input traced.
    """
    wrapper = ExportDetector(detector)
    classes = (getattr(detector, 'dataset_meta', None) or {}).get('classes')
    # A level of size 1 would be specialised (broadcasting) by torch.export: every level >= 2.
    min_size = int(max(max(s) for s in detector.rpn_head.prior_generator.strides)) + 1
    if min(shape) < min_size:
        raise ExportError(f'--shape {shape[0]} {shape[1]}: each side must be at least {min_size} '
                          '(above the largest feature stride)')
    example = torch.rand(1, 3, *shape, generator=torch.Generator().manual_seed(0)) * 255
    dims = {'image': {2: Dim('height', min=min_size), 3: Dim('width', min=min_size)}}
    with torch.no_grad(), _quiet_exporter():
        program = torch.export.export(wrapper, (example,), dynamic_shapes=dims, strict=False)
        onnx_program = torch.onnx.export(
            program, dynamo=True, custom_translation_table=CUSTOM_TRANSLATION_TABLE,
            opset_version=OPSET, input_names=['image'], output_names=wrapper.output_names,
            dynamic_shapes={'image': {2: 'height', 3: 'width'}}, verbose=False)
    onnx_program.model.metadata_props[METADATA_KEY] = json.dumps(
        model_metadata(detector, wrapper, classes, min_size))
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    onnx_program.save(out)
    onnx.checker.check_model(out)  # by path: also for weights stored beside the model


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


MATCH_IOU = 0.99  # a detection of ONNX Runtime matches PyTorch's: same label, IoU >= this,
MATCH_SCORE = 1e-3  # and scores within this


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


def compare_with_pytorch(detector: nn.Module, onnx_detector, image: torch.Tensor) -> dict:
    """ONNX Runtime's detections against PyTorch's on one image, matched one to one.

    Args:
        detector (nn.Module): The exported detector.
        onnx_detector (OnnxDetector): Its ONNX file under ONNX Runtime.
        image (Tensor): (1, 3, H, W) input.

    Returns:
        dict: ``detections`` and ``onnx_detections`` (valid rows of each), ``unmatched`` (rows of
        PyTorch without a match in ONNX Runtime's, :func:`match_detections`), ``cut_ties`` (of
        those, the ones that are a tie at the ``max_per_img`` cut: both outputs full and the
        score within ``MATCH_SCORE`` of PyTorch's last, so either detector may keep it),
        ``dets`` (largest absolute difference of box coordinates and scores over the matched
        pairs) and, with masks, ``masks`` (likewise for the mask probabilities).
    """
    with torch.no_grad():
        ours = [t[0] for t in ExportDetector(detector)(image)]
    theirs = {k: torch.from_numpy(v[0]) for k, v in onnx_detector(image.numpy()).items()}
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
    if onnx_detector.with_mask:
        masks_a, masks_b = ours[2][mine][i], theirs['masks'][other][j]
        result['masks'] = float((masks_a - masks_b).abs().max()) if len(pairs) else 0.0
    return result
