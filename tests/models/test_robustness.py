"""Robustness of the TSD detectors (Faster, Cascade, Mask R-CNN) on awkward batches and inputs.

Every case below is valid input unless it says otherwise, and must give finite losses and finite
gradients in every parameter (one optimizer step on a NaN gradient makes every weight NaN). The
exception is degenerate ground truth (zero width, zero height, inverted): documented as dropped
from the box regression (``tsd_mmdet.models.bbox_heads.bbox_targets``), so it must leave losses
and gradients finite too. Where mmdet's stock model fails on the same input, the test says so.
"""
import copy
from pathlib import Path

import pytest
import torch
from conftest import CHANNELS, NUM_CLASSES, STRIDES, shrink_model_cfg
from mmdet.models.roi_heads.bbox_heads import BBoxHead
from mmdet.registry import MODELS
from mmdet.structures.bbox import HorizontalBoxes
from mmdet.testing import demo_mm_inputs, demo_mm_proposals, demo_mm_sampling_results
from mmengine.config import Config
from mmengine.hub import get_config
from mmengine.structures import InstanceData

from tsd_mmdet.models.bbox_heads import bbox_targets, degenerate_boxes

CONFIGS = Path(__file__).resolve().parents[2] / 'configs' / 'tsd'
FAMILIES = {
    'faster': ('tsd-faster-rcnn_r50_fpn_1x_coco.py', 'faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'),
    'cascade': ('tsd-cascade-rcnn_r50_fpn_1x_coco.py',
                'cascade_rcnn/cascade-rcnn_r50_fpn_1x_coco.py'),
    'mask': ('tsd-mask-rcnn_r50_fpn_1x_coco.py', 'mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'),
}


def _model_cfg(family: str, stock: bool = False):
    tsd, baseline = FAMILIES[family]
    cfg = get_config(f'mmdet::{baseline}') if stock else Config.fromfile(str(CONFIGS / tsd))
    return shrink_model_cfg(cfg.model)


@pytest.fixture(scope='module')
def detectors():
    """One tiny TSD detector per family, and mmdet's stock twins, built once (state restored)."""
    built = {}
    for family in FAMILIES:
        for stock in (False, True):
            torch.manual_seed(0)
            model = MODELS.build(_model_cfg(family, stock))
            model.init_weights()
            built[family, stock] = (model, copy.deepcopy(model.state_dict()))
    return built


def _model(detectors, family, stock=False):
    model, state = detectors[family, stock]
    model.load_state_dict(state)
    model.train()
    return model


def _batch(family: str, shapes=((3, 128, 128), (3, 128, 128)), num_items=(3, 2), seed=0):
    torch.manual_seed(seed)
    return demo_mm_inputs(batch_size=len(shapes), image_shapes=list(shapes),
                          num_items=list(num_items), num_classes=NUM_CLASSES,
                          with_mask=family == 'mask')


def _set_box(batch: dict, image: int, row: int, box) -> dict:
    instances = batch['data_samples'][image].gt_instances
    bboxes = instances.bboxes.clone()
    bboxes[row] = torch.tensor(box, dtype=bboxes.dtype)
    instances.bboxes = bboxes
    return batch


def _loss_and_grads(model, batch):
    data = model.data_preprocessor(batch, True)
    losses = model(**data, mode='loss')
    model.zero_grad()
    total = sum(v.sum() for key, value in losses.items() if 'loss' in key
                for v in (value if isinstance(value, list) else [value]))
    total.backward()
    bad_losses = sorted(key for key, value in losses.items()
                        for v in (value if isinstance(value, list) else [value])
                        if not torch.isfinite(v).all())
    bad_grads = sorted(name for name, p in model.named_parameters()
                       if p.grad is not None and not torch.isfinite(p.grad).all())
    return losses, bad_losses, bad_grads


def _no_gt(batch, images):
    for i in images:
        sample = batch['data_samples'][i]
        gt = sample.gt_instances
        keep = torch.zeros(len(gt), dtype=torch.bool)
        sample.gt_instances = gt[keep]
    return batch


