"""tsd_mmdet.datasets.check_datasets on COCO data: a clear error naming the file and the key for
each way a dataset can be unusable, and training boxes under one pixel dropped or refused."""
import json
import os.path as osp
import re
import shutil

import pytest

pytest.importorskip('mmdet')

from tsd_mmdet.datasets import checks as dc  # noqa: E402
from tsd_mmdet.utils.config import load_config  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
BASELINE = osp.join(ROOT, 'configs', 'shapes', 'faster-rcnn_r18_fpn_shapes.py')


def _cfg(data_root, config=BASELINE, **overrides):
    return load_config(config, dict(data_root=str(data_root) + '/', **overrides))


def test_check_passes_on_good_data(tiny_data):
    dc.check_datasets(_cfg(tiny_data))


def test_missing_annotation_file(tmp_path):
    with pytest.raises(dc.DatasetCheckError) as err:
        dc.check_datasets(_cfg(tmp_path / 'nowhere'))
    msg = str(err.value)
    assert 'nowhere/annotations/instances_train.json not found' in msg
    assert '--cfg-options train_dataloader.dataset.data_root=' in msg


def test_missing_image_folder(tiny_data, copy_of):
    data = copy_of(tiny_data)
    shutil.rmtree(data / 'val')
    with pytest.raises(dc.DatasetCheckError, match=r'image folder .*val.* not found.*'
                       r'val_dataloader\.dataset\.data_prefix\.img'):
        dc.check_datasets(_cfg(data), ('train', 'val'))


def test_missing_image_file(tiny_data, copy_of):
    data = copy_of(tiny_data)
    (data / 'train' / '000001.jpg').unlink()
    with pytest.raises(dc.DatasetCheckError, match=r'image .*000001\.jpg .*not found'):
        dc.check_datasets(_cfg(data))


@pytest.mark.parametrize('content, message', [
    ('{"images": [', 'is not valid JSON'),
    ('[1, 2, 3]', 'is not COCO-shaped'),
    ('{"images": [], "annotations": [], "categories": []}', 'empty annotation file'),
])
def test_bad_annotation_json(tiny_data, copy_of, content, message):
    data = copy_of(tiny_data)
    (data / 'annotations' / 'instances_train.json').write_text(content)
    with pytest.raises(dc.DatasetCheckError, match=message) as err:
        dc.check_datasets(_cfg(data))
    assert 'instances_train.json' in str(err.value)


def test_no_annotations_is_empty(tiny_data, copy_of):
    data = copy_of(tiny_data)
    path = data / 'annotations' / 'instances_val.json'
    coco = json.loads(path.read_text())
    coco['annotations'] = []
    path.write_text(json.dumps(coco))
    with pytest.raises(dc.DatasetCheckError, match='empty annotation file .*0 annotations'):
        dc.check_datasets(_cfg(data), ('train', 'val'))


def test_unknown_class(tiny_data):
    cfg = _cfg(tiny_data, **{'metainfo.classes': ['disc', 'foo']})
    with pytest.raises(dc.DatasetCheckError) as err:
        dc.check_datasets(cfg)
    assert "unknown class 'foo'" in str(err.value)
    assert 'has: disc, triangle, square, star, ring, cross' in str(err.value)


def test_missing_metric_annotation_file(tiny_data, tmp_path):
    cfg = _cfg(tiny_data, **{'val_evaluator.ann_file': str(tmp_path / 'gone.json')})
    dc.check_datasets(cfg, ('train',))  # the metric belongs to validation
    with pytest.raises(dc.DatasetCheckError, match=r'gone\.json not found.*val_evaluator'):
        dc.check_datasets(cfg, ('train', 'val'))


def test_metric_reading_other_images_than_its_dataset(tiny_data):
    train_ann = f'{tiny_data}annotations/instances_train.json'
    cfg = _cfg(tiny_data, **{'val_evaluator.ann_file': train_ann})
    dc.check_datasets(cfg, ('train',))
    with pytest.raises(dc.DatasetCheckError,
                       match=r'val_evaluator.ann_file is .*instances_train.json.*different images'):
        dc.check_datasets(cfg, ('train', 'val'))


def _degenerate(data, boxes):
    """Set the first training annotations' boxes (COCO xywh) to ``boxes``; return their images."""
    path = data / 'annotations' / 'instances_train.json'
    coco = json.loads(path.read_text())
    for ann, box in zip(coco['annotations'], boxes):
        ann['bbox'] = box
    path.write_text(json.dumps(coco))
    names = {im['id']: im['file_name'] for im in coco['images']}
    return [f"{a['image_id']} ({names[a['image_id']]})" for a in coco['annotations'][:len(boxes)]]


def test_boxes_under_one_pixel_are_reported_and_dropped(tiny_data, copy_of, logged):
    """COCO: mmdet's CocoDataset skips them while reading; the check says how many, where."""
    data = copy_of(tiny_data)
    images = _degenerate(data, [[10, 10, 0.5, 20], [5, 5, 12, 0.0], [1, 1, 1.0, 1.0]])
    dc.check_datasets(_cfg(data), ('train', 'val'))
    warnings = [msg for level, msg in logged if 'narrower or lower' in msg]
    assert len(warnings) == 1 and ('WARNING', warnings[0]) in logged, logged
    first = dict.fromkeys(images[:2])
    assert warnings[0] == (
        f'2 training boxes narrower or lower than one pixel in {data}/annotations/'
        f'instances_train.json (image{"s" if len(first) > 1 else ""} {", ".join(first)}): '
        'dropped by CocoDataset, which skips them while reading the json')


def test_boxes_under_one_pixel_refused_by_option(tiny_data, copy_of):
    data = copy_of(tiny_data)
    images = _degenerate(data, [[10, 10, 0.0, 20]])
    cfg = _cfg(data, **{'dataset_check.degenerate_boxes': 'error'})
    with pytest.raises(dc.DatasetCheckError, match=r'^1 training box narrower or lower than one '
                       rf'pixel in .*instances_train\.json \(image {re.escape(images[0])}\): '
                       'fix the data'):
        dc.check_datasets(cfg, ('train',))
    cfg = _cfg(data, **{'dataset_check.degenerate_boxes': 'ignore'})
    with pytest.raises(dc.DatasetCheckError, match=r"must be one of \('drop', 'error'\)"):
        dc.check_datasets(cfg, ('train',))


def test_validation_boxes_under_one_pixel_are_left_to_the_metric(tiny_data, copy_of):
    data = copy_of(tiny_data)
    path = data / 'annotations' / 'instances_val.json'
    coco = json.loads(path.read_text())
    coco['annotations'][0]['bbox'][2] = 0.0
    path.write_text(json.dumps(coco))
    dc.check_datasets(_cfg(data, **{'dataset_check.degenerate_boxes': 'error'}), ('train', 'val'))
