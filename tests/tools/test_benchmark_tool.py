"""tools/analysis_tools/benchmark.py: the tables of its three tasks for the shapes pair."""
import re
import subprocess
import sys
from pathlib import Path

from mmdet.registry import MODELS
from mmengine.config import Config

from tsd_mmdet.utils import benchmark

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / 'tools'
SHAPES = ROOT / 'configs' / 'shapes'
TOOL = TOOLS / 'analysis_tools' / 'benchmark.py'


def _parameters(config, inference=False):
    model_cfg = Config.fromfile(str(config)).model
    if inference:
        model_cfg = benchmark.inference_model_cfg(model_cfg)
    return benchmark.count_parameters(MODELS.build(model_cfg))


def test_inference_table():
    tsd = SHAPES / 'tsd-faster-rcnn_r18_fpn_shapes.py'
    out = subprocess.run(
        [sys.executable, str(TOOL), str(tsd), '--size', '64', '96',
         '--num-images', '2', '--warmup', '1', '--threads', '1'],
        capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert 'random 64x96 images' in out
    rows = [line.split('|')[1:-1] for line in out.splitlines() if line.startswith('| configs')]
    assert [row[0].strip() for row in rows] == [
        'configs/shapes/faster-rcnn_r18_fpn_shapes.py',
        'configs/shapes/tsd-faster-rcnn_r18_fpn_shapes.py']
    (_, base_params, base_ms, no_ratio), (_, tsd_params, tsd_ms, ratio) = rows
    # Inference parameters: the TSD model without its sibling head.
    assert float(base_params) == round(_parameters(SHAPES / 'faster-rcnn_r18_fpn_shapes.py') / 1e6,
                                       2)
    assert float(tsd_params) == round(_parameters(tsd, inference=True) / 1e6, 2)
    assert _parameters(tsd, inference=True) < _parameters(tsd)
    medians = [float(re.match(r'\s*(\d+) \[', ms).group(1)) for ms in (base_ms, tsd_ms)]
    assert not no_ratio.strip() and abs(float(ratio) - medians[1] / medians[0]) < 0.2


def test_params_and_train_tables():
    tsd = SHAPES / 'tsd-faster-rcnn_r18_fpn_shapes.py'
    base = SHAPES / 'faster-rcnn_r18_fpn_shapes.py'
    out = subprocess.run([sys.executable, str(TOOL), str(base), str(tsd), '--pairs', '--task',
                          'params'], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    rows = [line.split('|')[1:-1] for line in out.splitlines() if line.startswith('| configs')]
    assert [[c.strip() for c in row] for row in rows] == [
        ['configs/shapes/faster-rcnn_r18_fpn_shapes.py',
         f'{_parameters(base) / 1e6:.2f}', f'{_parameters(base) / 1e6:.2f}'],
        ['configs/shapes/tsd-faster-rcnn_r18_fpn_shapes.py',
         f'{_parameters(tsd, inference=True) / 1e6:.2f}', f'{_parameters(tsd) / 1e6:.2f}']]
    out = subprocess.run([sys.executable, str(TOOL), str(tsd), '--task', 'train', '--size', '64',
                          '96', '--repeat', '1', '--threads', '1'],
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout
    lines = out.splitlines()
    assert lines[0].startswith('input 64x96, batch 1, 1 thread(s), 1 interleaved runs')
    assert lines[1].startswith('baseline ') and 'train_step' in lines[1] and 'predict' in lines[1]
    assert lines[2].startswith('tsd ') and lines[2].endswith('tsd-faster-rcnn_r18_fpn_shapes.py')
    for line, step in zip(lines[3:5], ('train_step', 'predict')):
        assert re.fullmatch(rf'tsd / baseline {step} \(min\): \d+\.\d\dx', line)
