"""Tests of TSDBBoxHead: shapes, sizes and init of F_c / F_r and the branches, P-hat_r, targets.

Covers eq. 3-5 (offset predictors, P-hat_r = P + gamma * delta_r * (w, h)) and eq. 2's L^D targets.
"""
import pytest
import torch
from mmdet.models.task_modules.assigners import AssignResult
from mmdet.models.task_modules.samplers import SamplingResult
from mmdet.registry import MODELS
from mmdet.structures.bbox import bbox2roi
from mmengine.config import ConfigDict

from tsd_mmdet.models.bbox_heads import TSDBBoxHead
from tsd_mmdet.ops import deform_roi_align

NUM_CLASSES = 3


def _head(**kwargs):
    cfg = dict(
        type='TSDBBoxHead',
        in_channels=4,
        roi_feat_size=7,
        num_classes=NUM_CLASSES,
        fc_out_channels=16,
        offset_fc_channels=8,
        bbox_coder=dict(
            type='DeltaXYWHBBoxCoder',
            target_means=[0., 0., 0., 0.],
            target_stds=[0.1, 0.1, 0.2, 0.2]),
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
        loss_bbox=dict(type='L1Loss', loss_weight=1.0))
    cfg.update(kwargs)
    torch.manual_seed(0)
    head = MODELS.build(cfg)
    head.init_weights()
    return head


@pytest.mark.parametrize('cls_manner', ['pointwise', 'proposalwise'])
@pytest.mark.parametrize('reg_manner', ['pointwise', 'proposalwise'])
@pytest.mark.parametrize('reg_class_agnostic', [False, True])
def test_shapes(cls_manner, reg_manner, reg_class_agnostic):
    head = _head(cls_manner=cls_manner, reg_manner=reg_manner,
                 reg_class_agnostic=reg_class_agnostic)
    feats = torch.randn(5, 4, 7, 7)
    delta_c, delta_r = head.forward_offsets(feats)
    offset_shape = {'pointwise': (5, 2, 7, 7), 'proposalwise': (5, 2)}
    assert delta_c.shape == offset_shape[cls_manner]
    assert delta_r.shape == offset_shape[reg_manner]
    cls_score, bbox_pred = head(feats, feats)
    assert cls_score.shape == (5, NUM_CLASSES + 1)
    assert bbox_pred.shape == (5, 4 if reg_class_agnostic else 4 * NUM_CLASSES)


@pytest.mark.parametrize('cls_manner', ['pointwise', 'proposalwise'])
def test_non_square_roi_feat_size(cls_manner):
    """roi_feat_size (oh, ow) = (3, 5): the pointwise offsets are (K, 2, oh, ow), as the op and
    the extractor (output_size (3, 5)) take them, and the fcs read C * oh * ow features."""
    head = _head(roi_feat_size=(3, 5), cls_manner=cls_manner)
    assert head.offset_fc.in_features == head.cls_fcs[0].in_features == 4 * 15
    delta_c, delta_r = head.forward_offsets(torch.randn(6, 4, 3, 5))
    assert delta_c.shape == ((6, 2, 3, 5) if cls_manner == 'pointwise' else (6, 2))
    assert delta_r.shape == (6, 2)
    rois = torch.tensor([[0., 1., 2., 9., 7.]]).repeat(6, 1)
    feats = deform_roi_align(torch.randn(1, 4, 12, 12), rois, delta_c, (3, 5))
    assert head(feats, feats)[0].shape == (6, NUM_CLASSES + 1)


def test_defaults_are_the_papers():
    """Built without TSD options, the head has the paper's settings (Tables 1, 4; §2.2)."""
    head = MODELS.build(dict(type='TSDBBoxHead', in_channels=4, roi_feat_size=7, num_classes=3))
    assert (head.gamma_cls, head.gamma_reg) == (0.1, 0.1)
    assert (head.cls_manner, head.reg_manner) == ('pointwise', 'proposalwise')
    assert (head.offset_fc_channels, head.fc_out_channels) == (256, 1024)
    assert head.offset_fc.out_features == 256 and head.cls_fcs[1].out_features == 1024
    assert head.detach_reg_targets is False


