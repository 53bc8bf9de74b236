"""TSDTridentRoIHead (a C4 host): the shared res5 runs on F, F-hat_c and F-hat_r (eq. 3-6), and
pointwise offsets predicted on its k x k grid move the extractor's 2k x 2k grid bin by bin."""
import copy

import torch
from conftest import record_branch_inputs, set_visible_offsets
from mmdet.structures.bbox import bbox2roi

CONFIG = 'tsd-tridentnet_r50-caffe_1x_coco.py'


def test_shared_head_on_each_feature_offsets_on_the_finer_grid(tiny_host):
    model, batch = tiny_host(CONFIG)
    roi_head = model.roi_head.eval()
    head, extractor = roi_head.bbox_head, roi_head.bbox_roi_extractor
    assert roi_head.with_shared_head and head.with_avg_pool
    assert tuple(extractor.output_size) == (14, 14) and tuple(head.roi_feat_size) == (7, 7)
    set_visible_offsets(head)
    seen = record_branch_inputs(head)
    data = model.data_preprocessor(copy.deepcopy(batch), False)
    with torch.no_grad():
        x = model.extract_feat(data['inputs'])
        rois = bbox2roi([torch.tensor([[8., 8., 72., 56.], [30., 20., 100., 120.]])])
        out = roi_head.tsd_forward(0, x, rois)
        f = roi_head.shared_head(extractor(x, rois))
        torch.testing.assert_close(out['bbox_feats'], f)
        delta_c, delta_r = head.forward_offsets(f)
        fine_c = delta_c.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
        cls_feats = roi_head.shared_head(extractor(x, rois, offset=fine_c, gamma=head.gamma_cls))
        reg_feats = roi_head.shared_head(extractor(x, rois, offset=delta_r, gamma=head.gamma_reg))
    got_cls, got_reg = seen[-1]
    torch.testing.assert_close(got_cls, cls_feats)
    torch.testing.assert_close(got_reg, reg_feats)
    assert not torch.allclose(got_cls, f)
