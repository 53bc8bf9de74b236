"""tsd_mmdet.evaluation.iou_breakdown and its command line on a hand-made COCO set of known AP.

Ground truth (categories in file order: id 7 'b' = label 0, id 3 'a' = label 1):
- image 1: a large 'b' box [0, 0, 100, 100] (area 10000);
- image 2: a small 'a' box [10, 10, 10, 10] (area 100);
- image 3: a medium 'b' box [0, 0, 50, 50] (area 2500).
Baseline detections: IoU 0.75 on the large box (score 0.9), perfect on the small one, IoU 0.65 on
the medium one (score 0.8). The second result file ("TSD") is perfect everywhere.
"""
import json
import math
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tsd_mmdet.evaluation import iou_breakdown

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / 'tools' / 'analysis_tools' / 'iou_breakdown.py'


GT_BOXES = {1: (7, [0, 0, 100, 100]), 2: (3, [10, 10, 10, 10]), 3: (7, [0, 0, 50, 50])}
BASELINE = [  # image_id, category_id, xywh, score
    (1, 7, [0, 0, 75, 100], 0.9),   # IoU 7500 / 10000 = 0.75
    (2, 3, [10, 10, 10, 10], 0.7),  # perfect
    (3, 7, [0, 0, 50, 32.5], 0.8),  # IoU 1625 / 2500 = 0.65
]
# 'all', category 7 at IoU 0.7: the 0.9 detection is a hit, the 0.8 one a miss -> precision 1 up to
# recall 0.5, 0 after: 51 of COCO's 101 recall thresholds. Category 3 is always 1.
HALF = 51 / 101
EXPECTED_BASELINE = {
    'all': [1, 1, (HALF + 1) / 2, 0.5, 0.5],
    'small': [1, 1, 1, 1, 1],
    'medium': [1, 1, 0, 0, 0],
    'large': [1, 1, 1, 0, 0],
}


@pytest.fixture
def coco_files(tmp_path):
    images = [dict(id=i, file_name=f'{i}.jpg', width=200, height=200) for i in GT_BOXES]
    anns = [dict(id=i, image_id=i, category_id=c, bbox=b, area=b[2] * b[3], iscrowd=0)
            for i, (c, b) in GT_BOXES.items()]
    cats = [dict(id=7, name='b'), dict(id=3, name='a')]
    gt = tmp_path / 'gt.json'
    gt.write_text(json.dumps(dict(images=images, annotations=anns, categories=cats)))
    base = tmp_path / 'base.bbox.json'
    base.write_text(json.dumps([dict(image_id=i, category_id=c, bbox=b, score=s)
                                for i, c, b, s in BASELINE]))
    tsd = tmp_path / 'tsd.bbox.json'
    tsd.write_text(json.dumps([dict(image_id=i, category_id=c, bbox=b, score=0.9)
                               for i, (c, b) in GT_BOXES.items()]))
    return gt, base, tsd


def _breakdown(gt, result):
    coco_gt = iou_breakdown.load_coco(str(gt))
    return iou_breakdown.iou_breakdown(coco_gt, iou_breakdown.load_detections(str(result), coco_gt))


def test_ap_per_iou_and_size(coco_files):
    gt, base, tsd = coco_files
    ap = _breakdown(gt, base)
    for area, expected in EXPECTED_BASELINE.items():
        np.testing.assert_allclose(ap[area], expected, atol=1e-6, err_msg=area)
    perfect = _breakdown(gt, tsd)
    for area in iou_breakdown.AREAS:
        np.testing.assert_allclose(perfect[area], 1.0, err_msg=area)


def _baseline_samples():
    """The baseline as mmdet data samples: per image, tensors; label 0 is category id 7."""
    label_of = {7: 0, 3: 1}
    samples = []
    for img_id in (3, 1, 2):  # order of images in the file does not matter
        dets = [d for d in BASELINE if d[0] == img_id]
        samples.append(dict(img_id=img_id, ori_shape=(200, 200), pred_instances=dict(
            bboxes=torch.tensor([[x, y, x + w, y + h] for _, _, (x, y, w, h), _ in dets]),
            scores=torch.tensor([s for *_, s in dets]),
            labels=torch.tensor([label_of[c] for _, c, _, _ in dets]))))
    return samples


def test_pkl_results_match_json(coco_files, tmp_path):
    """mmdet's test.py --out: per-image dicts of tensors; label 0 is category id 7 (file order)."""
    gt, base, _ = coco_files
    pkl = tmp_path / 'base.pkl'
    pkl.write_bytes(pickle.dumps(_baseline_samples()))
    from_pkl, from_json = _breakdown(gt, pkl), _breakdown(gt, base)
    for area in iou_breakdown.AREAS:
        np.testing.assert_allclose(from_pkl[area], from_json[area], err_msg=area)


