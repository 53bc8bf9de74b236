"""Fixtures shared across tests/: the tiny generated datasets (COCO shapes and its OpenImages copy),
copies of them for a test to break, running a tool as a user does, and a free port.
Not an equation of the paper: test set-up only. Also how `make test` splits the suite over workers.
"""
import os
import os.path as osp
import shutil
import socket
import subprocess
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

# `make test` runs one pytest-xdist worker per core (-n auto): each worker, and every tool it starts
# as a subprocess, computes on one thread, so the workers share the cores instead of contending for
# them. Set before torch is imported (the environment is read then) and inherited by subprocesses.
if os.environ.get('PYTEST_XDIST_WORKER'):
    os.environ['OMP_NUM_THREADS'] = '1'


def pytest_collection_modifyitems(config, items):
    """Groups for `--dist loadgroup`: a module's tests run on one worker (its module-scoped
    fixtures, such as a trained tiny model, are made once), and every module that uses the
    session's exported detectors (tests/deployment/conftest.py ``exported``) shares one worker,
    so each detector is exported once. Without xdist the marks do nothing."""
    def module(item):
        return item.nodeid.split('::')[0]

    exporting = {module(item) for item in items if 'exported' in getattr(item, 'fixturenames', ())}
    for item in items:
        name = module(item)
        item.add_marker(pytest.mark.xdist_group('exported' if name in exporting else name))


@pytest.fixture(scope='module')
def tiny_data(tmp_path_factory):
    """Root (with the trailing slash) of a COCO shapes dataset: 8 train and 4 val images."""
    from tsd_mmdet.datasets import shapes  # here: tests/ops runs where only torch is installed
    root = tmp_path_factory.mktemp('shapes')
    shapes.generate_dataset(str(root), num_train=8, num_val=4, min_image_size=64,
                            max_image_size=128, max_objects=4)
    return str(root) + '/'


@pytest.fixture(scope='module')
def tiny_openimages(tmp_path_factory):
    """Root of the OpenImages copy of a COCO shapes dataset of 6 train and 3 val images."""
    from tsd_mmdet.datasets import shapes
    coco = tmp_path_factory.mktemp('shapes')
    root = tmp_path_factory.mktemp('shapes_openimages')
    shapes.generate_dataset(str(coco), num_train=6, num_val=3, min_image_size=64,
                            max_image_size=128, max_objects=4)
    shapes.generate_openimages(str(root), str(coco))
    return root


@pytest.fixture
def copy_of(tmp_path):
    """Factory: ``copy_of(root)`` -> a copy of that dataset at ``tmp_path / 'data'``, to break."""
    def copy(root):
        dst = tmp_path / 'data'
        shutil.copytree(root, dst)
        return dst

    return copy


@pytest.fixture(scope='session')
def run_python():
    """Factory: ``run_python(*args, timeout=300, pythonpath=(), ok=False)`` runs ``python *args``
    as a user runs a tool: from the repository root, the package (and ``pythonpath``) importable,
    output captured as text. Returns the ``CompletedProcess``; with ``ok=True`` it asserts a zero
    exit status (showing the output's end otherwise) and returns stdout + stderr."""
    def run(*args, timeout=300, pythonpath=(), ok=False):
        path = os.pathsep.join(filter(None, [ROOT, *map(str, pythonpath),
                                             os.getenv('PYTHONPATH')]))
        out = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                             env=dict(os.environ, PYTHONPATH=path), timeout=timeout)
        if not ok:
            return out
        log = out.stdout + out.stderr
        assert out.returncode == 0, log[-5000:]
        return log

    return run


@pytest.fixture(scope='session')
def free_port():
    """Factory: ``free_port()`` -> a TCP port on 127.0.0.1 free at the time of the call."""
    def port():
        with socket.socket() as s:
            s.bind(('127.0.0.1', 0))
            return s.getsockname()[1]

    return port
