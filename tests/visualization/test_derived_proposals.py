"""tsd_mmdet.visualization.derived_proposals: the derived-proposal geometry by hand, against the op
and against the head's own P-hat_r, and tsd_outputs on randomly initialised TSD models (Faster and
Cascade, configs/shapes) with hand-set offset biases."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip('mmdet')

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / 'configs' / 'shapes' / 'tsd-faster-rcnn_r18_fpn_shapes.py'
CASCADE = ROOT / 'configs' / 'shapes' / 'tsd-cascade-rcnn_r18_fpn_shapes.py'
TOOL = ROOT / 'tools' / 'analysis_tools' / 'visualize_tsd.py'
CLASSES = ('disc', 'triangle', 'square', 'star', 'ring', 'cross')
DELTA_C = (1.0, -0.5)   # every bin's (x, y) offset of the random model's F_c
DELTA_R = (0.5, -0.25)  # the (x, y) translation of its F_r


from tsd_mmdet.models.bbox_heads import TSDBBoxHead  # noqa: E402
from tsd_mmdet.visualization import derived_proposals as vis_tool  # noqa: E402


def _head(gamma_cls, gamma_reg, grid=(2, 2), cls_manner='pointwise', reg_manner='proposalwise'):
    return TSDBBoxHead(gamma_cls=gamma_cls, gamma_reg=gamma_reg, cls_manner=cls_manner,
                       reg_manner=reg_manner, roi_feat_size=grid, in_channels=1, num_classes=2,
                       offset_fc_channels=4, fc_out_channels=4)


def test_derived_proposals_hand_numbers():
    # P = [10, 20, 50, 40]: w 40, h 20; 2 x 2 bins centred at x 20, 40 and y 25, 35.
    bboxes = torch.tensor([[10., 20., 50., 40.], [0., 0., 10., 10.]])
    delta_c = torch.zeros(2, 2, 2, 2)
    delta_c[0, 0] = torch.tensor([[1., 0.], [0., -1.]])  # x offsets of bins (i, j)
    delta_c[0, 1] = torch.tensor([[0., 2.], [0., 0.]])   # y offsets
    delta_r = torch.tensor([[0.5, -1.], [0., 0.]])
    out = vis_tool.derived_proposals(bboxes, delta_c, delta_r, _head(0.1, 0.2))
    # bin (0, 0) moves +0.1 * 40 in x, bin (0, 1) +0.1 * 2 * 20 in y, bin (1, 1) -4 in x
    expected_c = torch.tensor([[[24., 25.], [40., 29.]], [[20., 35.], [36., 35.]]])
    torch.testing.assert_close(out['centres_c'][0], expected_c)
    # P-hat_r = P + 0.2 * (0.5 * 40, -1 * 20) = P + (4, -4)
    torch.testing.assert_close(out['bboxes_r'][0], torch.tensor([14., 16., 54., 36.]))
    plain = torch.tensor([[[20., 25.], [40., 25.]], [[20., 35.], [40., 35.]]])
    torch.testing.assert_close(out['centres_r'][0], plain + torch.tensor([4., -4.]))
    # the second box has zero offsets: its plain bin centres, P-hat_r = P
    torch.testing.assert_close(
        out['centres_c'][1], torch.tensor([[[2.5, 2.5], [7.5, 2.5]], [[2.5, 7.5], [7.5, 7.5]]]))
    torch.testing.assert_close(out['bboxes_r'][1], bboxes[1])


def test_derived_proposals_other_manners_and_grid():
    # 2 x 3 bins of [0, 0, 30, 20]: x 5, 15, 25; y 5, 15
    bboxes = torch.tensor([[0., 0., 30., 20.]])
    centres = vis_tool.bin_centres(bboxes, (2, 3))
    assert centres.shape == (1, 2, 3, 2)
    torch.testing.assert_close(centres[0, :, :, 0], torch.tensor([[5., 15., 25.]] * 2))
    torch.testing.assert_close(centres[0, :, :, 1], torch.tensor([[5.] * 3, [15.] * 3]))
    # proposal-wise delta_c translates every bin; a pointwise delta_r gives no box
    delta_c = torch.tensor([[1., 1.]])
    delta_r = torch.zeros(1, 2, 2, 3)
    delta_r[0, 1, 1, 2] = 1.
    out = vis_tool.derived_proposals(bboxes, delta_c, delta_r, _head(
        0.1, 0.5, (2, 3), cls_manner='proposalwise', reg_manner='pointwise'))
    torch.testing.assert_close(out['centres_c'], centres + torch.tensor([3., 2.]))
    assert out['bboxes_r'] is None
    moved = centres.clone()
    moved[0, 1, 2, 1] += 10.  # 0.5 * 1 * h
    torch.testing.assert_close(out['centres_r'], moved)


@pytest.mark.parametrize('spatial_scale', [1.0, 0.25])
def test_centres_are_where_the_op_samples(spatial_scale):
    """Pool a feature map whose channels hold each pixel centre's image x and y: every bin's
    average of bilinear samples is then the image position of the bin's sample centre."""
    from tsd_mmdet.ops import deform_roi_align

    torch.manual_seed(0)
    size = 64
    stride = 1 / spatial_scale
    coords = (torch.arange(size, dtype=torch.float32) + 0.5) * stride
    feat = torch.stack([coords.view(1, -1).expand(size, size),
                        coords.view(-1, 1).expand(size, size)])[None]  # (1, 2, H, W)
    bboxes = torch.tensor([[10., 12., 30., 40.], [20., 6., 44., 22.]], dtype=torch.float32)
    bboxes = bboxes * stride
    delta_c = (torch.rand(2, 2, 3, 3, dtype=torch.float32) - 0.5) * 2
    rois = torch.cat([torch.zeros(2, 1, dtype=torch.float32), bboxes], 1)
    pooled = deform_roi_align(feat, rois, delta_c, (3, 3), spatial_scale, sampling_ratio=2,
                              gamma=0.1, aligned=True)  # (K, 2, 3, 3)
    out = vis_tool.derived_proposals(bboxes, delta_c, torch.zeros(2, 2), _head(0.1, 0.1, (3, 3)))
    torch.testing.assert_close(out['centres_c'], pooled.permute(0, 2, 3, 1), atol=1e-4, rtol=0)


