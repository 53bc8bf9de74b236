"""The ablation that checks the method on the generated data: baseline, D_head, TSD, PC, variants.

Tables 1-4 of the paper in small (D_head, TSD and the PC terms of eq. 7-9 as rows): every row
trains the same iterations from the same config family (configs/shapes/), for several seeds, and
docs/results.md gets AP, AP50, AP75 (mean and spread), every run per seed and the paired per-seed
differences of the comparisons the paper makes.
Each finished run leaves metrics.json in its work dir and is skipped next time; an interrupted run
resumes from its last checkpoint, so re-running the command continues where it stopped. The table
is written from every finished run, so runs of several invocations (e.g. ``--variants`` subsets)
add up. Finished runs are also recorded in docs/ablation_runs.json (metrics, minutes, the commit
they ran at), which is committed: a later session on a machine without the work dirs skips them
too. Delete a row's entries there (or pass ``--record ''``) to run it again after a change.
tools/analysis_tools/ablation.py is the command line.
"""
import json
import os.path as osp
import statistics
import subprocess
import sys
import time

from scipy import stats  # mmdet depends on it

from .run_table import last_val_metrics

# The repository (an editable install's parent folder): training runs from there.
ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TRAIN_SCRIPT = 'tools/train.py'
BASELINE = 'configs/shapes/faster-rcnn_r18_fpn_shapes.py'
TSD = 'configs/shapes/tsd-faster-rcnn_r18_fpn_shapes.py'
NO_PC = ['model.roi_head.pc_cls=None', 'model.roi_head.pc_loc=None']
# D_head of Table 1: TSD's two task-specific branches, both fed by P itself (gamma 0 for both, so
# the derived proposals are P and the offset layers get no gradient).
D_HEAD = ['model.roi_head.bbox_head.gamma_cls=0.0', 'model.roi_head.bbox_head.gamma_reg=0.0']
DETACHED = ['model.roi_head.bbox_head.detach_reg_targets=True']


def margins(margin_cls: float, margin_reg: float) -> list[str]:
    """The --cfg-options that set PC's margins m_c (eq. 7) and m_r (eq. 8)."""
    return [f'model.roi_head.pc_cls.margin_cls={margin_cls}',
            f'model.roi_head.pc_loc.margin_reg={margin_reg}']


# name -> (config, --cfg-options); all TSD and D_head rows train the sibling head jointly (Table 2).
VARIANTS = {
    'baseline (sibling head)': (BASELINE, []),
    'D_head w/o PC': (TSD, D_HEAD + NO_PC),
    'D_head + PC': (TSD, D_HEAD),
    'TSD w/o PC': (TSD, NO_PC),
    'TSD + PC': (TSD, []),
    'TSD + PC, Prop.w cls': (TSD, ['model.roi_head.bbox_head.cls_manner=proposalwise']),
    # Table 3's single-term rows: one of the two PC losses
    'TSD + M_loc only': (TSD, ['model.roi_head.pc_cls=None']),
    'TSD + M_cls only': (TSD, ['model.roi_head.pc_loc=None']),
    # not the paper's nor the authors': M_cls averaged over positive RoIs only, as M_loc is
    'TSD + PC, M_cls on positives': (TSD, ['model.roi_head.pc_cls.foreground_only=True']),
    'TSD w/o PC, detached targets': (TSD, NO_PC + DETACHED),
    'TSD + PC, detached targets': (TSD, DETACHED),
    # Figure 4's margins (the default is Table 3's m_c = m_r = 0.2): the authors' released configs
    # (0.3 / 0.3), the paper's final models (§3.6: 0.5 / 0.2), and a smaller pair
    'TSD + PC, m_c 0.1 m_r 0.1': (TSD, margins(0.1, 0.1)),
    'TSD + PC, m_c 0.3 m_r 0.3': (TSD, margins(0.3, 0.3)),
    'TSD + PC, m_c 0.5 m_r 0.2': (TSD, margins(0.5, 0.2)),
}
# (row, row it is compared with): the paper's ordering (Table 1, 3) and the effect of each setting.
COMPARISONS = [
    ('D_head w/o PC', 'baseline (sibling head)'),
    ('TSD w/o PC', 'D_head w/o PC'),
    ('TSD + PC', 'TSD w/o PC'),
    ('TSD + PC', 'D_head + PC'),
    ('D_head + PC', 'D_head w/o PC'),
    ('TSD + PC', 'TSD + PC, Prop.w cls'),
    ('TSD + M_loc only', 'TSD w/o PC'),
    ('TSD + PC', 'TSD + M_loc only'),  # what M_cls adds on top of M_loc
    ('TSD + M_cls only', 'TSD w/o PC'),
    ('TSD + PC', 'TSD + M_cls only'),  # what M_loc adds on top of M_cls
    ('TSD + PC, M_cls on positives', 'TSD + PC'),
    ('TSD + PC, M_cls on positives', 'TSD w/o PC'),
    ('TSD w/o PC', 'TSD w/o PC, detached targets'),
    ('TSD + PC', 'TSD + PC, detached targets'),
    ('TSD + PC, m_c 0.1 m_r 0.1', 'TSD w/o PC'),
    ('TSD + PC, m_c 0.3 m_r 0.3', 'TSD w/o PC'),
    ('TSD + PC, m_c 0.5 m_r 0.2', 'TSD w/o PC'),
]
METRICS = ('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/bbox_mAP_75')
BASELINE_ROW = 'baseline (sibling head)'
RECORD = 'docs/ablation_runs.json'
NOTES_MARKER = ('<!-- notes below are kept when tools/analysis_tools/ablation.py rewrites the '
                'tables -->')


