"""tsd_mmdet.ops.benchmark and tsd_mmdet.ops.mmcv_deform_roi_pool, the op's benchmark (eq. 3-6).

The benchmark's table, goals and summary line on CPU; mmcv's source lookup (the build needs CUDA);
the command line's arguments are the settings' fields.
"""
import io
import subprocess
import sys
import tarfile
from dataclasses import fields
from pathlib import Path

import pytest

from tsd_mmdet.ops import benchmark as benchmark_op
from tsd_mmdet.ops import mmcv_deform_roi_pool as mmcv_op

TOOL = Path(__file__).resolve().parents[2] / 'tools' / 'analysis_tools' / 'benchmark_op.py'

KERNEL = 'mmcv/ops/csrc/pytorch/cuda/deform_roi_pool_cuda.cu'


def test_benchmark_writes_table_and_summary(tmp_path, monkeypatch, capsys):
    # A small map keeps it quick; the table and the summary are what is checked, not times.
    monkeypatch.setitem(benchmark_op.CASES, 'realistic', (1, 8, 20, 30, 16))
    table = tmp_path / 'op.md'
    settings = benchmark_op.OpBenchSettings(cases=('realistic',), repeats=1, warmup=0,
                                            reference_repeats=1)
    summary = benchmark_op.run(settings, str(table))
    assert [(case, offset) for case, offset, _ in summary] == [
        ('realistic', 'none'), ('realistic', 'prop'), ('realistic', 'point')]
    out = capsys.readouterr().out
    assert 'mmcv DeformRoIPool: not compared: CUDA only' in out
    assert out.strip().splitlines()[-1].startswith('BENCH: ')
    rows = [line for line in table.read_text().splitlines() if line.startswith('| realistic')]
    ops = [row.split(' | ')[3] for row in rows]
    assert ops == ['tsd deform_roi_align', 'torchvision roi_align', 'reference (PyTorch)'] * 3
    # The last column is each op's time over torchvision's for that offset.
    assert [row.split(' | ')[-1] for row in rows][1::3] == ['1.00 |'] * 3


def test_goals():
    assert benchmark_op.goal('none', 'cuda') == 1.5
    assert benchmark_op.goal('prop', 'cuda') == benchmark_op.goal('point', 'cuda') == 2.0
    assert benchmark_op.goal('point', 'cpu') == 1.5


def test_mmcv_source_from_folder_and_release(tmp_path):
    root = tmp_path / 'mmcv-2.1.0'
    (root / KERNEL).parent.mkdir(parents=True)
    (root / KERNEL).write_text('// kernel')
    assert mmcv_op.find_source(str(root), None) == str(root)
    assert mmcv_op.find_source(str(tmp_path), None) == str(root)  # the release's top folder
    release = tmp_path / 'mmcv-2.1.0.tar.gz'
    with tarfile.open(release, 'w:gz') as tar:
        tar.add(root, arcname='mmcv-2.1.0')
        setup = b'setup()'
        info = tarfile.TarInfo('mmcv-2.1.0/setup.py')
        info.size = len(setup)
        tar.addfile(info, io.BytesIO(setup))
    unpacked = tmp_path / 'build' / 'mmcv-src'
    found = mmcv_op.find_source(str(release), str(unpacked))
    assert found == str(unpacked / 'mmcv-2.1.0') and open(f'{found}/{KERNEL}').read() == '// kernel'
    assert mmcv_op.find_source(str(release), str(unpacked)) == found  # a rebuild unpacks in place


def test_mmcv_source_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='no mmcv/ops/csrc'):
        mmcv_op.find_source(str(tmp_path), None)
    not_a_release = tmp_path / 'notes.txt'
    not_a_release.write_text('x')
    with pytest.raises(FileNotFoundError, match='neither a folder nor a source release'):
        mmcv_op.find_source(str(not_a_release), None)


def test_mmcv_op_is_skipped_without_cuda():
    assert benchmark_op.mmcv_pool(benchmark_op.OpBenchSettings()) == (None, 'CUDA only')


def test_command_line_takes_every_setting():
    """tools/analysis_tools/benchmark_op.py: one flag per OpBenchSettings field (and --markdown)."""
    done = subprocess.run([sys.executable, str(TOOL), '--help'], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for field in fields(benchmark_op.OpBenchSettings):
        assert f'--{field.name.replace("_", "-")}' in done.stdout, field.name
    assert '--markdown' in done.stdout
