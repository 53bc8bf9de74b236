"""Tests of TSDRoIHead on a tiny Faster R-CNN: outputs, losses, gradients, predict, checkpoints.

Covers the training loss of eq. 9 (sibling, TSD and PC terms) and TSD-only inference (§3.2).
"""
import copy

import pytest
import torch
from conftest import moved_rois, record_branch_inputs, set_visible_offsets
from mmdet.registry import MODELS
from mmdet.structures.bbox import bbox2roi, bbox_overlaps
from mmdet.testing import demo_mm_sampling_results
from mmengine.runner import load_checkpoint

from tsd_mmdet.models.roi_heads import TSDRoIHead

NUM_CLASSES = 4
SIBLING_KEYS = {'loss_cls', 'loss_bbox', 'acc'}
TSD_KEYS = {'loss_cls_tsd', 'loss_bbox_tsd', 'acc_tsd'}
PC_KEYS = {'loss_pc_cls', 'loss_pc_loc'}
NO_SIBLING = dict(sibling_head=None, pc_cls=None, pc_loc=None)
# Unequal gammas, both other than the extractor's default 0.1: code that pools, derives or
# decodes a branch with the other branch's gamma (or with none) gives other numbers.
GAMMA_CLS, GAMMA_REG = 0.05, 0.2
GAMMAS = dict(gamma_cls=GAMMA_CLS, gamma_reg=GAMMA_REG)


def _loss(head, roi_inputs, **kwargs):
    feats, proposals, samples = roi_inputs(**kwargs)
    return head.loss(feats, proposals, samples)


def _assert_finite(losses):
    for key, value in losses.items():
        for v in value if isinstance(value, list) else [value]:  # RPN losses are per level
            assert torch.isfinite(v).all(), key


def test_detector_loss_keys(tiny_detector, batch):
    model = tiny_detector()
    assert isinstance(model.roi_head, TSDRoIHead)
    data = model.data_preprocessor(batch(), True)
    losses = model(**data, mode='loss')
    assert set(losses) == {'loss_rpn_cls', 'loss_rpn_bbox'} | SIBLING_KEYS | TSD_KEYS | PC_KEYS
    _assert_finite(losses)


def test_bbox_forward_outputs(tiny_roi_head, roi_inputs):
    head = tiny_roi_head()
    feats, proposals, _ = roi_inputs(num_proposals=6)
    rois = bbox2roi([p.bboxes for p in proposals])
    out = head._bbox_forward(feats, rois)
    k = rois.size(0)
    shapes = {
        'cls_score': (k, NUM_CLASSES + 1),
        'bbox_pred': (k, 4 * NUM_CLASSES),
        'rois_r': (k, 5),
        'delta_c': (k, 2, 7, 7),
        'delta_r': (k, 2),
        'bbox_feats': (k, 16, 7, 7),
        'sibling_cls_score': (k, NUM_CLASSES + 1),
        'sibling_bbox_pred': (k, 4 * NUM_CLASSES),
    }
    assert {key: tuple(v.shape) for key, v in out.items()} == shapes
    # F is plain RoIAlign of P; rois_r is P moved by gamma_reg * delta_r * (w, h).
    torch.testing.assert_close(out['bbox_feats'], head.bbox_roi_extractor(feats, rois))
    torch.testing.assert_close(out['rois_r'], head.bbox_head.derive_reg_rois(rois, out['delta_r']))
    head.eval()
    assert 'sibling_cls_score' not in head._bbox_forward(feats, rois)


def _grad_norms(head, loss):
    head.zero_grad()
    loss.backward()
    bbox_head = head.bbox_head
    names = ('offset_fc', 'delta_c_fc', 'fc_delta_c', 'delta_r_fc', 'fc_delta_r')
    return {
        name: 0. if getattr(bbox_head, name).weight.grad is None else
        getattr(bbox_head, name).weight.grad.abs().sum().item()
        for name in names
    }


