"""tools/train.py and tools/test.py on a tiny generated dataset: training, evaluation, and the data
checks TSDRunner runs before building the dataloaders (one line, no trace)."""
import json
import os.path as osp
import re

import pytest

pytest.importorskip('mmdet')
from mmengine.utils import get_installed_path  # noqa: E402

from tsd_mmdet.utils.config import load_config  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOLS = osp.join(ROOT, 'tools')
BASELINE = osp.join(ROOT, 'configs', 'shapes', 'faster-rcnn_r18_fpn_shapes.py')
TSD = osp.join(ROOT, 'configs', 'shapes', 'tsd-faster-rcnn_r18_fpn_shapes.py')
MMDET_TRAIN = osp.join(get_installed_path('mmdet'), '.mim', 'tools', 'train.py')
# A hook that makes one ground-truth box of the batch zero-wide at a given iteration: mmdet's own
# Faster R-CNN then computes a NaN box loss (its targets divide by the width).
INJECT = """
from mmengine.hooks import Hook
from mmdet.registry import HOOKS


@HOOKS.register_module()
class ZeroWidthBoxAt(Hook):
    def __init__(self, iteration):
        self.iteration = iteration

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter + 1 == self.iteration:
            boxes = data_batch['data_samples'][0].gt_instances.bboxes.tensor
            boxes[0, 2] = boxes[0, 0]
"""



# Shrinks the baseline to seconds: 2 iterations of 2 images at 128 px, no worker processes.
SMALL = [
    'train_cfg.max_iters=2', 'train_dataloader.batch_size=2', 'default_hooks.logger.interval=1',
    'model.test_cfg.rcnn.score_thr=0.0',
    'train_dataloader.dataset.pipeline.2.scale=(128,128)',
    'val_dataloader.dataset.pipeline.1.scale=(128,128)',
    'test_dataloader.dataset.pipeline.1.scale=(128,128)',
] + [f'{split}_dataloader.{key}' for split in ('train', 'val', 'test')
     for key in ('num_workers=0', 'persistent_workers=False')]


def _cfg(data_root, config=BASELINE, **overrides):
    return load_config(config, dict(data_root=str(data_root) + '/', **overrides))


def test_help(run_python):
    for tool, flags in (('train.py', ('--resume', '--amp', '--auto-scale-lr')),
                        ('test.py', ('--out', '--show-dir'))):
        out = run_python(osp.join(TOOLS, tool), '--help')
        assert out.returncode == 0, out.stderr
        for flag in ('--work-dir', '--cfg-options', '--launcher', *flags):
            assert flag in out.stdout


def test_train_then_test(tiny_data, tmp_path, run_python):
    work = tmp_path / 'work'
    common = ['--work-dir', str(work), '--cfg-options', f'data_root={tiny_data}', *SMALL]
    out = run_python(osp.join(TOOLS, 'train.py'), BASELINE, *common)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    log = out.stdout + out.stderr
    assert 'dataset check passed' in log
    assert re.search(r'Iter\(train\) \[2/2\].*eta', log)
    assert (work / 'iter_2.pth').is_file()
    assert (work / 'last_checkpoint').read_text().strip().endswith('iter_2.pth')
    assert 'coco/bbox_mAP_50' in log  # validation ran at the end of training

    preds = tmp_path / 'preds.pkl'
    out = run_python(osp.join(TOOLS, 'test.py'), BASELINE, str(work / 'iter_2.pth'),
                     '--out', str(preds), *common)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    log = out.stdout + out.stderr
    for key in ('bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_75', 'bbox_mAP_s'):
        value = float(re.search(rf'coco/{key}: ([\d.]+)', log).group(1))
        assert 0.0 <= value <= 1.0
    assert 'Average Precision  (AP) @[ IoU=0.50      | area=   all' in log
    assert preds.is_file()


def test_train_stops_on_bad_data_before_training(tmp_path, run_python):
    missing = tmp_path / 'nowhere'
    out = run_python(osp.join(TOOLS, 'train.py'), BASELINE, '--work-dir', str(tmp_path / 'work'),
                     '--cfg-options', f'data_root={missing}/', *SMALL, timeout=120)
    assert out.returncode != 0
    assert 'dataset error: annotation file' in out.stderr
    assert str(missing) in out.stderr
    assert '--cfg-options train_dataloader.dataset.data_root=' in out.stderr
    assert 'Traceback' not in out.stderr
    assert not (tmp_path / 'work').exists() or not list((tmp_path / 'work').rglob('*.pth'))


def _dumped_config(tmp_path, data_root, config=BASELINE, **extra):
    """The config with data_root and SMALL applied, dumped to a file: mmdet's own tools take
    ``--cfg-options`` without carrying data_root into the dataloaders, so they get it resolved."""
    dropped = [k for k, v in extra.items() if v is None]
    options = {k: _parse(v) for k, v in (o.split('=', 1) for o in SMALL)
               if not any(k.startswith(f'{d}.') for d in dropped)}
    options.update(data_root=str(data_root).rstrip('/') + '/', **extra)
    cfg = load_config(config, options)
    path = tmp_path / 'config.py'
    cfg.dump(str(path))
    return str(path)


def _parse(value):
    if not isinstance(value, str):
        return value
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    if value.startswith('('):
        return tuple(int(v) for v in value.strip('()').split(','))
    return {'False': False, 'True': True}.get(value, value)