def test_files_written_by_mmdet_and_its_coco_metric(coco_files, tmp_path):
    """Result files written by mmdet itself (CocoMetric outfile_prefix, DumpDetResults), and
    CocoMetric's own numbers at IoU 0.5:0.9: mAP averages our five APs, mAP_50 is AP@.5."""
    pytest.importorskip('mmdet')
    from mmdet.evaluation import CocoMetric, DumpDetResults

    gt, _, _ = coco_files
    metric = CocoMetric(ann_file=str(gt), metric='bbox', iou_thrs=np.array(iou_breakdown.IOU_THRS),
                        outfile_prefix=str(tmp_path / 'res'))
    metric.dataset_meta = dict(classes=('b', 'a'))
    dump = DumpDetResults(out_file_path=str(tmp_path / 'res.pkl'))
    for m in (metric, dump):
        m.process({}, _baseline_samples())
    coco = metric.evaluate(size=3)
    dump.evaluate(size=3)
    for path in (tmp_path / 'res.bbox.json', tmp_path / 'res.pkl'):
        ap = _breakdown(gt, path)
        for area, expected in EXPECTED_BASELINE.items():
            np.testing.assert_allclose(ap[area], expected, atol=1e-6, err_msg=f'{path} {area}')
        assert coco['coco/bbox_mAP_50'] == pytest.approx(ap['all'][0], abs=5e-4)
        for key, area in (('', 'all'), ('_s', 'small'), ('_m', 'medium'), ('_l', 'large')):
            assert coco[f'coco/bbox_mAP{key}'] == pytest.approx(ap[area].mean(), abs=5e-4), area


def test_no_detections_and_missing_sizes(coco_files, tmp_path):
    gt, _, _ = coco_files
    coco_gt = iou_breakdown.load_coco(str(gt))
    ap = iou_breakdown.iou_breakdown(coco_gt, [])
    for area in iou_breakdown.AREAS:
        np.testing.assert_array_equal(ap[area], 0.0)
    # keep only the large box: no gt of the other sizes -> NaN there, not 0
    coco_gt.dataset['annotations'] = coco_gt.dataset['annotations'][:1]
    coco_gt.createIndex()
    ap = iou_breakdown.iou_breakdown(coco_gt, [dict(image_id=1, category_id=7,
                                                    bbox=[0, 0, 100, 100], score=1.0)])
    assert np.isnan(ap['small']).all() and np.isnan(ap['medium']).all()
    np.testing.assert_allclose(ap['large'], 1.0)


def test_table_difference_row():
    base = {a: np.array(v, dtype=float) for a, v in EXPECTED_BASELINE.items()}
    base['medium'][:] = math.nan
    tsd = {a: np.ones(5) for a in iou_breakdown.AREAS}
    header, rows = iou_breakdown.table_rows(['baseline', 'TSD'], [base, tsd])
    assert header[:6] == ['result', 'AP@.5', 'AP@.6', 'AP@.7', 'AP@.8', 'AP@.9']
    assert header[6] == 'APS@.5' and header[-1] == 'APL@.9'
    assert [r[0] for r in rows] == ['baseline', 'TSD', 'TSD - baseline']
    diff = rows[2][1:]
    np.testing.assert_allclose(diff[:5], [0, 0, 100 - 50 * (HALF + 1), 50, 50])
    assert all(math.isnan(v) for v in diff[10:15])  # medium
    np.testing.assert_allclose(diff[15:], [0, 0, 0, 100, 100])  # large
    md = iou_breakdown.format_table(header, rows, 'markdown').splitlines()
    assert md[0].startswith('| result | AP@.5 |') and md[1].startswith('|---|---:|')
    assert md[4].startswith('| TSD - baseline | 0.0 | 0.0 | 24.8 | 50.0 | 50.0 |')
    assert '| - | - |' in md[4]


def test_cli_writes_table_and_png(coco_files, tmp_path):
    gt, base, tsd = coco_files
    out_csv, out_png = tmp_path / 'table.csv', tmp_path / 'plot.png'
    printed = _cli(gt, base, tsd, '--names', 'baseline', 'TSD', '--out-table', out_csv,
                   '--out-png', out_png)
    assert 'TSD - baseline' in printed
    lines = out_csv.read_text().splitlines()
    assert len(lines) == 4 and lines[0].startswith('result,AP@.5,AP@.6')
    assert lines[1].split(',')[:6] == ['baseline', '100.0', '100.0', '75.2', '50.0', '50.0']
    assert lines[2].split(',')[1:] == ['100.0'] * 20
    assert out_png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_cli_help_and_argument_errors(coco_files):
    done = subprocess.run([sys.executable, str(SCRIPT), '--help'], capture_output=True, text=True)
    assert done.returncode == 0 and '--out-png' in done.stdout
    gt, base, tsd = coco_files
    for args, error in (((gt, base, tsd, '--names', 'one'), 'one name per result file'),
                        ((gt, base, '--out-table', 'table.txt'), 'must end with .md or .csv')):
        done = subprocess.run([sys.executable, str(SCRIPT), *map(str, args)],
                              capture_output=True, text=True)
        assert done.returncode == 2 and error in done.stderr


def _cli(*args):
    done = subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout
