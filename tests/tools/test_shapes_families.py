"""The configs/shapes/ TSD Mask R-CNN, Cascade R-CNN and OpenImages Faster R-CNN through mmdet's own
tools/train.py and tools/test.py, and ours (not an equation of the paper): one iteration on a tiny
generated dataset (COCO with masks, or its OpenImages copy), then an evaluation whose metric keys
must come out."""
import os.path as osp
import re

import pytest

pytest.importorskip('mmdet')
from mmengine.config import Config  # noqa: E402
from mmengine.utils import get_installed_path  # noqa: E402

from tsd_mmdet.datasets import shapes as gs  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOLS = osp.join(ROOT, 'tools')
MMDET_TOOLS = osp.join(get_installed_path('mmdet'), '.mim', 'tools')
SHAPES = osp.join(ROOT, 'configs', 'shapes')
# family: (config, data format, metric keys its evaluation logs)
FAMILIES = {
    'mask-rcnn': ('tsd-mask-rcnn_r18_fpn_shapes.py', 'coco',
                  ('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/segm_mAP', 'coco/segm_mAP_50')),
    'cascade-rcnn': ('tsd-cascade-rcnn_r18_fpn_shapes.py', 'coco',
                     ('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/bbox_mAP_75')),
    'faster-rcnn-openimages': ('tsd-faster-rcnn_r18_fpn_cas_shapes-openimages.py', 'openimages',
                               ('openimages/AP50', 'openimages/mAP')),
}


def _small(config: str) -> list[str]:
    """Seconds, not minutes: 1 iteration of 2 images at 128 px, few proposals and detections
    (score threshold 0, so that the metrics have detections to score), no worker processes."""
    cfg = Config.fromfile(osp.join(SHAPES, config), import_custom_modules=False)
    resize = {split: [t['type'] for t in cfg[f'{split}_dataloader'].dataset.pipeline].index(
        'Resize') for split in ('train', 'val', 'test')}
    return [
        'train_cfg.max_iters=1', 'train_dataloader.batch_size=2',
        'default_hooks.logger.interval=1', 'model.train_cfg.rpn_proposal.max_per_img=64',
        'model.test_cfg.rpn.max_per_img=32', 'model.test_cfg.rcnn.score_thr=0.0',
        'model.test_cfg.rcnn.max_per_img=20',
    ] + [f'{split}_dataloader.dataset.pipeline.{i}.scale=(128,128)' for split, i in resize.items()
         ] + [f'{split}_dataloader.{key}' for split in ('train', 'val', 'test')
              for key in ('num_workers=0', 'persistent_workers=False')]


@pytest.fixture(scope='module')
def tiny_data(tmp_path_factory):
    """Data roots by format: COCO with masks, and its OpenImages copy."""
    coco = tmp_path_factory.mktemp('shapes')
    openimages = tmp_path_factory.mktemp('shapes_openimages')
    gs.generate_dataset(str(coco), num_train=6, num_val=3, min_image_size=64, max_image_size=128,
                        max_objects=4)
    gs.generate_openimages(str(openimages), str(coco))
    return dict(coco=f'{coco}/', openimages=f'{openimages}/')


def _metrics(log: str, keys: tuple) -> dict:
    values = {key: float(re.search(rf'{key}: (-?[\d.]+)', log).group(1)) for key in keys}
    assert all(-1.0 <= v <= 1.0 for v in values.values()), values
    return values


def _class_table_names_the_data(log: str) -> None:
    """OpenImages: the per-class AP table names the label file's classes (disc, ..., angular), not
    OpenImages' own (mmdet's OpenImagesMetric printed Tortoise, Container, ...)."""
    rows = re.findall(r'^\| (\w+) +\| +\d+ +\| +\d+ +\|', log, flags=re.M)
    assert rows[:len(gs.openimages_classes())] == list(gs.openimages_classes()), rows
    assert 'Tortoise' not in log


def _mmdet_data_options(data_format: str, root: str) -> list[str]:
    """mmdet's tools take each key: every dataloader's data_root, and the COCO metric's file."""
    options = [f'{split}_dataloader.dataset.data_root={root}' for split in ('train', 'val', 'test')]
    if data_format == 'coco':
        options += [f'{split}_evaluator.ann_file={root}annotations/instances_val.json'
                    for split in ('val', 'test')]
    return options


@pytest.mark.parametrize('family', FAMILIES)
def test_mmdet_tools(family, tiny_data, tmp_path, run_python):
    config, data_format, keys = FAMILIES[family]
    work = tmp_path / 'work'
    options = ['--cfg-options', *_mmdet_data_options(data_format, tiny_data[data_format]),
               *_small(config)]
    log = run_python(osp.join(MMDET_TOOLS, 'train.py'), osp.join(SHAPES, config), '--work-dir',
                     str(work), *options, ok=True)
    assert re.search(r'Iter\(train\) \[1/1\].*loss_pc_loc', log)
    _metrics(log, keys)  # validation at the end of training
    log = run_python(osp.join(MMDET_TOOLS, 'test.py'), osp.join(SHAPES, config),
                     str(work / 'iter_1.pth'), '--work-dir', str(work), *options, ok=True)
    _metrics(log, keys)
    if data_format == 'openimages':
        _class_table_names_the_data(log)


@pytest.mark.parametrize('family', FAMILIES)
def test_our_tools(family, tiny_data, tmp_path, run_python):
    """Ours: one override moves every dataset (and the COCO metric); the data is checked first.
    Our test.py on COCO data: tests/tools/test_train_test.py."""
    config, data_format, keys = FAMILIES[family]
    work = tmp_path / 'work'
    options = ['--cfg-options', f'data_root={tiny_data[data_format]}', *_small(config)]
    log = run_python(osp.join(TOOLS, 'train.py'), osp.join(SHAPES, config), '--work-dir', str(work),
                     *options, ok=True)
    assert 'dataset check passed' in log
    _metrics(log, keys)
    if data_format == 'openimages':
        log = run_python(osp.join(TOOLS, 'test.py'), osp.join(SHAPES, config),
                         str(work / 'iter_1.pth'), '--work-dir', str(work), *options, ok=True)
        assert 'dataset check passed' in log
        _metrics(log, keys)
        _class_table_names_the_data(log)
