"""TSDCascadeRoIHead on a tiny Cascade R-CNN: per-stage losses, gradients, refinement, predict.

Covers the TSD loss of eq. 9 at every stage (with mmdet's stage weights), boxes passed on from
P-hat_r (eq. 4), and TSD-only inference matching CascadeRoIHead's output structure.
"""
import copy
from pathlib import Path

import pytest
import torch
from conftest import moved_rois, record_branch_inputs, set_visible_offsets
from mmdet.registry import MODELS
from mmdet.structures.bbox import bbox2roi, bbox_overlaps
from mmengine.config import Config
from mmengine.runner import load_checkpoint

from tsd_mmdet.models.roi_heads import TSDCascadeRoIHead

CONFIG = (Path(__file__).resolve().parents[3] / 'configs' / 'tsd' /
          'tsd-cascade-rcnn_r50_fpn_1x_coco.py')
NUM_CLASSES = 4
CHANNELS = 16
STAGES = (0, 1, 2)
SIBLING_KEYS = {'loss_cls', 'loss_bbox', 'acc'}
TSD_KEYS = {'loss_cls_tsd', 'loss_bbox_tsd', 'acc_tsd'}
PC_KEYS = {'loss_pc_cls', 'loss_pc_loc'}
OFFSET_LAYERS = ('offset_fc', 'fc_delta_c', 'fc_delta_r')
# (gamma_cls, gamma_reg) of each stage: unequal within a stage, different between stages and from
# the extractor's default 0.1, so a mix-up of branches or stages gives other numbers.
STAGE_GAMMAS = ((0.05, 0.2), (0.15, 0.3), (0.25, 0.12))


def _stage_keys(keys):
    return {f's{stage}.{key}' for stage in STAGES for key in keys}


@pytest.fixture(scope='module')
def cascade_model_cfg():
    """The shipped TSD Cascade R-CNN config shrunk to toy widths (as tests/models/conftest.py)."""
    model_cfg = Config.fromfile(str(CONFIG)).model
    model_cfg.backbone = dict(
        type='ResNet',
        depth=18,
        base_channels=8,
        out_indices=(0, 1, 2, 3),
        frozen_stages=-1,
        norm_eval=False,
        init_cfg=None)
    model_cfg.neck.update(in_channels=[8, 16, 32, 64], out_channels=CHANNELS)
    model_cfg.rpn_head.update(in_channels=CHANNELS, feat_channels=CHANNELS)
    roi_head = model_cfg.roi_head
    roi_head.bbox_roi_extractor.out_channels = CHANNELS
    for head in roi_head.bbox_head:
        head.update(in_channels=CHANNELS, fc_out_channels=32, offset_fc_channels=16,
                    num_classes=NUM_CLASSES)
    for head in roi_head.sibling_head:
        head.update(in_channels=CHANNELS, fc_out_channels=32, num_classes=NUM_CLASSES)
    model_cfg.train_cfg.rpn_proposal.update(nms_pre=200, max_per_img=50)
    for rcnn in model_cfg.train_cfg.rcnn:
        rcnn.sampler.num = 64
    model_cfg.test_cfg.rpn.update(nms_pre=200, max_per_img=50)
    return model_cfg


def _roi_head_cfg(model_cfg, **overrides):
    roi_head = copy.deepcopy(model_cfg.roi_head)
    roi_head.update(train_cfg=model_cfg.train_cfg.rcnn, test_cfg=model_cfg.test_cfg.rcnn)
    roi_head.update(overrides)
    return roi_head


@pytest.fixture
def cascade_head(cascade_model_cfg):
    """Factory: ``cascade_head(**roi_head_overrides)`` -> initialised tiny TSDCascadeRoIHead."""

    def build(**overrides):
        torch.manual_seed(0)
        head = MODELS.build(_roi_head_cfg(cascade_model_cfg, **overrides))
        head.init_weights()
        return head

    return build


