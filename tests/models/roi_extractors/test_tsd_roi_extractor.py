"""Tests of TSDRoIExtractor: plain RoIAlign without offset, gamma-scaled offsets otherwise.

Checks the pooling of eq. 3-6: F from P, F-hat_r from P + gamma * delta * (w, h), F-hat_c pointwise.
"""
import pytest
import torch
from mmdet.registry import MODELS
from torchvision.ops import roi_align

from tsd_mmdet.models.roi_extractors import TSDRoIExtractor

STRIDES = [4, 8, 16, 32]


def _extractor(finest_scale=56, **roi_layer):
    layer = dict(type='DeformRoIAlign', output_size=7, sampling_ratio=0)
    layer.update(roi_layer)
    return MODELS.build(
        dict(
            type='TSDRoIExtractor',
            roi_layer=layer,
            out_channels=3,
            featmap_strides=STRIDES,
            finest_scale=finest_scale))


def _inputs():
    torch.manual_seed(0)
    feats = tuple(torch.randn(2, 3, 256 // s, 256 // s) for s in STRIDES)
    # Sizes 40 / 120 / 240 map to levels 0 / 1 / 2 (finest_scale 56).
    rois = torch.tensor([[0, 10., 20., 50., 60.], [1, 30., 40., 150., 160.],
                         [0, 10., 10., 250., 250.], [1, 100., 80., 140., 120.]])
    return feats, rois


def test_no_offset_is_roi_align_at_the_mapped_level():
    extractor = _extractor()
    assert isinstance(extractor, TSDRoIExtractor)
    feats, rois = _inputs()
    out = extractor(feats, rois)
    assert out.shape == (4, 3, 7, 7)
    levels = extractor.map_roi_levels(rois, len(feats))
    assert levels.tolist() == [0, 1, 2, 0]
    for k, level in enumerate(levels.tolist()):
        expected = roi_align(feats[level], rois[k:k + 1], 7, 1 / STRIDES[level], 0, aligned=True)
        torch.testing.assert_close(out[k:k + 1], expected)


def _roi_align_at(feats, rois, levels, output_size=7, sampling_ratio=0, aligned=True):
    """torchvision's RoIAlign of each RoI at the given level: (K, C, oh, ow)."""
    return torch.cat([
        roi_align(feats[level], rois[k:k + 1], output_size, 1 / STRIDES[level], sampling_ratio,
                  aligned=aligned) for k, level in enumerate(levels)
    ])


def test_roi_layer_options_reach_every_level():
    """Non-default roi_layer options (a non-square output, a fixed sampling grid, aligned=False)
    reach the DeformRoIAlign of every level."""
    extractor = _extractor(output_size=(3, 5), sampling_ratio=2, aligned=False)
    feats, rois = _inputs()
    out = extractor(feats, rois)
    assert out.shape == (4, 3, 3, 5)
    expected = _roi_align_at(feats, rois, [0, 1, 2, 0], (3, 5), 2, aligned=False)
    torch.testing.assert_close(out, expected)


def test_default_finest_scale_is_mmdets():
    extractor = MODELS.build(dict(type='TSDRoIExtractor', roi_layer=dict(type='DeformRoIAlign',
                                  output_size=7), out_channels=3, featmap_strides=STRIDES))
    assert extractor.finest_scale == 56


def test_finest_scale_moves_the_levels():
    # Sizes 40 / 120 / 240 with finest_scale 28: floor(log2(size / 28)) = 0 / 2 / 3.
    extractor = _extractor(finest_scale=28)
    feats, rois = _inputs()
    assert extractor.map_roi_levels(rois, len(feats)).tolist() == [0, 2, 3, 0]
    torch.testing.assert_close(extractor(feats, rois), _roi_align_at(feats, rois, [0, 2, 3, 0]))


def test_roi_scale_factor_rescales_after_the_level_mapping():
    """roi_scale_factor enlarges each RoI about its centre; its level is still the original's
    (mapped after rescaling, the doubled sizes 80 / 240 / 480 would give levels 0 / 2 / 3)."""
    extractor = _extractor()
    feats, rois = _inputs()
    centre, half = (rois[:, 1:3] + rois[:, 3:]) / 2, (rois[:, 3:] - rois[:, 1:3])
    doubled = torch.cat([rois[:, :1], centre - half, centre + half], dim=1)
    torch.testing.assert_close(extractor(feats, rois, roi_scale_factor=2.0),
                               _roi_align_at(feats, doubled, [0, 1, 2, 0]))


def test_proposalwise_offset_is_a_translated_roi():
    extractor = _extractor()
    feats, rois = _inputs()
    offset = torch.tensor([[0.5, -1.0], [1.0, 0.3], [-0.2, 0.4], [0.0, 2.0]])
    gamma = 0.3  # not the default 0.1 of forward's gamma
    wh = rois[:, 3:] - rois[:, 1:3]
    shift = gamma * offset * wh
    moved = torch.cat([rois[:, :1], rois[:, 1:3] + shift, rois[:, 3:] + shift], dim=1)
    # Same size, so the moved RoIs map to the same levels as the originals.
    torch.testing.assert_close(
        extractor(feats, rois, offset=offset, gamma=gamma), extractor(feats, moved),
        atol=1e-5, rtol=1e-5)


def test_pointwise_offset_moves_single_bins_and_has_gradients():
    extractor = _extractor()
    feats, rois = _inputs()
    offset = torch.zeros(4, 2, 7, 7)
    offset[0, 0, 3, 3] = 1.0
    offset.requires_grad_(True)
    base = extractor(feats, rois)
    out = extractor(feats, rois, offset=offset, gamma=0.1)
    changed = (out - base).abs().sum(dim=1) > 1e-6
    assert changed[0, 3, 3] and changed.sum() == 1
    out.sum().backward()
    assert offset.grad is not None and offset.grad.abs().sum() > 0


def test_empty_rois():
    extractor = _extractor()
    feats, _ = _inputs()
    offset = torch.zeros(0, 2, requires_grad=True)
    out = extractor(feats, torch.zeros(0, 5), offset=offset)
    assert out.shape == (0, 3, 7, 7)


def test_config_errors():
    with pytest.raises(ValueError, match='gamma'):
        _extractor(gamma=0.2)
    with pytest.raises(ValueError, match='DeformRoIAlign'):
        MODELS.build(
            dict(
                type='TSDRoIExtractor',
                roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=0),
                out_channels=3,
                featmap_strides=STRIDES))
    feats, rois = _inputs()
    with pytest.raises(ValueError, match='offset has 3 rows for 4 rois'):
        _extractor()(feats, rois, offset=torch.zeros(3, 2))


def test_forward_gamma_defaults_to_the_paper_value():
    extractor = _extractor()
    feats, rois = _inputs()
    offset = torch.tensor([[0.5, -1.0], [1.0, 0.3], [-0.2, 0.4], [0.0, 2.0]])
    torch.testing.assert_close(extractor(feats, rois, offset=offset),
                               extractor(feats, rois, offset=offset, gamma=0.1))
    assert not torch.allclose(extractor(feats, rois, offset=offset), extractor(feats, rois))
