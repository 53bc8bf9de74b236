"""tools/model_converters/baseline_to_tsd.py and the fine-tune recipe on the shapes configs.

Not an equation of the paper: the command line (conversion report, refusal, the written
checkpoint) and 2 iterations of configs/shapes/tsd-faster-rcnn_r18_fpn_shapes_ft-baseline.py
started from its output through tools/train.py.
"""
import json
import os.path as osp
import subprocess
import sys

import pytest

pytest.importorskip('mmdet')
import torch  # noqa: E402
from mmdet.registry import MODELS  # noqa: E402
from mmengine.config import Config  # noqa: E402

import tsd_mmdet  # noqa: E402, F401  (registers TSD's modules)
from tsd_mmdet.datasets import shapes as gs  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONVERTER = osp.join(ROOT, 'tools', 'model_converters', 'baseline_to_tsd.py')
BASELINE = osp.join(ROOT, 'configs', 'shapes', 'faster-rcnn_r18_fpn_shapes.py')
TSD = osp.join(ROOT, 'configs', 'shapes', 'tsd-faster-rcnn_r18_fpn_shapes.py')
FINE_TUNE = osp.join(ROOT, 'configs', 'shapes', 'tsd-faster-rcnn_r18_fpn_shapes_ft-baseline.py')


def _run(*args):
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope='module')
def baseline_checkpoint(tmp_path_factory):
    """An initialised shapes baseline saved as mmengine's runner saves it (meta + state_dict)."""
    path = tmp_path_factory.mktemp('baseline') / 'iter_800.pth'
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(BASELINE).model)
    model.init_weights()
    meta = dict(dataset_meta=dict(classes=gs.CLASSES), iter=800)
    torch.save(dict(meta=meta, state_dict=model.state_dict(), optimizer={}), path)
    return path


@pytest.fixture(scope='module')
def converted(baseline_checkpoint, tmp_path_factory):
    """The command line run on ``baseline_checkpoint``: (output path, its stdout)."""
    out = tmp_path_factory.mktemp('converted') / 'tsd-init.pth'
    proc = _run(CONVERTER, TSD, str(baseline_checkpoint), str(out))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, proc.stdout


def test_cli_converts_and_reports(baseline_checkpoint, converted):
    out, stdout = converted
    lines = stdout.splitlines()
    for mapped in ('roi_head.bbox_head.cls_fcs.0 <- roi_head.bbox_head.shared_fcs.0',
                   'roi_head.bbox_head.reg_fcs.1 <- roi_head.bbox_head.shared_fcs.1',
                   'roi_head.bbox_head.fc_reg <- roi_head.bbox_head.fc_reg',
                   'roi_head.sibling_head.fc_cls <- roi_head.bbox_head.fc_cls'):
        assert f'  {mapped}' in lines
    assert 'left at init: roi_head.bbox_head.offset_fc, roi_head.bbox_head.delta_c_fc, ' \
        'roi_head.bbox_head.fc_delta_c, roi_head.bbox_head.delta_r_fc, ' \
        'roi_head.bbox_head.fc_delta_r' in lines
    assert 'dropped from the baseline: nothing' in lines
    assert any(line.startswith('copied as they are: backbone (') for line in lines)

    checkpoint = torch.load(out, weights_only=False)
    baseline = torch.load(baseline_checkpoint, weights_only=False)['state_dict']
    state_dict, meta = checkpoint['state_dict'], checkpoint['meta']
    assert meta['dataset_meta']['classes'] == gs.CLASSES
    assert meta['converted_from'] == str(baseline_checkpoint)
    assert len(meta['conversion']['head']) == 2 * 6 + 2 * 4
    assert torch.equal(state_dict['roi_head.bbox_head.reg_fcs.0.weight'],
                       baseline['roi_head.bbox_head.shared_fcs.0.weight'])
    assert torch.equal(state_dict['backbone.conv1.weight'], baseline['backbone.conv1.weight'])


def test_cli_refuses_a_head_that_does_not_fit(baseline_checkpoint, tmp_path):
    out = tmp_path / 'tsd-init.pth'
    # Two classes for TSD (num_classes follows metainfo.classes), six in the baseline.
    proc = _run(CONVERTER, TSD, str(baseline_checkpoint), str(out), '--cfg-options',
                'metainfo.classes=[disc,ring]')
    assert proc.returncode == 1
    message = proc.stderr.strip()
    assert f'{baseline_checkpoint} cannot be converted to {TSD}' in message
    assert 'num_classes: baseline 6 (fc_cls has 7 outputs), TSD 2' in message
    assert 'Traceback' not in message
    assert not out.exists()


def test_fine_tune_recipe_starts_from_the_converted_checkpoint(converted, tmp_path):
    cfg = Config.fromfile(FINE_TUNE)
    assert cfg.load_from.endswith('tsd-init.pth')
    assert cfg.train_cfg.max_iters == 200 and cfg.optim_wrapper.optimizer.lr == 2e-4
    assert cfg.model == Config.fromfile(TSD).model

    converted, _ = converted
    gs.generate_dataset(str(tmp_path / 'data'), num_train=4, num_val=2, min_image_size=96,
                        max_image_size=128, max_objects=3)
    work_dir = tmp_path / 'work'
    proc = _run(
        'tools/train.py', FINE_TUNE, '--work-dir', str(work_dir), '--cfg-options',
        f'load_from={converted}', f'data_root={tmp_path}/data/', 'train_cfg.max_iters=2',
        'train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False', 'default_hooks.logger.interval=1',
        'train_dataloader.dataset.pipeline.2.scale=(128,128)', 'val_cfg=None',
        'val_dataloader=None', 'val_evaluator=None', 'randomness.seed=0')
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert f'Load checkpoint from {converted}' in log
    assert 'do not match exactly' not in log and 'missing keys' not in log
    with open(next(work_dir.glob('*/vis_data/scalars.json'))) as f:
        rows = [json.loads(line) for line in f if 'loss' in line]
    assert [row['iter'] for row in rows] == [1, 2]
    assert all(row['loss_cls_tsd'] > 0 and row['loss_pc_cls'] >= 0 for row in rows)
    # 2 warm-up steps at lr <= 2e-4 * 0.1: the fine-tuned weights are still the converted ones.
    start = torch.load(converted, weights_only=False)['state_dict']
    end = torch.load(work_dir / 'iter_2.pth', weights_only=False)['state_dict']
    for key in ('backbone.conv1.weight', 'roi_head.bbox_head.cls_fcs.0.weight',
                'roi_head.sibling_head.fc_reg.weight'):
        assert (end[key] - start[key]).abs().max() < 1e-3, key
