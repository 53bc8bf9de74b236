"""tools/data/generate_shapes.py: determinism, tight and valid boxes, variety, ensure_dataset."""
import importlib.util
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCRIPT = osp.join(ROOT, 'tools', 'data', 'generate_shapes.py')

_spec = importlib.util.spec_from_file_location('generate_shapes', SCRIPT)
gs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gs)

TINY = dict(num_train=3, num_val=2)


def _files(root):
    out = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            if not name.startswith('.'):
                path = osp.join(dirpath, name)
                with open(path, 'rb') as f:
                    out[osp.relpath(path, root)] = f.read()
    return out


@pytest.fixture(scope='module')
def sample():
    """20 rendered images with the default parameters: (image, objects, owner) each."""
    params = dict(gs.DEFAULT_PARAMS)
    return [gs.render_image(np.random.default_rng([7, i]), params) for i in range(20)]


def test_same_bytes_every_run(tmp_path):
    gs.generate_dataset(str(tmp_path / 'a'), **TINY)
    gs.generate_dataset(str(tmp_path / 'b'), **TINY)
    a, b = _files(tmp_path / 'a'), _files(tmp_path / 'b')
    assert sorted(a) == sorted(b)
    assert {'annotations/instances_train.json', 'annotations/instances_val.json',
            'manifest.json', 'train/000003.jpg', 'val/000002.jpg'} <= set(a)
    assert all(a[k] == b[k] for k in a)
    # the validation split has its own seed: its images are not the training ones
    assert a['train/000001.jpg'] != a['val/000001.jpg']


def test_coco_json_valid_and_boxes_inside(tmp_path):
    gs.generate_dataset(str(tmp_path), num_train=6, num_val=2)
    coco = json.loads((tmp_path / 'annotations' / 'instances_train.json').read_text())
    assert [c['name'] for c in coco['categories']] == list(gs.CLASSES)
    assert [c['id'] for c in coco['categories']] == [1, 2, 3, 4, 5, 6]
    images = {im['id']: im for im in coco['images']}
    assert len(images) == 6
    for im in images.values():
        assert 320 <= im['width'] <= 480 and 320 <= im['height'] <= 480
        assert (tmp_path / 'train' / im['file_name']).is_file()
    ids = [a['id'] for a in coco['annotations']]
    assert len(ids) == len(set(ids)) > 6
    for ann in coco['annotations']:
        x, y, w, h = ann['bbox']
        im = images[ann['image_id']]
        assert x >= 0 and y >= 0 and x + w <= im['width'] and y + h <= im['height']
        assert w >= 4 and h >= 4
        assert 0 < ann['area'] <= w * h
        assert ann['iscrowd'] == 0 and 1 <= ann['category_id'] <= 6
        assert 0.5 <= ann['visibility'] <= 1.0


def test_boxes_tight_around_visible_pixels(sample):
    for image, objects, owner in sample:
        assert owner.shape == image.shape[:2]
        assert owner.max() == len(objects) - 1
        for k, obj in enumerate(objects):
            ys, xs = np.nonzero(owner == k)
            x, y, w, h = obj['bbox']
            assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x, y, x + w, y + h)
            assert obj['area'] == xs.size
            # tight: each side of the box touches at least one visible pixel
            assert (xs == x).any() and (xs == x + w - 1).any()
            assert (ys == y).any() and (ys == y + h - 1).any()


def test_variety_of_classes_sizes_ratios_and_occlusion(sample):
    objects = [o for _, objs, _ in sample for o in objs]
    assert {o['label'] for o in objects} == set(range(len(gs.CLASSES)))
    sides = np.array([np.sqrt(o['bbox'][2] * o['bbox'][3]) for o in objects])
    ratios = np.array([o['bbox'][2] / o['bbox'][3] for o in objects])
    assert sides.min() < 1.5 * gs.DEFAULT_PARAMS['min_object_size'] and sides.max() > 150
    assert ratios.min() < 0.5 and ratios.max() > 2.0
    occluded = np.mean([o['visibility'] < 0.99 for o in objects])
    assert 0.15 < occluded < 0.8
    assert min(o['visibility'] for o in objects) >= gs.DEFAULT_PARAMS['min_visible']


def test_stats_match_json(tmp_path):
    manifest = gs.generate_dataset(str(tmp_path), **TINY)
    coco = json.loads((tmp_path / 'annotations' / 'instances_val.json').read_text())
    stats = manifest['stats']['val']
    assert stats['images'] == 2 and stats['objects'] == len(coco['annotations'])
    assert sum(stats['per_class'].values()) == stats['objects']
    assert manifest['version'] == gs.GENERATOR_VERSION
    assert manifest['params'] == {**gs.DEFAULT_PARAMS, **TINY}


def test_ensure_dataset_regenerates_only_when_stale(tmp_path):
    root = str(tmp_path / 'shapes')
    assert gs.ensure_dataset(root, **TINY) is True
    assert gs.ensure_dataset(root, **TINY) is False
    # other parameters: regenerated, and the old split is replaced rather than mixed in
    assert gs.ensure_dataset(root, num_train=2, num_val=1) is True
    assert sorted(os.listdir(osp.join(root, 'train'))) == ['000001.jpg', '000002.jpg']
    # a manifest from another generator version counts as stale
    manifest_path = osp.join(root, 'manifest.json')
    with open(manifest_path) as f:
        manifest = json.load(f)
    manifest['version'] = -1
    with open(manifest_path, 'w') as f:
        json.dump(manifest, f)
    assert gs.ensure_dataset(root, num_train=2, num_val=1) is True
    # a missing annotation file too
    os.remove(osp.join(root, 'annotations', 'instances_val.json'))
    assert gs.ensure_dataset(root, num_train=2, num_val=1) is True


def test_unknown_parameter_rejected(tmp_path):
    with pytest.raises(TypeError, match='num_trian'):
        gs.generate_dataset(str(tmp_path), num_trian=3)


def test_cli(tmp_path):
    out = subprocess.run([sys.executable, SCRIPT, '--help'], capture_output=True, text=True)
    assert out.returncode == 0 and '--num-train' in out.stdout and '--root' in out.stdout
    cmd = [sys.executable, SCRIPT, '--root', str(tmp_path), '--num-train', '2', '--num-val', '1']
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert 'train: {"images": 2' in out.stdout
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert 'up to date' in out.stdout
