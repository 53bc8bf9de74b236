"""tsd_mmdet.utils.config: ``--cfg-options data_root=... metainfo.classes=...`` reach every
dataloader, metric and head."""
import os.path as osp

import pytest

pytest.importorskip('mmdet')

from tsd_mmdet.datasets import checks as dc  # noqa: E402
from tsd_mmdet.utils.config import load_config  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
BASELINE = osp.join(ROOT, 'configs', 'shapes', 'faster-rcnn_r18_fpn_shapes.py')
TSD = osp.join(ROOT, 'configs', 'shapes', 'tsd-faster-rcnn_r18_fpn_shapes.py')


def _cfg(data_root, config=BASELINE, **overrides):
    return load_config(config, dict(data_root=str(data_root) + '/', **overrides))


def test_data_root_override_follows_the_datasets_not_the_variable(tiny_data, tmp_path):
    # A derived config that sets the data_root variable only (its base's dataloaders and
    # metrics keep data/shapes/): --cfg-options data_root=... must still move the metric.
    derived = tmp_path / 'derived.py'
    derived.write_text(f"_base_ = '{BASELINE}'\ndata_root = '/somewhere/else/'\n")
    cfg = _cfg(tiny_data, str(derived))
    for split in ('val', 'test'):
        assert osp.normpath(cfg[f'{split}_dataloader'].dataset.data_root) == \
            osp.normpath(tiny_data)
        assert osp.normpath(cfg[f'{split}_evaluator'].ann_file) == \
            osp.normpath(f'{tiny_data}annotations/instances_val.json')
    dc.check_datasets(cfg)


def test_overrides_reach_every_dataset_and_head(tmp_path):
    cfg = _cfg(tmp_path / 'elsewhere', TSD, **{'metainfo.classes': ['disc', 'star']})
    for split in ('train', 'val', 'test'):
        ds = cfg[f'{split}_dataloader'].dataset
        assert ds.data_root == f'{tmp_path}/elsewhere/'
        assert list(ds.metainfo.classes) == ['disc', 'star']
    for split in ('val', 'test'):
        assert cfg[f'{split}_evaluator'].ann_file == \
            f'{tmp_path}/elsewhere/annotations/instances_val.json'
    roi_head = cfg.model.roi_head
    assert roi_head.bbox_head.num_classes == roi_head.sibling_head.num_classes == 2
    fpn_channels = cfg.model.neck.out_channels
    assert roi_head.sibling_head.in_channels == roi_head.bbox_head.in_channels == fpn_channels
