"""tools/setup_env.sh's choice of interpreter and constraint set (Python 3.10-3.12), via --check.

Not an equation of the paper. Fake interpreters answer the script's one version query, so the test
needs no second Python; the real install is what `make test` itself runs on.
"""
import os
import os.path as osp
import subprocess

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _fake_python(tmp_path, version):
    """A 'python' that prints MAJOR * 100 + MINOR, as the script asks it to."""
    path = tmp_path / f'python{version}'
    major, minor = version.split('.')
    path.write_text(f'#!/bin/sh\necho {int(major) * 100 + int(minor)}\n')
    path.chmod(0o755)
    return str(path)


def _check(tmp_path, python):
    env = dict(os.environ, TSD_PYTHON=python, TSD_VENV=str(tmp_path / 'venv'))
    return subprocess.run(['bash', osp.join(ROOT, 'tools', 'setup_env.sh'), '--check'], env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize('version, constraints', [
    ('3.10', 'requirements/constraints-py310.txt'),
    ('3.11', 'requirements/constraints.txt'),
    ('3.12', 'requirements/constraints.txt'),
])
def test_supported_pythons_pick_their_constraints(tmp_path, version, constraints):
    proc = _check(tmp_path, _fake_python(tmp_path, version))
    assert proc.returncode == 0, proc.stderr
    assert f'({version}), constraints: {constraints},' in proc.stdout
    assert osp.isfile(osp.join(ROOT, constraints))
    assert not (tmp_path / 'venv').exists()  # --check creates nothing


@pytest.mark.parametrize('version', ['3.9', '3.13'])
def test_other_pythons_are_refused_with_what_to_do(tmp_path, version):
    proc = _check(tmp_path, _fake_python(tmp_path, version))
    assert proc.returncode != 0
    assert f'is Python {version}; tsd-mmdet\'s stack supports 3.10-3.12' in proc.stderr
    assert 'TSD_PYTHON' in proc.stderr


def test_missing_interpreter(tmp_path):
    proc = _check(tmp_path, str(tmp_path / 'no-such-python'))
    assert proc.returncode != 0 and 'not found' in proc.stderr


def test_py310_constraints_pin_the_same_stack():
    """3.10 differs only where a package dropped 3.10; torch, mmengine, mmdet, mmcv are the same."""
    def pins(name):
        with open(osp.join(ROOT, 'requirements', name)) as f:
            return dict(line.strip().split('==') for line in f if '==' in line)

    main, py310 = pins('constraints.txt'), pins('constraints-py310.txt')
    for package in ('torch', 'torchvision', 'mmengine', 'mmdet', 'mmcv', 'pycocotools'):
        assert main[package] == py310[package], package