@pytest.fixture
def cascade_detector(cascade_model_cfg):
    """Factory: ``cascade_detector(**roi_head_overrides)`` -> initialised tiny TSD Cascade R-CNN."""

    def build(**overrides):
        torch.manual_seed(0)
        model_cfg = copy.deepcopy(cascade_model_cfg)
        model_cfg.roi_head.update(overrides)
        model = MODELS.build(model_cfg)
        model.init_weights()
        return model

    return build


def _loss(head, roi_inputs, seed=0, **kwargs):
    feats, proposals, samples = roi_inputs(**kwargs)
    torch.manual_seed(seed)  # the samplers draw from the global generator
    return head.loss(feats, proposals, samples)


def _assert_finite(losses):
    for key, value in losses.items():
        for v in value if isinstance(value, list) else [value]:
            assert torch.isfinite(v).all(), key


def _forbid_siblings(head):
    def fail(*args, **kwargs):
        raise AssertionError('a sibling head ran at predict time')

    for sibling in head.sibling_head:
        sibling.forward = fail


def test_detector_loss_keys_per_stage(cascade_detector, batch):
    model = cascade_detector()
    assert isinstance(model.roi_head, TSDCascadeRoIHead)
    assert len(model.roi_head.sibling_head) == len(model.roi_head.bbox_head) == 3
    data = model.data_preprocessor(batch(), True)
    losses = model(**data, mode='loss')
    assert set(losses) == ({'loss_rpn_cls', 'loss_rpn_bbox'}
                           | _stage_keys(SIBLING_KEYS | TSD_KEYS | PC_KEYS))
    _assert_finite(losses)


def test_stage_loss_weights(cascade_head, roi_inputs):
    weighted = _loss(cascade_head(), roi_inputs)
    unweighted = _loss(cascade_head(stage_loss_weights=[1, 1, 1]), roi_inputs)
    for stage, weight in zip(STAGES, (1, 0.5, 0.25)):
        for key in SIBLING_KEYS | TSD_KEYS | PC_KEYS:
            name = f's{stage}.{key}'
            expected = unweighted[name] * (1 if key.startswith('acc') else weight)
            torch.testing.assert_close(weighted[name], expected)


def test_gradients_reach_every_stage(cascade_head, roi_inputs):
    head = cascade_head()
    losses = _loss(head, roi_inputs)
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    for stage in STAGES:
        tsd, sibling = head.bbox_head[stage], head.sibling_head[stage]
        for name in OFFSET_LAYERS:
            assert getattr(tsd, name).weight.grad.abs().sum() > 0, (stage, name)
        assert sibling.fc_cls.weight.grad.abs().sum() > 0, stage


def test_stage_losses_train_only_their_stage(cascade_head, roi_inputs):
    head = cascade_head()
    losses = _loss(head, roi_inputs)
    (losses['s1.loss_cls_tsd'] + losses['s1.loss_bbox_tsd'] + losses['s1.loss_pc_cls']).backward()
    grads = [head.bbox_head[stage].offset_fc.weight.grad for stage in STAGES]
    assert grads[0] is None and grads[2] is None and grads[1].abs().sum() > 0


def _record_stage_boxes(head):
    """Wrap ``head``: record each stage's box results and the proposals each assigner sees."""
    records = {'bbox': [], 'priors': []}
    bbox_loss = head.bbox_loss

    def record_bbox_loss(stage, x, sampling_results):
        results = bbox_loss(stage, x, sampling_results)
        records['bbox'].append((sampling_results, results))
        return results

    head.bbox_loss = record_bbox_loss
    for assigner in head.bbox_assigner:
        assign = assigner.assign

        def record_assign(pred_instances, *args, _assign=assign, **kwargs):
            records['priors'].append(pred_instances.priors.clone())
            return _assign(pred_instances, *args, **kwargs)

        assigner.assign = record_assign
    return records


def _shift_rois_r(head):
    """Make every stage's P-hat_r differ from its P (offsets start near 0)."""
    with torch.no_grad():
        for bbox_head in head.bbox_head:
            bbox_head.fc_delta_r.bias.copy_(torch.tensor([1.0, -0.5]))


