"""OpenVINO against model.predict and ONNX Runtime: Faster, Cascade and Mask R-CNN, TSD (eq. 3-6
in RoiAlign) and baseline; its IR keeps the metadata; the precision reaches the compiled model.

Random weights (tests/deployment/conftest.py), two images of other sizes than the one traced.
"""
import numpy as np
import openvino
import pytest
import torch

from tsd_mmdet.deployment import ExportError, OnnxDetector, OpenVinoDetector, save_openvino_ir

NAMES = ['tsd-faster', 'faster', 'tsd-cascade', 'cascade', 'tsd-mask', 'mask']  # conftest.CONFIGS
IMAGES = [(192, 256), (240, 176)]
MASK = 1e-3  # mask probabilities; boxes: IoU >= 0.99, scores within 1e-3 (conftest)


def _image(shape, seed):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (1, 3, *shape), generator=generator).float()


def _rows(outputs):
    dets = torch.from_numpy(outputs['dets'][0])
    return dict(bboxes=dets[:, :4], scores=dets[:, 4],
                labels=torch.from_numpy(outputs['labels'][0]))


def _error(call, *args, **kwargs) -> str:
    with pytest.raises(ExportError) as info:
        call(*args, **kwargs)
    assert '\n' not in str(info.value)
    return str(info.value)


@pytest.mark.parametrize('name', NAMES)
def test_openvino_matches_predict_and_onnx_runtime(exported, match, predict, name):
    model = exported(name)
    for seed, shape in enumerate(IMAGES):
        image = _image(shape, seed)
        pred = predict(model.detector, image)
        outputs = model.openvino(image.numpy())
        labels = outputs['labels'][0]
        n = len(pred)
        assert n > 0 and (labels >= 0).sum() == n  # the same number of detections ...
        assert (labels[n:] == -1).all() and (outputs['dets'][0][n:] == 0).all()  # ... then padding
        rows = match(pred, _rows(outputs))
        ort_outputs = model.onnx(image.numpy())
        valid = ort_outputs['labels'][0] >= 0
        ort_rows = match({k: v[:n] for k, v in _rows(ort_outputs).items()}, _rows(outputs))
        assert valid.sum() == n
        if model.openvino.with_mask:
            masks = outputs['masks'][0]
            assert masks.shape[1:] == (28, 28) and (masks[n:] == 0).all()
            assert np.abs(masks[rows] - pred.probs.numpy()).max() <= MASK
            assert np.abs(masks[ort_rows] - ort_outputs['masks'][0][:n]).max() <= MASK
        else:
            assert 'masks' not in outputs


def test_ir_round_trip_keeps_metadata(exported, match, tmp_path):
    model = exported('tsd-mask')
    xml = str(tmp_path / 'ir' / 'tsd-mask.xml')
    save_openvino_ir(model.path, xml)
    assert (tmp_path / 'ir' / 'tsd-mask.bin').stat().st_size > 0
    ir = OpenVinoDetector(xml)
    assert ir.meta == model.onnx.meta and ir.meta['classes'][0] == 'disc' and ir.with_mask
    ir.check_config(model.cfg)  # the config it was exported from: no error
    image = _image(IMAGES[1], 1)
    want, got = model.openvino(image.numpy()), ir(image.numpy())
    n = int((want['labels'][0] >= 0).sum())
    assert n > 0 and int((got['labels'][0] >= 0).sum()) == n
    rows = match({k: v[:n] for k, v in _rows(want).items()}, _rows(got))
    assert np.abs(got['masks'][0][rows] - want['masks'][0][:n]).max() <= MASK  # f32 weights
    assert 'is OpenVINO IR, which ONNX Runtime does not read: run it with --backend openvino' \
        in _error(OnnxDetector, xml)
    assert 'OpenVINO IR is an .xml file' in _error(save_openvino_ir, model.path,
                                                   str(tmp_path / 'x.bin'))


def test_precision_and_threads_reach_the_compiled_model(exported):
    path = exported('faster').path
    compiled = OpenVinoDetector(path, threads=1).compiled
    assert compiled.get_property('INFERENCE_PRECISION_HINT') == openvino.Type.f32
    assert compiled.get_property('INFERENCE_NUM_THREADS') == 1
    if 'BF16' in openvino.Core().get_property('CPU', 'OPTIMIZATION_CAPABILITIES'):
        compiled = OpenVinoDetector(path, precision='bf16').compiled
        assert compiled.get_property('INFERENCE_PRECISION_HINT') == openvino.Type.bf16
    assert _error(OpenVinoDetector, path, precision='int8') == (
        "OpenVINO runs precision f32, bf16, f16, got 'int8': pass --precision f32")
    assert _error(OnnxDetector, path, precision='bf16') == (
        "ONNX Runtime runs precision f32, got 'bf16': pass --precision f32")


def test_files_openvino_cannot_use(exported, tmp_path):
    (tmp_path / 'broken.onnx').write_bytes(b'not a model')
    assert _error(OpenVinoDetector, str(tmp_path / 'broken.onnx')).startswith(
        'OpenVINO cannot load')
    model = openvino.Core().read_model(exported('faster').path)
    foreign = openvino.Model(model.outputs, model.get_parameters(), 'foreign')  # no rt_info
    openvino.save_model(foreign, str(tmp_path / 'foreign.xml'), compress_to_fp16=False)
    assert "has no 'tsd_mmdet' metadata" in _error(OpenVinoDetector, str(tmp_path / 'foreign.xml'))
