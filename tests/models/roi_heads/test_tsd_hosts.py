"""Every TSD host (configs/tsd/ of Libra, Dynamic, PISA, Mask Scoring R-CNN, PointRend, HTC), tiny:
one training step gives the TSD (eq. 2) and PC (eq. 7-8) losses, finite; gradients reach every TSD
module; predict returns boxes from TSD alone (§3.2); the stage contract describes the head."""
import copy
import re
from pathlib import Path

import pytest
import torch
from conftest import HOST_CONFIGS

import tsd_mmdet
from tsd_mmdet.models.bbox_heads import TSDBBoxHead
from tsd_mmdet.models.roi_extractors import TSDRoIExtractor
from tsd_mmdet.models.roi_heads import TSDStageMixin

# what each host's own branches add to the losses (mmdet's keys, unchanged)
HOST_KEYS = {
    'tsd-faster-rcnn_r50_fpn_pisa_1x_coco.py': {'loss_carl_tsd'},
    'tsd-ms-rcnn_r50_fpn_1x_coco.py': {'loss_mask', 'loss_mask_iou'},
    'tsd-point-rend_r50-caffe_fpn_ms-1x_coco.py': {'loss_mask', 'loss_point'},
    'tsd-htc_r50_fpn_1x_coco.py': {'loss_semantic_seg', 's0.loss_mask', 's2.loss_mask'},
}
TSD_LAYERS = ('offset_fc', 'delta_c_fc', 'fc_delta_c', 'delta_r_fc', 'fc_delta_r', 'cls_fcs.0',
              'reg_fcs.1', 'fc_cls', 'fc_reg')


@pytest.mark.parametrize('config', HOST_CONFIGS, ids=[c[4:-3] for c in HOST_CONFIGS])
def test_host_trains_one_step_and_predicts(tiny_host, config):
    model, batch = tiny_host(config)
    roi_head = model.roi_head
    assert type(roi_head).__name__ == HOST_CONFIGS[config]
    assert isinstance(roi_head, TSDStageMixin)

    losses = model(**model.data_preprocessor(copy.deepcopy(batch), True), mode='loss')
    prefixes = [f's{i}.' for i in range(roi_head.num_tsd_stages)] if roi_head.num_tsd_stages > 1 \
        else ['']
    for prefix in prefixes:
        for key in ('loss_cls_tsd', 'loss_bbox_tsd', 'loss_pc_cls', 'loss_pc_loc', 'loss_cls',
                    'loss_bbox'):
            assert torch.isfinite(losses[prefix + key]), prefix + key
    assert HOST_KEYS.get(config, set()) <= set(losses)
    total, _ = model.parse_losses(losses)
    assert torch.isfinite(total)
    total.backward()

    for i in range(roi_head.num_tsd_stages):
        stage = roi_head.tsd_stage(i)
        assert isinstance(stage.extractor, TSDRoIExtractor)
        assert isinstance(stage.bbox_head, TSDBBoxHead) and stage.sibling_head is not None
        assert stage.pc_cls is roi_head.pc_cls and stage.pc_loc is roi_head.pc_loc
        assert (stage.gamma_cls, stage.gamma_reg) == (0.1, 0.1)
        layers = dict(stage.bbox_head.named_modules())
        for name in TSD_LAYERS:
            grad = layers[name].weight.grad
            assert grad is not None and torch.isfinite(grad).all(), (i, name)
            assert grad.abs().sum() > 0, (i, name)

    model.eval()
    with torch.no_grad():
        results = model(**model.data_preprocessor(batch, False), mode='predict')
    for result in results:
        assert len(result.pred_instances) > 0
        assert result.pred_instances.bboxes.shape[1:] == (4, )


def test_no_module_outside_models_names_the_tsd_heads():
    """Visualization, deployment, the converter, ...: a TSD head is the contract, not a class."""
    package = Path(tsd_mmdet.__file__).parent
    for path in package.rglob('*.py'):
        if 'models' not in path.relative_to(package).parts:
            assert not re.search(r'\bTSD(Cascade)?RoIHead\b', path.read_text()), path
