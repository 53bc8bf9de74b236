"""An exported detector under ONNX Runtime, and its check against the config it is tested with.

Implements no equation: it runs the graph of tsd_mmdet.deployment.export (eq. 3-6 in ``RoiAlign``).
"""
import json

import numpy as np
import onnxruntime as ort
from mmengine.config import Config

from .checks import ExportError
from .export import METADATA_KEY, config_classes

__all__ = ['OnnxDetector']


def _same(a, b) -> bool:
    """Equal, numbers compared as float32 (the mean and std are float32 buffers in the model)."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and np.allclose(a, b, rtol=1e-6, atol=0)
    return a == b


class OnnxDetector:
    """An ONNX file written by ``export_detector``, run by ONNX Runtime on the CPU.

    ``detector(image)``: image (1, 3, H, W) float32 array as the config's test pipeline delivers
    it; returns ``dict(dets=(1, N, 5), labels=(1, N)[, masks=(1, N, 28, 28)])`` (numpy).

    Args:
        path (str): The ONNX file.
        threads (int, optional): ONNX Runtime's intra-op threads (inter-op: 1). Default: its own.

    Raises:
        ExportError: a file that ONNX Runtime cannot load, or that was not written by
            ``export_detector`` (no metadata, another input/output contract).
    """

    def __init__(self, path: str, threads: int | None = None):
        options = ort.SessionOptions()
        options.inter_op_num_threads = 1
        if threads is not None:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
        except Exception as e:  # ONNX Runtime raises its own exception types (or RuntimeError)
            raise ExportError(f'ONNX Runtime cannot load {path}: '
                              f'{str(e).splitlines()[0][:300]}') from None
        meta = self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        if meta is None:
            raise ExportError(f'{path} has no {METADATA_KEY!r} metadata: export it with '
                              'tools/deployment/pytorch2onnx.py')
        self.meta = json.loads(meta)
        self.path = path
        inputs = self.session.get_inputs()
        outputs = [o.name for o in self.session.get_outputs()]
        expected = ['dets', 'labels'] + (['masks'] if self.meta['with_mask'] else [])
        if ([(i.name, i.type, len(i.shape)) for i in inputs] != [('image', 'tensor(float)', 4)]
                or outputs != expected):
            raise ExportError(f'{path} does not have the export contract (input image (1, 3, H, '
                              f'W) float32, outputs {expected}): re-export it with '
                              'tools/deployment/pytorch2onnx.py')

    @property
    def with_mask(self) -> bool:
        return self.meta['with_mask']

    def __call__(self, image: np.ndarray) -> dict[str, np.ndarray]:
        outputs = self.session.run(None, {'image': np.ascontiguousarray(image, np.float32)})
        return dict(zip(['dets', 'labels', 'masks'], outputs))

    def check_config(self, cfg: Config) -> None:
        """Raise :class:`ExportError` where the config differs from what the model was exported
        with: classes, the input contract (mean, std, channel order, padding), ``test_cfg``, or
        a mask metric for a model without masks.

        Args:
            cfg (Config): The config the model is about to be tested with.
        """
        where = f'{self.path} was exported'
        classes = config_classes(cfg)
        heads = cfg.model.roi_head.bbox_head
        num_classes = (heads[-1] if isinstance(heads, list) else heads).num_classes
        if (classes is not None and self.meta['classes'] is not None
                and classes != self.meta['classes']) or num_classes != self.meta['num_classes']:
            raise ExportError(f"{where} for classes {self.meta['classes']} "
                              f"({self.meta['num_classes']}), the config tests {classes} "
                              f'({num_classes}): pass the classes it was trained on '
                              '(--cfg-options metainfo.classes=...) or export it again')
        pre = cfg.model.get('data_preprocessor', {})
        theirs = dict(
            mean=pre.get('mean'), std=pre.get('std'),
            bgr_to_rgb=bool(pre.get('bgr_to_rgb', False) or pre.get('rgb_to_bgr', False)),
            pad_size_divisor=pre.get('pad_size_divisor', 1), pad_value=pre.get('pad_value', 0))
        ours = self.meta['preprocess']
        diff = [k for k in theirs if not _same(theirs[k], ours[k])]
        if diff:
            raise ExportError(f'{where} with another input contract: model.data_preprocessor.'
                              f'{diff[0]} is {ours[diff[0]]!r} in it, {theirs[diff[0]]!r} in the '
                              'config: export it again from this config')
        test_cfg = json.loads(json.dumps(cfg.model.test_cfg.to_dict()))
        for part in ('rpn', 'rcnn'):
            if test_cfg.get(part) != self.meta['test_cfg'][part]:
                raise ExportError(f'{where} with model.test_cfg.{part} = '
                                  f"{self.meta['test_cfg'][part]}, the config has "
                                  f'{test_cfg.get(part)}: export it again with the same '
                                  '--cfg-options')
        evaluators = cfg.test_evaluator if isinstance(cfg.test_evaluator, list) else \
            [cfg.test_evaluator]
        for metric in evaluators:
            names = metric.get('metric', [])
            if not self.with_mask and 'segm' in (names if isinstance(names, list) else [names]):
                raise ExportError(f'{where} without masks, and the test metric asks for segm: '
                                  'test it with a box-only config')
