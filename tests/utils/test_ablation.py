"""tsd_mmdet.utils.ablation: metrics from mmengine logs, finished runs skipped, results table."""
import json
import os
import os.path as osp

import pytest

from tsd_mmdet.utils import ablation


def _fake_run(work_dir, ap):
    vis = osp.join(work_dir, '20260101_000000', 'vis_data')

    os.makedirs(vis)
    with open(osp.join(vis, 'scalars.json'), 'w') as f:
        f.write(json.dumps({'loss': 1.0, 'step': 10}) + '\n')
        f.write(json.dumps({'coco/bbox_mAP': ap, 'coco/bbox_mAP_50': ap + 0.2,
                            'coco/bbox_mAP_75': ap - 0.1, 'step': 20}) + '\n')


def test_read_val_metrics_takes_last_logged(tmp_path):
    assert ablation.read_val_metrics(str(tmp_path)) is None
    _fake_run(str(tmp_path), 0.3)
    assert ablation.read_val_metrics(str(tmp_path)) == pytest.approx(
        {'coco/bbox_mAP': 0.3, 'coco/bbox_mAP_50': 0.5, 'coco/bbox_mAP_75': 0.2})
    # a resumed run: the later session's validation wins; keys other than METRICS are dropped
    vis = tmp_path / '20260102_000000' / 'vis_data'
    vis.mkdir(parents=True)
    (vis / 'scalars.json').write_text(json.dumps(
        {'coco/bbox_mAP': 0.4, 'coco/bbox_mAP_50': 0.6, 'coco/bbox_mAP_75': 0.3,
         'coco/segm_mAP': 0.1, 'step': 30}) + '\n')
    assert ablation.read_val_metrics(str(tmp_path)) == pytest.approx(
        {'coco/bbox_mAP': 0.4, 'coco/bbox_mAP_50': 0.6, 'coco/bbox_mAP_75': 0.3})
    # its last validation logged no box AP50/75: nothing to report
    (vis / 'scalars.json').write_text(json.dumps({'coco/bbox_mAP': 0.4, 'step': 30}) + '\n')
    assert ablation.read_val_metrics(str(tmp_path)) is None


def test_recorded_runs_are_skipped(tmp_path, monkeypatch):
    monkeypatch.setattr(ablation.subprocess, 'run', lambda *a, **k: pytest.fail('trained again'))
    record = {'TSD + PC': {2: {'coco/bbox_mAP': 0.4, 'commit': 'abc1234'}}}
    assert ablation.run_one('TSD + PC', 2, str(tmp_path), [], record)['coco/bbox_mAP'] == 0.4


def test_finished_runs_are_skipped(tmp_path, monkeypatch):
    name = 'TSD + PC'
    work_dir = tmp_path / ablation.slug(name) / 'seed0'
    work_dir.mkdir(parents=True)
    (work_dir / 'metrics.json').write_text(json.dumps({'coco/bbox_mAP': 0.4}))
    monkeypatch.setattr(ablation.subprocess, 'run', lambda *a, **k: pytest.fail('trained again'))
    assert ablation.run_one(name, 0, str(tmp_path), []) == {'coco/bbox_mAP': 0.4}


def test_interrupted_run_resumes_and_records(tmp_path, monkeypatch):
    name = 'baseline (sibling head)'
    work_dir = tmp_path / ablation.slug(name) / 'seed1'
    work_dir.mkdir(parents=True)
    (work_dir / 'last_checkpoint').write_text('iter_100.pth')
    calls = []

    def fake_train(cmd, cwd, check):
        calls.append(cmd)
        _fake_run(str(work_dir), 0.25)

    monkeypatch.setattr(ablation.subprocess, 'run', fake_train)
    metrics = ablation.run_one(name, 1, str(tmp_path), ['data_root=/x/'])
    assert calls[0][-1] == '--resume' and 'randomness.seed=1' in calls[0]
    assert 'data_root=/x/' in calls[0]
    assert metrics['coco/bbox_mAP'] == pytest.approx(0.25)
    assert json.loads((work_dir / 'metrics.json').read_text())['coco/bbox_mAP_75'] == \
        pytest.approx(0.15)