def test_tsd_losses_reach_the_offset_predictors(tiny_roi_head, roi_inputs):
    head = tiny_roi_head()
    losses = _loss(head, roi_inputs)
    grads = _grad_norms(head, losses['loss_cls_tsd'] + losses['loss_bbox_tsd'])
    assert all(g > 0 for g in grads.values()), grads
    # Disentangled: classification moves only F_c, regression only F_r (plus the shared layer).
    grads = _grad_norms(head, _loss(head, roi_inputs)['loss_cls_tsd'])
    assert grads['fc_delta_c'] > 0 and grads['offset_fc'] > 0 and grads['fc_delta_r'] == 0
    grads = _grad_norms(head, _loss(head, roi_inputs)['loss_bbox_tsd'])
    assert grads['fc_delta_r'] > 0 and grads['offset_fc'] > 0 and grads['fc_delta_c'] == 0
    # The sibling's losses do not train the TSD offsets.
    losses = _loss(head, roi_inputs)
    assert not any(_grad_norms(head, losses['loss_cls'] + losses['loss_bbox']).values())


def test_pc_does_not_train_the_sibling(tiny_roi_head, roi_inputs):
    head = tiny_roi_head()
    losses = _loss(head, roi_inputs)
    assert losses['loss_pc_cls'] > 0 and losses['loss_pc_loc'] > 0
    head.zero_grad()
    (losses['loss_pc_cls'] + losses['loss_pc_loc']).backward()
    assert all(p.grad is None or not p.grad.any() for p in head.sibling_head.parameters())
    assert head.bbox_head.fc_cls.weight.grad.any() and head.bbox_head.fc_reg.weight.grad.any()


def test_bbox_loss_targets_and_pc_use_p_hat_r(tiny_roi_head, roi_inputs):
    head = tiny_roi_head()
    with torch.no_grad():  # a visible translation: P-hat_r = P + 0.1 * (1, -0.5) * (w, h)
        head.bbox_head.fc_delta_r.bias.copy_(torch.tensor([1.0, -0.5]))
    feats, proposals, samples = roi_inputs()
    sampling_results = demo_mm_sampling_results(
        proposals, [s.gt_instances for s in samples], sampler_cfg=head.train_cfg.sampler)
    out = head.bbox_loss(feats, sampling_results)
    labels, _, targets, weights = out['bbox_targets']
    pos = labels < NUM_CLASSES
    assert pos.sum() > 0
    gt_bboxes = torch.cat([res.pos_gt_bboxes for res in sampling_results])
    coder = head.bbox_head.bbox_coder
    rois_r = out['rois_r'].detach()
    assert not torch.allclose(rois_r[:, 1:], bbox2roi([r.priors for r in sampling_results])[:, 1:])
    torch.testing.assert_close(targets[pos], coder.encode(rois_r[pos, 1:], gt_bboxes))
    assert torch.all(weights[~pos] == 0)

    # M_loc: IoUs of the sibling boxes decoded from P, of the TSD boxes decoded from P-hat_r.
    rows = torch.arange(int(pos.sum()))
    rois = bbox2roi([r.priors for r in sampling_results])
    sibling = out['sibling_bbox_pred'][pos].view(-1, NUM_CLASSES, 4)[rows, labels[pos]]
    tsd = out['bbox_pred'][pos].view(-1, NUM_CLASSES, 4)[rows, labels[pos]]
    iou_sibling = bbox_overlaps(coder.decode(rois[pos, 1:], sibling), gt_bboxes, is_aligned=True)
    iou_tsd = bbox_overlaps(coder.decode(rois_r[pos, 1:], tsd), gt_bboxes, is_aligned=True)
    margin = torch.clamp(1 - iou_sibling, max=0.2)
    expected = torch.relu(iou_sibling - iou_tsd + margin).mean()
    torch.testing.assert_close(out['loss_bbox']['loss_pc_loc'], expected)


