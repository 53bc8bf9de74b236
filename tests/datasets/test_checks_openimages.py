"""tsd_mmdet.datasets checks on OpenImages V6 data: generation of data/shapes_openimages when a
config points there, the clear errors before training on bad input, boxes under one pixel."""
import csv
import json
import os.path as osp
import pickle

import pytest

pytest.importorskip('mmdet')
from mmengine.config import Config  # noqa: E402

from tsd_mmdet.datasets import checks as dc  # noqa: E402
from tsd_mmdet.datasets import shapes as gs  # noqa: E402
from tsd_mmdet.utils.config import load_config  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOLS = osp.join(ROOT, 'tools')
CONFIG = osp.join(ROOT, 'configs', 'shapes', 'tsd-faster-rcnn_r18_fpn_cas_shapes-openimages.py')
TRAIN_KEY = 'train_dataloader.dataset'


FILES = gs.OPENIMAGES_FILES


@pytest.fixture
def data(tiny_openimages, copy_of):
    """A copy to break (tiny_openimages, copy_of: tests/conftest.py)."""
    return copy_of(tiny_openimages)


def _cfg(data_root, **overrides):
    return load_config(CONFIG, dict(data_root=f'{data_root}/', **overrides))


def _rows(path):
    with open(path, newline='') as f:
        return list(csv.reader(f))


def _write_rows(path, rows):
    with open(path, 'w', newline='') as f:
        csv.writer(f, lineterminator='\n').writerows(rows)


def _check(data, splits=('train', 'val'), **overrides):
    with pytest.raises(dc.DatasetCheckError) as err:
        dc.check_datasets(_cfg(data, **overrides), splits)
    return str(err.value)


def test_check_passes_on_good_data(tiny_openimages):
    dc.check_datasets(_cfg(tiny_openimages))


def test_overrides_reach_datasets_and_heads(tiny_openimages):
    cfg = _cfg(tiny_openimages, **{'metainfo.classes': list(gs.openimages_classes()[:3])})
    for split in ('train', 'val', 'test'):
        assert cfg[f'{split}_dataloader'].dataset.data_root == f'{tiny_openimages}/'
    roi_head = cfg.model.roi_head
    assert roi_head.bbox_head.num_classes == roi_head.sibling_head.num_classes == 3


@pytest.mark.parametrize('field, path, split', [
    ('label_file', FILES['label_file'], 'train'),
    ('hierarchy_file', FILES['hierarchy_file'], 'train'),
    ('meta_file', FILES['train_meta_file'], 'train'),
    ('image_level_ann_file', FILES['val_image_level_ann_file'], 'val'),
])
def test_missing_file(data, field, path, split):
    (data / path).unlink()
    msg = _check(data)
    assert f'OpenImages {field} {data}/{path} not found' in msg
    assert f'(or {split}_dataloader.dataset.{field}=...)' in msg


def test_missing_box_csv(data):
    (data / FILES['train_ann_file']).unlink()
    msg = _check(data)
    assert f'annotation file {data}/{FILES["train_ann_file"]} not found' in msg
    assert f'--cfg-options {TRAIN_KEY}.data_root=' in msg


def test_label_not_in_class_file(data):
    path = data / FILES['train_ann_file']
    rows = _rows(path)
    rows[2][2] = '/m/0k4j'
    _write_rows(path, rows)
    msg = _check(data)
    assert f"line 3 of {path}: label '/m/0k4j' is not in the class file" in msg
    assert FILES['label_file'] in msg


@pytest.mark.parametrize('column, value', [(5, '1.2'), (4, '-0.1'), (7, '0.0')])
def test_box_outside_unit_square(data, column, value):
    path = data / FILES['val_ann_file']
    rows = _rows(path)
    rows[1][column] = value
    _write_rows(path, rows)
    msg = _check(data)
    assert f'line 2 of {path}: box XMin,XMax,YMin,YMax = ' in msg
    assert 'is not inside [0, 1]' in msg
    dc.check_datasets(_cfg(data), ('train',))  # the validation split is not checked for training


def test_bad_box_rows(data):
    path = data / FILES['train_ann_file']
    rows = _rows(path)
    _write_rows(path, [rows[0], rows[1][:8]])
    assert 'has 8 columns; an OpenImages V6 box file has 13' in _check(data)
    _write_rows(path, [rows[0], [*rows[1][:4], 'left', *rows[1][5:]]])
    assert 'a box coordinate is not a number' in _check(data)
    _write_rows(path, [rows[0]])
    assert f'empty box file {path}' in _check(data)


def test_image_rows_not_consecutive(data):
    path = data / FILES['train_ann_file']
    header, *rows = _rows(path)
    assert rows[-1][0] != rows[0][0]
    _write_rows(path, [header, *rows, rows[0]])  # the first image's box again, at the end
    assert f'the boxes of image {rows[0][0]} are not on consecutive lines' in _check(data)


