"""Tests of the progressive constraint losses against hand-computed values.

Covers M_cls (eq. 7) and M_loc (eq. 8): margin, effective margin min(m, 1 - s), ReLU cut-off,
mmdet 3.x background column, detached sibling side, empty inputs.
"""
import inspect

import pytest
import torch
from mmdet.registry import MODELS

from tsd_mmdet.models.losses import ProgressiveConstraintCls, ProgressiveConstraintLoc


def _logits(probs):
    """Logits whose softmax is exactly ``probs`` (rows summing to 1)."""
    return torch.tensor(probs, dtype=torch.float64).log()


def test_registered():
    assert isinstance(MODELS.build(dict(type='ProgressiveConstraintCls')), ProgressiveConstraintCls)
    loc = MODELS.build(dict(type='ProgressiveConstraintLoc', margin_reg=0.3, loss_weight=2.0))
    assert isinstance(loc, ProgressiveConstraintLoc)
    assert (loc.margin_reg, loc.loss_weight) == (0.3, 2.0)


def test_defaults():
    cls, loc = ProgressiveConstraintCls(), ProgressiveConstraintLoc()
    assert (cls.margin_cls, cls.loss_weight, cls.foreground_only) == (0.2, 1.0, False)
    assert (loc.margin_reg, loc.loss_weight) == (0.2, 1.0)


def test_cls_hand_cases():
    # 3 classes + background (column 3); labels index the true class of each RoI.
    sibling = _logits([[0.5, 0.2, 0.2, 0.1],    # p_sib = 0.5: margin 0.2 applies
                       [0.02, 0.9, 0.04, 0.04],  # p_sib = 0.9: effective margin min(.2, .1) = .1
                       [0.3, 0.3, 0.2, 0.2]])   # p_sib = 0.3
    tsd = _logits([[0.6, 0.2, 0.1, 0.1],        # p_tsd = 0.6  -> relu(0.5 - 0.6 + 0.2) = 0.1
                   [0.02, 0.92, 0.03, 0.03],    # p_tsd = 0.92 -> relu(0.9 - 0.92 + 0.1) = 0.08
                   [0.7, 0.1, 0.1, 0.1]])       # p_tsd = 0.7  -> relu(0.3 - 0.7 + 0.2) = 0
    labels = torch.tensor([0, 1, 0])
    loss = ProgressiveConstraintCls(margin_cls=0.2)(sibling, tsd, labels)
    assert loss.item() == pytest.approx((0.1 + 0.08 + 0.0) / 3)
    # The plain margin of eq. 7 would give (0.1 + 0.18) / 3 for the same inputs.
    assert loss.item() != pytest.approx((0.1 + 0.18) / 3)
    # loss_weight scales the term (eq. 9 uses 1.0).
    weighted = ProgressiveConstraintCls(margin_cls=0.2, loss_weight=2.0)(sibling, tsd, labels)
    assert weighted.item() == pytest.approx(2 * loss.item())


def test_cls_background_is_last_column():
    # num_classes = 3: background RoIs carry label 3 and are scored by the LAST column, not by
    # column 0 (mmdet v1 convention).
    sibling = _logits([[0.1, 0.1, 0.1, 0.7]])
    tsd = _logits([[0.6, 0.1, 0.1, 0.2]])
    loss = ProgressiveConstraintCls(margin_cls=0.2)(sibling, tsd, torch.tensor([3]))
    # Last column: relu(0.7 - 0.2 + min(0.2, 0.3)) = 0.7.
    # Column 0 would give relu(0.1 - 0.6 + 0.2) = 0.
    assert loss.item() == pytest.approx(0.7)


def test_cls_sibling_detached():
    sibling = torch.randn(5, 4, requires_grad=True)
    tsd = torch.randn(5, 4, requires_grad=True)
    loss = ProgressiveConstraintCls(margin_cls=0.5)(sibling, tsd, torch.tensor([0, 1, 2, 3, 3]))
    assert loss.item() > 0
    loss.backward()
    assert sibling.grad is None
    assert tsd.grad.abs().sum() > 0


