"""TSDDynamicRoIHead: Dynamic R-CNN's SmoothL1-beta schedule reads TSD's regression targets (against
P-hat_r, eq. 4), not the sibling's (against P), and sets the new beta on both losses."""
import torch
from conftest import set_visible_offsets

from tsd_mmdet.models.bbox_heads import bbox_targets

CONFIG = 'tsd-dynamic-rcnn_r50_fpn_1x_coco.py'


def _beta_statistic(targets, weights, k):
    """DynamicRoIHead.bbox_loss's statistic: k-th smallest mean |dx|, |dy| of the positives."""
    pos = weights[:, 0].nonzero().squeeze(1)
    return torch.kthvalue(targets[pos, :2].detach().abs().mean(dim=1), min(k, len(pos)))[0].item()


def test_beta_follows_tsd_targets(tiny_host):
    model, batch = tiny_host(CONFIG)
    roi_head = model.roi_head
    set_visible_offsets(roi_head.bbox_head)  # P-hat_r far from P: the two statistics differ
    recorded = []
    bbox_loss = roi_head.bbox_loss

    def spy(x, sampling_results):
        results = bbox_loss(x, sampling_results)
        recorded.append((results, sampling_results))
        return results

    roi_head.bbox_loss = spy
    data = model.data_preprocessor(batch, True)
    model(**data, mode='loss')
    (results, sampling_results), = recorded
    k = roi_head.train_cfg.dynamic_rcnn.beta_topk * len(sampling_results)
    _, _, targets, weights = results['bbox_targets']
    tsd_beta = _beta_statistic(targets, weights, k)
    _, _, sibling_targets, sibling_weights = bbox_targets(
        roi_head.sibling_head, sampling_results, roi_head.train_cfg)
    assert roi_head.beta_history == [tsd_beta]
    assert abs(tsd_beta - _beta_statistic(sibling_targets, sibling_weights, k)) > 1e-3
    assert len(roi_head.iou_history) == 1

    _, new_beta = roi_head.update_hyperparameters()
    assert new_beta == min(roi_head.train_cfg.dynamic_rcnn.initial_beta, tsd_beta)
    assert roi_head.bbox_head.loss_bbox.beta == roi_head.sibling_head.loss_bbox.beta == new_beta
