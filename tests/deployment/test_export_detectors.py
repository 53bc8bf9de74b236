"""Exported detectors under ONNX Runtime against ``model.predict``: Faster, Cascade and Mask R-CNN,
TSD (eq. 3-6 in RoiAlign) and their baseline twins, plus the graph's standard domains.

Random weights (tests/deployment/conftest.py), two images of other sizes than the one traced.
"""
import numpy as np
import pytest
import torch
from mmdet.structures import DetDataSample
from onnx import load as load_onnx

from tsd_mmdet.deployment import DeployedModel, ExportDetector, ExportRoIExtractor

NAMES = ['tsd-faster', 'faster', 'tsd-cascade', 'cascade', 'tsd-mask', 'mask']  # conftest.CONFIGS
IMAGES = [(192, 256), (240, 176)]
MASK = 1e-3  # mask probabilities; boxes: IoU >= 0.99, scores within 1e-3 (conftest)


def _image(shape, seed):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (1, 3, *shape), generator=generator).float()


@pytest.mark.parametrize('name', NAMES)
def test_onnx_runtime_matches_predict(exported, match, predict, name):
    model = exported(name)
    for seed, shape in enumerate(IMAGES):
        image = _image(shape, seed)
        pred = predict(model.detector, image)
        outputs = model.onnx(image.numpy())
        labels = outputs['labels'][0]
        n = len(pred)
        assert n > 0
        assert (labels >= 0).sum() == n  # the same number of detections ...
        assert (labels[n:] == -1).all() and (outputs['dets'][0][n:] == 0).all()  # ... then padding
        dets = torch.from_numpy(outputs['dets'][0])
        rows = match(pred, dict(bboxes=dets[:, :4], scores=dets[:, 4],
                                labels=torch.from_numpy(labels)))
        if model.onnx.with_mask:
            masks = outputs['masks'][0]
            assert masks.shape[1:] == (28, 28)
            assert np.abs(masks[rows] - pred.probs.numpy()).max() <= MASK
            assert (masks[n:] == 0).all()


@pytest.mark.parametrize('name', ['tsd-faster', 'tsd-mask'])
def test_export_mode_forward_is_predict(exported, predict, name):
    # In PyTorch the export-mode graph computes exactly what model.predict does (same order).
    model = exported(name)
    image = _image(IMAGES[0], 0)
    pred = predict(model.detector, image)
    with torch.no_grad():
        dets, labels, *masks = ExportDetector(model.detector)(image)
    n = len(pred)
    assert torch.equal(dets[0, :n, :4], pred.bboxes) and torch.equal(dets[0, :n, 4], pred.scores)
    assert torch.equal(labels[0, :n], pred.labels)
    if masks:
        torch.testing.assert_close(masks[0][0, :n], pred.probs)


@pytest.mark.parametrize('name', ['tsd-faster', 'tsd-cascade', 'tsd-mask'])
def test_graph_has_only_standard_operators(exported, name):
    model = load_onnx(exported(name).path, load_external_data=False)
    assert {op.domain for op in model.opset_import} <= {'', 'ai.onnx'}
    assert {node.domain for node in model.graph.node} <= {'', 'ai.onnx'}
    assert not model.functions
    ops = {node.op_type for node in model.graph.node}
    assert {'RoiAlign', 'NonMaxSuppression'} <= ops
    inputs = [(i.name, [d.dim_value or d.dim_param for d in i.type.tensor_type.shape.dim])
              for i in model.graph.input]
    assert inputs == [('image', [1, 3, 'height', 'width'])]


@pytest.mark.parametrize('name', ['tsd-faster', 'tsd-mask'])
def test_runner_model_is_predict_with_rescale(exported, match, name):
    # DeployedModel (what test_onnx.py's Runner runs) returns what model.predict returns
    # with rescale=True: boxes in the original image, masks pasted there (mmdet's own pasting).
    model = exported(name)
    image = _image(IMAGES[0], 0)
    meta = dict(img_shape=IMAGES[0], ori_shape=(96, 128), scale_factor=(2.0, 2.0))
    with torch.no_grad():
        data = model.detector.data_preprocessor(
            dict(inputs=[image[0]], data_samples=[DetDataSample(metainfo=meta)]))
        want = model.detector.predict(data['inputs'], data['data_samples'])[0].pred_instances
    runner_model = DeployedModel(model.path, model.cfg.model.test_cfg.rcnn.get(
        'mask_thr_binary', 0.5))
    got = runner_model([image[0]], [DetDataSample(metainfo=meta)])[0].pred_instances
    assert len(got) == len(want) > 0
    rows = match(want, got)
    if 'masks' in want:
        assert got.masks.shape == want.masks.shape == (len(want), 96, 128)
        differ = (got.masks[rows] != want.masks).float().mean()
        assert differ <= 1e-3  # pixels at the 0.5 threshold may flip with 1e-6 of difference
    else:
        assert 'masks' not in got


@pytest.mark.parametrize('name', ['tsd-faster', 'faster'])
def test_presorted_pooling_is_the_scatter(shapes_cfg, random_model, name):
    """RoIs in level order pool to the rows the level scatter gives them (the export's first
    stage, ExportRoIExtractor.presorted): P, and TSD's P-hat_r and P-hat_c (eq. 3-6)."""
    extractor = ExportRoIExtractor(random_model(shapes_cfg(name)).roi_head.bbox_roi_extractor)
    generator = torch.Generator().manual_seed(0)
    feats = tuple(torch.randn(1, extractor.extractor.out_channels, 64 // 2**i, 96 // 2**i,
                              generator=generator) for i in range(extractor.num_inputs))
    xy = torch.rand(60, 2, generator=generator) * 200
    wh = 4 + torch.rand(60, 2, generator=generator) ** 2 * 250  # every level gets RoIs
    rois = torch.cat([torch.zeros(60, 1), xy, xy + wh], dim=1)
    order = extractor.level_order(rois)
    levels = extractor.extractor.map_roi_levels(rois[order], extractor.num_inputs)
    assert sorted(order.tolist()) == list(range(60)) and (levels.diff() >= 0).all()
    assert len(set(levels.tolist())) == extractor.num_inputs
    assert all((order[levels == i].diff() > 0).all() for i in range(extractor.num_inputs))
    rois = rois[order]
    offsets = [None]
    if name.startswith('tsd'):
        offsets += [torch.randn(60, 2, generator=generator),
                    torch.randn(60, 2, *extractor.output_size, generator=generator)]
    for offset in offsets:
        scattered = extractor(feats, rois, offset)
        with extractor.presorted():
            assert torch.equal(extractor(feats, rois, offset), scattered)
        assert not extractor._presorted