def test_loc_hand_cases():
    iou_sibling = torch.tensor([0.5, 0.9, 0.6], dtype=torch.float64)
    iou_tsd = torch.tensor([0.55, 0.95, 0.9], dtype=torch.float64, requires_grad=True)
    loss = ProgressiveConstraintLoc(margin_reg=0.2)(iou_sibling, iou_tsd)
    # relu(.5 - .55 + .2) = .15; relu(.9 - .95 + min(.2, .1)) = .05; relu(.6 - .9 + .2) = 0
    assert loss.item() == pytest.approx((0.15 + 0.05 + 0.0) / 3)
    loss.backward()
    expected_grad = torch.tensor([-1 / 3, -1 / 3, 0.], dtype=torch.float64)
    torch.testing.assert_close(iou_tsd.grad, expected_grad)


def test_loc_sibling_detached():
    iou_sibling = torch.tensor([0.5, 0.7], requires_grad=True)
    iou_tsd = torch.tensor([0.4, 0.4], requires_grad=True)
    ProgressiveConstraintLoc()(iou_sibling, iou_tsd).backward()
    assert iou_sibling.grad is None
    assert iou_tsd.grad.abs().sum() > 0


def test_empty_inputs_are_zero_and_connected():
    iou_tsd = torch.zeros(0, requires_grad=True)
    loss = ProgressiveConstraintLoc()(torch.zeros(0), iou_tsd)
    assert loss.item() == 0 and loss.requires_grad
    loss.backward()
    cls_tsd = torch.zeros(0, 4, requires_grad=True)
    loss = ProgressiveConstraintCls()(torch.zeros(0, 4), cls_tsd, torch.zeros(0, dtype=torch.long))
    assert loss.item() == 0 and loss.requires_grad
    loss.backward()


def test_cls_foreground_only_ignores_background():
    # Two positives and one background RoI (label 3 of 3 classes).
    sibling = _logits([[0.5, 0.2, 0.2, 0.1],
                       [0.3, 0.3, 0.2, 0.2],
                       [0.1, 0.1, 0.1, 0.7]])
    tsd = _logits([[0.6, 0.2, 0.1, 0.1],        # relu(0.5 - 0.6 + 0.2) = 0.1
                   [0.7, 0.1, 0.1, 0.1],        # relu(0.3 - 0.7 + 0.2) = 0
                   [0.6, 0.1, 0.1, 0.2]])       # background: relu(0.7 - 0.2 + 0.2) = 0.7
    labels = torch.tensor([0, 0, 3])
    all_rois = ProgressiveConstraintCls(margin_cls=0.2)(sibling, tsd, labels)
    assert all_rois.item() == pytest.approx((0.1 + 0.0 + 0.7) / 3)
    fg = ProgressiveConstraintCls(margin_cls=0.2, foreground_only=True)
    assert fg(sibling, tsd, labels).item() == pytest.approx((0.1 + 0.0) / 2)
    # Background RoIs get no gradient from the foreground-only term.
    tsd_grad = tsd.clone().requires_grad_(True)
    fg(sibling, tsd_grad, labels).backward()
    assert tsd_grad.grad[2].abs().sum() == 0 and tsd_grad.grad[0].abs().sum() > 0
    # Only background: zero, finite, still in the graph.
    only_bg = torch.zeros(2, 4, requires_grad=True)
    loss = fg(torch.zeros(2, 4), only_bg, torch.tensor([3, 3]))
    assert loss.item() == 0 and loss.requires_grad


def test_cls_shape_mismatch_is_a_clear_error():
    labels = torch.zeros(3, dtype=torch.long)
    with pytest.raises(ValueError, match='of one shape'):
        ProgressiveConstraintCls()(torch.zeros(3, 4), torch.zeros(3, 5), labels)
    with pytest.raises(ValueError, match=r'K labels, got \(3, 4\), \(3, 4\) and \(2,\)'):
        ProgressiveConstraintCls()(torch.zeros(3, 4), torch.zeros(3, 4), labels[:2])