def slug(name: str) -> str:
    return ''.join(c if c.isalnum() else '-' for c in name.lower()).strip('-')


def read_val_metrics(work_dir: str) -> dict | None:
    """The COCO box metrics of the last validation mmengine logged in ``work_dir``, or None.

    The log is read by run_table's reader (:mod:`tsd_mmdet.utils.run_table`); a run whose last
    validation lacks one of ``METRICS`` has none to report here.
    """
    logged = last_val_metrics(work_dir)
    return {k: logged[k] for k in METRICS} if all(k in logged for k in METRICS) else None


def load_record(path: str | None) -> dict:
    """``{name: {seed: metrics}}`` from the committed record (empty if none)."""
    if not path or not osp.exists(path):
        return {}
    with open(path) as f:
        return {name: {int(seed): m for seed, m in runs.items()}
                for name, runs in json.load(f).items()}


def save_record(path: str, results: dict) -> None:
    """Merge ``results`` into the record at ``path`` (runs of other seeds are kept)."""
    record = load_record(path)
    for name, runs in results.items():
        record.setdefault(name, {}).update(runs)
    ordered = {name: {str(seed): record[name][seed] for seed in sorted(record[name])}
               for name in [*VARIANTS, *sorted(set(record) - set(VARIANTS))] if name in record}
    with open(path, 'w') as f:
        json.dump(ordered, f, indent=1, sort_keys=False)
        f.write('\n')