@pytest.mark.parametrize('cls_manner', ['pointwise', 'proposalwise'])
def test_unequal_gammas_pool_each_branch_at_its_own_proposals(tiny_roi_head, roi_inputs,
                                                              cls_manner):
    """F-hat_r is the extractor's RoIAlign of P-hat_r = P + gamma_reg * delta_r * (w, h), the box
    its targets and decoding use; F-hat_c is P deformed by gamma_cls * delta_c (eq. 3-6)."""
    head = tiny_roi_head(bbox_head=dict(GAMMAS, cls_manner=cls_manner))
    set_visible_offsets(head.bbox_head)
    seen = record_branch_inputs(head.bbox_head)
    feats, proposals, _ = roi_inputs(num_proposals=6)
    rois = bbox2roi([p.bboxes for p in proposals])
    with torch.no_grad():
        out = head._bbox_forward(feats, rois)
    (cls_feats, reg_feats), = seen
    extractor = head.bbox_roi_extractor
    feats = feats[:extractor.num_inputs]
    rois_r = moved_rois(rois, out['delta_r'], GAMMA_REG)
    tol = dict(atol=1e-5, rtol=1e-5)  # a moved box against a moved sample grid
    torch.testing.assert_close(out['rois_r'], rois_r)
    torch.testing.assert_close(reg_feats, extractor(feats, rois_r), **tol)
    if cls_manner == 'proposalwise':
        expected_cls = extractor(feats, moved_rois(rois, out['delta_c'], GAMMA_CLS))
    else:
        expected_cls = extractor(feats, rois, offset=out['delta_c'], gamma=GAMMA_CLS)
    torch.testing.assert_close(cls_feats, expected_cls, **tol)
    torch.testing.assert_close(out['bbox_feats'], extractor(feats, rois))
    # The offsets are visible: the other branch's gamma pools other features.
    swapped = extractor(feats, rois, offset=out['delta_c'], gamma=GAMMA_REG)
    assert not torch.allclose(cls_feats, swapped, **tol)


def test_unequal_gammas_targets_and_pc_use_p_hat_r(tiny_roi_head, roi_inputs):
    """Training with gamma_cls != gamma_reg: targets are encoded against P-hat_r computed by hand
    with gamma_reg, M_loc's TSD IoU decodes from it, the sibling's from P (eq. 8)."""
    head = tiny_roi_head(bbox_head=GAMMAS)
    set_visible_offsets(head.bbox_head)
    feats, proposals, samples = roi_inputs(num_items=[3, 2])
    samples[0].gt_instances.labels[0] = 0  # class 0 is a foreground class too
    sampling_results = demo_mm_sampling_results(
        proposals, [s.gt_instances for s in samples], sampler_cfg=head.train_cfg.sampler)
    out = head.bbox_loss(feats, sampling_results)
    assert (out['bbox_targets'][0] == 0).any()
    rois = bbox2roi([r.priors for r in sampling_results])
    rois_r = moved_rois(rois, out['delta_r'].detach(), GAMMA_REG)
    torch.testing.assert_close(out['rois_r'].detach(), rois_r)
    labels, _, targets, weights = out['bbox_targets']
    pos = labels < NUM_CLASSES
    assert pos.sum() > 0
    gt_bboxes = torch.cat([res.pos_gt_bboxes for res in sampling_results])
    coder = head.bbox_head.bbox_coder
    torch.testing.assert_close(targets[pos].detach(), coder.encode(rois_r[pos, 1:], gt_bboxes))
    assert torch.all(weights[pos] == 1) and torch.all(weights[~pos] == 0)

    iou_sibling, iou_tsd = _hand_pc_ious(head, out, sampling_results, rois_r)
    expected = torch.relu(iou_sibling - iou_tsd + torch.clamp(1 - iou_sibling, max=0.2)).mean()
    torch.testing.assert_close(out['loss_bbox']['loss_pc_loc'], expected)


def test_sibling_with_a_decoded_box_loss(tiny_roi_head, roi_inputs):
    """A sibling with an IoU-style loss (reg_decoded_bbox) decodes its deltas from P."""
    head = tiny_roi_head(sibling_head=dict(
        reg_decoded_bbox=True, loss_bbox=dict(type='GIoULoss', loss_weight=1.0)))
    feats, proposals, samples = roi_inputs(num_items=[3, 2])
    sampling_results = demo_mm_sampling_results(
        proposals, [s.gt_instances for s in samples], sampler_cfg=head.train_cfg.sampler)
    out = head.bbox_loss(feats, sampling_results)
    expected = head.sibling_head.loss_and_target(
        out['sibling_cls_score'], out['sibling_bbox_pred'],
        bbox2roi([r.priors for r in sampling_results]), sampling_results,
        head.train_cfg)['loss_bbox']['loss_bbox']
    assert expected > 0
    torch.testing.assert_close(out['loss_bbox']['loss_bbox'], expected)