# name -> (batch maker(family)); every case is valid input or a documented drop.
CASES = {
    'no ground truth in the batch': lambda f: _no_gt(_batch(f), (0, 1)),
    'no ground truth in one image': lambda f: _no_gt(_batch(f), (1,)),
    'ground truth over the whole image': lambda f: _set_box(_batch(f), 0, 0, [0, 0, 128, 128]),
    'ground truth partly outside the image':
        lambda f: _set_box(_set_box(_batch(f), 0, 0, [-30, -20, 40, 50]), 1, 0,
                           [100, 90, 170, 160]),
    'zero-width ground truth': lambda f: _set_box(_batch(f), 0, 0, [40, 30, 40, 90]),
    'zero-height ground truth': lambda f: _set_box(_batch(f), 1, 1, [20, 60, 90, 60]),
    'inverted ground truth': lambda f: _set_box(_batch(f), 0, 1, [90, 80, 30, 20]),
    'tiny images (32x32, batch 2)':
        lambda f: _batch(f, shapes=((3, 32, 32), (3, 32, 32)), num_items=(1, 2)),
    'elongated images': lambda f: _batch(f, shapes=((3, 32, 256), (3, 256, 40))),
    'images of different sizes': lambda f: _batch(f, shapes=((3, 128, 96), (3, 64, 160))),
}


# Cases that mmdet itself refuses, in our model and its stock twin alike (asserted for both).
STOCK_ERRORS = {
    # Cascade's RPN trains with allowed_border=0: no 32-pixel anchor of every ratio fits.
    ('cascade', 'tiny images (32x32, batch 2)'):
        (ValueError, 'There is no valid anchor inside the image boundary'),
    # The mask targets crop each positive's mask with mmcv's RoIAlign, which asserts on the
    # inverted box the sampler adds as a proposal. Our data checks drop such boxes first.
    ('mask', 'inverted ground truth'): (RuntimeError, 'ROIs in ROIAlign cannot have'),
}


@pytest.mark.parametrize('family', list(FAMILIES))
@pytest.mark.parametrize('case', list(CASES))
def test_tsd_losses_and_gradients_stay_finite(detectors, family, case):
    if (family, case) in STOCK_ERRORS:
        error, match = STOCK_ERRORS[family, case]
        for stock in (False, True):
            with pytest.raises(error, match=match):
                _loss_and_grads(_model(detectors, family, stock), CASES[case](family))
        return
    model = _model(detectors, family)
    losses, bad_losses, bad_grads = _loss_and_grads(model, CASES[case](family))
    assert bad_losses == [], f'{family}, {case}: non-finite {bad_losses}'
    assert bad_grads == [], f'{family}, {case}: non-finite gradients in {bad_grads}'
    # The TSD head still learns from the batch (not silently cut off).
    head = model.roi_head.bbox_head
    head = head[0] if isinstance(head, torch.nn.ModuleList) else head
    assert head.fc_cls.weight.grad is not None and head.fc_cls.weight.grad.abs().sum() > 0


@pytest.mark.parametrize('family', list(FAMILIES))
def test_degenerate_boxes_in_stock_mmdet(detectors, family):
    """What mmdet's own model does with a zero-width ground-truth box (not patched here): its box
    loss is NaN in every family (mmdet encodes 0 / 0); the Faster and Mask heads' gradients stay
    finite (L1's gradient at NaN is 0), while Cascade's SmoothL1 sends NaN into every stage's
    ``fc_reg``. Our TSD models on the same batch: finite (the test above)."""
    model = _model(detectors, family, stock=True)
    _, bad_losses, bad_grads = _loss_and_grads(model, CASES['zero-width ground truth'](family))
    assert any('loss_bbox' in key for key in bad_losses)
    if family == 'cascade':
        assert {f'roi_head.bbox_head.{i}.fc_reg.weight' for i in range(3)} <= set(bad_grads)
    else:
        assert bad_grads == []


def test_zero_width_box_gradients_finite_with_attached_targets(detectors):
    """The regression of issue 25: attached targets (the default) divided by the zero width of the
    box mmdet's sampler adds as a proposal, on a path back into delta_r: NaN in fc_delta_r, and one
    step later in every weight."""
    for family in ('faster', 'mask'):
        model = _model(detectors, family)
        assert not model.roi_head.bbox_head.detach_reg_targets
        _, bad_losses, bad_grads = _loss_and_grads(
            model, CASES['zero-width ground truth'](family))
        assert (bad_losses, bad_grads) == ([], [])
        assert model.roi_head.bbox_head.fc_delta_r.weight.grad.abs().sum() > 0


