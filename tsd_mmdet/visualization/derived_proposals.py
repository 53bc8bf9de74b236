"""What a TSD detector learnt, drawn: P, the derived P-hat_r and P-hat_c of eq. 3-6 (Figure 5).

For an image, :func:`tsd_outputs` runs the detector and collects the top-N proposals P by TSD score,
their derived proposals (the regression RoI P-hat_r = P + gamma_reg * delta_r * (w, h) from the
head's own :meth:`~tsd_mmdet.models.bbox_heads.TSDBBoxHead.derive_reg_rois`, and the sample
centres of P-hat_c: the centre of each k x k bin of P moved by its pointwise offset) and the final
detections; :func:`draw_tsd` writes the two-panel figure. Works for any TSD RoI head (a
:class:`~tsd_mmdet.models.roi_heads.TSDStageMixin`), at each of its stages. Everything is in
the original image's coordinates (the test pipeline's ``scale_factor`` is undone).
tools/analysis_tools/visualize_tsd.py is the command line.
"""
import glob
import os.path as osp

import numpy as np
import torch
from mmcv.ops import nms
from mmcv.transforms import Compose
from mmdet.registry import DATASETS
from mmdet.structures.bbox import bbox2roi
from mmengine.config import Config
from torch import Tensor, nn
from torch.nn import functional as F

from ..models.bbox_heads import TSDBBoxHead
from ..models.roi_heads import TSDStageMixin

COLORS = dict(proposal='yellow', reg='red', cls='hotpink', det='deepskyblue', gt='lime')


def bin_centres(bboxes: Tensor, grid_size: tuple[int, int]) -> Tensor:
    """Centres of the k x k bins of boxes.

    Args:
        bboxes: (K, 4) boxes x1, y1, x2, y2.
        grid_size: (oh, ow) bins per column and per row.

    Returns:
        (K, oh, ow, 2) centres (x, y); bin (i, j) is row i (y), column j (x).
    """
    oh, ow = grid_size
    x1, y1, x2, y2 = bboxes.unbind(1)
    cols = (torch.arange(ow, dtype=bboxes.dtype, device=bboxes.device) + 0.5) / ow
    rows = (torch.arange(oh, dtype=bboxes.dtype, device=bboxes.device) + 0.5) / oh
    cx = x1[:, None, None] + cols.view(1, 1, ow) * (x2 - x1)[:, None, None]
    cy = y1[:, None, None] + rows.view(1, oh, 1) * (y2 - y1)[:, None, None]
    return torch.stack(torch.broadcast_tensors(cx, cy), dim=-1)


def derived_proposals(bboxes: Tensor, delta_c: Tensor, delta_r: Tensor,
                      head: TSDBBoxHead) -> dict:
    """The derived proposals of TSD from P and the raw offsets (eq. 3-6), as ``head`` uses them.

    An offset moves every sample of bin (i, j) of box k by ``gamma * offset[k, :, i, j] * (w_k,
    h_k)`` (x then y), as ``tsd_mmdet.ops.deform_roi_align`` does; a proposal-wise (K, 2) offset
    moves all bins alike. Coordinates are continuous image coordinates, where aligned RoIAlign
    puts its samples.

    Args:
        bboxes: P, (K, 4) x1, y1, x2, y2.
        delta_c: (K, 2, oh, ow) pointwise or (K, 2) proposal-wise offset of P-hat_c.
        delta_r: (K, 2) proposal-wise or (K, 2, oh, ow) pointwise offset of P-hat_r.
        head: the TSD box head that predicted them (its gammas, manners and roi_feat_size).

    Returns:
        dict with ``centres_c`` and ``centres_r``, (K, oh, ow, 2) sample-bin centres (x, y) of
        P-hat_c and P-hat_r, and ``bboxes_r``, (K, 4) P-hat_r from ``head.derive_reg_rois``
        (eq. 4), or None when delta_r is pointwise (no single box).
    """
    wh = (bboxes[:, 2:] - bboxes[:, :2])[:, None, None, :]  # (K, 1, 1, 2)
    centres = bin_centres(bboxes, head.roi_feat_size)

    def move(offset: Tensor, gamma: float) -> Tensor:
        offset = offset.to(bboxes.dtype)
        if offset.dim() == 2:  # proposal-wise: (K, 2) -> (K, 1, 1, 2)
            offset = offset[:, None, None, :]
        else:  # pointwise: (K, 2, oh, ow) -> (K, oh, ow, 2)
            offset = offset.permute(0, 2, 3, 1)
        return centres + gamma * offset * wh

    bboxes_r = None
    if head.reg_manner == 'proposalwise':
        rois = torch.cat([bboxes.new_zeros(len(bboxes), 1), bboxes], dim=1)
        bboxes_r = head.derive_reg_rois(rois, delta_r)[:, 1:]
    return dict(centres_c=move(delta_c, head.gamma_cls), centres_r=move(delta_r, head.gamma_reg),
                bboxes_r=bboxes_r)