def _hand_pc_ious(head, out, sampling_results, rois_r):
    """IoU(B-hat, B) and IoU(B-hat_D, B) of eq. 8 by hand: the sibling's deltas for the true
    class decoded from P, TSD's from ``rois_r`` (P-hat_r), against the assigned ground truth."""
    labels = out['bbox_targets'][0]
    pos = labels < NUM_CLASSES
    rows = torch.arange(int(pos.sum()))
    rois = bbox2roi([r.priors for r in sampling_results])
    gt_bboxes = torch.cat([res.pos_gt_bboxes for res in sampling_results])
    coder = head.bbox_head.bbox_coder
    sibling = out['sibling_bbox_pred'][pos].view(-1, NUM_CLASSES, 4)[rows, labels[pos]]
    tsd = out['bbox_pred'][pos].view(-1, NUM_CLASSES, 4)[rows, labels[pos]]
    return (bbox_overlaps(coder.decode(rois[pos, 1:], sibling), gt_bboxes, is_aligned=True),
            bbox_overlaps(coder.decode(rois_r[pos, 1:], tsd), gt_bboxes, is_aligned=True))


def test_unequal_gammas_predict_decodes_from_p_hat_r(tiny_roi_head, roi_inputs):
    head = tiny_roi_head(bbox_head=GAMMAS).eval()
    set_visible_offsets(head.bbox_head)
    feats, proposals, samples = roi_inputs(num_proposals=5)
    metas = [s.metainfo for s in samples]
    rois = bbox2roi([p.bboxes for p in proposals])
    with torch.no_grad():
        out = head._bbox_forward(feats, rois)
        results = head.predict_bbox(feats, metas, proposals, None)
    rois_r = moved_rois(rois, out['delta_r'], GAMMA_REG)
    coder = head.bbox_head.bbox_coder
    for i, (result, meta) in enumerate(zip(results, metas)):
        rows = slice(5 * i, 5 * (i + 1))
        deltas = out['bbox_pred'][rows].reshape(-1, 4)
        boxes = rois_r[rows, 1:].repeat_interleave(NUM_CLASSES, 0)
        expected = coder.decode(boxes, deltas, max_shape=meta['img_shape']).view(5, -1)
        torch.testing.assert_close(result.bboxes, expected)


def test_pc_options_reach_the_losses(tiny_roi_head, roi_inputs):
    """Margins, loss weights and foreground_only other than the defaults, set in the head's config,
    are the ones M_cls and M_loc use: the head's PC losses equal the modules built from the same
    options on the head's own scores and IoUs (and differ from the defaults')."""
    pc_cls = dict(type='ProgressiveConstraintCls', margin_cls=0.4, loss_weight=0.5,
                  foreground_only=True)
    pc_loc = dict(type='ProgressiveConstraintLoc', margin_reg=0.3, loss_weight=3.0)
    head = tiny_roi_head(pc_cls=pc_cls, pc_loc=pc_loc)
    feats, proposals, samples = roi_inputs(num_items=[3, 2])
    sampling_results = demo_mm_sampling_results(
        proposals, [s.gt_instances for s in samples], sampler_cfg=head.train_cfg.sampler)
    out = head.bbox_loss(feats, sampling_results)
    cls_args = (out['sibling_cls_score'], out['cls_score'], out['bbox_targets'][0])
    loc_args = _hand_pc_ious(head, out, sampling_results, out['rois_r'])
    for key, cfg, args in (('loss_pc_cls', pc_cls, cls_args), ('loss_pc_loc', pc_loc, loc_args)):
        expected = MODELS.build(cfg)(*args)
        assert expected > 0, key
        torch.testing.assert_close(out['loss_bbox'][key], expected)
        default = MODELS.build(dict(type=cfg['type']))(*args)
        assert not torch.allclose(out['loss_bbox'][key], default), key


def _delta_r_grad_through_targets(head, roi_inputs):
    """Gradient of the TSD box loss alone on F_r's last layer, with the pooling's offset gradient
    switched off (the extractor sees detached offsets): what is left reaches delta_r only through
    the regression targets encoded against P-hat_r."""
    extractor_forward = head.bbox_roi_extractor.forward

    def pool_with_detached_offset(feats, rois, offset=None, **kwargs):
        return extractor_forward(feats, rois, None if offset is None else offset.detach(), **kwargs)

    head.bbox_roi_extractor.forward = pool_with_detached_offset
    losses = _loss(head, roi_inputs)
    head.zero_grad()
    losses['loss_bbox_tsd'].backward()
    return head.bbox_head.fc_delta_r.weight.grad