def _cls_case(foreground_only=False):
    """Inputs of M_cls (3 classes + background, the last RoI background) and their hand value."""
    sibling = _logits([[0.5, 0.2, 0.2, 0.1], [0.02, 0.9, 0.04, 0.04], [0.1, 0.1, 0.1, 0.7]])
    tsd = _logits([[0.6, 0.2, 0.1, 0.1], [0.02, 0.92, 0.03, 0.03], [0.6, 0.1, 0.1, 0.2]])
    # relu(.5 - .6 + .2) = .1; relu(.9 - .92 + min(.2, .1)) = .08; background relu(.7 - .2 + .2)
    value = (0.1 + 0.08) / 2 if foreground_only else (0.1 + 0.08 + 0.7) / 3
    return dict(margin_cls=0.2, foreground_only=foreground_only), (sibling, tsd,
                                                                    torch.tensor([0, 1, 3])), value


def _loc_case():
    """Inputs of M_loc and their hand value."""
    iou_sibling = torch.tensor([0.5, 0.9, 0.6], dtype=torch.float64)
    iou_tsd = torch.tensor([0.55, 0.95, 0.9], dtype=torch.float64)
    # relu(.5 - .55 + .2) = .15; relu(.9 - .95 + min(.2, .1)) = .05; relu(.6 - .9 + .2) = 0
    return dict(margin_reg=0.2), (iou_sibling, iou_tsd), (0.15 + 0.05) / 3


# Every loss module tsd_mmdet registers, with inputs whose unweighted value is known by hand.
LOSS_CASES = {
    'ProgressiveConstraintCls': _cls_case,
    'ProgressiveConstraintCls(foreground_only)': lambda: _cls_case(foreground_only=True),
    'ProgressiveConstraintLoc': _loc_case,
}


def test_every_registered_loss_has_a_loss_weight_case():
    registered = {name for name, cls in MODELS.module_dict.items()
                  if cls.__module__.startswith('tsd_mmdet.')
                  and 'loss_weight' in inspect.signature(cls).parameters}
    assert registered == {name.split('(')[0] for name in LOSS_CASES}


@pytest.mark.parametrize('case', sorted(LOSS_CASES))
def test_loss_weight_scales_value_and_gradient(case):
    """loss_weight multiplies the term and its gradient (eq. 9 weighs each term 1.0; the configs
    may not): a weight of 2.5 against the hand value of the unweighted term."""
    kwargs, inputs, value = LOSS_CASES[case]()
    results = []
    for loss_weight in (1.0, 2.5):
        tsd = inputs[1].clone().requires_grad_(True)
        loss = MODELS.build(dict(type=case.split('(')[0], loss_weight=loss_weight, **kwargs))(
            inputs[0], tsd, *inputs[2:])
        loss.backward()
        results.append((loss, tsd.grad))
    (loss_1, grad_1), (loss_w, grad_w) = results
    assert loss_1.item() == pytest.approx(value)
    assert loss_w.item() == pytest.approx(2.5 * value)
    assert grad_1.abs().sum() > 0
    torch.testing.assert_close(grad_w, 2.5 * grad_1)


def test_cls_foreground_only_keeps_every_foreground_class():
    """Positives are the labels below the background column, the last foreground class included,
    whatever the number of RoIs (5 here, 4 columns)."""
    sibling = _logits([[0.5, 0.2, 0.2, 0.1]] * 5)
    tsd = _logits([[0.4, 0.2, 0.2, 0.2]] * 5)
    labels = torch.tensor([0, 2, 3, 3, 1])
    # p_sib - p_tsd + min(0.2, 1 - p_sib): class 0: 0.1 + 0.2; classes 1, 2: 0 + 0.2.
    loss = ProgressiveConstraintCls(margin_cls=0.2, foreground_only=True)(sibling, tsd, labels)
    assert loss.item() == pytest.approx((0.3 + 0.2 + 0.2) / 3)
