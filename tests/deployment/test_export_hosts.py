"""Export of the other TSD hosts: those whose inference is Faster R-CNN's (Libra, Dynamic, PISA:
eq. 3-6 at test, nothing else) export and match ``model.predict`` (Libra's BFP neck through an
export-mode forward with free H and W); the others are refused with one line naming the head (Mask
Scoring R-CNN, PointRend, HTC, TridentNet)."""
import pytest
import torch
import torch.nn.functional as F

from tsd_mmdet.deployment import ExportDetector, ExportError, check_exportable
from tsd_mmdet.deployment.necks import ExportBFP, adaptive_max_pool2d

IMAGE = (192, 256)


def _image():
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (1, 3, *IMAGE), generator=generator).float()


# Libra's BFP gathers levels to the refine level's size and back; sizes whose H / 32 and W / 32
# are odd make its coarsest level ceil(H / 64), where the adaptive bins are uneven (160 x 224).
LIBRA_IMAGES = [(192, 256), (160, 224), (170, 230)]


def test_bfp_adaptive_pooling_is_atens():
    """necks.adaptive_max_pool2d equals F.adaptive_max_pool2d for every size an FPN gives: level
    i + d is ceil(size / 2**d) of level i, at most 2**d times smaller."""
    generator = torch.Generator().manual_seed(0)
    for h in range(1, 21):
        for w in (1, 2, 5, 7, 12, 13):
            for d in (1, 2, 3):
                x = torch.randn(1, 2, h, w, generator=generator)
                size = (-(-h // 2**d), -(-w // 2**d))
                assert torch.equal(adaptive_max_pool2d(x, size, 2**d + 1),
                                   F.adaptive_max_pool2d(x, size)), (h, w, d)


def test_libra_exports_with_free_h_w(exported, match, predict):
    """Libra R-CNN (BFP neck, TSDRoIHead): traced at 320 x 320, ONNX Runtime matches
    model.predict at sizes whose BFP bins are even and uneven."""
    model = exported('tsd-libra')
    assert isinstance(ExportDetector(model.detector).detector.neck[1], ExportBFP)
    for seed, shape in enumerate(LIBRA_IMAGES):
        generator = torch.Generator().manual_seed(seed)
        image = torch.randint(0, 256, (1, 3, *shape), generator=generator).float()
        pred = predict(model.detector, image)
        outputs = model.onnx(image.numpy())
        labels = outputs['labels'][0]
        assert len(pred) > 0 and (labels >= 0).sum() == len(pred), shape
        dets = torch.from_numpy(outputs['dets'][0])
        match(pred, dict(bboxes=dets[:, :4], scores=dets[:, 4], labels=torch.from_numpy(labels)))


@pytest.mark.parametrize('name', ['tsd-dynamic', 'tsd-pisa'])
def test_export_mode_forward_is_predict(shapes_cfg, random_model, predict, name):
    """The export-mode graph (ExportDetector, what export traces) computes what model.predict does;
    its ONNX translation is test_export_detectors.py's, the same graph as TSDRoIHead's."""
    detector = random_model(shapes_cfg(name))
    check_exportable(detector)
    image = _image()
    pred = predict(detector, image)
    with torch.no_grad():
        dets, labels = ExportDetector(detector)(image)
    n = len(pred)
    assert n > 0
    assert torch.equal(dets[0, :n, :4], pred.bboxes) and torch.equal(dets[0, :n, 4], pred.scores)
    assert torch.equal(labels[0, :n], pred.labels)


@pytest.mark.parametrize('name,head', [('tsd-ms', 'TSDMaskScoringRoIHead'),
                                       ('tsd-point-rend', 'TSDPointRendRoIHead'),
                                       ('tsd-htc', 'TSDHybridTaskCascadeRoIHead'),
                                       ('tsd-trident', 'TSDTridentRoIHead')])
def test_other_hosts_are_refused_in_one_line(shapes_cfg, random_model, name, head):
    with pytest.raises(ExportError) as error:
        check_exportable(random_model(shapes_cfg(name)))
    message = str(error.value)
    assert '\n' not in message
    assert message.startswith(f'model.roi_head is {head}, whose inference is neither')
