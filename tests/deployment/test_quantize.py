"""INT8 quantization of an exported detector (NNCF): calibration images, the modules kept in fp32
(the RoI extractors' box arithmetic of eq. 3-6 by default), the file's unchanged contract.

Random-weight TSD Faster R-CNN of tests/deployment/conftest.py, calibrated on the tiny shapes set.
"""
import json

import numpy as np
import openvino
import pytest
from mmdet.registry import DATASETS
from mmengine.registry import init_default_scope

from tsd_mmdet.deployment import (
    KEEP_FP32,
    CalibrationDataError,
    ExportError,
    benchmark_latency,
    build_runtime,
    calibration_images,
    keep_fp32_nodes,
    quantize_detector,
)
from tsd_mmdet.deployment.quantize import module_scopes
from tsd_mmdet.ops import has_extension


def _error(call, *args, **kwargs) -> str:
    with pytest.raises(ExportError) as info:
        call(*args, **kwargs)
    assert '\n' not in str(info.value)
    return str(info.value)


@pytest.fixture(scope='module')
def tsd(exported, shapes_cfg, tiny_data):
    """(config on the tiny data, the exported TSD Faster R-CNN)."""
    init_default_scope('mmdet')
    model = exported('tsd-faster')
    cfg = shapes_cfg('tsd-faster')
    cfg.merge_from_dict({'data_root': tiny_data,
                         'train_dataloader.dataset.data_root': tiny_data,
                         'test_dataloader.dataset.data_root': tiny_data})
    return cfg, model


@pytest.fixture(scope='module')
def quantized(tsd, tmp_path_factory):
    """Factory: ``quantized(keep)`` -> (IR path, quantization entry), made once per ``keep``."""
    cfg, model = tsd
    cache, root = {}, tmp_path_factory.mktemp('int8')

    def get(keep=KEEP_FP32):
        if keep not in cache:
            out = str(root / f'int8-{len(cache)}.xml')
            entry = quantize_detector(cfg, model.path, out, num_images=3, keep_fp32=keep,
                                      log=lambda _: None)
            cache[keep] = out, entry
        return cache[keep]

    return get


def _quantized_scopes(onnx_file: str, xml: str) -> set[str]:
    """Module paths of the nodes the IR's FakeQuantize nodes feed (8-bit inputs)."""
    scopes = module_scopes(onnx_file)
    model = openvino.Core().read_model(xml)
    fed = set()
    for op in model.get_ordered_ops():
        if op.get_type_name() == 'FakeQuantize':
            for output in op.outputs():
                for target in output.get_target_inputs():
                    fed.add(scopes.get(target.get_node().get_friendly_name().split('/')[0], ''))
    return fed


def test_calibration_images_are_seeded_training_images_through_the_test_pipeline(tsd):
    cfg, _ = tsd
    logs = []
    images, source = calibration_images(cfg, 3, seed=0, log=logs.append)
    again, _ = calibration_images(cfg, 3, seed=0, log=lambda _: None)
    other, _ = calibration_images(cfg, 3, seed=5, log=lambda _: None)
    assert len(images) == 3 and '3 of 8 training images' in source and 'seed 0' in source
    assert logs[0].startswith('calibration: 3 of 8 training images (seed 0)')
    assert all(a.shape == b.shape and np.array_equal(a, b) for a, b in zip(images, again))
    assert any(a.shape != b.shape or not np.array_equal(a, b) for a, b in zip(images, other))
    # Each is a training image as the test pipeline (the graph's input contract) delivers it.
    train = cfg.train_dataloader.dataset.copy()
    train['pipeline'] = cfg.test_dataloader.dataset.pipeline
    dataset = DATASETS.build(train)
    pool = [dataset[i]['inputs'][None].float().numpy() for i in range(len(dataset))]
    for image in images:
        assert image.dtype == np.float32 and image.ndim == 4
        assert any(p.shape == image.shape and np.array_equal(p, image) for p in pool)
    assert len(calibration_images(cfg, 50, log=lambda _: None)[0]) == 8  # the whole set


def test_calibration_errors_are_one_line(tsd, tmp_path):
    cfg, _ = tsd
    assert 'at least 1' in _error(calibration_images, cfg, 0)
    broken = cfg.copy()
    broken.merge_from_dict({'train_dataloader.dataset.data_root': str(tmp_path / 'none') + '/'})
    assert 'cannot read the training set for calibration' in _error(calibration_images, broken, 2)
    with pytest.raises(CalibrationDataError):  # what benchmark_onnx.py --int8 falls back on
        calibration_images(broken, 2)


