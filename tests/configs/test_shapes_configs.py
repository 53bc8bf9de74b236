"""The configs/shapes/ TSD configs take their head settings (the options of eq. 3-9) from the paper
configs' base, configs/tsd/_base_/tsd_head.py: equal to the paper configs', and following them."""
import shutil
from pathlib import Path

import pytest
from mmengine.config import Config

ROOT = Path(__file__).resolve().parents[2]
# shapes config -> the paper config whose head it takes
PAIRS = {
    'tsd-faster-rcnn_r18_fpn_shapes.py': 'tsd-faster-rcnn_r50_fpn_1x_coco.py',
    'tsd-mask-rcnn_r18_fpn_shapes.py': 'tsd-mask-rcnn_r50_fpn_1x_coco.py',
    'tsd-cascade-rcnn_r18_fpn_shapes.py': 'tsd-cascade-rcnn_r50_fpn_1x_coco.py',
    'tsd-faster-rcnn_r18_fpn_cas_shapes-openimages.py':
        'tsd-faster-rcnn_r50_fpn_32xb2-cas-1x_openimages.py',
    'tsd-libra-faster-rcnn_r18_fpn_shapes.py': 'tsd-libra-faster-rcnn_r50_fpn_1x_coco.py',
    'tsd-dynamic-rcnn_r18_fpn_shapes.py': 'tsd-dynamic-rcnn_r50_fpn_1x_coco.py',
    'tsd-faster-rcnn_r18_fpn_pisa_shapes.py': 'tsd-faster-rcnn_r50_fpn_pisa_1x_coco.py',
    'tsd-ms-rcnn_r18_fpn_shapes.py': 'tsd-ms-rcnn_r50_fpn_1x_coco.py',
    'tsd-point-rend_r18_fpn_shapes.py': 'tsd-point-rend_r50-caffe_fpn_ms-1x_coco.py',
    'tsd-htc_r18_fpn_shapes.py': 'tsd-htc_r50_fpn_1x_coco.py',
    'tsd-tridentnet_r50-c4_shapes.py': 'tsd-tridentnet_r50-caffe_1x_coco.py',
}
# what the shapes configs shrink for 2 CPU cores: widths (FPN and branch fcs) and the classes
SHAPES_OWN = {'in_channels', 'fc_out_channels', 'num_classes'}
# and, for TridentNet (its shared res5 runs per RoI), the RoI size: 8x8 pooled, 4x4 after res5
SHAPES_OWN_OF = {'tsd-tridentnet_r50-c4_shapes.py': {'roi_feat_size'}}


def _roi_head(configs: Path, path: str):
    return Config.fromfile(str(configs / path)).model.roi_head


def _heads(roi_head, key='bbox_head') -> list:
    value = roi_head[key]
    return value if isinstance(value, list) else [value]


@pytest.mark.parametrize('shapes, paper', PAIRS.items(), ids=list(PAIRS))
def test_head_settings_equal_the_paper_configs(shapes, paper):
    ours = _roi_head(ROOT / 'configs', f'shapes/{shapes}')
    theirs = _roi_head(ROOT / 'configs', f'tsd/{paper}')
    assert ours.type == theirs.type
    assert ours.pc_cls == theirs.pc_cls and ours.pc_loc == theirs.pc_loc
    assert ours.bbox_roi_extractor.type == theirs.bbox_roi_extractor.type
    assert ours.bbox_roi_extractor.roi_layer.type == theirs.bbox_roi_extractor.roi_layer.type
    assert len(_heads(ours)) == len(_heads(theirs))
    for stage, (head, paper_head) in enumerate(zip(_heads(ours), _heads(theirs))):
        assert set(head) == set(paper_head), stage
        for key in set(paper_head) - SHAPES_OWN - SHAPES_OWN_OF.get(shapes, set()):
            assert head[key] == paper_head[key], (stage, key)
    for head, sibling in zip(_heads(ours), _heads(ours, 'sibling_head')):
        for key in SHAPES_OWN & set(sibling):  # the TSD branches as wide as the baseline's
            assert head[key] == sibling[key], key  # head (TridentNet's has no fcs)


def test_a_change_to_the_paper_base_shows_up(tmp_path):
    configs = tmp_path / 'configs'
    shutil.copytree(ROOT / 'configs', configs)
    base = configs / 'tsd' / '_base_' / 'tsd_head.py'
    text = base.read_text()
    for old, new in (('gamma_cls=0.1', 'gamma_cls=0.3'), ("cls_manner='pointwise'",
                                                         "cls_manner='proposalwise'"),
                     ('margin_reg=0.2', 'margin_reg=0.4')):
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    base.write_text(text)
    for shapes in PAIRS:
        roi_head = _roi_head(configs, f'shapes/{shapes}')
        assert roi_head.pc_loc.margin_reg == 0.4
        for head in _heads(roi_head):
            assert head.gamma_cls == 0.3 and head.cls_manner == 'proposalwise'
