"""tsd_mmdet.utils.run_table and its command line on hand-made work dirs of known metrics, times."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tsd_mmdet.utils import run_table

SCRIPT = Path(__file__).resolve().parents[2] / 'tools' / 'analysis_tools' / 'run_table.py'


def _session(work_dir: Path, stamp: str, scalars: list[dict], log_times: list[str]) -> None:
    """One mmengine session: ``<stamp>/vis_data/scalars.json`` and ``<stamp>/<stamp>.log``."""
    (work_dir / stamp / 'vis_data').mkdir(parents=True)
    with open(work_dir / stamp / 'vis_data' / 'scalars.json', 'w') as f:
        f.writelines(json.dumps(row) + '\n' for row in scalars)
    with open(work_dir / stamp / f'{stamp}.log', 'w') as f:
        f.write('a line without a time stamp\n')
        f.writelines(f'{t} - mmengine - INFO - something\n' for t in log_times)


def test_metrics_and_minutes(tmp_path):
    mask = tmp_path / 'mask'
    _session(mask, '20261127_063000',
             [{'loss': 1.0, 'iter': 10},
              {'coco/bbox_mAP': 0.1, 'coco/segm_mAP': 0.05, 'step': 10},  # an earlier val
              {'loss': 0.5, 'iter': 20},
              {'coco/bbox_mAP': 0.3, 'coco/bbox_mAP_50': 0.5, 'coco/bbox_mAP_75': 0.25,
               'coco/segm_mAP': 0.2, 'step': 20}],
             ['2026/11/27 06:30:00', '2026/11/27 06:35:30', '2026/11/27 06:40:00'])
    faster = tmp_path / 'faster'
    _session(faster, '20261127_070000', [{'loss': 1.0, 'iter': 10}], ['2026/11/27 07:00:00'])
    _session(faster, '20261127_071000',  # resumed: the second session's minutes add up
             [{'coco/bbox_mAP': 0.4, 'coco/bbox_mAP_50': 0.6, 'coco/bbox_mAP_75': 0.35}],
             ['11/27 07:10:00', '11/27 07:13:00'])  # a console log: no year

    assert run_table.last_val_metrics(str(mask)) == {
        'coco/bbox_mAP': 0.3, 'coco/bbox_mAP_50': 0.5, 'coco/bbox_mAP_75': 0.25,
        'coco/segm_mAP': 0.2}
    assert run_table.run_minutes(str(mask)) == pytest.approx(10.0)
    assert run_table.run_minutes(str(faster)) == pytest.approx(3.0)

    lines = run_table.table([str(mask), str(faster)], ['Mask', 'Faster']).splitlines()
    assert lines[0] == '| run | box AP | AP50 | AP75 | mask AP | minutes |'
    assert lines[2] == '| Mask | 30.0 | 50.0 | 25.0 | 20.0 | 10.0 |'
    assert lines[3] == '| Faster | 40.0 | 60.0 | 35.0 | - | 3.0 |'


def test_openimages_columns_and_default_names(tmp_path):
    run = tmp_path / 'oi'
    _session(run, '20261127_080000', [{'openimages/mAP': 0.42, 'openimages/AP50': 0.42}],
             ['11/27 08:00:00', '11/27 08:06:00'])
    lines = run_table.table([str(run)]).splitlines()
    assert lines[0] == '| run | OI mAP | OI AP50 | minutes |'
    assert lines[2] == '| oi | 42.0 | 42.0 | 6.0 |'


def test_command_line(tmp_path):
    assert _cli(tmp_path / 'nope').returncode == 2  # answered before mmdet is loaded
    (tmp_path / 'empty').mkdir()
    done = _cli(tmp_path / 'empty', '--names', 'a', 'b')
    assert done.returncode == 2 and '2 names for 1 work dirs' in done.stderr
    done = _cli(tmp_path / 'empty')
    assert done.returncode == 0  # nothing logged yet: dashes
    assert done.stdout.splitlines()[-1] == '| empty | - |'


def _cli(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True,
                          text=True)


def test_mean_losses_over_the_last_fraction(tmp_path):
    run = tmp_path / 'tsd'
    rows = [{'loss': float(i), 'loss_cls': 10.0 * i, 'iter': 20 * i} for i in range(1, 9)]
    rows.insert(4, {'coco/bbox_mAP': 0.1, 'step': 80})  # a validation row: not a loss
    _session(run, '20261127_090000', rows[:6], ['11/27 09:00:00'])
    # resumed at iteration 100: iterations 120-160 follow, plus a loss only logged late
    _session(run, '20261127_091000', [*rows[6:], {'loss': 9.0, 'loss_pc_cls': 0.5, 'iter': 160}],
             ['11/27 09:10:00'])
    # last quarter of 160 iterations: rows with iter > 120, i.e. 140, 160 and the late 160
    assert run_table.mean_losses(str(run), 0.25) == pytest.approx(
        {'loss': (7 + 8 + 9) / 3, 'loss_cls': 75.0, 'loss_pc_cls': 0.5})
    assert run_table.mean_losses(str(run), 1.0)['loss_cls'] == pytest.approx(45.0)  # 10..80
    assert run_table.mean_losses(str(tmp_path), 0.5) == {}  # nothing logged

    lines = run_table.table([str(run)], losses=0.25).splitlines()
    assert lines[0] == '| run | box AP | loss | loss_cls | loss_pc_cls | minutes |'
    assert lines[2] == '| tsd | 10.0 | 8.000 | 75.000 | 0.500 | 0.0 |'
    with pytest.raises(ValueError, match=r'fraction in \(0, 1\]'):
        run_table.table([str(run)], losses=0)