def test_paper_sizes():
    """Paper widths (§2.2): F_r {256, 256, 2}, F_c {256, 256, 49 * 2}, first layer shared, and
    1024-wide branches; 80 COCO classes. Hand count: 31,571,189 parameters."""
    head = MODELS.build(
        dict(type='TSDBBoxHead', in_channels=256, roi_feat_size=7, num_classes=80))
    layers = {
        'offset_fc': (12544, 256),
        'delta_c_fc': (256, 256),
        'fc_delta_c': (256, 98),
        'delta_r_fc': (256, 256),
        'fc_delta_r': (256, 2),
        'cls_fcs.0': (12544, 1024),
        'cls_fcs.1': (1024, 1024),
        'fc_cls': (1024, 81),
        'reg_fcs.0': (12544, 1024),
        'reg_fcs.1': (1024, 1024),
        'fc_reg': (1024, 320),
    }
    modules = dict(head.named_modules())
    for name, (fan_in, fan_out) in layers.items():
        assert (modules[name].in_features, modules[name].out_features) == (fan_in, fan_out)
    total = sum(i * o + o for i, o in layers.values())
    assert total == 31_571_189
    assert sum(p.numel() for p in head.parameters()) == total


def test_offset_predictors_start_near_zero():
    head = _head()
    assert head.fc_delta_c.weight.std().item() == pytest.approx(1e-3, rel=0.2)  # 784 samples
    for layer in (head.fc_delta_c, head.fc_delta_r):
        assert layer.weight.abs().max() < 1e-2 and torch.all(layer.bias == 0)
    delta_c, delta_r = head.forward_offsets(torch.randn(8, 4, 7, 7))
    assert delta_c.abs().max() < 0.05 and delta_r.abs().max() < 0.05


def test_derive_reg_rois_hand_case():
    rois = torch.tensor([[0., 10., 20., 50., 100.], [1., 0., 0., 10., 10.]])
    delta_r = torch.tensor([[0.5, -1.0], [0.0, 0.0]])
    # w, h = 40, 80: shift = 0.1 * (0.5 * 40, -1 * 80) = (2, -8).
    expected = torch.tensor([[0., 12., 12., 52., 92.], [1., 0., 0., 10., 10.]])
    torch.testing.assert_close(_head().derive_reg_rois(rois, delta_r), expected)
    torch.testing.assert_close(
        _head(gamma_reg=0.2).derive_reg_rois(rois, delta_r)[0, 1:],
        torch.tensor([14., 4., 54., 84.]))
    # Pointwise P-hat_r has no single box: regression stays relative to P.
    pointwise = _head(reg_manner='pointwise')
    assert pointwise.derive_reg_rois(rois, torch.randn(2, 2, 7, 7)) is rois


def _sampling_result():
    """One positive prior [0, 0, 10, 10] matched to gt [2, 0, 12, 10] (label 2), one negative."""
    priors = torch.tensor([[0., 0., 10., 10.], [20., 20., 40., 40.]])
    gt_bboxes = torch.tensor([[2., 0., 12., 10.]])
    assign_result = AssignResult(
        num_gts=1,
        gt_inds=torch.tensor([1, 0]),
        max_overlaps=torch.tensor([0.67, 0.0]),
        labels=torch.tensor([2, -1]))
    return SamplingResult(
        pos_inds=torch.tensor([0]),
        neg_inds=torch.tensor([1]),
        priors=priors,
        gt_bboxes=gt_bboxes,
        assign_result=assign_result,
        gt_flags=torch.zeros(2, dtype=torch.uint8))


def test_targets_are_encoded_against_p_hat_r():
    head = _head()
    res = _sampling_result()
    cfg = ConfigDict(pos_weight=-1)
    rois = bbox2roi([res.priors])
    # delta_r = (2, 0) moves P by 0.1 * 2 * 10 = 2 pixels right: P-hat_r is the ground truth.
    delta_r = torch.tensor([[2.0, 0.0], [0.0, 0.0]], requires_grad=True)
    rois_r = head.derive_reg_rois(rois, delta_r)
    labels, _, targets_r, weights_r = head.get_targets([res], cfg, rois=rois_r)
    assert labels.tolist() == [2, NUM_CLASSES]
    torch.testing.assert_close(targets_r, torch.zeros(2, 4))
    assert weights_r.tolist() == [[1.] * 4, [0.] * 4]
    # The targets move with delta_r (authors' code): gamma_reg = std = 0.1 gives d t_x / d delta_x
    # = -gamma * w / (w * std) = -1, and the same for y; w, h do not depend on delta_r.
    assert targets_r.requires_grad
    grad, = torch.autograd.grad(targets_r[0].sum(), delta_r)
    torch.testing.assert_close(grad, torch.tensor([[-1.0, -1.0], [0.0, 0.0]]))
    # Against P (BBoxHead's behaviour): dx = (7 - 5) / 10 / 0.1 = 2.
    _, _, targets_p, _ = head.get_targets([res], cfg)
    torch.testing.assert_close(targets_p[0], torch.tensor([2., 0., 0., 0.]))