def test_table_mean_spread_gains_and_seeds(tmp_path):
    runs = {seed: {'coco/bbox_mAP': a, 'coco/bbox_mAP_50': a, 'coco/bbox_mAP_75': a,
                   'minutes': 6.0} for seed, a in ((0, 0.30), (1, 0.34))}
    base = {0: {'coco/bbox_mAP': 0.31, 'coco/bbox_mAP_50': 0.30, 'coco/bbox_mAP_75': 0.25}}
    text = ablation.write_table({'TSD + PC': runs, 'TSD w/o PC': {1: runs[1]}}, [0, 1],
                                str(tmp_path / 'r.md'))
    assert '| TSD + PC | 2 | 32.0 +- 2.8 | 32.0 +- 2.8 | 32.0 +- 2.8 | - | - | - | 6.0 |' in text
    assert '| TSD w/o PC | 1 | 34.0 | 34.0 | 34.0 | - | - | - | 6.0 |' in text
    assert '| baseline (sibling head) | 0 | - | - | - | - | - | - | - |' in text
    # a row that finished seed 1 only sits in the seed-1 column
    assert '| TSD w/o PC | - | 34.0 / 34.0 / 34.0 |' in text
    text = ablation.write_table({'TSD + PC': runs, ablation.BASELINE_ROW: base}, [0, 1],
                                str(tmp_path / 'r.md'))
    assert '| TSD + PC | 2 | 32.0 +- 2.8 | 32.0 +- 2.8 | 32.0 +- 2.8 | +1.0 | +2.0 | +7.0 | 6.0 |' \
        in text
    assert '| baseline (sibling head) | 1 | 31.0 | 30.0 | 25.0 | - | - | - | - |' in text
    assert '| TSD + PC | 30.0 / 30.0 / 30.0 | 34.0 / 34.0 / 34.0 |' in text
    assert '| baseline (sibling head) | 31.0 / 30.0 / 25.0 | - |' in text
    assert (tmp_path / 'r.md').read_text() == text


def test_paired_differences_use_common_seeds(tmp_path):
    def run(ap):
        return {'coco/bbox_mAP': ap, 'coco/bbox_mAP_50': ap + 0.1, 'coco/bbox_mAP_75': ap}

    results = {'TSD + PC': {0: run(0.36), 1: run(0.35), 2: run(0.40)},
               'TSD w/o PC': {0: run(0.34), 1: run(0.34)}}
    diffs = ablation.paired_differences(results, 'TSD + PC', 'TSD w/o PC')
    assert [d['seed'] for d in diffs] == [0, 1]
    assert [d['coco/bbox_mAP'] for d in diffs] == pytest.approx([2.0, 1.0])
    text = ablation.write_table(results, [0, 1, 2], str(tmp_path / 'r.md'))
    # 95% CI: 1.5 +- t(0.975, 1 df) 12.706 * 0.707 / sqrt(2)
    assert ('| TSD + PC | TSD w/o PC | 2 | +1.5 +- 0.7 | +1.5 +- 0.7 | +1.5 +- 0.7 '
            '| [-4.9, +7.9] | 0: +2.0, 1: +1.0 |') in text
    assert '| D_head w/o PC | baseline (sibling head) |' not in text  # no common seed, no line
    results['TSD w/o PC'][2] = run(0.37)  # three seeds: +2, +1, +3; t(0.975, 2 df) = 4.303
    text = ablation.write_table(results, [0, 1, 2], str(tmp_path / 'r.md'))
    assert '| +2.0 +- 1.0 | [-0.5, +4.5] | 0: +2.0, 1: +1.0, 2: +3.0 |' in text


