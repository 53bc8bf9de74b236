"""The README's install path into an existing mmdet environment: ``pip install -v
--no-build-isolation -e .``, then the plugin, its registry entries and its compiled op load there.

Not an equation of the paper. The "existing environment" is a fresh venv that sees this suite's
packages (torch, mmcv, mmengine, mmdet) through a .pth file, as a user's conda or venv would have
them; the package is installed from a copy of the source tree, so the build does not touch ours.
"""
import os
import os.path as osp
import shutil
import subprocess
import sys
import sysconfig

import pytest

pytest.importorskip('mmdet')

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CHECK = """
import tsd_mmdet, tsd_mmdet.ops as ops
from mmdet.registry import MODELS
assert tsd_mmdet.__file__.startswith({src!r}), tsd_mmdet.__file__
assert ops.has_extension(), 'compiled op not loaded'
for name in ('TSDRoIHead', 'TSDCascadeRoIHead', 'TSDBBoxHead', 'TSDRoIExtractor'):
    assert MODELS.get(name) is not None, name
import torch
x = torch.randn(1, 2, 8, 8)
rois = torch.tensor([[0., 1., 1., 6., 6.]])
out = ops.deform_roi_align(x, rois, torch.zeros(1, 2), output_size=2, spatial_scale=1.0)
print('ok', tuple(out.shape))
"""


@pytest.mark.slow
def test_editable_install_into_an_existing_environment(tmp_path):
    src = tmp_path / 'src'
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        '.venv', '.git', 'build', 'data', 'work_dirs', '*.so', '*.egg-info', '__pycache__',
        '.pytest_cache', '.hypothesis', '.ruff_cache'))
    env_dir = tmp_path / 'env'
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(env_dir)], check=True)
    env_python = str(env_dir / 'bin' / 'python')
    env_site = subprocess.run(
        [env_python, '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
        check=True, capture_output=True, text=True).stdout.strip()
    with open(osp.join(env_site, 'existing_mmdet_env.pth'), 'w') as f:
        f.write(sysconfig.get_paths()['purelib'] + '\n')
    env = dict(os.environ, MAX_JOBS='2')
    env.pop('PYTHONPATH', None)
    proc = subprocess.run(
        [sys.executable, '-m', 'pip', '--python', env_python, 'install', '-v',
         '--disable-pip-version-check', '--no-build-isolation', '-e', str(src)],
        cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    proc = subprocess.run([env_python, '-c', CHECK.format(src=str(src))], cwd=str(tmp_path),
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == 'ok (1, 2, 2, 2)'