def _box_loss_grad(head):
    """d L_loc^D / d delta_r and d L_loc^D / d bbox_pred, with bbox_pred independent of delta_r
    (so only the targets connect the loss to delta_r)."""
    res = _sampling_result()
    rois = bbox2roi([res.priors])
    delta_r = torch.tensor([[0.5, -0.3], [0.2, 0.1]], requires_grad=True)
    torch.manual_seed(1)
    bbox_pred = torch.randn(2, 4 * NUM_CLASSES, requires_grad=True)
    out = head.loss_and_target(torch.randn(2, NUM_CLASSES + 1), bbox_pred,
                               head.derive_reg_rois(rois, delta_r), [res],
                               ConfigDict(pos_weight=-1))
    loss = out['loss_bbox']['loss_bbox_tsd']
    grad_delta, grad_pred = torch.autograd.grad(loss, [delta_r, bbox_pred], allow_unused=True)
    return grad_delta, grad_pred


def test_box_loss_trains_delta_r_through_the_targets():
    """Default (authors' code): L_loc^D(pred - t(P-hat_r)) reaches delta_r through t. With gamma
    equal to the x/y std, d t / d delta_r = -1, so d L / d delta_r = d L / d pred for x and y of
    the positive's class; the negative's delta_r gets nothing."""
    grad_delta, grad_pred = _box_loss_grad(_head())
    label = 2
    assert grad_delta is not None and grad_delta[0].abs().min() > 0
    torch.testing.assert_close(grad_delta[0], grad_pred[0, 4 * label:4 * label + 2])
    torch.testing.assert_close(grad_delta[1], torch.zeros(2))


def test_detached_targets_cut_that_path():
    grad_delta, grad_pred = _box_loss_grad(_head(detach_reg_targets=True))
    assert grad_delta is None or not grad_delta.any()
    assert grad_pred.abs().sum() > 0


def test_detached_targets_are_still_encoded_against_p_hat_r():
    """detach_reg_targets cuts the gradient, not the box: the targets are those of P-hat_r."""
    res = _sampling_result()
    rois_r = _head().derive_reg_rois(bbox2roi([res.priors]),
                                     torch.tensor([[2.0, 0.0], [0.0, 0.0]], requires_grad=True))
    targets = []
    for detach in (False, True):
        out = _head(detach_reg_targets=detach).loss_and_target(
            torch.zeros(2, NUM_CLASSES + 1), torch.zeros(2, 4 * NUM_CLASSES), rois_r, [res],
            ConfigDict(pos_weight=-1))
        targets.append(out['bbox_targets'][2])
    torch.testing.assert_close(targets[1], torch.zeros(2, 4))  # P-hat_r is the ground truth
    torch.testing.assert_close(targets[1], targets[0].detach())
    assert targets[0].requires_grad and not targets[1].requires_grad


def test_reduction_override_and_per_image_targets():
    head = _head()
    res = _sampling_result()
    rois = bbox2roi([res.priors])
    torch.manual_seed(1)
    cls_score, bbox_pred = torch.randn(2, NUM_CLASSES + 1), torch.randn(2, 4 * NUM_CLASSES)
    cfg = ConfigDict(pos_weight=-1)
    losses = head.loss_and_target(cls_score, bbox_pred, rois, [res], cfg,
                                  reduction_override='none')['loss_bbox']
    assert losses['loss_cls_tsd'].shape == (2, )
    mean = head.loss_and_target(cls_score, bbox_pred, rois, [res], cfg)['loss_bbox']
    torch.testing.assert_close(losses['loss_cls_tsd'].mean(), mean['loss_cls_tsd'])
    # concat=False: per-image lists, with and without the rois to encode against.
    for kwargs in ({}, dict(rois=rois)):
        labels, _, targets, _ = head.get_targets([res, res], cfg, concat=False,
                                                 rois=None if not kwargs else
                                                 torch.cat([rois, rois]))
        assert isinstance(labels, (list, tuple)) and len(labels) == 2
        assert [t.shape for t in targets] == [(2, 4), (2, 4)]


