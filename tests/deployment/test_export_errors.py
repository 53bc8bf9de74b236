"""One-line errors of tsd_mmdet.deployment: what does not export, and files that do not match.

Not an equation of the paper: each error names the module, option or file and the fix.
"""
import json
import os.path as osp
import re

import onnx
import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.registry import init_default_scope

from tsd_mmdet.deployment import (
    ExportError,
    OnnxDetector,
    check_config,
    check_exportable,
    export_detector,
    load_detector,
)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _built(cfg: Config) -> torch.nn.Module:
    init_default_scope('mmdet')
    return MODELS.build(cfg.model)


def _error(call, *args) -> str:
    with pytest.raises(ExportError) as info:
        call(*args)
    message = str(info.value)
    assert '\n' not in message
    return message


def test_dcn_backbone_is_named():
    # The paper's DCN row (Table 6): ResNet-101 with mmcv's DeformConv2dPack in c3-c5.
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'tsd',
                                   'tsd-faster-rcnn_r101-dconv-c3-c5_fpn_1x_coco.py'))
    message = _error(check_exportable, _built(cfg))
    assert message.startswith("model.backbone.layer2.0.conv2 is mmcv's DeformConv2dPack")
    assert 'DCN' in message


def test_unsupported_roi_head_is_named(shapes_cfg):
    cfg = shapes_cfg('faster')
    # Dynamic R-CNN's head: a StandardRoIHead subclass, which export does not take on trust.
    cfg.model.roi_head.type = 'DynamicRoIHead'
    cfg.model.roi_head.bbox_head.loss_bbox = dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.0)
    message = _error(check_exportable, _built(cfg))
    assert message.startswith('model.roi_head is DynamicRoIHead, which export does not support')
    assert 'TSD RoI head' in message


def test_cascade_mask_rcnn_is_refused(shapes_cfg):
    cfg = shapes_cfg('tsd-cascade')
    mask = shapes_cfg('mask').model.roi_head
    cfg.model.roi_head.update(mask_roi_extractor=mask.mask_roi_extractor,
                              mask_head=mask.mask_head)
    assert 'Cascade Mask R-CNN' in _error(check_exportable, _built(cfg))


def test_soft_nms_is_named(shapes_cfg):
    cfg = shapes_cfg('tsd-faster')
    cfg.model.test_cfg.rcnn.nms = dict(type='soft_nms', iou_threshold=0.5)
    assert _error(check_exportable, _built(cfg)).startswith(
        "model.test_cfg.rcnn.nms.type is 'soft_nms'; export has only 'nms'")


def test_test_time_augmentation_is_refused(shapes_cfg):
    cfg = shapes_cfg('tsd-faster')
    cfg.test_dataloader.dataset.pipeline[1] = dict(type='TestTimeAug', transforms=[])
    assert _error(check_config, cfg).startswith(
        'test_dataloader.dataset.pipeline.1 is TestTimeAug (test-time augmentation)')
    cfg = shapes_cfg('tsd-faster')
    cfg.model = dict(type='DetTTAModel', module=cfg.model)
    assert 'DetTTAModel' in _error(check_config, cfg)


def _checkpoint(path, detector, classes):
    torch.save(dict(state_dict=detector.state_dict(), meta=dict(dataset_meta=dict(
        classes=classes))), path)
    return str(path)


def test_checkpoint_of_other_classes(shapes_cfg, tmp_path):
    cfg = shapes_cfg('faster')
    classes = list(cfg.metainfo.classes)
    detector = _built(cfg)
    path = _checkpoint(tmp_path / 'renamed.pth', detector, classes[::-1])
    assert 'was trained on classes' in _error(load_detector, cfg, path)
    other = shapes_cfg('faster')
    other.model.roi_head.bbox_head.num_classes = 3
    path = _checkpoint(tmp_path / 'three.pth', _built(other), classes[:3])
    assert 'does not fit the model of the config' in _error(load_detector, cfg, path)
    assert _error(load_detector, cfg, str(tmp_path / 'missing.pth')).startswith(
        'cannot read checkpoint')
    assert load_detector(cfg, _checkpoint(tmp_path / 'ok.pth', detector, classes)).dataset_meta \
        == dict(classes=classes)


def test_too_small_example_input(shapes_cfg, tmp_path):
    detector = _built(shapes_cfg('faster')).eval()
    message = _error(export_detector, detector, str(tmp_path / 'x.onnx'), (64, 320))
    assert message.startswith('--shape 64 320: each side must be at least 65')


def test_model_file_that_does_not_match_the_config(shapes_cfg, exported):
    model = exported('faster')
    onnx_detector = OnnxDetector(model.path)
    onnx_detector.check_config(model.cfg)  # the config it was exported from: no error

    cfg = shapes_cfg('faster')
    cfg.test_dataloader.dataset.metainfo = dict(classes=('a', 'b'))
    assert re.match(r'.*faster\.onnx was exported for classes \[.disc.*the config tests '
                    r"\['a', 'b'\]", _error(onnx_detector.check_config, cfg))
    cfg = shapes_cfg('faster')
    cfg.model.data_preprocessor.bgr_to_rgb = False
    assert 'model.data_preprocessor.bgr_to_rgb is True in it, False in the config' in \
        _error(onnx_detector.check_config, cfg)
    cfg = shapes_cfg('faster')
    cfg.model.test_cfg.rcnn.score_thr = 0.3
    assert 'with model.test_cfg.rcnn = ' in _error(onnx_detector.check_config, cfg)
    cfg = shapes_cfg('faster')
    cfg.test_evaluator.metric = ['bbox', 'segm']
    assert 'without masks' in _error(onnx_detector.check_config, cfg)


def test_onnx_file_not_from_the_exporter(exported, tmp_path):
    proto = onnx.load(exported('faster').path)
    del proto.metadata_props[:]
    path = str(tmp_path / 'foreign.onnx')
    onnx.save(proto, path)
    assert 'has no \'tsd_mmdet\' metadata' in _error(OnnxDetector, path)
    meta = proto.metadata_props.add()
    meta.key, meta.value = 'tsd_mmdet', json.dumps(dict(with_mask=True))
    onnx.save(proto, path)
    assert 'does not have the export contract' in _error(OnnxDetector, path)
    (tmp_path / 'broken.onnx').write_bytes(b'not a model')
    assert _error(OnnxDetector, str(tmp_path / 'broken.onnx')).startswith(
        'ONNX Runtime cannot load')
