"""AP across IoU criteria 0.5:0.9 and object sizes: Figure 6 and Table 9 of the TSD paper.

Evaluates detection results against a COCO annotation file with pycocotools' ``COCOeval`` at IoU
thresholds 0.5, 0.6, 0.7, 0.8, 0.9 and reports, for each threshold, AP over all objects and over
small / medium / large objects (COCO area ranges, 100 detections per image); with two results, also
their difference (second - first, the paper's "TSD - baseline").

Result files are either COCO detection json (``*.bbox.json`` from mmdet's ``CocoMetric`` with
``outfile_prefix``) or the ``.pkl`` written by mmdet's ``tools/test.py --out`` (a list of dicts with
``img_id`` and ``pred_instances`` = {``bboxes`` (N, 4) xyxy, ``scores`` (N,), ``labels`` (N,)}).
Labels map to category ids in the annotation file's category order, as ``CocoDataset`` does.
tools/analysis_tools/iou_breakdown.py is the command line.
"""


import contextlib
import io
import json
import math
import pickle
from collections.abc import Sequence

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

IOU_THRS = (0.5, 0.6, 0.7, 0.8, 0.9)


AREAS = ('all', 'small', 'medium', 'large')  # the order of COCOeval's params.areaRngLbl


AREA_SHORT = {'all': '', 'small': 'S', 'medium': 'M', 'large': 'L'}


MAX_DETS = 100


def _to_numpy(value) -> np.ndarray:
    """A tensor (any device) or array-like as a numpy array."""
    if hasattr(value, 'detach'):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def pkl_to_coco_dets(results: Sequence[dict], cat_ids: Sequence[int]) -> list[dict]:
    """mmdet ``tools/test.py --out`` results as COCO detection dicts.

    Args:
        results: one dict per image with ``img_id`` and ``pred_instances`` holding ``bboxes``
            (N, 4) xyxy, ``scores`` (N,) and ``labels`` (N,) (tensors or arrays).
        cat_ids: category id of each label (the annotation file's category order).

    Returns:
        list of {'image_id', 'category_id', 'bbox' (xywh), 'score'}.
    """
    dets = []
    for result in results:
        pred = result['pred_instances']
        bboxes = _to_numpy(pred['bboxes']).reshape(-1, 4).astype(float)
        scores = _to_numpy(pred['scores']).reshape(-1).astype(float)
        labels = _to_numpy(pred['labels']).reshape(-1).astype(int)
        for (x1, y1, x2, y2), score, label in zip(bboxes, scores, labels, strict=True):
            dets.append(dict(image_id=result['img_id'], category_id=int(cat_ids[label]),
                             bbox=[x1, y1, x2 - x1, y2 - y1], score=float(score)))
    return dets


def load_detections(path: str, coco_gt: COCO) -> list[dict]:
    """COCO detection dicts from a ``.json`` (COCO results) or ``.pkl`` (mmdet test --out) file."""
    if path.endswith(('.pkl', '.pickle')):
        with open(path, 'rb') as f:
            results = pickle.load(f)
        return pkl_to_coco_dets(results, coco_gt.getCatIds())
    with open(path) as f:
        return json.load(f)


def load_coco(ann_file: str) -> COCO:
    """The ground truth, without pycocotools' progress prints."""
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(ann_file)


def iou_breakdown(coco_gt: COCO, dets: list[dict],
                  iou_thrs: Sequence[float] = IOU_THRS) -> dict[str, np.ndarray]:
    """AP per IoU threshold and object size.

    Args:
        coco_gt: the ground truth.
        dets: COCO detection dicts (``image_id``, ``category_id``, ``bbox`` xywh, ``score``).
        iou_thrs: the T IoU thresholds.

    Returns:
        {area: (T,) AP in [0, 1]} for area in ``AREAS``; NaN where no category has ground truth
        in that area range (COCOeval's -1).
    """
    iou_thrs = np.asarray(iou_thrs, dtype=float)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(dets) if dets else _empty_results(coco_gt)
        coco_eval = COCOeval(coco_gt, coco_dt, 'bbox')
        coco_eval.params.iouThrs = iou_thrs
        coco_eval.evaluate()
        coco_eval.accumulate()
    params = coco_eval.params
    # precision: (T iou thresholds, R recall thresholds, K classes, A areas, M maxDets)
    precision = coco_eval.eval['precision'][..., params.maxDets.index(MAX_DETS)]
    ap = {}
    for area in AREAS:
        per_thr = precision[:, :, :, params.areaRngLbl.index(area)]
        ap[area] = np.array([_mean_valid(p) for p in per_thr])
    return ap


def _mean_valid(precision: np.ndarray) -> float:
    valid = precision[precision > -1]
    return float(valid.mean()) if valid.size else math.nan


def _empty_results(coco_gt: COCO) -> COCO:
    """Results with no detection (``loadRes`` refuses an empty list): AP 0 wherever gt exists."""
    coco_dt = COCO()
    coco_dt.dataset = dict(images=coco_gt.dataset['images'],
                           categories=coco_gt.dataset['categories'], annotations=[])
    coco_dt.createIndex()
    return coco_dt


def table_rows(names: Sequence[str], aps: Sequence[dict]) -> tuple[list[str], list[list]]:
    """Header and rows (AP in percent): one row per result, plus ``second - first`` for two."""
    header = ['result'] + [f'AP{AREA_SHORT[a]}@{t:.1f}'.replace('0.', '.')
                           for a in AREAS for t in IOU_THRS]
    rows = [[name] + [100 * v for a in AREAS for v in ap[a]] for name, ap in zip(names, aps)]
    if len(aps) == 2:
        diff = [b - a for a, b in zip(rows[0][1:], rows[1][1:])]
        rows.append([f'{names[1]} - {names[0]}'] + diff)
    return header, rows


def _fmt(value) -> str:
    if isinstance(value, str):
        return value
    return '-' if math.isnan(value) else f'{value:.1f}'


def format_table(header: list[str], rows: list[list], fmt: str = 'text') -> str:
    """The table as aligned ``text``, ``markdown`` or ``csv``."""
    cells = [header] + [[_fmt(v) for v in row] for row in rows]
    if fmt == 'csv':
        return '\n'.join(','.join(row) for row in cells) + '\n'
    if fmt == 'markdown':
        lines = ['| ' + ' | '.join(row) + ' |' for row in cells]
        lines.insert(1, '|' + '|'.join(['---'] + ['---:'] * (len(header) - 1)) + '|')
        return '\n'.join(lines) + '\n'
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return '\n'.join('  '.join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths)))
                     for row in cells) + '\n'


def plot_ap_vs_iou(names: Sequence[str], aps: Sequence[dict], out_png: str) -> None:
    """Figure 6: AP (percent) against IoU threshold, one subplot per object size."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(AREAS), figsize=(4 * len(AREAS), 3.6), sharex=True)
    for ax, area in zip(axes, AREAS):
        for name, ap in zip(names, aps):
            ax.plot(IOU_THRS, 100 * ap[area], marker='o', label=name)
        ax.set_title(f'AP ({area})')
        ax.set_xlabel('IoU threshold')
        ax.set_xticks(IOU_THRS)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel('AP (%)')
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(out_png, dpi=120)
    plt.close(fig)
