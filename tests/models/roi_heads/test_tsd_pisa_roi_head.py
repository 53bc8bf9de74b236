"""TSDPISARoIHead: PISA's Score-HLR negative weights, ISR-P positive weights and CARL act on TSD's
branches (L_cls^D, L_loc^D of eq. 2); the sibling's losses stay plain."""
import torch

from tsd_mmdet.models.bbox_heads import bbox_targets

CONFIG = 'tsd-faster-rcnn_r50_fpn_pisa_1x_coco.py'


def _spy_branch_loss(roi_head):
    calls = []
    branch_loss = roi_head.tsd_branch_loss

    def spy(bbox_results, sampling_results, bbox_head, train_cfg, **kwargs):
        out = branch_loss(bbox_results, sampling_results, bbox_head, train_cfg, **kwargs)
        calls.append((bbox_results, sampling_results, kwargs, out))
        return out

    roi_head.tsd_branch_loss = spy
    return calls


def test_reweighting_acts_on_tsd(tiny_host):
    model, batch = tiny_host(CONFIG)
    roi_head = model.roi_head
    calls = _spy_branch_loss(roi_head)
    losses = model(**model.data_preprocessor(batch, True), mode='loss')
    (bbox_results, sampling_results, kwargs, out), = calls
    labels, label_weights, targets, _ = out['bbox_targets']

    # the negatives carry the sampler's Score-HLR weights, the positives ISR-P's (not all 1)
    start, neg = 0, []
    for res in sampling_results:
        num_pos, num_neg = len(res.pos_inds), len(res.neg_inds)
        neg.append(label_weights[start + num_pos:start + num_pos + num_neg])
        start += num_pos + num_neg
    for got, expected in zip(neg, kwargs['neg_label_weights']):
        torch.testing.assert_close(got, expected)
    pos = (labels >= 0) & (labels < roi_head.bbox_head.num_classes)
    assert not torch.allclose(label_weights[pos], torch.ones_like(label_weights[pos]))
    # CARL on TSD's scores and deltas, under TSD's key
    assert torch.isfinite(losses['loss_carl_tsd']) and 'loss_carl' not in losses
    # TSD's targets stay encoded against P-hat_r, attached (the authors' code)
    assert targets.requires_grad

    # the sibling's loss is plain: unit label weights
    sibling = roi_head.sibling_head.loss(
        bbox_results['sibling_cls_score'], bbox_results['sibling_bbox_pred'], None,
        *bbox_targets(roi_head.sibling_head, sampling_results, roi_head.train_cfg))
    torch.testing.assert_close(losses['loss_cls'], sibling['loss_cls'])