def test_keep_fp32_finds_modules_by_path(tsd):
    _, model = tsd
    names = keep_fp32_nodes(model.path, ['delta_c'])
    assert len(names) == 2  # delta_c_fc and fc_delta_c: the two fc of F_c's offsets (eq. 4/6)
    assert set(keep_fp32_nodes(model.path, ['delta_[cr]'])) > set(names)
    assert keep_fp32_nodes(model.path, KEEP_FP32)  # the RoI extractor's arithmetic exists
    message = _error(keep_fp32_nodes, model.path, ['no_such_module'])
    assert "'no_such_module' matches no module" in message and 'bbox_head' in message


def test_int8_keeps_the_contract_and_the_roi_boxes_in_fp32(tsd, quantized):
    cfg, model = tsd
    xml, entry = quantized()
    deployed = build_runtime('openvino', xml)
    deployed.check_config(cfg)  # same classes, input contract and test_cfg as the fp32 file
    fp32 = build_runtime('openvino', model.path)
    assert deployed.signature() == fp32.signature()
    assert {k: v for k, v in deployed.meta.items() if k != 'quantization'} == fp32.meta
    assert deployed.meta['quantization'] == json.loads(json.dumps(entry))
    assert entry['precision'] == 'int8' and entry['keep_fp32'] == list(KEEP_FP32)
    assert '3 of 8 training images' in entry['calibration'] and entry['fp32_nodes'] > 0
    fed = _quantized_scopes(model.path, xml)
    assert any('backbone' in s for s in fed) and any('bbox_head' in s for s in fed)
    assert not any('roi_extractor' in s for s in fed)
    # Without the default, NNCF quantizes the extractor's box arithmetic too.
    xml_all, entry_all = quantized(())
    assert entry_all['fp32_nodes'] == 0
    assert any('roi_extractor' in s for s in _quantized_scopes(model.path, xml_all))


def test_first_convolution_takes_the_quantized_image(tsd, quantized):
    """The stem convolution runs in INT8 only with a FakeQuantize right before it: the export
    pads before dividing by std (detector.py), so no Pad sits between the two."""
    xml, _ = quantized()
    model = openvino.Core().read_model(xml)
    stem = next(op for op in model.get_ordered_ops() if op.get_type_name() == 'Convolution')
    assert stem.input(0).get_source_output().get_node().get_type_name() == 'FakeQuantize'


def test_int8_runs_as_the_fp32_file_runs(tsd, quantized):
    """One image through both files: the same outputs' shapes, valid boxes inside the image, and
    not fp32's numbers (the file is quantized). Random weights: not an accuracy test
    (docs/deploy.md has the AP of trained models)."""
    cfg, model = tsd
    xml, _ = quantized()
    image = calibration_images(cfg, 1, seed=1, log=lambda _: None)[0][0]
    ours = build_runtime('openvino', xml)(image)
    theirs = build_runtime('openvino', model.path)(image)
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}
    valid = ours['labels'][0] >= 0
    assert valid.any()
    boxes = ours['dets'][0][valid]
    h, w = image.shape[-2:]
    assert np.isfinite(boxes).all() and (boxes[:, :4] >= -1e-3).all()
    assert (boxes[:, [0, 2]] <= w + 1e-3).all() and (boxes[:, [1, 3]] <= h + 1e-3).all()
    assert not np.array_equal(ours['dets'], theirs['dets'])


def test_quantize_refuses_other_files(tsd, tmp_path):
    cfg, model = tsd
    assert 'an .xml file' in _error(quantize_detector, cfg, model.path, str(tmp_path / 'a.onnx'))
    other = cfg.copy()
    other.merge_from_dict({'model.test_cfg.rcnn.max_per_img': 7})
    assert 'was exported with model.test_cfg.rcnn' in _error(
        quantize_detector, other, model.path, str(tmp_path / 'a.xml'))


@pytest.mark.skipif(not has_extension(), reason='times the compiled op: tsd_mmdet._C not built')
def test_benchmark_times_the_int8_model_in_the_same_run(tsd, quantized):
    _, model = tsd
    xml, _ = quantized()
    rows = benchmark_latency([(model.name, model.detector, model.path)], (128, 160),
                             num_images=1, repeats=2, warmup=1, threads=1, log=lambda _: None,
                             backends=('openvino', ), int8={model.name: xml})
    assert [r['backend'] for r in rows] == ['pytorch', 'openvino', 'openvino-int8']
    assert all(r['runs'] == 2 and r['median_ms'] > 0 for r in rows)
