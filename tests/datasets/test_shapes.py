"""tsd_mmdet.datasets.shapes: determinism, tight and valid boxes, masks, variety, the OpenImages
copy, ensure_dataset / ensure_openimages."""
import csv
import hashlib
import json
import os
import os.path as osp
import pickle

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from tsd_mmdet.datasets import shapes as gs

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




def test_version_2_images_and_boxes_unchanged(tmp_path):
    """Masks came with version 3; the images (bytes) and boxes are version 2's, which experiments
    depend on. Digests of version 2's output (pillow 13.0.0, numpy 2.4.6)."""
    gs.generate_dataset(str(tmp_path), **TINY)
    images = hashlib.sha256()
    boxes = []
    for split in ('train', 'val'):
        for name in sorted(os.listdir(tmp_path / split)):
            images.update((tmp_path / split / name).read_bytes())
        coco = json.loads((tmp_path / 'annotations' / f'instances_{split}.json').read_text())
        boxes += [[a['image_id'], a['category_id'], a['bbox'], a['area'], a['visibility']]
                  for a in coco['annotations']]
    assert images.hexdigest() == \
        '6d0c9c43aa4068e9052e5dd8cc972fc9de0b00b745eca4b2b3ab0ecc71ba480f'
    assert len(boxes) == 21
    assert hashlib.sha256(json.dumps(boxes).encode()).hexdigest() == \
        '3d755feaba6dd1b07ec7451b7beb33b092ba171a360af7b21baca8907dabe1b8'


def test_masks_are_the_visible_pixels(tmp_path):
    params = {**gs.DEFAULT_PARAMS, **TINY}
    gs.generate_dataset(str(tmp_path), **TINY)
    coco = json.loads((tmp_path / 'annotations' / 'instances_train.json').read_text())
    for im in coco['images']:
        _, objects, owner = gs.render_image(
            np.random.default_rng([params['seed'], im['id'] - 1]), params)
        anns = [a for a in coco['annotations'] if a['image_id'] == im['id']]
        assert len(anns) == len(objects) > 0
        for k, ann in enumerate(anns):
            assert ann['segmentation']['size'] == [im['height'], im['width']]
            mask = mask_utils.decode(ann['segmentation']).astype(bool)
            np.testing.assert_array_equal(mask, owner == k)
            ys, xs = np.nonzero(mask)
            x, y, w, h = ann['bbox']
            assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x, y, x + w, y + h)
            assert mask.sum() == ann['area'] == mask_utils.area(ann['segmentation'])


@pytest.fixture(scope='module')
def openimages(tmp_path_factory):
    """(COCO root, OpenImages root, manifest): 4 + 4 images at the default size."""
    coco_root = tmp_path_factory.mktemp('shapes')
    root = tmp_path_factory.mktemp('shapes_openimages')
    gs.generate_dataset(str(coco_root), num_train=4, num_val=4)
    return coco_root, root, gs.generate_openimages(str(root), str(coco_root))


def _read_csv(path):
    with open(path, newline='') as f:
        return list(csv.reader(f))


def test_openimages_files_and_hierarchy(openimages):
    _, root, manifest = openimages
    for path in gs.OPENIMAGES_FILES.values():
        assert (root / path).is_file(), path
    names = gs.openimages_classes()
    assert names == (*gs.CLASSES, 'round', 'angular')
    assert _read_csv(root / gs.OPENIMAGES_FILES['label_file']) == \
        [[gs.openimages_label_id(n), n] for n in names]
    tree = json.loads((root / gs.OPENIMAGES_FILES['hierarchy_file']).read_text())
    assert {p['LabelName']: [c['LabelName'] for c in p['Subcategory']]
            for p in tree['Subcategory']} == {
        gs.openimages_label_id(p): [gs.openimages_label_id(c) for c in children]
        for p, children in gs.PARENT_CLASSES.items()}
    assert sorted(c for children in gs.PARENT_CLASSES.values() for c in children) == \
        sorted(gs.CLASSES)
    assert manifest['stats']['val']['group_of'] > 0
    assert manifest['source']['params'] == {**gs.DEFAULT_PARAMS, 'num_train': 4, 'num_val': 4}


