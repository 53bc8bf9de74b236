"""tsd_mmdet.evaluation.openimages_metric: the per-class AP table names the dataset's own classes,
and the AP is mmdet's OpenImagesMetric's. Not an equation of the paper."""
import logging

import numpy as np
import pytest

pytest.importorskip('mmdet')
import torch  # noqa: E402
from mmdet.evaluation.functional import mean_ap  # noqa: E402
from mmdet.registry import DATASETS, METRICS  # noqa: E402

import tsd_mmdet  # noqa: E402, F401  (registers the metric)
from tsd_mmdet.datasets import shapes as gs  # noqa: E402

FILES = gs.OPENIMAGES_FILES


@pytest.fixture(scope='module')
def samples(tiny_openimages):
    """The tiny OpenImages-format validation split (classes disc, triangle, ..., round, angular)
    and detections of it that score between 0 and 1: each ground-truth box once, shifted by a
    seeded few pixels, labelled right for most and wrong for some, plus one spurious box."""
    dataset = DATASETS.build(dict(
        type='OpenImagesDataset', data_root=str(tiny_openimages), ann_file=FILES['val_ann_file'],
        data_prefix=dict(img='OpenImages/validation/'), label_file=FILES['label_file'],
        hierarchy_file=FILES['hierarchy_file'], meta_file=FILES['val_meta_file'],
        image_level_ann_file=FILES['val_image_level_ann_file'], test_mode=True, pipeline=[]))
    rng = np.random.default_rng(0)
    num_classes = len(dataset.metainfo['classes'])
    out = []
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        boxes = [np.asarray(ins['bbox']) + rng.uniform(-4, 4, 4) for ins in info['instances']]
        labels = [ins['bbox_label'] if rng.random() < 0.7 else int(rng.integers(num_classes))
                  for ins in info['instances']]
        boxes.append(np.array([0.0, 0.0, 20.0, 20.0]))
        labels.append(int(rng.integers(num_classes)))
        out.append(dict(
            instances=info['instances'], image_level_labels=info['image_level_labels'],
            pred_instances=dict(
                bboxes=torch.tensor(np.array(boxes), dtype=torch.float32),
                scores=torch.tensor(rng.uniform(0.1, 1.0, len(boxes)), dtype=torch.float32),
                labels=torch.tensor(labels))))
    return dataset.metainfo, out


@pytest.fixture
def tables(monkeypatch):
    """Every message eval_map's summary logs during the test, read at the source (mmengine's
    logger may keep an earlier test's stdout; tests/datasets/conftest.py)."""
    messages = []
    forward = mean_ap.print_log

    def record(msg, logger=None, level=logging.INFO):
        messages.append(str(msg))
        return forward(msg, logger=logger, level=level)

    monkeypatch.setattr(mean_ap, 'print_log', record)
    return messages


def _evaluate(metric_type, metainfo, data_samples, **kwargs):
    metric = METRICS.build(dict(type=metric_type, **kwargs))
    metric.dataset_meta = metainfo
    metric.process({}, [dict(s) for s in data_samples])
    return metric.evaluate(len(data_samples))


def _class_rows(messages):
    table = next(m for m in messages if '| class' in m)
    return [line.split('|')[1].strip() for line in table.splitlines()
            if line.startswith('|') and '| class' not in line and '| mAP' not in line]


def test_table_names_the_datasets_classes_and_ap_is_mmdets(samples, tables):
    metainfo, data_samples = samples
    assert list(metainfo['classes']) == list(gs.openimages_classes())  # not OpenImages' names
    ours = _evaluate('OpenImagesOwnClassesMetric', metainfo, data_samples)
    assert _class_rows(tables) == list(metainfo['classes'])
    tables.clear()
    mmdets = _evaluate('OpenImagesMetric', metainfo, data_samples)
    # mmdet's own metric labels the same rows with OpenImages' first class names: the bug fixed
    assert _class_rows(tables)[0] == 'Tortoise'
    assert ours == mmdets  # same keys, same AP
    assert 0.05 < ours['openimages/AP50'] < 0.95, ours  # neither trivially 0 nor 1


def test_several_iou_thresholds(samples, tables):
    metainfo, data_samples = samples
    kwargs = dict(iou_thrs=[0.5, 0.75], ioa_thrs=[0.5, 0.5])
    ours = _evaluate('OpenImagesOwnClassesMetric', metainfo, data_samples, **kwargs)
    assert sum('| class' in m for m in tables) == 2
    assert ours == _evaluate('OpenImagesMetric', metainfo, data_samples, **kwargs)
    assert set(ours) == {'openimages/AP50', 'openimages/AP75', 'openimages/mAP'}
