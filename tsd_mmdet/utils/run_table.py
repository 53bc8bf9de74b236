"""A markdown table of finished training runs: last validation metrics and minutes per run.

Not an equation of the paper: it reads what mmengine logged (``<work_dir>/<timestamp>/vis_data/
scalars.json`` and ``<timestamp>.log``) so that docs/results.md's per-family and fine-tune tables
come from a command, not from copying numbers by hand.

tools/analysis_tools/run_table.py is its command line.

Metrics are shown in AP points (x 100). ``minutes`` is the wall time from the first to the last
line of the run's logs (all timestamps of a resumed run together: the sum of its sessions).
``--losses F`` adds the mean of each logged training loss over the last fraction F of the
iterations (e.g. 0.25: iterations 1201-1600 of a 1600-iteration run), the per-branch losses that
docs/results.md compares.
"""
import glob
import json
import os.path as osp
from datetime import datetime

# metric key -> column title, in table order; a column appears when any run logged its key
COLUMNS = {
    'coco/bbox_mAP': 'box AP',
    'coco/bbox_mAP_50': 'AP50',
    'coco/bbox_mAP_75': 'AP75',
    'coco/segm_mAP': 'mask AP',
    'coco/segm_mAP_50': 'mask AP50',
    'coco/segm_mAP_75': 'mask AP75',
    'openimages/mAP': 'OI mAP',
    'openimages/AP50': 'OI AP50',
}


# mmengine's log file writes the year; its console (and a copied console log) does not
_TIME_FORMATS = (('%Y/%m/%d %H:%M:%S', 19), ('%m/%d %H:%M:%S', 14))


def last_val_metrics(work_dir: str) -> dict:
    """The last logged row holding any metric of ``COLUMNS`` (later sessions win), or {}."""
    found: dict = {}
    for row in _logged_rows(work_dir):
        metrics = {k: v for k, v in row.items() if k in COLUMNS}
        if metrics:
            found = metrics
    return found


def _logged_rows(work_dir: str):
    """Every row mmengine logged in ``work_dir``, session by session (later sessions last)."""
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            yield from (json.loads(line) for line in f)


def mean_losses(work_dir: str, fraction: float) -> dict:
    """Mean of each ``loss*`` key over the training rows of the last ``fraction`` of iterations.

    A resumed run logs some iterations twice; each logged row counts once per session.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f'the loss window is a fraction in (0, 1], got {fraction}')
    rows = [r for r in _logged_rows(work_dir) if 'iter' in r and 'loss' in r]
    if not rows:
        return {}
    first = max(r['iter'] for r in rows) * (1 - fraction)
    window = [r for r in rows if r['iter'] > first]
    keys = dict.fromkeys(k for r in window for k in r if k.startswith('loss'))
    return {k: sum(r[k] for r in window if k in r) / sum(k in r for r in window) for k in keys}


def _session_seconds(log_path: str) -> float:
    """Seconds between the first and last timestamped line of one mmengine log."""
    stamps = []
    with open(log_path, errors='replace') as f:
        for line in f:
            for time_format, width in _TIME_FORMATS:
                try:
                    stamps.append(datetime.strptime(line[:width], time_format))
                    break
                except ValueError:
                    continue
    if len(stamps) < 2:
        return 0.0
    seconds = (stamps[-1] - stamps[0]).total_seconds()
    return seconds if seconds >= 0 else seconds + 365 * 86400  # yearless stamps across a new year


def run_minutes(work_dir: str) -> float | None:
    """Minutes the run's sessions took together, or None without logs."""
    logs = glob.glob(osp.join(work_dir, '*', '*.log'))
    if not logs:
        return None
    return sum(_session_seconds(p) for p in logs) / 60


def table(work_dirs: list[str], names: list[str] | None = None,
          losses: float | None = None) -> str:
    """The markdown table for ``work_dirs`` (rows in the given order); with ``losses``, the mean
    training losses over that last fraction of iterations too (see :func:`mean_losses`)."""
    names = names or [osp.basename(osp.normpath(d)) for d in work_dirs]
    if len(names) != len(work_dirs):
        raise ValueError(f'{len(names)} names for {len(work_dirs)} work dirs')
    rows = [(name, last_val_metrics(d), run_minutes(d),
             {} if losses is None else mean_losses(d, losses))
            for name, d in zip(names, work_dirs)]
    keys = [k for k in COLUMNS if any(k in metrics for _, metrics, _, _ in rows)]
    loss_keys = list(dict.fromkeys(k for *_, mean in rows for k in mean))
    lines = ['| run | ' + ' | '.join([*(COLUMNS[k] for k in keys), *loss_keys]) + ' | minutes |',
             '|---|' + '---|' * (len(keys) + len(loss_keys) + 1)]
    for name, metrics, minutes, mean in rows:
        cells = [f'{100 * metrics[k]:.1f}' if k in metrics else '-' for k in keys]
        cells += [f'{mean[k]:.3f}' if k in mean else '-' for k in loss_keys]
        cells.append('-' if minutes is None else f'{minutes:.1f}')
        lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)