def test_loss_and_target_keys():
    head = _head()
    res = _sampling_result()
    rois = bbox2roi([res.priors])
    cls_score, bbox_pred = head(torch.randn(2, 4, 7, 7), torch.randn(2, 4, 7, 7))
    out = head.loss_and_target(cls_score, bbox_pred, rois, [res], ConfigDict(pos_weight=-1))
    assert set(out['loss_bbox']) == {'loss_cls_tsd', 'loss_bbox_tsd', 'acc_tsd'}
    assert all(torch.isfinite(v).all() for v in out['loss_bbox'].values())
    assert len(out['bbox_targets']) == 4


def test_init_cfg_given_replaces_the_offset_init():
    head = _head(init_cfg=dict(type='Constant', val=0.5, bias=0.25, layer='Linear'))
    for layer in (head.offset_fc, head.fc_delta_c, head.fc_delta_r, head.cls_fcs[0], head.fc_reg):
        assert torch.all(layer.weight == 0.5) and torch.all(layer.bias == 0.25)


def test_branch_loss_weights_scale_the_tsd_losses():
    """loss_cls / loss_bbox weights other than 1 reach L_cls^D and L_loc^D (eq. 2)."""
    res = _sampling_result()
    rois = bbox2roi([res.priors])
    torch.manual_seed(1)
    cls_score, bbox_pred = torch.randn(2, NUM_CLASSES + 1), torch.randn(2, 4 * NUM_CLASSES)
    losses = []
    for cls_weight, bbox_weight in ((1.0, 1.0), (0.5, 3.0)):
        head = _head(loss_cls=dict(type='CrossEntropyLoss', loss_weight=cls_weight),
                     loss_bbox=dict(type='L1Loss', loss_weight=bbox_weight))
        losses.append(head.loss_and_target(cls_score, bbox_pred, rois, [res],
                                           ConfigDict(pos_weight=-1))['loss_bbox'])
    assert losses[0]['loss_cls_tsd'] > 0 and losses[0]['loss_bbox_tsd'] > 0
    torch.testing.assert_close(losses[1]['loss_cls_tsd'], 0.5 * losses[0]['loss_cls_tsd'])
    torch.testing.assert_close(losses[1]['loss_bbox_tsd'], 3.0 * losses[0]['loss_bbox_tsd'])


def test_decoded_box_loss_decodes_from_p_hat_r():
    """reg_decoded_bbox=True (IoU-style losses): L_loc^D compares the ground truth with the box
    decoded from P-hat_r. delta_r = (2, 0) makes P-hat_r the ground truth [2, 0, 12, 10]; a
    prediction dx = 0.1 moves it by 0.1 * std 0.1 * w 10 = 0.1: L1 sum 0.2 over 2 RoIs."""
    head = _head(reg_decoded_bbox=True)
    res = _sampling_result()
    rois_r = head.derive_reg_rois(bbox2roi([res.priors]), torch.tensor([[2.0, 0.0], [0.0, 0.0]]))
    bbox_pred = torch.zeros(2, 4 * NUM_CLASSES)
    bbox_pred[0, 4 * 2] = 0.1  # label 2
    out = head.loss_and_target(torch.zeros(2, NUM_CLASSES + 1), bbox_pred, rois_r, [res],
                               ConfigDict(pos_weight=-1))
    torch.testing.assert_close(out['bbox_targets'][2][0], torch.tensor([2., 0., 12., 10.]))
    torch.testing.assert_close(out['loss_bbox']['loss_bbox_tsd'], torch.tensor(0.1))


def test_invalid_arguments():
    assert isinstance(_head(), TSDBBoxHead)
    with pytest.raises(ValueError, match='cls_manner'):
        _head(cls_manner='deformable')
    with pytest.raises(ValueError, match='reg_manner'):
        _head(reg_manner='pointwize')
    with pytest.raises(ValueError, match='with_cls and with_reg'):
        _head(with_cls=False)


def test_avg_pool_averages_each_feature_before_the_fcs():
    """A C4 head (TridentNet): F, F-hat_c, F-hat_r averaged over the grid, as BBoxHead does."""
    torch.manual_seed(0)
    head = _head(with_avg_pool=True)
    head.init_weights()
    feats = torch.randn(3, head.in_channels, 7, 7)
    assert head.offset_fc.in_features == head.cls_fcs[0].in_features == head.in_channels
    mean = feats.mean((2, 3), keepdim=True).expand_as(feats)  # same average, other grid
    for got, expected in zip(head.forward_offsets(feats), head.forward_offsets(mean)):
        torch.testing.assert_close(got, expected)
    for got, expected in zip(head(feats, feats), head(mean, mean)):
        torch.testing.assert_close(got, expected)
