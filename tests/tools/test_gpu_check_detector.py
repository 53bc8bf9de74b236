"""tools/misc/gpu_check_detector.py, the detector part of the GPU check, dry-run on the CPU so that
the first GPU run does not fail on a typo (not an equation of the paper): the real script at tiny
sizes, and its verdict on a failing part with the parts faked."""
import importlib.util
import json
import os.path as osp

import pytest

pytest.importorskip('mmdet')

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCRIPT = osp.join(ROOT, 'tools', 'misc', 'gpu_check_detector.py')


def test_dry_run_on_cpu(tmp_path, run_python):
    log = run_python(SCRIPT, '--device', 'cpu', '--dry-run', '--runs', '2', '--out',
                     str(tmp_path), timeout=600, ok=True)
    summary = [line for line in log.splitlines() if line.startswith('DETECTOR ')]
    assert len(summary) == 1 and summary[0].startswith('DETECTOR PASS: CPU'), log[-3000:]
    results = json.loads((tmp_path / 'detector.json').read_text())
    for name in ('baseline', 'tsd'):
        for amp in (False, True):
            run = results[f'train {name} amp={amp}']
            assert run['finite'] and run['iters'] == 3 and run['median_s'] > 0
    assert {'loss_pc_cls', 'loss_pc_loc', 'loss_cls_tsd', 'loss_bbox_tsd'} <= set(
        results['train tsd amp=False']['tsd_losses'])
    assert not results['train baseline amp=False']['tsd_losses']
    assert results['train mask step']['finite'] and 'loss_mask' in results['train mask step'][
        'last_losses']
    assert results['train cascade step']['finite']
    assert any(k.startswith('s2.') for k in results['train cascade step']['last_losses'])
    for fp16 in (False, True):
        assert results[f'latency fp16={fp16}']['ratio'] > 0
    table = (tmp_path / 'detector.md').read_text()
    assert table.count('| training iteration |') == 2 and table.count('| inference |') == 2
    assert (tmp_path / 'detector_summary.txt').read_text().strip() == summary[0]


@pytest.fixture
def script():
    spec = importlib.util.spec_from_file_location('gpu_check_detector', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_nonfinite_loss_or_a_crash_fails_the_check(script, tmp_path, monkeypatch):
    def train(config, args, amp, iters, masks=False):
        if 'cascade' in config:
            raise RuntimeError('CUDA error: an illegal memory access')
        finite = not (amp and 'tsd-faster' in config)  # TSD under AMP diverges
        return dict(config=config, amp=amp, iters=iters, median_s=0.5, peak_gib=1.0,
                    nonfinite=[] if finite else ['loss_pc_loc@7'], finite=finite,
                    last_losses={}, tsd_losses=[])

    monkeypatch.setattr(script, 'train', train)
    monkeypatch.setattr(script, 'latency', lambda args, fp16: dict(
        fp16=fp16, baseline_ms=10.0, tsd_ms=11.0, ratio=1.1, runs=1))
    assert script.main(['--device', 'cpu', '--dry-run', '--out', str(tmp_path)]) == 1
    line = (tmp_path / 'detector_summary.txt').read_text()
    assert line.startswith('DETECTOR FAIL') and 'mask/cascade step FAILED' in line
    assert 'failed: train cascade step, train tsd amp=True' in line
    table = (tmp_path / 'detector.md').read_text()
    assert 'FAILED: RuntimeError: CUDA error' in table and '| 1.100 (paper 1.097)' in table