def test_training_refines_from_rois_r(cascade_head, roi_inputs):
    head = cascade_head()
    _shift_rois_r(head)
    feats, proposals, samples = roi_inputs(num_items=[2, 1])
    records = _record_stage_boxes(head)
    torch.manual_seed(0)
    head.loss(feats, proposals, samples)
    metas = [s.metainfo for s in samples]
    num_imgs = len(samples)
    for stage in (0, 1):
        sampling_results, results = records['bbox'][stage]
        assert torch.equal(results['rois'], results['rois_r'])
        seen = records['priors'][(stage + 1) * num_imgs:(stage + 2) * num_imgs]
        with torch.no_grad():
            expected = head.bbox_head[stage].refine_bboxes(sampling_results, results, metas)
            rois = bbox2roi([r.priors for r in sampling_results])
            from_p = head.bbox_head[stage].refine_bboxes(
                sampling_results, dict(results, rois=rois), metas)
        for boxes, ours, theirs in zip(seen, expected, from_p):
            torch.testing.assert_close(boxes, ours.bboxes)
            assert not torch.allclose(boxes, theirs.bboxes)


def test_predict_refines_from_rois_r(cascade_head, roi_inputs):
    head = cascade_head().eval()
    _shift_rois_r(head)
    feats, proposals, samples = roi_inputs(num_proposals=6)
    metas = [s.metainfo for s in samples]
    seen = []
    bbox_forward = head._bbox_forward

    def record(stage, x, rois):
        results = bbox_forward(stage, x, rois)
        seen.append((rois, results))
        return results

    head._bbox_forward = record
    rois = bbox2roi([p.bboxes for p in proposals])
    with torch.no_grad():
        out_rois, cls_scores, bbox_preds = head._refine_roi(feats, rois, metas, (6, 6))
    assert len(seen) == 3
    for stage in (0, 1):
        stage_rois, results = seen[stage]
        next_rois = seen[stage + 1][0]
        rois_r = results['rois_r']
        assert not torch.allclose(rois_r, stage_rois)
        labels = results['cls_score'][:, :-1].argmax(dim=1)
        for i, meta in enumerate(metas):
            rows = slice(6 * i, 6 * (i + 1))
            expected = head.bbox_head[stage].regress_by_class(
                rois_r[rows, 1:], labels[rows], results['bbox_pred'][rows], meta)
            torch.testing.assert_close(next_rois[rows, 1:], expected)
            torch.testing.assert_close(next_rois[rows, 0], rois_r[rows, 0])
    # The last stage's deltas come with its P-hat_r; the scores are the mean over the stages.
    torch.testing.assert_close(torch.cat(out_rois), seen[2][1]['rois_r'])
    torch.testing.assert_close(torch.cat(bbox_preds), seen[2][1]['bbox_pred'])
    mean_score = sum(results['cls_score'] for _, results in seen) / 3
    torch.testing.assert_close(torch.cat(cls_scores), mean_score)


def _unequal_gamma_head(cascade_head, cascade_model_cfg, num_stages=3, reg_class_agnostic=True,
                        **bbox_head):
    """A cascade head of ``num_stages`` (the config's first ones) with STAGE_GAMMAS and visible
    offsets; ``bbox_head`` updates every stage's TSD head."""
    roi_head = cascade_model_cfg.roi_head
    bbox_heads = [dict(cfg, gamma_cls=gamma_cls, gamma_reg=gamma_reg,
                       reg_class_agnostic=reg_class_agnostic, **bbox_head)
                  for cfg, (gamma_cls, gamma_reg) in zip(roi_head.bbox_head, STAGE_GAMMAS)]
    head = cascade_head(
        num_stages=num_stages,
        stage_loss_weights=roi_head.stage_loss_weights[:num_stages],
        bbox_head=bbox_heads[:num_stages],
        sibling_head=roi_head.sibling_head[:num_stages],
        train_cfg=cascade_model_cfg.train_cfg.rcnn[:num_stages])
    for bbox_head in head.bbox_head:
        set_visible_offsets(bbox_head)
    return head


