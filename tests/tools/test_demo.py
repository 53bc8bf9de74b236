"""tools/misc/demo.py (the main job, `make demo`) end to end on a second, tiny COCO dataset.

The overrides reach every step: the IoU breakdown scores against the tiny dataset's annotations
(it read the generated data's before, scoring the user's detections against the wrong ground
truth), and the pictures are drawn.
"""
import os.path as osp
import re

import pytest

pytest.importorskip('mmdet')
from tsd_mmdet.datasets import shapes  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO = osp.join(ROOT, 'tools', 'misc', 'demo.py')


def test_demo_on_another_coco_dataset(tmp_path, run_python):
    data = tmp_path / 'mine'
    shapes.generate_dataset(str(data), num_train=4, num_val=2, min_image_size=64,
                            max_image_size=96, max_objects=3)
    work = tmp_path / 'demo'
    small = [f'data_root={data}/', 'train_cfg.max_iters=2', 'train_dataloader.batch_size=2',
             'model.test_cfg.rcnn.score_thr=0.0', 'default_hooks.logger.interval=1',
             'train_dataloader.dataset.pipeline.2.scale=(96,96)',
             'val_dataloader.dataset.pipeline.1.scale=(96,96)',
             'test_dataloader.dataset.pipeline.1.scale=(96,96)'] + [
        f'{split}_dataloader.{key}' for split in ('train', 'val', 'test')
        for key in ('num_workers=0', 'persistent_workers=False')]
    log = run_python(DEMO, '--work-dir', str(work), '--num-vis', '1', '--cfg-options', *small,
                     timeout=600, ok=True)
    command = re.search(r'\$ \S+ tools/analysis_tools/iou_breakdown\.py (\S+) ', log).group(1)
    assert command == f'{data}/annotations/instances_val.json'
    assert (work / 'iou_breakdown.md').read_text().startswith('| result | AP@.5 |')
    assert (work / 'iou_breakdown.png').is_file() and (work / 'results.pkl').is_file()
    assert [p.suffix for p in (work / 'vis').iterdir()] == ['.png']
    assert 'Done. Results, plots and pictures are in' in log