def test_openimages_boxes_are_the_coco_boxes(openimages):
    """Each box row is a COCO box (normalised) or, flagged IsGroupOf, the union of two or more
    COCO boxes of its class; every COCO box is covered by exactly one row."""
    coco_root, root, _ = openimages
    for split, oi_split in gs.OPENIMAGES_SPLITS.items():
        coco = json.loads((coco_root / 'annotations' / f'instances_{split}.json').read_text())
        header, *rows = _read_csv(root / gs.OPENIMAGES_FILES[f'{split}_ann_file'])
        assert tuple(header) == gs.OPENIMAGES_BOX_HEADER
        metas = pickle.loads((root / gs.OPENIMAGES_FILES[f'{split}_meta_file']).read_bytes())
        ids = list(dict.fromkeys(row[0] for row in rows))
        assert [osp.basename(m['filename']) for m in metas] == [f'{i}.jpg' for i in ids]
        for im, meta in zip(coco['images'], metas):
            assert meta['ori_shape'] == (im['height'], im['width'], 3)
            assert (root / 'OpenImages' / oi_split / im['file_name']).read_bytes() == \
                (coco_root / split / im['file_name']).read_bytes()
            anns = [a for a in coco['annotations'] if a['image_id'] == im['id']]
            mine = [r for r in rows if r[0] == osp.splitext(im['file_name'])[0]]
            covered = 0
            for row in mine:
                label = gs.CLASSES.index(row[2].split('/')[-1])
                box = np.array([float(row[4]) * im['width'], float(row[6]) * im['height'],
                                float(row[5]) * im['width'], float(row[7]) * im['height']])
                members = [a for a in anns if a['category_id'] == label + 1]
                xyxy = np.array([[a['bbox'][0], a['bbox'][1], a['bbox'][0] + a['bbox'][2],
                                  a['bbox'][1] + a['bbox'][3]] for a in members])
                if row[10] == '1':
                    assert len(members) >= 2
                    union = np.concatenate([xyxy[:, :2].min(0), xyxy[:, 2:].max(0)])
                    np.testing.assert_allclose(box, union, atol=1e-9)
                    covered += len(members)
                else:
                    assert np.abs(xyxy - box).max(1).min() < 1e-9
                    covered += 1
            assert covered == len(anns)


def test_openimages_image_level_labels(openimages):
    _, root, _ = openimages
    _, *boxes = _read_csv(root / gs.OPENIMAGES_FILES['val_ann_file'])
    header, *labels = _read_csv(root / gs.OPENIMAGES_FILES['val_image_level_ann_file'])
    assert header == ['ImageID', 'Source', 'LabelName', 'Confidence']
    parents = {gs.openimages_label_id(c): gs.openimages_label_id(p)
               for p, children in gs.PARENT_CLASSES.items() for c in children}
    for image_id in dict.fromkeys(row[0] for row in boxes):
        present = {row[2] for row in boxes if row[0] == image_id}
        present |= {parents[label] for label in present}
        mine = {row[2]: row[3] for row in labels if row[0] == image_id}
        assert {label for label, conf in mine.items() if conf == '1'} == present
        assert not {label for label, conf in mine.items() if conf == '0'} & present
    assert any(row[3] == '0' for row in labels)  # verified absent: scored as false positives


def test_openimages_deterministic_and_independent_of_coco(openimages, tmp_path):
    coco_root, root, _ = openimages
    before = _files(coco_root)
    gs.generate_openimages(str(tmp_path / 'a'), str(coco_root))
    assert _files(tmp_path / 'a') == _files(root)
    assert _files(coco_root) == before  # the COCO data is only read
    # other group-of draws change the OpenImages copy only
    gs.generate_openimages(str(tmp_path / 'b'), str(coco_root), group_of=1.0)
    b = _files(tmp_path / 'b')
    assert b[gs.OPENIMAGES_FILES['train_ann_file']] != _files(root)[
        gs.OPENIMAGES_FILES['train_ann_file']]
    with pytest.raises(TypeError, match='group_off'):
        gs.generate_openimages(str(tmp_path / 'c'), str(coco_root), group_off=1.0)