@pytest.mark.parametrize('no_pc', [False, True])
def test_tsd_box_loss_trains_delta_r_through_targets(tiny_roi_head, roi_inputs, no_pc):
    """Default (authors' code): L_loc^D gives delta_r a gradient through its targets."""
    head = tiny_roi_head(**(dict(pc_cls=None, pc_loc=None) if no_pc else {}))
    assert not head.bbox_head.detach_reg_targets
    grad = _delta_r_grad_through_targets(head, roi_inputs)
    assert grad is not None and grad.abs().sum() > 0


def test_detach_reg_targets_restores_the_fixed_targets(tiny_roi_head, roi_inputs):
    head = tiny_roi_head(bbox_head=dict(detach_reg_targets=True))
    grad = _delta_r_grad_through_targets(head, roi_inputs)
    assert grad is None or not grad.any()


def test_gamma_zero_is_d_head(tiny_roi_head, roi_inputs):
    """D_head of Table 1 (gamma 0 for both branches): both branches read F of P itself, P-hat_r is
    P, and no loss reaches the offset predictors."""
    head = tiny_roi_head(bbox_head=dict(gamma_cls=0.0, gamma_reg=0.0))
    with torch.no_grad():
        head.bbox_head.fc_delta_r.bias.fill_(3.0)
        head.bbox_head.fc_delta_c.bias.fill_(3.0)
    feats, proposals, _ = roi_inputs(num_proposals=6)
    rois = bbox2roi([p.bboxes for p in proposals])
    out = head._bbox_forward(feats, rois)
    torch.testing.assert_close(out['rois_r'], rois)
    losses = _loss(head, roi_inputs)
    head.zero_grad()
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    for layer in (head.bbox_head.fc_delta_r, head.bbox_head.fc_delta_c, head.bbox_head.offset_fc):
        assert layer.weight.grad is None or not layer.weight.grad.any()
    assert head.bbox_head.fc_reg.weight.grad.any() and head.bbox_head.fc_cls.weight.grad.any()


@pytest.mark.parametrize('num_proposals,num_items', [(20, [0, 0]), (0, [3, 2]), (0, [0, 0])])
def test_empty_batches_give_finite_losses(tiny_roi_head, roi_inputs, num_proposals, num_items):
    head = tiny_roi_head()
    losses = _loss(head, roi_inputs, num_proposals=num_proposals, num_items=num_items)
    assert TSD_KEYS - {'loss_cls_tsd', 'acc_tsd'} <= set(losses)
    if num_proposals or any(num_items):  # RoIs exist (gts are added as proposals)
        assert SIBLING_KEYS | TSD_KEYS | PC_KEYS <= set(losses)
    _assert_finite(losses)
    sum(v for k, v in losses.items() if 'loss' in k).backward()


def test_detector_without_ground_truth(tiny_detector, batch):
    model = tiny_detector()
    data = model.data_preprocessor(batch(num_items=[0, 0]), True)
    losses = model(**data, mode='loss')
    _assert_finite(losses)
    assert losses['loss_bbox_tsd'] == 0 and losses['loss_pc_loc'] == 0


def test_total_loss_falls(tiny_detector, batch):
    model = tiny_detector()
    data = model.data_preprocessor(batch(num_items=[2, 1]), True)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    totals = []
    for _ in range(30):
        losses = model(**copy.deepcopy(data), mode='loss')
        total, _ = model.parse_losses(losses)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        totals.append(total.item())
    assert sum(totals[-5:]) / 5 < 0.6 * sum(totals[:5]) / 5, totals


def _standard_roi_head(tiny_model_cfg):
    """StandardRoIHead with the tiny sibling head as its box head (mmdet's baseline)."""
    model_cfg = tiny_model_cfg()
    tsd = model_cfg.roi_head
    torch.manual_seed(0)
    return MODELS.build(
        dict(
            type='StandardRoIHead',
            bbox_roi_extractor=dict(
                tsd.bbox_roi_extractor,
                type='SingleRoIExtractor',
                roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=0)),
            bbox_head=tsd.sibling_head,
            train_cfg=model_cfg.train_cfg.rcnn,
            test_cfg=model_cfg.test_cfg.rcnn)).eval()


def _forbid_sibling(head):
    def fail(*args, **kwargs):
        raise AssertionError('the sibling head ran at predict time')

    head.sibling_head.forward = fail


