"""tools/dataset_converters/generate_shapes.py: the command line of the shapes generator."""
import json
import os.path as osp
import subprocess
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCRIPT = osp.join(ROOT, 'tools', 'dataset_converters', 'generate_shapes.py')


def test_cli(tmp_path):
    out = subprocess.run([sys.executable, SCRIPT, '--help'], capture_output=True, text=True)
    assert out.returncode == 0 and '--num-train' in out.stdout and '--root' in out.stdout
    cmd = [sys.executable, SCRIPT, '--root', str(tmp_path), '--num-train', '2', '--num-val', '1']
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert 'train: {"images": 2' in out.stdout
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert 'up to date' in out.stdout


def test_cli_openimages(tmp_path):
    cmd = [sys.executable, SCRIPT, '--root', str(tmp_path / 'coco'), '--num-train', '2',
           '--num-val', '1', '--openimages-root', str(tmp_path / 'oi'), '--group-of', '0.5']
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert f'wrote {tmp_path / "oi"}' in out.stdout
    manifest = json.loads((tmp_path / 'oi' / 'manifest.json').read_text())
    assert manifest['params']['group_of'] == 0.5
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.stdout.count('up to date') == 2