def test_openimages_read_by_mmdet(openimages):
    """mmdet's OpenImagesDataset reads the copy, with the two-level hierarchy; OpenImagesMetric
    scores the ground truth as predictions 1.0, and the members of a group-of box too."""
    pytest.importorskip('mmdet')
    import torch
    from mmdet.registry import DATASETS, METRICS
    from mmdet.structures.bbox import bbox_overlaps
    from mmdet.utils import register_all_modules

    register_all_modules()
    coco_root, root, _ = openimages
    dataset = DATASETS.build(dict(
        type='OpenImagesDataset', data_root=str(root),
        ann_file=gs.OPENIMAGES_FILES['val_ann_file'],
        data_prefix=dict(img='OpenImages/validation/'),
        label_file=gs.OPENIMAGES_FILES['label_file'],
        hierarchy_file=gs.OPENIMAGES_FILES['hierarchy_file'],
        meta_file=gs.OPENIMAGES_FILES['val_meta_file'],
        image_level_ann_file=gs.OPENIMAGES_FILES['val_image_level_ann_file'],
        test_mode=True, pipeline=[]))
    assert dataset.metainfo['classes'] == list(gs.openimages_classes())
    expected = np.eye(8)
    expected[[0, 4], 6] = expected[[1, 2, 3, 5], 7] = 1  # disc, ring -> round; others -> angular
    np.testing.assert_array_equal(dataset.metainfo['RELATION_MATRIX'], expected)
    coco = json.loads((coco_root / 'annotations' / 'instances_val.json').read_text())

    def score(members_for_groups):
        metric = METRICS.build(dict(type='OpenImagesMetric'))
        metric.dataset_meta = dataset.metainfo
        samples = []
        for i in range(len(dataset)):
            info = dataset.get_data_info(i)
            boxes, labels = [], []
            for ins in info['instances']:
                if members_for_groups and ins['is_group_of']:
                    members = [a['bbox'] for a in coco['annotations']
                               if a['image_id'] == int(info['img_id'])
                               and a['category_id'] == ins['bbox_label'] + 1]
                    boxes += [[x, y, x + w, y + h] for x, y, w, h in members]
                    ious.append(bbox_overlaps(torch.tensor(boxes[-len(members):]),
                                              torch.tensor([ins['bbox']])).min())
                    labels += [ins['bbox_label']] * len(members)
                else:
                    boxes.append(ins['bbox'])
                    labels.append(ins['bbox_label'])
            samples.append(dict(
                instances=info['instances'], image_level_labels=info['image_level_labels'],
                pred_instances=dict(bboxes=torch.tensor(boxes, dtype=torch.float32),
                                    scores=torch.linspace(1.0, 0.5, len(boxes)),
                                    labels=torch.tensor(labels))))
        metric.process({}, samples)
        return metric.evaluate(len(dataset))['openimages/mAP']

    ious = []
    assert score(False) == pytest.approx(1.0)
    assert score(True) == pytest.approx(1.0)
    # members that match no box at IoU 0.5: only the group-of handling (IoA) counts them right
    assert ious and min(ious) < 0.5


def test_ensure_openimages_regenerates_only_when_stale(tmp_path):
    coco_root, root = str(tmp_path / 'shapes'), str(tmp_path / 'oi')
    gs.ensure_dataset(coco_root, **TINY)
    assert gs.ensure_openimages(root, coco_root) is True
    assert gs.ensure_openimages(root, coco_root) is False
    assert gs.ensure_openimages(root, coco_root, group_of=0.5) is True
    # a regenerated COCO dataset with other parameters makes the copy stale
    gs.ensure_dataset(coco_root, num_train=2, num_val=2)
    assert gs.ensure_openimages(root, coco_root, group_of=0.5) is True
    assert len(os.listdir(osp.join(root, 'OpenImages', 'train'))) <= 2
    os.remove(osp.join(root, gs.OPENIMAGES_FILES['val_meta_file']))
    assert gs.ensure_openimages(root, coco_root, group_of=0.5) is True
    with pytest.raises(FileNotFoundError, match='generate the COCO dataset first'):
        gs.generate_openimages(str(tmp_path / 'x'), str(tmp_path / 'nowhere'))