def test_table_gathers_every_finished_run_on_disk(tmp_path, monkeypatch):
    """Runs of an earlier invocation (other rows, other seeds) stay in the table."""
    for name, seed, ap in (('TSD + PC', 0, 0.4), ('TSD + PC', 1, 0.4), ('D_head w/o PC', 1, 0.3)):
        work_dir = tmp_path / 'runs' / ablation.slug(name) / f'seed{seed}'
        work_dir.mkdir(parents=True)
        (work_dir / 'metrics.json').write_text(json.dumps(
            {'coco/bbox_mAP': ap, 'coco/bbox_mAP_50': ap, 'coco/bbox_mAP_75': ap}))
    assert ablation.finished_runs(str(tmp_path / 'runs'), [0, 1]).keys() == \
        {'TSD + PC', 'D_head w/o PC'}
    assert ablation.finished_runs(str(tmp_path / 'runs'), [0]) == {
        'TSD + PC': {0: {'coco/bbox_mAP': 0.4, 'coco/bbox_mAP_50': 0.4, 'coco/bbox_mAP_75': 0.4}}}
    # only TSD + PC is asked for, and both its seeds are done: nothing trains
    monkeypatch.setattr(ablation.subprocess, 'run', lambda *a, **k: pytest.fail('trained again'))
    out = tmp_path / 'r.md'
    record = tmp_path / 'record.json'
    ablation.run([0, 1], ['TSD + PC'], str(tmp_path / 'runs'), str(out), record=str(record))
    text = out.read_text()
    assert '| D_head w/o PC | 1 | 30.0 |' in text and '| TSD + PC | 2 | 40.0 +- 0.0 |' in text
    assert json.loads(record.read_text())['D_head w/o PC'] == {
        '1': {'coco/bbox_mAP': 0.3, 'coco/bbox_mAP_50': 0.3, 'coco/bbox_mAP_75': 0.3}}

    # Another machine: no work dirs, only the committed record. Nothing trains, the table is
    # the same, and the record keeps seeds the invocation did not ask for.
    out.unlink()
    ablation.run([0, 1], ['TSD + PC'], str(tmp_path / 'elsewhere'), str(out), record=str(record))
    assert out.read_text() == text
    ablation.run([0], list(ablation.VARIANTS), str(tmp_path / 'elsewhere'), str(out),
                 record=str(record), table_only=True)
    assert set(json.loads(record.read_text())['TSD + PC']) == {'0', '1'}
    # ... and the table still has every recorded seed, not only the one asked for.
    assert out.read_text() == text
    # Without a record, only the seeds asked.
    ablation.run([0], list(ablation.VARIANTS), str(tmp_path / 'runs'), str(out), record='',
                 table_only=True)
    assert '| TSD + PC | 1 | 40.0 |' in out.read_text()


def test_notes_below_the_marker_are_kept(tmp_path):
    path = tmp_path / 'r.md'
    path.write_text(f'old table\n{ablation.NOTES_MARKER}\n## Why\nbecause\n')
    text = ablation.write_table({}, [0], str(path))
    assert 'old table' not in text
    assert text.endswith(f'{ablation.NOTES_MARKER}\n## Why\nbecause\n')
    assert text.startswith('# Ablation on the generated shapes data')
    assert ablation.write_table({}, [0], str(path)) == text  # stable on a second rewrite


def _option_config(name):
    """The config of row ``name`` with its --cfg-options merged as tools/train.py merges them."""
    import argparse

    from mmengine.config import Config, DictAction
    config, options = ablation.VARIANTS[name]
    cfg = Config.fromfile(osp.join(ablation.ROOT, config))
    for option in options:  # every option's parent key is in the config (no typo'd path); a
        node = cfg          # new leaf is a new keyword, which building the model then checks
        for key in option.split('=', 1)[0].split('.')[:-1]:
            assert key in node, f'{name}: {option} names no key of {config}'
            node = node[key]
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    cfg.merge_from_dict(parser.parse_args(['--cfg-options', *options]).cfg_options
                        if options else {})
    return cfg


@pytest.mark.parametrize('name', list(ablation.VARIANTS))
def test_every_row_builds_with_what_its_name_says(name):
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    import tsd_mmdet  # noqa: F401  registers the TSD modules
    register_all_modules()
    model = MODELS.build(_option_config(name).model)
    head = model.roi_head
    if name.startswith('baseline'):
        assert not hasattr(head, 'pc_cls')
        return
    pc = not ('w/o PC' in name or 'only' in name)
    assert (head.pc_cls is not None) == (pc or 'M_cls only' in name)
    assert (head.pc_loc is not None) == (pc or 'M_loc only' in name)
    assert (head.bbox_head.gamma_cls == 0) == name.startswith('D_head')
    assert (head.bbox_head.gamma_reg == 0) == name.startswith('D_head')
    if ' m_c ' in name:  # 'TSD + PC, m_c X m_r Y'
        margin_cls, margin_reg = (float(v) for v in name.split(' m_c ')[1].split(' m_r '))
        assert head.pc_cls.margin_cls == margin_cls and head.pc_loc.margin_reg == margin_reg
    elif head.pc_cls is not None:
        assert head.pc_cls.margin_cls == 0.2
    if head.pc_cls is not None:
        assert head.pc_cls.foreground_only == ('positives' in name)
    assert head.bbox_head.detach_reg_targets == ('detached' in name)
    assert head.bbox_head.cls_manner == ('proposalwise' if 'Prop.w cls' in name else 'pointwise')