def tsd_stage(model: nn.Module, stage: int | None = None) -> tuple[TSDBBoxHead, int | None]:
    """The TSD box head of ``model`` and the stage it is (None for a single-stage TSD head).

    Args:
        model: a two-stage detector.
        stage: stage to show (default 0); must be None or 0 for a single-stage TSD head.

    Raises:
        ValueError: the model has no TSD RoI head, or no such stage.
    """
    roi_head = getattr(model, 'roi_head', None)
    if not isinstance(roi_head, TSDStageMixin):
        raise ValueError(f'the model has no TSD RoI head (roi_head: {type(roi_head).__name__}); '
                         'use a config with a TSD RoI head (docs/extending.md)')
    num_stages = roi_head.num_tsd_stages
    if num_stages == 1:
        if stage not in (None, 0):
            raise ValueError(f'stage {stage}: the model has one TSD stage '
                             f'({type(roi_head).__name__})')
        return roi_head.tsd_stage(0).bbox_head, None
    stage = 0 if stage is None else stage
    if not 0 <= stage < num_stages:
        raise ValueError(f'stage {stage}: the cascade has stages 0..{num_stages - 1}')
    return roi_head.tsd_stage(stage).bbox_head, stage


def offset_magnitude(offset: Tensor, gamma: float) -> float:
    """Mean shift ``gamma * |offset|`` of an offset, as a fraction of the box's width / height.

    The samples of bin (i, j) move by ``gamma * offset * (w, h)`` (eq. 3, 5), so 0.05 means 5% of
    the proposal's size; values near 0 mean the derived proposal is P itself (offsets collapsed).
    """
    return float(gamma * offset.abs().mean()) if offset.numel() else 0.0


def select_proposals(bboxes: Tensor, scores: Tensor, topk: int, iou_thr: float) -> Tensor:
    """Indices of the ``topk`` highest-scoring boxes, skipping any box that overlaps an already
    chosen one by more than ``iou_thr`` (mmcv NMS; ``iou_thr >= 1`` keeps all).

    Args:
        bboxes: (K, 4); scores: (K,).

    Returns:
        (min(topk, kept),) indices into the K boxes, by decreasing score.
    """
    if iou_thr >= 1:
        return scores.argsort(descending=True)[:topk]
    _, keep = nms(bboxes.float(), scores.float(), iou_thr)
    return keep[:topk]


@torch.no_grad()
def tsd_outputs(model: nn.Module, pipeline: Compose, img_path: str, topk: int = 5,
                iou_thr: float = 0.5, stage: int | None = None) -> dict:
    """Run a TSD detector on one image and collect what Figure 5 draws.

    Args:
        model: a two-stage detector whose ``roi_head`` is a TSD RoI head.
        pipeline: the model's test pipeline.
        img_path: the image file.
        topk: number of proposals to keep, by TSD score (best foreground class probability).
        iou_thr: see :func:`select_proposals`.
        stage: the stage whose P and offsets are shown (default 0: the RPN's proposals);
            stage s > 0 shows the boxes stages 0..s-1 refined, as at inference.

    Returns:
        dict, all in original-image coordinates: ``proposals`` (N, 4) P, ``scores`` (N,) and
        ``labels`` (N,) of the stage's TSD classifier, the :func:`derived_proposals` entries for
        them, ``rois_r`` (N, 4) the boxes the head regressed from (P-hat_r, as the head computed
        them), ``dets``, the final detections (InstanceData with ``bboxes``, ``scores``,
        ``labels``), and ``shift_c`` / ``shift_r``, the :func:`offset_magnitude` of delta_c /
        delta_r over all the image's proposals.
    """
    bbox_head, stage = tsd_stage(model, stage)
    data = pipeline(dict(img_path=img_path, img_id=0))
    batch = model.data_preprocessor(
        dict(inputs=[data['inputs']], data_samples=[data['data_samples']]), False)
    samples = batch['data_samples']
    x = model.extract_feat(batch['inputs'])
    rpn_results = model.rpn_head.predict(x, samples, rescale=False)
    rois = bbox2roi([res.bboxes for res in rpn_results])
    roi_head = model.roi_head
    # the boxes this stage sees at inference: the RPN's, refined by the stages before it
    metas = [sample.metainfo for sample in samples]
    for previous in range(stage or 0):
        out = roi_head.tsd_forward(previous, x, rois)
        rois = roi_head.tsd_next_rois(previous, [out['rois_r']], [out['cls_score']],
                                      [out['bbox_pred']], metas)
    out = roi_head.tsd_forward(stage or 0, x, rois)
    if bbox_head.custom_cls_channels:
        probs = bbox_head.loss_cls.get_activation(out['cls_score'])
    else:
        probs = F.softmax(out['cls_score'], dim=-1)
    scores, labels = probs[:, :bbox_head.num_classes].max(dim=1)
    keep = select_proposals(rois[:, 1:], scores, topk, iou_thr)

    scale = rois.new_tensor(samples[0].metainfo.get('scale_factor', (1., 1.)))  # (w, h) scales
    proposals = rois[keep, 1:] / scale.repeat(2)
    derived = derived_proposals(proposals, out['delta_c'][keep], out['delta_r'][keep], bbox_head)
    dets = roi_head.predict(x, rpn_results, samples, rescale=True)[0]
    return dict(proposals=proposals, scores=scores[keep], labels=labels[keep],
                rois_r=out['rois_r'][keep, 1:] / scale.repeat(2), dets=dets,
                shift_c=offset_magnitude(out['delta_c'], bbox_head.gamma_cls),
                shift_r=offset_magnitude(out['delta_r'], bbox_head.gamma_reg), **derived)


