"""TSDHybridTaskCascadeRoIHead: HTC's semantic feature is fused into F (pooled from P), the input
of the offset predictors and the sibling (eq. 3-5); F-hat_c, F-hat_r are pooled from the FPN alone;
inference (``tsd_forward``) computes the semantic feature itself."""
import torch
from conftest import make_roi_inputs
from mmdet.structures.bbox import bbox2roi
from torch.nn import functional as F

CONFIG = 'tsd-htc_r50_fpn_1x_coco.py'


def test_semantic_feature_is_fused_into_f(tiny_host):
    model, _ = tiny_host(CONFIG)
    roi_head = model.roi_head.eval()
    feats, proposals, _ = make_roi_inputs(num_proposals=6)
    rois = bbox2roi([p.bboxes for p in proposals])
    _, semantic_feat = roi_head.semantic_head(feats)
    with torch.no_grad():
        plain = roi_head._bbox_forward(1, feats, rois)
        fused = roi_head._bbox_forward(1, feats, rois, semantic_feat)
        pooled = F.adaptive_avg_pool2d(roi_head.semantic_roi_extractor([semantic_feat], rois),
                                       (7, 7))
        torch.testing.assert_close(fused['bbox_feats'], plain['bbox_feats'] + pooled)
        assert not torch.allclose(fused['delta_r'], plain['delta_r'])
        # inference's forward is the fused one
        for key, value in roi_head.tsd_forward(1, feats, rois).items():
            torch.testing.assert_close(value, fused[key])
