"""Export of the other TSD hosts: those whose inference is Faster R-CNN's (Dynamic, PISA: eq. 3-6 at
test, nothing else) export and match ``model.predict``; the others are refused with one line naming
the head (Mask Scoring R-CNN, PointRend, HTC, TridentNet) or, for Libra R-CNN, its BFP neck."""
import pytest
import torch

from tsd_mmdet.deployment import ExportDetector, ExportError, check_exportable

IMAGE = (192, 256)


def _image():
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (1, 3, *IMAGE), generator=generator).float()


def test_libra_bfp_neck_is_refused_in_one_line(shapes_cfg, random_model):
    """Libra R-CNN's RoI head is TSDRoIHead (exportable); its BFP neck does not trace with free
    H, W (torch.export specialises its adaptive pooling to the traced size)."""
    with pytest.raises(ExportError) as error:
        check_exportable(random_model(shapes_cfg('tsd-libra')))
    message = str(error.value)
    assert '\n' not in message and message.startswith('model.neck.1 is BFP, whose adaptive')


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