def test_offset_magnitude():
    offset = torch.tensor([[0.5, -1.0], [0.0, 2.5]])
    assert vis_tool.offset_magnitude(offset, 0.1) == pytest.approx(0.1)
    assert vis_tool.offset_magnitude(torch.zeros(0, 2, 7, 7), 0.1) == 0.0


def test_select_proposals():
    bboxes = torch.tensor([[0., 0., 10., 10.], [0., 0., 10., 9.], [20., 20., 30., 30.],
                           [40., 40., 50., 50.]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    assert vis_tool.select_proposals(bboxes, scores, 2, 0.5).tolist() == [0, 2]
    assert vis_tool.select_proposals(bboxes, scores, 5, 0.5).tolist() == [0, 2, 3]
    assert vis_tool.select_proposals(bboxes, scores, 2, 1.0).tolist() == [0, 1]


@pytest.fixture(scope='module')
def tiny_setup(tmp_path_factory):
    """Two 128 x 96 images with annotations (resized by the config's pipeline), and a
    checkpoint of a randomly initialised TSD model whose offset predictors output constants."""
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config
    from mmengine.runner import save_checkpoint
    from PIL import Image

    if not CONFIG.exists():
        pytest.skip(f'{CONFIG} missing')
    register_all_modules()
    root = tmp_path_factory.mktemp('tsd_vis')
    data = root / 'data'
    (data / 'val').mkdir(parents=True)
    (data / 'annotations').mkdir()
    rng = np.random.default_rng(0)
    boxes = {1: [[10, 20, 40, 30], [70, 10, 30, 60]], 2: [[5, 5, 100, 80]]}
    images, anns = [], []
    for img_id, img_boxes in boxes.items():
        img = rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)
        Image.fromarray(img).save(data / 'val' / f'{img_id:06d}.jpg')
        images.append(dict(id=img_id, file_name=f'{img_id:06d}.jpg', width=128, height=96))
        for box in img_boxes:
            anns.append(dict(id=len(anns) + 1, image_id=img_id, category_id=len(anns) % 6 + 1,
                             bbox=box, area=box[2] * box[3], iscrowd=0))
    cats = [dict(id=i + 1, name=name) for i, name in enumerate(CLASSES)]
    (data / 'annotations' / 'instances_val.json').write_text(
        json.dumps(dict(images=images, annotations=anns, categories=cats)))

    checkpoints = {}
    for name, config in (('faster', CONFIG), ('cascade', CASCADE)):
        cfg = Config.fromfile(str(config))
        torch.manual_seed(0)
        model = MODELS.build(cfg.model)
        model.init_weights()
        heads = model.roi_head.bbox_head
        for head in heads if isinstance(heads, torch.nn.ModuleList) else [heads]:
            with torch.no_grad():
                head.fc_delta_c.weight.zero_()
                head.fc_delta_c.bias.view(2, -1)[0] = DELTA_C[0]
                head.fc_delta_c.bias.view(2, -1)[1] = DELTA_C[1]
                head.fc_delta_r.weight.zero_()
                head.fc_delta_r.bias.copy_(torch.tensor(DELTA_R))
        checkpoints[name] = root / f'tsd_{name}_random.pth'
        save_checkpoint(dict(state_dict=model.state_dict(), meta=dict(dataset_meta=dict(
            classes=CLASSES))), str(checkpoints[name]))
    ckpt = checkpoints['faster']
    return dict(root=root, data=data, ckpt=ckpt, cascade_ckpt=checkpoints['cascade'], boxes=boxes)


def test_tsd_outputs_on_random_model(tiny_setup):
    from mmcv.transforms import Compose
    from mmdet.apis import inference_detector, init_detector
    from mmdet.utils import get_test_pipeline_cfg

    model = init_detector(str(CONFIG), str(tiny_setup['ckpt']), device='cpu')
    head = model.roi_head.bbox_head
    assert head.cls_manner == 'pointwise' and head.reg_manner == 'proposalwise'
    pipeline = Compose(get_test_pipeline_cfg(model.cfg))
    img_path = str(tiny_setup['data'] / 'val' / '000001.jpg')
    vis = vis_tool.tsd_outputs(model, pipeline, img_path, topk=5, iou_thr=0.5)

    assert vis['proposals'].shape == (5, 4)
    assert (vis['scores'][:-1] >= vis['scores'][1:]).all()
    # proposals in original-image coordinates: rows of mmdet's own rescaled RPN output
    data = pipeline(dict(img_path=img_path, img_id=0))
    batch = model.data_preprocessor(
        dict(inputs=[data['inputs']], data_samples=[data['data_samples']]), False)
    resize = next(t for t in model.cfg.test_dataloader.dataset.pipeline if t.type == 'Resize')
    factor = min(max(resize.scale) / 128, min(resize.scale) / 96)  # keep_ratio, 128 x 96 input
    assert batch['data_samples'][0].metainfo['scale_factor'] == pytest.approx((factor, factor))
    with torch.no_grad():
        x = model.extract_feat(batch['inputs'])
        rescaled = model.rpn_head.predict(x, batch['data_samples'], rescale=True)[0].bboxes
    dist = (vis['proposals'][:, None] - rescaled[None]).abs().amax(-1).amin(-1)
    assert dist.max() < 1e-3
    # P-hat_r: the head's own rois_r, and P + 0.1 * DELTA_R * (w, h) in original coordinates
    wh = vis['proposals'][:, 2:] - vis['proposals'][:, :2]
    torch.testing.assert_close(vis['bboxes_r'], vis['rois_r'], atol=1e-4, rtol=0)
    shift = 0.1 * torch.tensor(DELTA_R) * wh
    torch.testing.assert_close(vis['bboxes_r'], vis['proposals'] + shift.repeat(1, 2),
                               atol=1e-4, rtol=0)
    # P-hat_c: every bin centre moved by 0.1 * DELTA_C * (w, h)
    assert vis['centres_c'].shape == (5, 7, 7, 2)
    moved = vis_tool.bin_centres(vis['proposals'], (7, 7)) + (
        0.1 * torch.tensor(DELTA_C) * wh)[:, None, None, :]
    torch.testing.assert_close(vis['centres_c'], moved, atol=1e-4, rtol=0)
    # mean shifts over every proposal: the constant offsets times gamma
    assert vis['shift_r'] == pytest.approx(0.1 * np.abs(DELTA_R).mean(), abs=1e-5)
    assert vis['shift_c'] == pytest.approx(0.1 * np.abs(DELTA_C).mean(), abs=1e-5)
    # final boxes: what mmdet's inference returns for the image
    ref = inference_detector(model, img_path).pred_instances
    torch.testing.assert_close(vis['dets'].bboxes, ref.bboxes)
    torch.testing.assert_close(vis['dets'].scores, ref.scores)
    assert torch.equal(vis['dets'].labels, ref.labels)


def _png_size(path):
    from PIL import Image

    assert Path(path).read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    with Image.open(path) as img:
        return img.size


def _cli(*args):
    import subprocess
    import sys
    done = subprocess.run([sys.executable, str(TOOL), *map(str, args), '--device', 'cpu'],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return [line.split()[0] for line in done.stdout.splitlines() if line.endswith(
        tuple('0123456789')) and '.png' in line.split()[0]]


def test_cli_images_and_val_dataset(tiny_setup, tmp_path):
    data, ckpt = tiny_setup['data'], tiny_setup['ckpt']
    out = tmp_path / 'by_glob'
    written = _cli(CONFIG, ckpt, '--images', data / 'val' / '*.jpg', '--out-dir', out,
                   '--score-thr', '0')
    assert [Path(p).name for p in written] == ['000001.png', '000002.png']
    # two panels of max(128, 480) px, height 480 * 96 / 128 + 40 px of titles
    assert _png_size(written[0]) == (960, 400)

    out = tmp_path / 'from_val'
    written = _cli(CONFIG, ckpt, '--num-images', '1', '--out-dir', out, '--topk', '3',
                   '--cfg-options', f'data_root={data}/')
    assert [Path(p).name for p in written] == ['000001.png']
    assert _png_size(written[0]) == (960, 400)


def test_cli_draws_a_cascade_model(tiny_setup, tmp_path):
    """A TSD Cascade R-CNN (its bbox_head a ModuleList), stage 1: the tool refused it before."""
    written = _cli(CASCADE, tiny_setup['cascade_ckpt'], '--images',
                   tiny_setup['data'] / 'val' / '000002.jpg', '--out-dir', tmp_path, '--stage', 1)
    assert [Path(p).name for p in written] == ['000002.png']
    assert _png_size(written[0]) == (960, 400)


def test_dataset_images_ground_truth(tiny_setup):
    from mmengine.config import Config

    cfg = Config.fromfile(str(CONFIG))
    cfg.val_dataloader.dataset.data_root = f'{tiny_setup["data"]}/'
    items, classes = vis_tool.dataset_images(cfg, 5)
    assert classes == CLASSES and len(items) == 2
    for item, (img_id, xywh) in zip(items, tiny_setup['boxes'].items()):
        assert Path(item['img_path']).name == f'{img_id:06d}.jpg'
        xyxy = [[x, y, x + w, y + h] for x, y, w, h in xywh]
        np.testing.assert_allclose(item['gt']['bboxes'], xyxy)
    assert items[0]['gt']['labels'].tolist() == [0, 1]


def test_p_hat_r_is_the_heads_own(monkeypatch):
    """bboxes_r comes from TSDBBoxHead.derive_reg_rois, not from a copy of its formula: a head
    whose P-hat_r rule changed is drawn with the changed rule."""
    head = _head(0.1, 0.2)
    bboxes = torch.tensor([[10., 20., 50., 40.]])
    delta = torch.tensor([[0.5, -1.]])
    original = TSDBBoxHead.derive_reg_rois

    def shifted(self, rois, delta_r):
        return original(self, rois, delta_r) + torch.tensor([0., 1., 1., 1., 1.])

    monkeypatch.setattr(TSDBBoxHead, 'derive_reg_rois', shifted)
    out = vis_tool.derived_proposals(bboxes, torch.zeros(1, 2, 2, 2), delta, head)
    torch.testing.assert_close(out['bboxes_r'], torch.tensor([[15., 17., 55., 37.]]))


@pytest.mark.parametrize('stage', [0, 2])
def test_tsd_outputs_on_a_cascade_stage(tiny_setup, stage):
    from mmcv.transforms import Compose
    from mmdet.apis import init_detector
    from mmdet.utils import get_test_pipeline_cfg

    model = init_detector(str(CASCADE), str(tiny_setup['cascade_ckpt']), device='cpu')
    pipeline = Compose(get_test_pipeline_cfg(model.cfg))
    vis = vis_tool.tsd_outputs(model, pipeline, str(tiny_setup['data'] / 'val' / '000001.jpg'),
                               topk=4, iou_thr=1.0, stage=stage)
    assert vis['proposals'].shape == (4, 4)
    torch.testing.assert_close(vis['bboxes_r'], vis['rois_r'], atol=1e-4, rtol=0)
    wh = vis['proposals'][:, 2:] - vis['proposals'][:, :2]
    shift = 0.1 * torch.tensor(DELTA_R) * wh
    torch.testing.assert_close(vis['bboxes_r'], vis['proposals'] + shift.repeat(1, 2),
                               atol=1e-3, rtol=0)
    with pytest.raises(ValueError, match='stages 0..2'):
        vis_tool.tsd_outputs(model, pipeline, str(tiny_setup['data'] / 'val' / '000001.jpg'),
                             stage=3)


HOSTS = ('libra-faster-rcnn_r18_fpn', 'dynamic-rcnn_r18_fpn', 'faster-rcnn_r18_fpn_pisa',
         'ms-rcnn_r18_fpn', 'point-rend_r18_fpn', 'htc_r18_fpn', 'tridentnet_r50-c4')


@pytest.mark.parametrize('host', HOSTS)
def test_tsd_outputs_and_figure_of_every_host(tiny_setup, tmp_path, host):
    """P, P-hat_r and P-hat_c of each TSD host's shapes config (every stage's head for HTC)."""
    from mmcv.transforms import Compose
    from mmdet.registry import MODELS
    from mmdet.utils import get_test_pipeline_cfg
    from mmengine.config import Config

    cfg = Config.fromfile(str(ROOT / 'configs' / 'shapes' / f'tsd-{host}_shapes.py'))
    cfg.model.test_cfg.rpn.update(nms_pre=100, max_per_img=10)  # fast: 10 proposals, 160 px
    next(t for t in cfg.test_dataloader.dataset.pipeline if t.type == 'Resize').scale = (160, 160)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.eval()
    set_offsets = vis_tool.tsd_stage(model, None)[0]
    with torch.no_grad():
        set_offsets.fc_delta_r.weight.zero_()
        set_offsets.fc_delta_r.bias.copy_(torch.tensor(DELTA_R))
    pipeline = Compose(get_test_pipeline_cfg(cfg))
    img = str(tiny_setup['data'] / 'val' / '000001.jpg')
    vis = vis_tool.tsd_outputs(model, pipeline, img, topk=3, iou_thr=1.0)
    k = set_offsets.roi_feat_size[0]  # the k x k of Point.w (eq. 5): 7; TridentNet's shapes 4
    assert vis['proposals'].shape == (3, 4) and vis['centres_c'].shape[:2] == (3, k)
    wh = vis['proposals'][:, 2:] - vis['proposals'][:, :2]
    torch.testing.assert_close(vis['bboxes_r'], vis['proposals'] + (
        0.1 * torch.tensor(DELTA_R) * wh).repeat(1, 2), atol=1e-3, rtol=0)
    torch.testing.assert_close(vis['bboxes_r'], vis['rois_r'], atol=1e-4, rtol=0)
    out = tmp_path / f'{host}.png'
    vis_tool.draw_tsd(np.zeros((96, 128, 3), np.uint8), vis, CLASSES, str(out), score_thr=0.)
    assert out.stat().st_size > 0
    if host.startswith('htc'):  # the last stage sees the boxes the first two refined
        last = vis_tool.tsd_outputs(model, pipeline, img, topk=3, iou_thr=1.0, stage=2)
        assert not torch.allclose(last['proposals'], vis['proposals'])
