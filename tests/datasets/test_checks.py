"""tsd_mmdet.datasets.check_datasets on COCO data: a clear error naming the file and the key for
each way a dataset can be unusable, and training boxes under one pixel dropped or refused."""
import json
import os
import os.path as osp
import shutil
import subprocess
import sys

import pytest

pytest.importorskip('mmdet')
from mmengine.config import Config  # noqa: E402

from tsd_mmdet.datasets import checks as dc  # noqa: E402
from tsd_mmdet.datasets import shapes as gs  # noqa: E402
from tsd_mmdet.utils.config import apply_data_overrides  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOLS = osp.join(ROOT, 'tools')
BASELINE = osp.join(ROOT, 'configs', 'shapes', 'faster-rcnn_r18_fpn_shapes.py')
TSD = osp.join(ROOT, 'configs', 'shapes', 'tsd-faster-rcnn_r18_fpn_shapes.py')



# Shrinks the baseline to seconds: 2 iterations of 2 images at 128 px, no worker processes.
SMALL = [
    'train_cfg.max_iters=2', 'train_dataloader.batch_size=2', 'default_hooks.logger.interval=1',
    'model.test_cfg.rcnn.score_thr=0.0',
    'train_dataloader.dataset.pipeline.2.scale=(128,128)',
    'val_dataloader.dataset.pipeline.1.scale=(128,128)',
    'test_dataloader.dataset.pipeline.1.scale=(128,128)',
] + [f'{split}_dataloader.{key}' for split in ('train', 'val', 'test')
     for key in ('num_workers=0', 'persistent_workers=False')]


@pytest.fixture(scope='module')
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp('shapes')
    gs.generate_dataset(str(root), num_train=8, num_val=4, min_image_size=64, max_image_size=128,
                        max_objects=4)
    return str(root) + '/'


def _copy(tiny_data, tmp_path):
    dst = tmp_path / 'data'
    shutil.copytree(tiny_data, dst)
    return dst


def _cfg(data_root, config=BASELINE, **overrides):
    cfg = Config.fromfile(config, import_custom_modules=False)
    options = dict(data_root=str(data_root) + '/', **overrides)
    apply_data_overrides(cfg, options)
    cfg.merge_from_dict(options)
    return cfg


def _run(*args, timeout=300):
    path = os.pathsep.join(filter(None, [ROOT, os.getenv('PYTHONPATH')]))
    env = dict(os.environ, PYTHONPATH=path)
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_check_passes_on_good_data(tiny_data):
    dc.check_datasets(_cfg(tiny_data))


def test_missing_annotation_file(tmp_path):
    with pytest.raises(dc.DatasetCheckError) as err:
        dc.check_datasets(_cfg(tmp_path / 'nowhere'))
    msg = str(err.value)
    assert 'nowhere/annotations/instances_train.json not found' in msg
    assert '--cfg-options train_dataloader.dataset.data_root=' in msg


def test_missing_image_folder(tiny_data, tmp_path):
    data = _copy(tiny_data, tmp_path)
    shutil.rmtree(data / 'val')
    with pytest.raises(dc.DatasetCheckError, match=r'image folder .*val.* not found.*'
                       r'val_dataloader\.dataset\.data_prefix\.img'):
        dc.check_datasets(_cfg(data), ('train', 'val'))


def test_missing_image_file(tiny_data, tmp_path):
    data = _copy(tiny_data, tmp_path)
    (data / 'train' / '000001.jpg').unlink()
    with pytest.raises(dc.DatasetCheckError, match=r'image .*000001\.jpg .*not found'):
        dc.check_datasets(_cfg(data))


@pytest.mark.parametrize('content, message', [
    ('{"images": [', 'is not valid JSON'),
    ('[1, 2, 3]', 'is not COCO-shaped'),
    ('{"images": [], "annotations": [], "categories": []}', 'empty annotation file'),
])
def test_bad_annotation_json(tiny_data, tmp_path, content, message):
    data = _copy(tiny_data, tmp_path)
    (data / 'annotations' / 'instances_train.json').write_text(content)
    with pytest.raises(dc.DatasetCheckError, match=message) as err:
        dc.check_datasets(_cfg(data))
    assert 'instances_train.json' in str(err.value)


def test_no_annotations_is_empty(tiny_data, tmp_path):
    data = _copy(tiny_data, tmp_path)
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
