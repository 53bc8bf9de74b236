"""tools/train.py on bad OpenImages V6 data: one line before training (TSDRunner's checks)."""
import csv
import os.path as osp

import pytest

pytest.importorskip('mmdet')

from tsd_mmdet.datasets import shapes as gs  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOLS = osp.join(ROOT, 'tools')
CONFIG = osp.join(ROOT, 'configs', 'shapes', 'tsd-faster-rcnn_r18_fpn_cas_shapes-openimages.py')
FILES = gs.OPENIMAGES_FILES


@pytest.fixture
def data(tiny_openimages, copy_of):
    """A copy to break (tiny_openimages, copy_of: tests/conftest.py)."""
    return copy_of(tiny_openimages)


def _rows(path):
    with open(path, newline='') as f:
        return list(csv.reader(f))


def _write_rows(path, rows):
    with open(path, 'w', newline='') as f:
        csv.writer(f, lineterminator='\n').writerows(rows)


def test_train_stops_on_bad_openimages_data_before_training(data, tmp_path, run_python):
    path = data / FILES['train_ann_file']
    rows = _rows(path)
    rows[1][5] = '1.5'
    _write_rows(path, rows)
    out = run_python(osp.join(TOOLS, 'train.py'), CONFIG, '--work-dir', str(tmp_path / 'w'),
                     '--cfg-options', f'data_root={data}/', timeout=120)
    assert out.returncode != 0
    assert 'dataset error: line 2 of' in out.stderr and 'is not inside [0, 1]' in out.stderr
    assert 'Traceback' not in out.stderr
    assert not list((tmp_path / 'w').rglob('*.pth'))