@pytest.mark.parametrize('num_stages', [3, 2])
def test_unequal_gammas_each_stage_pools_and_trains_at_its_p_hat_r(cascade_head,
                                                                    cascade_model_cfg,
                                                                    roi_inputs, num_stages):
    """Every stage, with its own gamma_cls != gamma_reg: F-hat_r is RoIAlign of that stage's
    P-hat_r (computed by hand), F-hat_c is P deformed with gamma_cls, the targets are encoded
    against P-hat_r and M_loc decodes the TSD boxes from it (the sibling's from P). Also for a
    cascade of 2 stages, with its keys and stage weights."""
    head = _unequal_gamma_head(cascade_head, cascade_model_cfg, num_stages)
    seen = [record_branch_inputs(bbox_head) for bbox_head in head.bbox_head]
    records = _record_stage_boxes(head)
    feats, proposals, samples = roi_inputs(num_items=[3, 2])
    torch.manual_seed(0)
    losses = head.loss(feats, proposals, samples)
    assert set(losses) == {f's{stage}.{key}' for stage in range(num_stages)
                           for key in SIBLING_KEYS | TSD_KEYS | PC_KEYS}
    assert len(records['bbox']) == num_stages
    tol = dict(atol=1e-5, rtol=1e-5)
    for stage, (gamma_cls, gamma_reg) in enumerate(STAGE_GAMMAS[:num_stages]):
        sampling_results, results = records['bbox'][stage]
        (cls_feats, reg_feats), = seen[stage]
        extractor = head.bbox_roi_extractor[stage]
        x = feats[:extractor.num_inputs]
        rois = bbox2roi([r.priors for r in sampling_results])
        rois_r = moved_rois(rois, results['delta_r'].detach(), gamma_reg)
        torch.testing.assert_close(results['rois_r'].detach(), rois_r)
        with torch.no_grad():
            torch.testing.assert_close(reg_feats, extractor(x, rois_r), **tol)
            torch.testing.assert_close(
                cls_feats, extractor(x, rois, offset=results['delta_c'], gamma=gamma_cls), **tol)
        labels, _, targets, _ = results['bbox_targets']
        pos = labels < NUM_CLASSES
        assert pos.sum() > 0, stage
        gt_bboxes = torch.cat([res.pos_gt_bboxes for res in sampling_results])
        coder = head.bbox_head[stage].bbox_coder
        torch.testing.assert_close(targets[pos].detach(),
                                   coder.encode(rois_r[pos, 1:], gt_bboxes))
        # Class-agnostic regression in the cascade: (K, 4) deltas for TSD and sibling.
        sibling_boxes = head.sibling_head[stage].bbox_coder.decode(
            rois[pos, 1:], results['sibling_bbox_pred'][pos])
        iou_sibling = bbox_overlaps(sibling_boxes, gt_bboxes, is_aligned=True)
        iou_tsd = bbox_overlaps(coder.decode(rois_r[pos, 1:], results['bbox_pred'][pos]),
                                gt_bboxes, is_aligned=True)
        expected = torch.relu(iou_sibling - iou_tsd
                              + torch.clamp(1 - iou_sibling, max=0.2)).mean()
        torch.testing.assert_close(results['loss_bbox']['loss_pc_loc'], expected)
        weight = (1, 0.5, 0.25)[stage]
        torch.testing.assert_close(losses[f's{stage}.loss_pc_loc'], weight * expected)


# A classification loss with its own activation (sigmoid scores, no background logit), as
# mmdet's Seesaw and custom losses have.
CUSTOM_LOSS = dict(type='CrossEntropyCustomLoss', use_sigmoid=True, num_classes=NUM_CLASSES)


@pytest.mark.parametrize('num_stages,reg_class_agnostic,loss_cls',
                         [(3, True, None), (2, False, None), (2, False, CUSTOM_LOSS)],
                         ids=['3-agnostic', '2-per-class', '2-per-class-custom-loss'])