def test_image_metas_disagree_with_the_box_file(data):
    path = data / FILES['train_meta_file']
    metas = pickle.loads(path.read_bytes())
    path.write_bytes(pickle.dumps(metas[:-1]))
    msg = _check(data)
    assert f'image metas file {path} lists {len(metas) - 1} images, the box file' in msg
    assert 'get_image_metas.py' in msg
    path.write_bytes(pickle.dumps(metas[::-1]))
    assert 'entry 0 is' in _check(data)
    path.write_bytes(b'not a pickle')
    assert 'cannot be unpickled' in _check(data)


def test_hierarchy_names_unknown_label(data):
    path = data / FILES['hierarchy_file']
    tree = json.loads(path.read_text())
    tree['Subcategory'][0]['Subcategory'].append({'LabelName': '/m/0bt9lr'})
    path.write_text(json.dumps(tree))
    assert "names the label '/m/0bt9lr', which the class file" in _check(data)
    path.write_text('{"LabelName": ')
    assert 'is not valid JSON' in _check(data)


def test_image_level_label_not_in_class_file(data):
    path = data / FILES['val_image_level_ann_file']
    rows = _rows(path)
    rows[1][2] = '/m/0k4j'
    _write_rows(path, rows)
    msg = _check(data)
    assert f'line 2 of the image-level label file {path}' in msg


def test_missing_image(data):
    first = _rows(data / FILES['train_ann_file'])[1][0]
    (data / 'OpenImages' / 'train' / f'{first}.jpg').unlink()
    assert f'image {data}/OpenImages/train/{first}.jpg (the first one in' in _check(data)


def test_classes_other_than_the_class_file(data):
    msg = _check(data, **{'metainfo.classes': ['disc', 'round']})
    assert 'takes its classes from the class file' in msg
    assert 'disc, triangle, square, star, ring, cross, round, angular' in msg


def test_ensure_default_dataset_makes_the_openimages_copy(tmp_path, monkeypatch):
    """A config pointing at data/shapes_openimages gets it, converted from data/shapes (here a tiny
    data/shapes that its manifest says is the default one, so that nothing is rendered)."""
    monkeypatch.chdir(tmp_path)
    manifest = gs.generate_dataset(gs.DEFAULT_ROOT, num_train=2, num_val=2, min_image_size=64,
                                   max_image_size=96)
    manifest['params'] = gs.DEFAULT_PARAMS
    (tmp_path / gs.DEFAULT_ROOT / 'manifest.json').write_text(json.dumps(manifest))
    cfg = Config.fromfile(CONFIG, import_custom_modules=False)
    dc.ensure_default_dataset(cfg, ('train', 'val'))
    root = tmp_path / gs.DEFAULT_OPENIMAGES_ROOT
    assert json.loads((root / 'manifest.json').read_text())['source']['params'] == \
        gs.DEFAULT_PARAMS
    dc.check_datasets(cfg, ('train', 'val'))


def test_heads_sized_for_other_classes(data):
    msg = _check(data, **{'model.roi_head.bbox_head.num_classes': 601})
    assert 'has 8 classes, but the RoI head is sized for another number' in msg
    assert '--cfg-options model.roi_head.bbox_head.num_classes=8' in msg
    assert 'sibling_head' not in msg


def _thin_box(data, width_px):
    """Make the first training box ``width_px`` pixels wide (in its image's pixels, from the image
    metas); return its image ID."""
    path = data / FILES['train_ann_file']
    rows = _rows(path)
    with open(data / FILES['train_meta_file'], 'rb') as f:
        height, width = pickle.load(f)[0]['ori_shape'][:2]
    x_min = float(rows[1][4])
    rows[1][5] = repr(x_min + width_px / width)
    _write_rows(path, rows)
    return rows[1][0]


def test_boxes_under_one_pixel_dropped_by_the_pipeline(data, logged):
    """OpenImages: a box 0.6 px wide (after the fractions are scaled by the image's width) is
    reported with its image and dropped by the train pipeline's FilterAnnotations."""
    image = _thin_box(data, 0.6)
    dc.check_datasets(_cfg(data), ('train',))
    warnings = [msg for level, msg in logged if 'narrower or lower than one pixel' in msg]
    assert len(warnings) == 1 and ('WARNING', warnings[0]) in logged and warnings[0].endswith(
        f"(image {image}): dropped by FilterAnnotations(min_gt_bbox_wh=(1, 1)) in the train "
        'pipeline'), warnings


def test_boxes_under_one_pixel_refused_without_a_filter(data):
    image = _thin_box(data, 0.0)  # XMin == XMax: a zero-width box, valid in OpenImages' format
    message = _check(data, ('train',),
                     **{'train_dataloader.dataset.pipeline': [
                         dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
                         dict(type='PackDetInputs')]})
    assert message.startswith('1 training box narrower or lower than one pixel in ')
    assert f'(image {image}) would reach the model' in message
    assert "add dict(type='FilterAnnotations', min_gt_bbox_wh=(1, 1), keep_empty=False)" in message
    assert 'train_dataloader.dataset.pipeline' in message


def test_boxes_of_one_pixel_or_more_pass(data, logged):
    _thin_box(data, 1.5)
    dc.check_datasets(_cfg(data), ('train',))
    assert logged and logged[-1][1].startswith('dataset check passed'), logged
    assert not [msg for _, msg in logged if 'narrower or lower' in msg], logged