def _commit() -> str | None:
    """The checkout's commit (short hash), or None outside git."""
    try:
        with subprocess.Popen(['git', 'rev-parse', '--short', 'HEAD'], cwd=ROOT, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as proc:
            out = proc.communicate()[0].strip()
        return out if proc.returncode == 0 and out else None
    except OSError:
        return None


def run_one(name: str, seed: int, out_dir: str, extra: list[str],
            record: dict | None = None) -> dict:
    """Train and evaluate one row for one seed, unless it already finished (work dir or record)."""
    if record and seed in record.get(name, {}):
        return record[name][seed]
    config, options = VARIANTS[name]
    work_dir = osp.join(out_dir, slug(name), f'seed{seed}')
    metrics_file = osp.join(work_dir, 'metrics.json')
    if osp.exists(metrics_file):
        with open(metrics_file) as f:
            return json.load(f)
    cmd = [sys.executable, TRAIN_SCRIPT, config, '--work-dir', work_dir,
           '--cfg-options', f'randomness.seed={seed}', *options, *extra]
    if osp.exists(osp.join(work_dir, 'last_checkpoint')):
        cmd.append('--resume')
    print(f'\n==> {name}, seed {seed}\n$ {" ".join(cmd)}', flush=True)
    start = time.time()
    subprocess.run(cmd, cwd=ROOT, check=True)
    metrics = read_val_metrics(work_dir)
    if metrics is None:
        raise RuntimeError(f'no COCO metrics logged in {work_dir}: did validation run?')
    metrics['minutes'] = (time.time() - start) / 60
    metrics['commit'] = _commit()
    with open(metrics_file, 'w') as f:
        json.dump(metrics, f)
    return metrics


def finished_runs(out_dir: str, seeds: list[int], record: dict | None = None) -> dict:
    """Every finished run, in the record or on disk: ``{name: {seed: metrics}}`` for the rows and
    seeds asked (a work dir's metrics.json wins over the record)."""
    results: dict = {}
    for name in VARIANTS:
        for seed in seeds:
            if record and seed in record.get(name, {}):
                results.setdefault(name, {})[seed] = record[name][seed]
            path = osp.join(out_dir, slug(name), f'seed{seed}', 'metrics.json')
            if osp.exists(path):
                with open(path) as f:  # keeps what only the record has (e.g. the commit)
                    runs = results.setdefault(name, {})
                    runs[seed] = {**runs.get(seed, {}), **json.load(f)}
    return results


def _fmt_spread(values: list[float], sign: str = '') -> str:
    """'mean +- stdev' of ``values`` (one value alone, '-' if none); sign='+' signs the mean."""
    if not values:
        return '-'
    if len(values) == 1:
        return f'{values[0]:{sign}.1f}'
    return f'{statistics.mean(values):{sign}.1f} +- {statistics.stdev(values):.1f}'


def _interval(values: list[float], level: float = 0.95) -> str:
    """Student-t confidence interval of the mean of paired differences, '[lo, hi]' ('-' below
    two values). A comparison is clear when it excludes 0 (mean +- sd says less about the mean)."""
    if len(values) < 2:
        return '-'
    half = stats.t.ppf((1 + level) / 2, len(values) - 1) * statistics.stdev(values) / \
        len(values) ** 0.5
    mean = statistics.mean(values)
    return f'[{mean - half:+.1f}, {mean + half:+.1f}]'


def _mean(runs: dict, key: str) -> float | None:
    values = [100 * r[key] for r in runs.values() if key in r]
    return statistics.mean(values) if values else None


def paired_differences(results: dict, row: str, other: str) -> list[dict]:
    """Per seed both rows finished: ``row - other`` in AP points for each metric."""
    mine, theirs = results.get(row, {}), results.get(other, {})
    return [{'seed': seed, **{key: 100 * (mine[seed][key] - theirs[seed][key]) for key in METRICS}}
            for seed in sorted(set(mine) & set(theirs))]


def write_table(results: dict, seeds: list[int], path: str) -> str:
    """Write (and return) the markdown: mean +- spread per row, the gains over the baseline row,
    every run per seed, and the paired per-seed differences of :data:`COMPARISONS` (runs of one
    seed share the data order and the initial weights' seed, so these are the paired comparison).

    Args:
        results (dict): ``{name: {seed: metrics}}``, as :func:`finished_runs` returns.
        seeds (list[int]): Seeds of the per-seed table's columns.
        path (str): Markdown file; text below :data:`NOTES_MARKER` in it is kept.
    """
    base = results.get(BASELINE_ROW, {})
    lines = ['# Ablation on the generated shapes data', '',
             f'`python tools/analysis_tools/ablation.py --seeds {" ".join(map(str, seeds))}`: '
             'equal iterations '
             'per row (configs/shapes/), COCO AP on the validation split, mean +- standard '
             'deviation over seeds (n = runs finished); gains are differences of the means from '
             'the baseline row.', '',
             '| method | n | AP | AP50 | AP75 | gain AP | gain AP50 | gain AP75 | min / run |',
             '|---|---|---|---|---|---|---|---|---|']
    for name in VARIANTS:
        runs = results.get(name, {})
        cells = [_fmt_spread([100 * r[key] for r in runs.values()]) for key in METRICS]
        for key in METRICS:
            mine, theirs = _mean(runs, key), _mean(base, key)
            cells.append('-' if name == BASELINE_ROW or mine is None or theirs is None
                         else f'{mine - theirs:+.1f}')
        minutes = [r['minutes'] for r in runs.values() if 'minutes' in r]
        cells.append(f'{statistics.mean(minutes):.1f}' if minutes else '-')
        lines.append(f'| {name} | {len(runs)} | ' + ' | '.join(cells) + ' |')
    lines += ['', 'Per seed, AP / AP50 / AP75:', '',
              '| method | ' + ' | '.join(f'seed {seed}' for seed in seeds) + ' |',
              '|---|' + '---|' * len(seeds)]
    for name in VARIANTS:
        runs = results.get(name, {})
        cells = [' / '.join(f'{100 * runs[seed][key]:.1f}' for key in METRICS)
                 if seed in runs else '-' for seed in seeds]
        lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
    lines += ['', 'Paired differences (row minus compared row, same seed), AP / AP50 / AP75: '
              'mean +- standard deviation over the seeds both finished, the 95% confidence '
              'interval of the mean AP difference (Student t), and each seed.', '',
              '| row | compared with | n | AP | AP50 | AP75 | AP 95% CI | per seed (AP) |',
              '|---|---|---|---|---|---|---|---|']
    for row, other in COMPARISONS:
        diffs = paired_differences(results, row, other)
        if not diffs:
            continue
        cells = [_fmt_spread([d[key] for d in diffs], sign='+') for key in METRICS]
        per_seed = ', '.join(f'{d["seed"]}: {d[METRICS[0]]:+.1f}' for d in diffs)
        cells.append(_interval([d[METRICS[0]] for d in diffs]))
        lines.append(f'| {row} | {other} | {len(diffs)} | ' + ' | '.join(cells) +
                     f' | {per_seed} |')
    text = '\n'.join(lines) + '\n'
    try:  # hand-written notes below NOTES_MARKER survive a rewrite of the tables
        with open(path) as f:
            old = f.read()
        if NOTES_MARKER in old:
            text += '\n' + old[old.index(NOTES_MARKER):]
    except OSError:
        pass
    with open(path, 'w') as f:
        f.write(text)
    return text


def run(seeds: list[int], variants: list[str], work_dir: str, out: str,
        cfg_options: list[str] | None = None, record: str | None = RECORD,
        table_only: bool = False) -> None:
    """Train (unless finished) every row of ``variants`` for every seed, seeds outermost (an early
    stop still compares every row), and rewrite the table and the record after each run.

    Args:
        seeds: seeds to run.
        variants: rows of :data:`VARIANTS` to run.
        work_dir: where the runs' work dirs go.
        out: the markdown file (relative to the repository) the tables go to.
        cfg_options: extra ``--cfg-options`` for every run (e.g. ``data_root=...``); runs with
            overrides are not recorded.
        record: the record of finished runs, relative to the repository ('' or None: none).
        table_only: train nothing: rewrite the table (and the record) from finished runs.
    """
    cfg_options = cfg_options or []
    out_dir = osp.abspath(work_dir)
    record_path = osp.join(ROOT, record) if record and not cfg_options else None
    recorded = load_record(record_path)
    # The table covers the seeds asked and every seed in the record, so that a run of a few rows
    # or seeds rewrites the whole table rather than a slice of it.
    table_seeds = sorted(set(seeds).union(*(runs.keys() for runs in recorded.values())))

    def update() -> None:
        results = finished_runs(out_dir, table_seeds, recorded)
        if record_path:
            save_record(record_path, results)
        print(write_table(results, table_seeds, osp.join(ROOT, out)), flush=True)

    if table_only:
        update()
        return
    for seed in seeds:
        for name in variants:
            run_one(name, seed, out_dir, cfg_options, recorded)
            update()