def test_degenerate_positive_gets_no_box_target(tiny_roi_head, roi_inputs):
    """The documented drop: a degenerate positive (here the zero-width ground-truth box, which the
    sampler adds as its own proposal) keeps its label but gets box target 0 and weight 0; every
    other row is exactly mmdet's BBoxHead.get_targets."""
    head = tiny_roi_head()
    _, proposals, samples = roi_inputs()
    gt = samples[0].gt_instances
    bboxes = gt.bboxes.clone()
    bboxes[0, 2] = bboxes[0, 0]  # zero width
    gt.bboxes = bboxes
    results = demo_mm_sampling_results(
        proposals, [s.gt_instances for s in samples], sampler_cfg=head.train_cfg.sampler)
    ours = bbox_targets(head.bbox_head, results, head.train_cfg)
    stock = BBoxHead.get_targets(head.bbox_head, results, head.train_cfg)
    bad = ~torch.isfinite(stock[2]).all(1)
    assert bad.sum() == 1  # mmdet: 0 / 0 for that one row
    torch.testing.assert_close(ours[0], stock[0])  # labels: still a positive
    torch.testing.assert_close(ours[1], stock[1])  # label weights
    assert ours[2][bad].eq(0).all() and ours[3][bad].eq(0).all()
    torch.testing.assert_close(ours[2][~bad], stock[2][~bad], rtol=0, atol=0)
    torch.testing.assert_close(ours[3][~bad], stock[3][~bad], rtol=0, atol=0)


def test_degenerate_boxes_rule():
    boxes = torch.tensor([[0., 0., 2., 2.], [1., 1., 1., 5.], [1., 1., 5., 1.], [5., 5., 1., 9.],
                          [0., 0., float('inf'), 3.], [0., 0., 1e-3, 1e-3]])
    assert degenerate_boxes(boxes).tolist() == [False, True, True, True, True, False]


def _roi_inputs(family, num_proposals=20):
    torch.manual_seed(0)
    feats = tuple(torch.randn(2, CHANNELS, 128 // s, 128 // s) for s in STRIDES)
    proposals = demo_mm_proposals([(3, 128, 128)] * 2, num_proposals)
    return feats, proposals, _batch(family)['data_samples']


@pytest.mark.parametrize('family', list(FAMILIES))
def test_no_positive_roi(detectors, family):
    """Proposals that overlap no ground truth and no ground truth added as proposals: every RoI is
    a negative; the box losses are 0 (finite), the classification loss trains the background."""
    model = _model(detectors, family)
    roi_head = model.roi_head
    feats, _, samples = _roi_inputs(family)
    for sample in samples:  # ground truth in the top-left corner ...
        sample.gt_instances.bboxes = torch.tensor([[0., 0., 12., 12.]]).repeat(
            len(sample.gt_instances), 1)
    far = torch.tensor([[80., 80., 120., 120.], [60., 70., 127., 127.]])  # ... proposals far off
    proposals = [InstanceData(bboxes=far.clone(), scores=torch.ones(2)) for _ in samples]
    samplers = (roi_head.bbox_sampler if isinstance(roi_head.bbox_sampler, list)
                else [roi_head.bbox_sampler])
    for sampler in samplers:
        sampler.add_gt_as_proposals = False
    try:
        losses = roi_head.loss(feats, proposals, samples)
    finally:
        for sampler in samplers:
            sampler.add_gt_as_proposals = True
    for key, value in losses.items():
        assert torch.isfinite(value).all(), key
        if 'loss_bbox' in key or 'loss_mask' in key or 'loss_pc_loc' in key:
            assert value.item() == 0, key
    total = sum(v for k, v in losses.items() if 'loss' in k)
    model.zero_grad()
    total.backward()
    assert all(torch.isfinite(p.grad).all() for p in roi_head.parameters() if p.grad is not None)


@pytest.mark.parametrize('family', list(FAMILIES))
def test_predict_without_proposals(detectors, family):
    model = _model(detectors, family).eval()
    feats, _, samples = _roi_inputs(family)
    empty = [InstanceData(bboxes=torch.zeros(0, 4), scores=torch.zeros(0)) for _ in samples]
    with torch.no_grad():
        results = model.roi_head.predict(feats, empty, samples, rescale=False)
    assert len(results) == 2
    for res in results:
        assert res.bboxes.shape == (0, 4) and res.scores.shape == (0,)
        assert res.labels.shape == (0,)
        if family == 'mask':
            assert res.masks.shape[0] == 0


@pytest.mark.parametrize('family', list(FAMILIES))
def test_predict_nothing_above_the_score_threshold(detectors, family):
    model = _model(detectors, family).eval()
    test_cfg = model.roi_head.test_cfg
    old = test_cfg.score_thr
    test_cfg.score_thr = 1.01  # softmax scores never reach it
    try:
        batch = _batch(family)
        data = model.data_preprocessor(batch, False)
        with torch.no_grad():
            results = model(**data, mode='predict')
    finally:
        test_cfg.score_thr = old
    for sample in results:
        pred = sample.pred_instances
        assert isinstance(pred.bboxes, (torch.Tensor, HorizontalBoxes))
        assert len(pred) == 0 and pred.bboxes.shape[-1] == 4
        if family == 'mask':
            assert pred.masks.shape[0] == 0