def _draw_box(ax, box, color: str, label: str | None = None) -> None:
    from matplotlib.patches import Rectangle

    x1, y1, x2, y2 = (float(v) for v in box)
    ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=color, linewidth=1.5))
    if label:
        ax.text(x1, y1, label, color='black', fontsize=7, va='bottom',
                bbox=dict(facecolor=color, alpha=0.7, pad=1, edgecolor='none'))


def draw_tsd(img: np.ndarray, vis: dict, class_names, out_file: str, gt: dict | None = None,
             score_thr: float = 0.3) -> None:
    """Write the two-panel figure for one image.

    Args:
        img: (H, W, 3) RGB image.
        vis: :func:`tsd_outputs` of the image.
        class_names: names of the labels.
        out_file: PNG path.
        gt: optional ``bboxes`` (G, 4) and ``labels`` (G,) in image coordinates.
        score_thr: detections below this score are not drawn.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    h, w = img.shape[:2]
    panel = max(w, 480)  # pixels per panel, at dpi 100; 40 px of titles
    # whole pixels first: matplotlib < 3.11 truncates 3.9999999 inches * 100 dpi to 399 px
    height = round(panel * h / w) + 40
    fig, axes = plt.subplots(1, 2, figsize=(2 * panel / 100, height / 100), dpi=100)
    for ax in axes:
        ax.imshow(img)
        ax.set_xlim(0, w)
        ax.set_ylim(h, 0)
        ax.axis('off')

    ax = axes[0]
    ax.set_title(r'$P$ (yellow), $\hat{P}_r$ (red), $\hat{P}_c$ sample centres (pink)', fontsize=9)
    for k in range(len(vis['proposals'])):
        name = class_names[int(vis['labels'][k])]
        _draw_box(ax, vis['proposals'][k], COLORS['proposal'],
                  f'{name} {float(vis["scores"][k]):.2f}')
        if vis['bboxes_r'] is not None:
            _draw_box(ax, vis['bboxes_r'][k], COLORS['reg'])
        else:
            pts = vis['centres_r'][k].reshape(-1, 2).cpu().numpy()
            ax.scatter(pts[:, 0], pts[:, 1], s=6, c=COLORS['reg'], linewidths=0)
        pts = vis['centres_c'][k].reshape(-1, 2).cpu().numpy()
        ax.scatter(pts[:, 0], pts[:, 1], s=8, c=COLORS['cls'], linewidths=0)

    ax = axes[1]
    ax.set_title(f'detections >= {score_thr:g} (blue)' + (', ground truth (green)' if gt else ''),
                 fontsize=9)
    if gt is not None:
        for box in gt['bboxes']:
            _draw_box(ax, box, COLORS['gt'])
    dets = vis['dets']
    for box, score, label in zip(dets.bboxes, dets.scores, dets.labels):
        if score >= score_thr:
            _draw_box(ax, box, COLORS['det'], f'{class_names[int(label)]} {float(score):.2f}')
    fig.tight_layout(pad=0.3)
    fig.savefig(out_file)
    plt.close(fig)


def collect_images(patterns: list[str]) -> list[dict]:
    """Image files from paths or glob patterns, as ``dict(img_path=...)`` (no ground truth)."""
    paths = []
    for pattern in patterns:
        matched = sorted(glob.glob(pattern, recursive=True))
        if not matched:
            raise FileNotFoundError(f'no image matches {pattern!r}')
        paths += [p for p in matched if osp.isfile(p)]
    return [dict(img_path=p) for p in paths]


def dataset_images(cfg: Config, num: int) -> tuple[list[dict], tuple]:
    """The first ``num`` images of the config's val dataset, with ground truth (original image
    coordinates, ignored boxes left out), and the dataset's class names."""
    dataset = DATASETS.build(cfg.val_dataloader.dataset)
    items = []
    for idx in range(min(num, len(dataset))):
        info = dataset.get_data_info(idx)
        instances = [i for i in info['instances'] if not i.get('ignore_flag', 0)]
        items.append(dict(img_path=info['img_path'], gt=dict(
            bboxes=np.array([i['bbox'] for i in instances], dtype=np.float32).reshape(-1, 4),
            labels=np.array([i['bbox_label'] for i in instances], dtype=np.int64))))
    return items, tuple(dataset.metainfo['classes'])
