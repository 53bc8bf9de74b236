"""tsd_mmdet.deployment.compare_with_pytorch / match_detections: pytorch2onnx.py's check pairs
detections one to one, so near-equal scores in another order are not a difference.

Not an equation of the paper: the export check of docs/deploy.md ("Accuracy against PyTorch").
"""
import numpy as np
import pytest
import torch

from tsd_mmdet.deployment import ExportDetector, compare_with_pytorch, match_detections


class _Permuted:
    """Stands in for an OnnxDetector: PyTorch's own outputs, rows permuted and nudged."""

    with_mask = False

    def __init__(self, detector, order, nudge=0.0, drop_last=False):
        self.detector, self.order, self.nudge, self.drop_last = detector, order, nudge, drop_last

    def __call__(self, image):
        with torch.no_grad():
            dets, labels = (t.clone() for t in ExportDetector(self.detector)(
                torch.from_numpy(image))[:2])
        dets[0, :, :4] += self.nudge
        if self.drop_last:  # the last valid row replaced by another detection
            last = int((labels[0] >= 0).sum()) - 1
            dets[0, last, :4] = torch.tensor([0.0, 0.0, 1.0, 1.0])
        order = self.order(dets.shape[1])
        return dict(dets=dets[:, order].numpy(), labels=labels[:, order].numpy())


@pytest.fixture(scope='module')
def detector_and_image(shapes_cfg, random_model):
    cfg = shapes_cfg('tsd-faster')
    cfg.model.test_cfg.rcnn.score_thr = 0.0  # every detection kept: the output is full
    image = torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(0)) * 255
    return random_model(cfg), image


def test_reordered_rows_are_matched(detector_and_image):
    detector, image = detector_and_image
    same = compare_with_pytorch(detector, _Permuted(detector, torch.arange), image)
    assert same['detections'] == same['onnx_detections'] > 1 and same['unmatched'] == 0
    assert same['dets'] == 0.0
    swapped = compare_with_pytorch(
        detector, _Permuted(detector, lambda n: torch.arange(n).flip(0), nudge=1e-3), image)
    assert swapped['unmatched'] == 0 and swapped['cut_ties'] == 0
    assert swapped['dets'] == pytest.approx(1e-3, rel=1e-2)  # the nudge, not a row mix-up


def test_a_missing_detection_is_reported(detector_and_image):
    detector, image = detector_and_image
    out = compare_with_pytorch(detector, _Permuted(detector, torch.arange, drop_last=True), image)
    assert out['unmatched'] + out['cut_ties'] == 1


def test_match_detections_pairs_by_label_iou_and_score():
    box = [10.0, 10.0, 50.0, 50.0]
    ours = dict(bboxes=torch.tensor([box, box]), scores=torch.tensor([0.9, 0.5]),
                labels=torch.tensor([1, 2]))
    theirs = dict(bboxes=torch.tensor([box, box, box]),
                  scores=torch.tensor([0.5, 0.9, 0.9]), labels=torch.tensor([2, 3, 1]))
    pairs, unmatched = match_detections(ours, theirs)
    assert pairs == [(0, 2), (1, 0)] and unmatched == []
    theirs['scores'] = torch.tensor([0.5 + 2e-3, 0.9, 0.9])  # beyond 1e-3
    assert match_detections(ours, theirs) == ([(0, 2)], [1])
    theirs['bboxes'][2] = torch.tensor([10.0, 10.0, 50.0, 51.0])  # IoU 0.976 < 0.99
    assert match_detections(ours, theirs)[1] == [0, 1]
    assert np.isclose(0.976, 40 * 40 / (40 * 41), atol=1e-3)