@pytest.mark.parametrize('rescale', [False, True])
@pytest.mark.parametrize('with_test_cfg', [True, False])
@pytest.mark.parametrize('num_proposals', [(20, 20), (1, 0), (0, 0)])
def test_predict_bbox_matches_standard_roi_head(tiny_roi_head, tiny_model_cfg, roi_inputs,
                                                rescale, with_test_cfg, num_proposals):
    """Same structure as StandardRoIHead's, also for one proposal in all and for none (mmdet's
    empty results: (0, 4) boxes, and (0,) or, without a test config, (0, C + 1) scores)."""
    tsd, standard = tiny_roi_head().eval(), _standard_roi_head(tiny_model_cfg)
    _forbid_sibling(tsd)
    feats, proposals, samples = roi_inputs()
    proposals = [proposal[:n] for proposal, n in zip(proposals, num_proposals)]
    metas = [s.metainfo for s in samples]
    results = []
    for head in (tsd, standard):
        test_cfg = head.test_cfg if with_test_cfg else None
        results.append(head.predict_bbox(feats, metas, copy.deepcopy(proposals), test_cfg, rescale))
    assert len(results[0]) == len(results[1]) == 2
    for ours, theirs, n in zip(*results, num_proposals):
        assert type(ours) is type(theirs) and set(ours.keys()) == set(theirs.keys())
        for key in theirs.keys():
            assert ours[key].dtype == theirs[key].dtype
            assert ours[key].shape[1:] == theirs[key].shape[1:]
            if not with_test_cfg or n == 0:  # raw per-RoI outputs: same shapes exactly
                assert ours[key].shape == theirs[key].shape
        if not with_test_cfg:
            assert len(ours.bboxes) == n


def test_predict_decodes_from_rois_r(tiny_roi_head, roi_inputs):
    head = tiny_roi_head().eval()
    with torch.no_grad():
        head.bbox_head.fc_delta_r.bias.copy_(torch.tensor([1.0, -0.5]))
    feats, proposals, samples = roi_inputs(num_proposals=5)
    metas = [s.metainfo for s in samples]
    rois = bbox2roi([p.bboxes for p in proposals])
    with torch.no_grad():
        out = head._bbox_forward(feats, rois)
        results = head.predict_bbox(feats, metas, proposals, None)
    coder = head.bbox_head.bbox_coder
    img_shape = metas[0]['img_shape']

    def decode(boxes):
        deltas = out['bbox_pred'][:5].reshape(-1, 4)
        return coder.decode(boxes[:5, 1:].repeat_interleave(NUM_CLASSES, 0), deltas,
                            max_shape=img_shape).view(5, -1)

    assert not torch.allclose(out['rois_r'], rois)
    torch.testing.assert_close(results[0].bboxes, decode(out['rois_r']))
    assert not torch.allclose(results[0].bboxes, decode(rois))


def test_detector_predict_without_sibling(tiny_detector, batch):
    model = tiny_detector().eval()
    _forbid_sibling(model.roi_head)
    data = model.data_preprocessor(batch(), False)
    with torch.no_grad():
        results = model(**data, mode='predict')
        tensors = model(data['inputs'], data['data_samples'], mode='tensor')
    assert len(results) == 2
    for result in results:
        pred = result.pred_instances
        assert set(pred.keys()) == {'bboxes', 'scores', 'labels'}
        assert pred.bboxes.shape[1:] == (4, ) and len(pred.scores) == len(pred.labels) <= 100
    assert tensors[-1][1].shape[-1] == 4 * NUM_CLASSES  # (cls_score, bbox_pred) of TSD


@pytest.mark.parametrize('cls_manner', ['pointwise', 'proposalwise'])
@pytest.mark.parametrize('reg_manner', ['pointwise', 'proposalwise'])
@pytest.mark.parametrize(
    'options,expected',
    [({}, SIBLING_KEYS | TSD_KEYS | PC_KEYS),
     (dict(pc_cls=None, pc_loc=None), SIBLING_KEYS | TSD_KEYS),
     (dict(pc_loc=None), SIBLING_KEYS | TSD_KEYS | {'loss_pc_cls'}),
     (dict(pc_cls=None), SIBLING_KEYS | TSD_KEYS | {'loss_pc_loc'}),
     (NO_SIBLING, TSD_KEYS)],
    ids=['tsd+pc', 'pc-off', 'pc-cls-only', 'pc-loc-only', 'sibling-off'])