def test_unequal_gammas_predict_refines_and_decodes_from_each_p_hat_r(
        cascade_head, cascade_model_cfg, roi_inputs, num_stages, reg_class_agnostic, loss_cls):
    """Each stage's P-hat_r (by hand) is what the next stage's proposals and the final boxes are
    decoded from; with per-class regression, for the top-scoring foreground class (scored with
    the loss's own activation where it has one)."""
    head = _unequal_gamma_head(cascade_head, cascade_model_cfg, num_stages, reg_class_agnostic,
                               **({} if loss_cls is None else dict(loss_cls=loss_cls))).eval()
    feats, proposals, samples = roi_inputs(num_proposals=6)
    metas = [s.metainfo for s in samples]
    seen = []
    bbox_forward = head._bbox_forward

    def record(stage, x, rois):
        results = bbox_forward(stage, x, rois)
        seen.append((rois, results))
        return results

    head._bbox_forward = record
    with torch.no_grad():
        predictions = head.predict_bbox(feats, metas, copy.deepcopy(proposals), None)
    assert len(seen) == num_stages
    hand_rois_r = [moved_rois(rois, results['delta_r'], gamma_reg)
                   for (rois, results), (_, gamma_reg) in zip(seen, STAGE_GAMMAS)]
    for stage in range(num_stages):
        torch.testing.assert_close(seen[stage][1]['rois_r'], hand_rois_r[stage])
    for stage in range(num_stages - 1):
        results, next_rois = seen[stage][1], seen[stage + 1][0]
        scores = results['cls_score']
        if loss_cls is not None:
            assert scores.shape[1] == NUM_CLASSES
            scores = head.bbox_head[stage].loss_cls.get_activation(scores)
        labels = scores[:, :-1].argmax(dim=1)
        for i, meta in enumerate(metas):
            rows = slice(6 * i, 6 * (i + 1))
            expected = head.bbox_head[stage].regress_by_class(
                hand_rois_r[stage][rows, 1:], labels[rows], results['bbox_pred'][rows], meta)
            torch.testing.assert_close(next_rois[rows, 1:], expected)
    last = num_stages - 1
    coder = head.bbox_head[last].bbox_coder
    per_roi = 1 if reg_class_agnostic else NUM_CLASSES
    for i, (prediction, meta) in enumerate(zip(predictions, metas)):
        rows = slice(6 * i, 6 * (i + 1))
        boxes = hand_rois_r[last][rows, 1:].repeat_interleave(per_roi, 0)
        deltas = seen[last][1]['bbox_pred'][rows].reshape(-1, 4)
        expected = coder.decode(boxes, deltas, max_shape=meta['img_shape']).view(6, -1)
        torch.testing.assert_close(prediction.bboxes, expected)


def test_predict_without_train_cfg(cascade_head, roi_inputs):
    """An inference-only head (train_cfg None, as a deployed model may be built) predicts what the
    training-configured head predicts."""
    feats, proposals, samples = roi_inputs(num_proposals=6)
    metas = [s.metainfo for s in samples]
    results = []
    for head in (cascade_head().eval(), cascade_head(train_cfg=None).eval()):
        with torch.no_grad():
            results.append(head.predict_bbox(feats, metas, copy.deepcopy(proposals), None))
    for ours, theirs in zip(*results):
        assert len(theirs) == 6
        for key in ('bboxes', 'scores'):
            torch.testing.assert_close(ours[key], theirs[key])


def _cascade_roi_head(cascade_model_cfg):
    """mmdet's CascadeRoIHead with the tiny sibling heads as its box heads (the baseline)."""
    tsd = _roi_head_cfg(cascade_model_cfg)
    torch.manual_seed(0)
    return MODELS.build(
        dict(
            type='CascadeRoIHead',
            num_stages=tsd.num_stages,
            stage_loss_weights=tsd.stage_loss_weights,
            bbox_roi_extractor=dict(
                tsd.bbox_roi_extractor,
                type='SingleRoIExtractor',
                roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=0)),
            bbox_head=tsd.sibling_head,
            train_cfg=tsd.train_cfg,
            test_cfg=tsd.test_cfg)).eval()


