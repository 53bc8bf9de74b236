"""RoI heads TSD does not host (Grid R-CNN, Double-Head, SCNet, Sparse R-CNN / QueryInst, CrowdDet,
SABL's head): a TSD config for each is refused with one line that says why (no place for eq. 9)."""
import pytest
from mmdet.registry import MODELS
from mmengine.hub import get_config

from tsd_mmdet.models.roi_heads import UnsupportedHostError

# mmdet's config of each family: its roi_head, with TSD's type, is the TSD config a user writes
FAMILIES = {
    'GridRoIHead': ('grid_rcnn/grid-rcnn_r50_fpn_gn-head_1x_coco.py', 'grid points'),
    'DoubleHeadRoIHead': ('double_heads/dh-faster-rcnn_r50_fpn_1x_coco.py', "D_head peer"),
    'SCNetRoIHead': ('scnet/scnet_r50_fpn_1x_coco.py', 'feature relay'),
    'SparseRoIHead': ('sparse_rcnn/sparse-rcnn_r50_fpn_1x_coco.py', 'Hungarian'),
    'MultiInstanceRoIHead': ('crowddet/crowddet-rcnn_r50_fpn_8xb2-30e_crowdhuman.py', 'EMD'),
}


def _roi_head(family: str):
    return get_config(f'mmdet::{family}').model.roi_head


@pytest.mark.parametrize('roi_head', FAMILIES)
def test_tsd_config_of_the_family_is_refused_in_one_line(roi_head):
    family, why = FAMILIES[roi_head]
    cfg = _roi_head(family)
    assert cfg.type == roi_head
    cfg.type = f'TSD{roi_head}'
    with pytest.raises(UnsupportedHostError) as error:
        MODELS.build(cfg)
    message = str(error.value)
    assert '\n' not in message and message.startswith(f'TSD does not support {roi_head}: ')
    assert why in message


def test_sabl_sibling_is_refused_in_one_line(tiny_model_cfg):
    sabl = _roi_head('sabl/sabl-faster-rcnn_r50_fpn_1x_coco.py').bbox_head
    roi_head = tiny_model_cfg().roi_head
    roi_head.update(sibling_head=sabl)  # a TSD head with SABL's head as its sibling
    with pytest.raises(UnsupportedHostError) as error:
        MODELS.build(roi_head)
    message = str(error.value)
    assert '\n' not in message
    assert message.startswith("TSDRoIHead: sibling_head SABLHead: SABL's bucketing head")