def test_options(tiny_roi_head, roi_inputs, cls_manner, reg_manner, options, expected):
    head = tiny_roi_head(bbox_head=dict(cls_manner=cls_manner, reg_manner=reg_manner), **options)
    losses = _loss(head, roi_inputs)
    assert set(losses) == expected
    _assert_finite(losses)
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    feats, proposals, samples = roi_inputs()
    results = head.eval().predict(feats, proposals, samples)
    assert all(r.bboxes.shape[1:] == (4, ) for r in results)


def test_configuration_errors(tiny_roi_head, tiny_model_cfg):
    with pytest.raises(ValueError, match='sibling_head'):
        tiny_roi_head(sibling_head=None)
    with pytest.raises(ValueError, match='sibling_head'):
        tiny_roi_head(sibling_head=None, pc_cls=None)
    with pytest.raises(TypeError, match='TSDRoIExtractor'):
        tiny_roi_head(bbox_roi_extractor=dict(
            type='SingleRoIExtractor', roi_layer=dict(type='RoIAlign', output_size=7)))
    model_cfg = tiny_model_cfg()
    model_cfg.roi_head.bbox_head = model_cfg.roi_head.sibling_head
    with pytest.raises(TypeError, match='TSDBBoxHead'):
        MODELS.build(model_cfg)


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_checkpoints_load_with_and_without_sibling(tiny_detector, tmp_path):
    trained = tiny_detector()
    torch.save({'state_dict': trained.state_dict()}, tmp_path / 'train.pth')
    # Inference model (no sibling) from a training checkpoint: sibling keys are not unexpected.
    inference = tiny_detector(**NO_SIBLING)
    load_checkpoint(inference, str(tmp_path / 'train.pth'), strict=True)
    for key, value in inference.state_dict().items():
        torch.testing.assert_close(value, trained.state_dict()[key])
    inference.load_state_dict(trained.state_dict(), strict=True)

    # Training model from an inference checkpoint: the sibling keeps its initial weights.
    torch.manual_seed(1)
    for p in inference.parameters():
        p.data.normal_()
    torch.save({'state_dict': inference.state_dict()}, tmp_path / 'infer.pth')
    student = tiny_detector()
    sibling_before = _state(student.roi_head.sibling_head)
    load_checkpoint(student, str(tmp_path / 'infer.pth'), strict=True)
    for key, value in student.state_dict().items():
        if '.sibling_head.' in key:
            torch.testing.assert_close(value, sibling_before[key.split('.sibling_head.')[1]])
        else:
            torch.testing.assert_close(value, inference.state_dict()[key])
    student.load_state_dict(inference.state_dict(), strict=True)

    # Genuinely missing TSD weights are still reported.
    partial = {k: v for k, v in inference.state_dict().items() if 'fc_delta_c' not in k}
    with pytest.raises(RuntimeError, match='fc_delta_c'):
        student.load_state_dict(partial, strict=True)


def test_mask_rcnn(tiny_model_cfg, batch):
    model_cfg = tiny_model_cfg()
    model_cfg.type = 'MaskRCNN'
    model_cfg.roi_head.update(
        mask_roi_extractor=dict(
            type='SingleRoIExtractor',
            roi_layer=dict(type='RoIAlign', output_size=14, sampling_ratio=0),
            out_channels=16,
            featmap_strides=[4, 8, 16, 32]),
        mask_head=dict(
            type='FCNMaskHead',
            num_convs=1,
            in_channels=16,
            conv_out_channels=16,
            num_classes=NUM_CLASSES,
            loss_mask=dict(type='CrossEntropyLoss', use_mask=True, loss_weight=1.0)))
    model_cfg.train_cfg.rcnn.mask_size = 28
    model_cfg.test_cfg.rcnn.mask_thr_binary = 0.5
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    model.init_weights()
    data = model.data_preprocessor(batch(with_mask=True), True)
    losses = model(**data, mode='loss')
    assert 'loss_mask' in losses and 'loss_cls_tsd' in losses
    _assert_finite(losses)
    model.eval()
    with torch.no_grad():
        results = model(**model.data_preprocessor(batch(with_mask=True), False), mode='predict')
    assert 'masks' in results[0].pred_instances