@pytest.mark.parametrize('rescale', [False, True])
@pytest.mark.parametrize('with_test_cfg', [True, False])
def test_predict_matches_cascade_roi_head(cascade_head, cascade_model_cfg, roi_inputs, rescale,
                                          with_test_cfg):
    tsd, cascade = cascade_head().eval(), _cascade_roi_head(cascade_model_cfg)
    _forbid_siblings(tsd)
    feats, proposals, samples = roi_inputs()
    metas = [s.metainfo for s in samples]
    results = []
    for head in (tsd, cascade):
        test_cfg = head.test_cfg if with_test_cfg else None
        with torch.no_grad():
            results.append(
                head.predict_bbox(feats, metas, copy.deepcopy(proposals), test_cfg, rescale))
    assert len(results[0]) == len(results[1]) == 2
    for ours, theirs in zip(*results):
        assert type(ours) is type(theirs) and set(ours.keys()) == set(theirs.keys())
        for key in theirs.keys():
            assert ours[key].dtype == theirs[key].dtype
            assert ours[key].shape[1:] == theirs[key].shape[1:]
            if not with_test_cfg:  # raw per-RoI outputs: same shapes exactly
                assert ours[key].shape == theirs[key].shape


def test_detector_predict_without_siblings(cascade_detector, batch):
    model = cascade_detector().eval()
    _forbid_siblings(model.roi_head)
    data = model.data_preprocessor(batch(), False)
    with torch.no_grad():
        results = model(**data, mode='predict')
        tensors = model(data['inputs'], data['data_samples'], mode='tensor')
    assert len(results) == 2
    for result in results:
        pred = result.pred_instances
        assert set(pred.keys()) == {'bboxes', 'scores', 'labels'}
        assert pred.bboxes.shape[1:] == (4, ) and len(pred.scores) == len(pred.labels) <= 100
    cls_scores, bbox_preds = tensors[-1]  # (cls_scores, bbox_preds) of the cascade
    assert cls_scores[0].shape[-1] == NUM_CLASSES + 1 and bbox_preds[0].shape[-1] == 4


def test_checkpoints_load_with_and_without_siblings(cascade_detector, tmp_path):
    trained = cascade_detector()
    trained_state = {k: v.clone() for k, v in trained.state_dict().items()}
    assert any('.sibling_head.2.' in k for k in trained_state)
    torch.save({'state_dict': trained_state}, tmp_path / 'train.pth')
    # Inference model (no siblings) from a training checkpoint: sibling keys are not unexpected.
    inference = cascade_detector(sibling_head=None, pc_cls=None, pc_loc=None)
    load_checkpoint(inference, str(tmp_path / 'train.pth'), strict=True)
    for key, value in inference.state_dict().items():
        torch.testing.assert_close(value, trained_state[key])
    inference.load_state_dict(trained_state, strict=True)

    # Training model from an inference checkpoint: every stage's sibling keeps its weights.
    torch.manual_seed(1)
    for p in inference.parameters():
        p.data.normal_()
    student = cascade_detector()
    siblings_before = {k: v.clone() for k, v in student.roi_head.sibling_head.state_dict().items()}
    student.load_state_dict(inference.state_dict(), strict=True)
    for key, value in student.state_dict().items():
        if '.sibling_head.' in key:
            torch.testing.assert_close(value, siblings_before[key.split('.sibling_head.')[1]])
        else:
            torch.testing.assert_close(value, inference.state_dict()[key])

    # Part of the siblings (one stage) is genuinely missing: still reported.
    partial = {k: v for k, v in trained_state.items() if '.sibling_head.1.' not in k}
    with pytest.raises(RuntimeError, match='sibling_head.1'):
        student.load_state_dict(partial, strict=True)


@pytest.mark.parametrize(
    'options,expected',
    [(dict(pc_cls=None, pc_loc=None), SIBLING_KEYS | TSD_KEYS),
     (dict(sibling_head=None, pc_cls=None, pc_loc=None), TSD_KEYS)],
    ids=['pc-off', 'sibling-off'])
def test_options(cascade_head, roi_inputs, options, expected):
    head = cascade_head(**options)
    losses = _loss(head, roi_inputs)
    assert set(losses) == _stage_keys(expected)
    _assert_finite(losses)
    feats, proposals, samples = roi_inputs()
    results = head.eval().predict(feats, proposals, samples)
    assert all(r.bboxes.shape[1:] == (4, ) for r in results)