def test_mmdet_train_stops_on_a_broken_annotation_file(tiny_data, copy_of, tmp_path, run_python):
    """mmdet's own tools/train.py on our config: TSDRunner (runner_type) checks the data before the
    dataset is built, so a broken json is one line, not a trace from inside pycocotools."""
    data = copy_of(tiny_data)
    (data / 'annotations' / 'instances_train.json').write_text('{"images": [')
    config = _dumped_config(tmp_path, data, TSD)
    out = run_python(MMDET_TRAIN, config, '--work-dir', str(tmp_path / 'work'), timeout=120)
    assert out.returncode != 0
    assert out.stderr.strip().splitlines()[-1].startswith('dataset error: annotation file')
    assert 'instances_train.json is not valid JSON' in out.stderr
    assert 'Traceback' not in out.stderr


def _finite_checkpoints(work):
    import torch
    found = {}
    for path in sorted(work.glob('*.pth')):
        state = torch.load(path, map_location='cpu', weights_only=False)['state_dict']
        found[path.name] = all(torch.isfinite(v).all() for v in state.values()
                               if v.is_floating_point())
    return found


def test_zero_width_training_box_is_dropped_with_a_warning(tiny_data, copy_of, tmp_path,
                                                           run_python):
    """Our tools/train.py (mmdet's runs the same TSDRunner check, as the test above shows)."""
    data = copy_of(tiny_data)
    path = data / 'annotations' / 'instances_train.json'
    coco = json.loads(path.read_text())
    coco['annotations'][0]['bbox'][2] = 0.0
    path.write_text(json.dumps(coco))
    work = tmp_path / 'work'
    out = run_python(osp.join(TOOLS, 'train.py'), TSD, '--work-dir', str(work), '--cfg-options',
                     f'data_root={data}/', *SMALL, 'val_cfg=None', 'val_dataloader=None',
                     'val_evaluator=None')
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    log = out.stdout + out.stderr
    image = coco['annotations'][0]['image_id']
    assert re.search(rf'1 training box narrower or lower than one pixel in \S*instances_train'
                     rf'\.json \(image {image} \(\d+\.jpg\)\): dropped by CocoDataset', log)
    assert _finite_checkpoints(work) == {'iter_2.pth': True}


def test_nonfinite_loss_stops_training_with_one_line_and_a_good_checkpoint(tiny_data, tmp_path,
                                                                           run_python):
    """mmdet's own tools/train.py and Faster R-CNN on a batch with a zero-width box: a NaN box loss
    at iteration 3. NonFiniteGuardHook stops before that step, names the iteration, the loss term
    and the images; iter_2.pth (saved before) stays the last checkpoint, finite, and --resume
    continues from it. (Our tools/train.py runs the same hook; tests/engine tests it in-process.)"""
    (tmp_path / 'inject_nan.py').write_text(INJECT)
    work = tmp_path / 'work'
    hooks = [dict(type='NonFiniteGuardHook'), dict(type='ZeroWidthBoxAt', iteration=3)]
    extra = {'train_cfg.max_iters': 4, 'default_hooks.checkpoint.interval': 2,
             'custom_imports.imports': ['tsd_mmdet', 'inject_nan'], 'custom_hooks': hooks,
             'val_cfg': None, 'val_dataloader': None, 'val_evaluator': None,
             'train_dataloader.dataset.pipeline.3.prob': 0.0}
    config = _dumped_config(tmp_path, tiny_data, **extra)
    out = run_python(MMDET_TRAIN, config, '--work-dir', str(work), pythonpath=[tmp_path])
    assert out.returncode == 1, out.stdout[-3000:] + out.stderr[-3000:]
    last = out.stderr.strip().splitlines()[-1]
    assert re.match(r'non-finite loss at iteration 3: loss_bbox=nan; images of the batch: '
                    r'\d+\.jpg, \d+\.jpg\. Stopped before the optimizer step', last), last
    assert 'the last checkpoint, ' in last and 'iter_2.pth, is good' in last
    assert 'Traceback' not in out.stderr
    assert _finite_checkpoints(work) == {'iter_2.pth': True}
    assert (work / 'last_checkpoint').read_text().strip().endswith('iter_2.pth')

    # The data fixed (no injection), --resume continues from iter_2.pth to the end.
    hooks = [dict(type='NonFiniteGuardHook')]
    config = _dumped_config(tmp_path, tiny_data, **dict(extra, custom_hooks=hooks))
    out = run_python(MMDET_TRAIN, config, '--work-dir', str(work), '--resume',
                     pythonpath=[tmp_path])
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert 'resumed' in (out.stdout + out.stderr).lower()
    assert _finite_checkpoints(work) == {'iter_2.pth': True, 'iter_4.pth': True}


def test_mmdet_train_stops_on_an_unreadable_checkpoint(tiny_data, tmp_path, run_python):
    """TSDRunner turns an unreadable ``load_from`` into one line under mmdet's own tools too."""
    bad = tmp_path / 'half.pth'
    bad.write_bytes(b'PK\x03\x04 half a checkpoint')
    config = _dumped_config(tmp_path, tiny_data, load_from=str(bad))
    out = run_python(MMDET_TRAIN, config, '--work-dir', str(tmp_path / 'work'), timeout=120)
    assert out.returncode == 1
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith(f'checkpoint error: cannot read checkpoint {bad}: '), last
    assert 'Traceback' not in out.stderr
