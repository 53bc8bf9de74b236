"""Tests of tools/benchmark_op.py and tools/mmcv_deform_roi_pool.py, the op's benchmark (eq. 3-6).

The benchmark's table, goals and summary line on CPU; mmcv's source lookup (the build needs CUDA).
"""
import io
import sys
import tarfile

import pytest
from tool_loader import TOOLS, load_tool

sys.path.insert(0, str(TOOLS))  # benchmark_op imports mmcv_deform_roi_pool by bare name
benchmark_op = load_tool('benchmark_op.py')
mmcv_op = load_tool('mmcv_deform_roi_pool.py')

KERNEL = 'mmcv/ops/csrc/pytorch/cuda/deform_roi_pool_cuda.cu'


def test_benchmark_writes_table_and_summary(tmp_path, monkeypatch, capsys):
    # A small map keeps it quick; the table and the summary are what is checked, not times.
    monkeypatch.setitem(benchmark_op.CASES, 'realistic', (1, 8, 20, 30, 16))
    table = tmp_path / 'op.md'
    monkeypatch.setattr(sys, 'argv', [
        'benchmark_op.py', '--cases', 'realistic', '--repeats', '1', '--warmup', '0',
        '--reference-repeats', '1', '--markdown', str(table)])
    benchmark_op.main()
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


def test_mmcv_op_is_skipped_without_cuda(monkeypatch):
    class Args:
        device = 'cpu'
        mmcv_src = None
    assert benchmark_op.mmcv_pool(Args()) == (None, 'CUDA only')