def test_one_sibling_config_is_built_per_stage(cascade_head, cascade_model_cfg):
    head = cascade_head(sibling_head=cascade_model_cfg.roi_head.sibling_head[0])
    assert len(head.sibling_head) == 3
    assert head.sibling_head[0].fc_cls.weight is not head.sibling_head[1].fc_cls.weight


@pytest.mark.parametrize('num_proposals,num_items', [(20, [0, 0]), (0, [3, 2])])
def test_empty_batches_give_finite_losses(cascade_head, roi_inputs, num_proposals, num_items):
    head = cascade_head()
    losses = _loss(head, roi_inputs, num_proposals=num_proposals, num_items=num_items)
    _assert_finite(losses)
    sum(v for k, v in losses.items() if 'loss' in k).backward()


def test_total_loss_falls(cascade_detector, batch):
    model = cascade_detector()
    data = model.data_preprocessor(batch(num_items=[2, 1]), True)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    totals = []
    for _ in range(20):
        losses = model(**copy.deepcopy(data), mode='loss')
        total, _ = model.parse_losses(losses)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        totals.append(total.item())
    assert sum(totals[-4:]) / 4 < 0.7 * sum(totals[:4]) / 4, totals


def test_configuration_errors(cascade_head, cascade_model_cfg):
    with pytest.raises(ValueError, match='sibling_head'):
        cascade_head(sibling_head=None)
    with pytest.raises(ValueError, match='sibling_head'):
        cascade_head(sibling_head=None, pc_loc=None)
    with pytest.raises(ValueError, match='2 sibling heads for 3 stages'):
        cascade_head(sibling_head=cascade_model_cfg.roi_head.sibling_head[:2])
    with pytest.raises(ValueError, match='num_classes'):
        cascade_head(sibling_head=dict(cascade_model_cfg.roi_head.sibling_head[0], num_classes=3))
    with pytest.raises(TypeError, match='TSDRoIExtractor'):
        cascade_head(bbox_roi_extractor=dict(
            type='SingleRoIExtractor', roi_layer=dict(type='RoIAlign', output_size=7),
            out_channels=CHANNELS, featmap_strides=[4, 8, 16, 32]))
    with pytest.raises(TypeError, match='TSDBBoxHead'):
        cascade_head(bbox_head=cascade_model_cfg.roi_head.sibling_head)


def test_cascade_mask_rcnn(cascade_model_cfg, batch):
    """mmdet's per-stage mask heads work unchanged next to the TSD box heads."""
    model_cfg = copy.deepcopy(cascade_model_cfg)
    model_cfg.roi_head.update(
        mask_roi_extractor=dict(
            type='SingleRoIExtractor',
            roi_layer=dict(type='RoIAlign', output_size=14, sampling_ratio=0),
            out_channels=CHANNELS,
            featmap_strides=[4, 8, 16, 32]),
        mask_head=dict(
            type='FCNMaskHead',
            num_convs=1,
            in_channels=CHANNELS,
            conv_out_channels=CHANNELS,
            num_classes=NUM_CLASSES,
            loss_mask=dict(type='CrossEntropyLoss', use_mask=True, loss_weight=1.0)))
    for rcnn in model_cfg.train_cfg.rcnn:
        rcnn.mask_size = 28
    model_cfg.test_cfg.rcnn.update(mask_thr_binary=0.5, score_thr=0.)
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    model.init_weights()
    losses = model(**model.data_preprocessor(batch(with_mask=True), True), mode='loss')
    assert {f's{stage}.loss_mask' for stage in STAGES} <= set(losses)
    _assert_finite(losses)
    model.eval()
    _forbid_siblings(model.roi_head)
    with torch.no_grad():
        results = model(**model.data_preprocessor(batch(with_mask=True), False), mode='predict')
    pred = results[0].pred_instances
    assert len(pred) > 0 and pred.masks.shape[0] == len(pred)
