"""Evaluation of an exported detector under any runtime through mmdet's own test loop and metrics.

Implements no equation: the detections of the exported graph (eq. 3-6 through the heads) go to the
config's evaluator (COCO box / mask AP, OpenImages AP) exactly as ``model.predict``'s would.
"""
import os.path as osp

import torch
from mmdet.evaluation import DumpDetResults
from mmdet.models.roi_heads.mask_heads import FCNMaskHead
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import scale_boxes
from mmengine.config import Config, ConfigDict
from mmengine.model import BaseModel
from mmengine.registry import RUNNERS
from mmengine.structures import InstanceData

from .checks import check_config
from .runtimes import build_runtime

__all__ = ['DeployedModel', 'evaluate_deployed', 'to_instances']


def to_instances(outputs: dict, img_meta: dict, mask_paster: FCNMaskHead | None = None,
                 mask_thr_binary: float = 0.5) -> InstanceData:
    """One image's graph outputs as ``model.predict(..., rescale=True)`` returns them.

    Padded rows (label -1) are dropped, boxes go back to the original image
    (``img_meta['scale_factor']``), and masks are pasted there and thresholded by mmdet's
    ``FCNMaskHead`` (``mask_paster``).

    Args:
        outputs (dict): ``dets`` (1, N, 5), ``labels`` (1, N)[, ``masks`` (1, N, 28, 28)].
        img_meta (dict): ``scale_factor``, ``ori_shape`` of the image.
        mask_paster (FCNMaskHead, optional): Pastes ``masks``; None for box-only models.
        mask_thr_binary (float): Mask threshold (``test_cfg.rcnn.mask_thr_binary``).

    Returns:
        InstanceData: ``bboxes`` (n, 4), ``scores`` (n,), ``labels`` (n,)[, ``masks`` (n, H, W)
        bool].
    """
    labels = outputs['labels'][0]
    keep = labels >= 0
    dets = torch.from_numpy(outputs['dets'][0][keep])
    results = InstanceData()
    results.bboxes = scale_boxes(dets[:, :4], [1 / s for s in img_meta['scale_factor']])
    results.scores = dets[:, 4]
    results.labels = torch.from_numpy(labels[keep])
    if mask_paster is not None:
        if len(dets) == 0:
            results.masks = torch.zeros(0, *img_meta['ori_shape'][:2], dtype=torch.bool)
        else:
            results.masks = mask_paster._predict_by_feat_single(
                mask_preds=outputs['masks'][0][keep][:, None], bboxes=dets[:, :4],
                labels=torch.zeros(len(dets), dtype=torch.long), img_meta=img_meta,
                rcnn_test_cfg=ConfigDict(mask_thr_binary=mask_thr_binary), rescale=True,
                activate_map=True)
    return results


@MODELS.register_module()
class DeployedModel(BaseModel):
    """A model for mmengine's ``Runner`` whose predictions come from an exported model file run by
    one of the runtimes (``tsd_mmdet.deployment.RUNTIMES``).

    ``forward(inputs, data_samples, mode='predict')``: inputs, a list of (3, H, W) images from the
    test pipeline; returns the data samples with ``pred_instances`` set by :func:`to_instances`.

    Args:
        model_file (str): File written by ``export_detector`` (or its OpenVINO IR ``.xml``).
        mask_thr_binary (float): Mask threshold of the config (Mask R-CNN).
        threads (int, optional): The runtime's threads.
        backend (str): The runtime, e.g. 'onnxruntime' or 'openvino'.
        precision (str): The runtime's inference precision ('f32'; OpenVINO also 'bf16', 'f16').
    """

    def __init__(self, model_file: str, mask_thr_binary: float = 0.5, threads: int | None = None,
                 backend: str = 'onnxruntime', precision: str = 'f32', **kwargs):
        super().__init__(**kwargs)
        self.detector = build_runtime(backend, model_file, threads, precision)
        self.mask_thr_binary = mask_thr_binary
        # mmdet's own pasting; it has no weights that matter (activate_map=True, one class).
        self.mask_paster = FCNMaskHead(num_convs=0, num_classes=1, class_agnostic=True,
                                       upsample_cfg=dict(type=None)) \
            if self.detector.with_mask else None

    def forward(self, inputs: list[torch.Tensor], data_samples: list[DetDataSample],
                mode: str = 'predict') -> list[DetDataSample]:
        if mode != 'predict':
            raise ValueError(f'DeployedModel only predicts, got mode={mode!r}')
        for image, sample in zip(inputs, data_samples):
            outputs = self.detector(image[None].float().numpy())
            sample.pred_instances = to_instances(outputs, sample.metainfo, self.mask_paster,
                                                 self.mask_thr_binary)
        return data_samples


def evaluate_deployed(cfg: Config, model_file: str, out: str | None = None,
                      work_dir: str | None = None, threads: int | None = None,
                      backend: str = 'onnxruntime', precision: str = 'f32') -> dict:
    """Evaluate an exported detector under a runtime on the config's test set, as tools/test.py
    does.

    The config's test dataloader, evaluator, logging and hooks run in its runner (``TSDRunner``
    unless the config names another: the test data is checked first, one line if unusable); the
    model is :class:`DeployedModel`. Prints what tools/test.py prints (progress, the metric's
    table, the final metrics line).

    Args:
        cfg (Config): Detector config (``--cfg-options`` applied).
        model_file (str): The exported model (``.onnx``, or ``.xml`` IR for OpenVINO); checked
            against ``cfg`` first.
        out (str, optional): Also dump the predictions to this ``.pkl`` (as tools/test.py --out).
        work_dir (str, optional): Runner work dir; default ``./work_dirs/<config name>_onnx``
            (ONNX Runtime) or ``./work_dirs/<config name>_<backend>``.
        threads (int, optional): The runtime's threads.
        backend (str): The runtime (``RUNTIMES``).
        precision (str): The runtime's inference precision.

    Returns:
        dict: The metrics.

    Raises:
        ExportError: an unknown backend, the model file does not match the config, or the
            config tests with test-time augmentation.
    """
    check_config(cfg)
    build_runtime(backend, model_file, threads, precision).check_config(cfg)
    cfg = cfg.copy()
    mask_thr = (cfg.model.test_cfg.get('rcnn') or {}).get('mask_thr_binary', 0.5)
    cfg.model = dict(type='DeployedModel', model_file=model_file, mask_thr_binary=mask_thr,
                     threads=threads, backend=backend, precision=precision)
    cfg.load_from = None
    suffix = '_onnx' if backend == 'onnxruntime' else f'_{backend}'
    cfg.work_dir = work_dir or cfg.get('work_dir') or osp.join(
        './work_dirs', osp.splitext(osp.basename(cfg.filename))[0] + suffix)
    cfg.setdefault('runner_type', 'TSDRunner')
    runner = RUNNERS.build(cfg)
    if out is not None:
        if not out.endswith(('.pkl', '.pickle')):
            raise ValueError(f'--out must be a .pkl or .pickle file, got {out}')
        runner.test_evaluator.metrics.append(DumpDetResults(out_file_path=out))
    return runner.test()
