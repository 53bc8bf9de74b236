"""Dataset checks run before the dataloaders are built (by TSDRunner: every tool, mmdet's too).

Not an equation of the paper: one clear line for data that would otherwise fail deep in a dataset
or silently train on the wrong thing.

- ``ensure_default_dataset``: generates data/shapes, and its OpenImages copy data/shapes_openimages
  (``tsd_mmdet.datasets.shapes``), when a dataset points at one and it is missing or stale.
- ``check_datasets``: fails with a message that names the path and
  the key to change when an annotation file or image folder is missing, the json is not COCO, it
  holds no image or annotation, or a configured class is not among its categories; for
  OpenImages (V6 CSV) data, when a class, hierarchy, image-metas or image-level file is missing, a
  box names a label the class file lacks or lies outside [0, 1], the image metas do not list the
  box file's images, or the RoI head's num_classes is not the class file's number of classes.
  Training boxes narrower or lower than one pixel (in pixels, after OpenImages' fractions are
  scaled by the image size) cannot be regressed (0 / 0): they are reported (count and first
  image ids) and dropped with a warning, by mmdet's CocoDataset (which skips them when it reads a
  COCO json) or by a ``FilterAnnotations`` transform in the train pipeline; a train pipeline that
  would let them through, or ``dataset_check = dict(degenerate_boxes='error')`` in the config, is
  a DatasetCheckError instead.
"""
import csv
import json
import logging
import os
import os.path as osp
import pickle
from collections.abc import Iterator

from mmengine.config import Config, ConfigDict
from mmengine.logging import print_log

from tsd_mmdet.utils.config import (
    SPLITS,
    iter_datasets,
    iter_evaluators,
    resolve_dataset_paths,
    split_of,
)

from . import shapes

# A box narrower or lower than this many pixels cannot be regressed; mmdet's CocoDataset uses the
# same rule when it reads a COCO json (``w < 1 or h < 1``: skipped).
MIN_BOX_SIZE = 1.0
DEGENERATE_BOX_POLICIES = ('drop', 'error')


class DatasetCheckError(ValueError):
    """A dataset in the config cannot be used; the message says which path and which key."""


def ensure_default_dataset(cfg: Config, splits=SPLITS) -> None:
    """Generate data/shapes (and data/shapes_openimages, its OpenImages copy) when a dataset in the
    config points there and it is missing or stale."""
    coco = osp.normpath(shapes.DEFAULT_ROOT)
    openimages = osp.normpath(shapes.DEFAULT_OPENIMAGES_ROOT)
    roots = {osp.normpath(ds.get('data_root') or '') for _, ds in iter_datasets(cfg, splits)}
    if roots & {coco, openimages} and shapes.ensure_dataset(coco):
        print_log(f'generated the shapes dataset under {coco}', logger='current')
    if openimages in roots and shapes.ensure_openimages(openimages, coco):
        print_log(f'generated its OpenImages copy under {openimages}', logger='current')


def _load_coco(path: str, key: str, cache: dict) -> dict:
    if path in cache:
        return cache[path]
    hint = f'fix or replace it, or point --cfg-options {key}=... at another file'
    try:
        with open(path) as f:
            coco = json.load(f)
    except json.JSONDecodeError as e:
        raise DatasetCheckError(f'annotation file {path} is not valid JSON ({e}); {hint}') from e
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetCheckError(f'annotation file {path} cannot be read ({e}); {hint}') from e
    if not isinstance(coco, dict) or not all(
            isinstance(coco.get(k), list) for k in ('images', 'annotations', 'categories')):
        raise DatasetCheckError(
            f'annotation file {path} is not COCO-shaped: it needs the lists "images", '
            f'"annotations" and "categories"; {hint}')
    if not coco['images'] or not coco['annotations']:
        raise DatasetCheckError(
            f'empty annotation file {path}: {len(coco["images"])} images, '
            f'{len(coco["annotations"])} annotations; {hint}')
    cache[path] = coco
    return coco


def _default_classes(ds: ConfigDict) -> tuple:
    from mmdet.registry import DATASETS
    dataset_cls = DATASETS.get(ds.get('type'))
    return tuple(getattr(dataset_cls, 'METAINFO', {}).get('classes', ()))


def _check_metric_matches_dataset(key: str, ann: str, coco: dict, dataset_ann: str | None,
                                  cache: dict) -> None:
    """A COCO metric whose ann_file lists other images than its dataset scores the predictions
    against the wrong ground truth (AP near 0, silently): refuse it."""
    if (dataset_ann is None or not dataset_ann.endswith('.json')
            or osp.normpath(dataset_ann) == osp.normpath(ann) or dataset_ann not in cache):
        return

    def images(c):
        return {(im.get('id'), im.get('file_name'), im.get('width'), im.get('height'))
                for im in c['images']}

    if images(coco) != images(cache[dataset_ann]):
        raise DatasetCheckError(
            f'{key}.ann_file is {ann} but the dataset it scores reads {dataset_ann}, and the two '
            f'list different images: set --cfg-options {key}.ann_file={dataset_ann}')


OPENIMAGES_FIELDS = ('label_file', 'hierarchy_file', 'meta_file', 'image_level_ann_file')
_BOX_COLUMNS = 13  # ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,...


def _openimages_files(key: str, ds: ConfigDict) -> dict[str, str]:
    """The OpenImages side files of a dataset (``label_file`` ...), joined with ``data_root`` as
    OpenImagesDataset joins them; raise when a required one is unset or one is missing."""
    paths = {}
    for field in OPENIMAGES_FIELDS:
        value = ds.get(field)
        if not value:
            if field == 'image_level_ann_file':  # optional: evaluation uses it when given
                continue
            raise DatasetCheckError(f'{key} has no {field}; set --cfg-options {key}.{field}=...')
        path = value if osp.isabs(value) or '://' in value else \
            osp.join(ds.get('data_root') or '', value)
        if '://' not in path and not osp.isfile(path):
            raise DatasetCheckError(
                f'OpenImages {field} {path} not found ({key}: data_root={ds.get("data_root")!r}, '
                f'{field}={value!r}); point the config at your data with --cfg-options '
                f'{key}.data_root=... (or {key}.{field}=...)')
        paths[field] = path
    return paths


def _csv_rows(path: str, what: str, key: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, row) of a CSV file, streamed (OpenImages box files are large)."""
    try:
        with open(path, newline='') as f:
            yield from enumerate(csv.reader(f), start=1)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DatasetCheckError(f'{what} {path} cannot be read as CSV ({e}); fix it or point '
                                f'--cfg-options {key}=... at another file') from e


def _check_hierarchy(path: str, label_ids: set, label_file: str, key: str) -> None:
    hint = f'fix it or point --cfg-options {key}.hierarchy_file=... at another file'
    try:
        with open(path) as f:
            tree = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DatasetCheckError(f'hierarchy file {path} is not valid JSON ({e}); {hint}') from e
    nodes = [tree] if isinstance(tree, dict) else []
    if not nodes:
        raise DatasetCheckError(f'hierarchy file {path} is not a {{"LabelName", "Subcategory"}} '
                                f'tree; {hint}')
    while nodes:  # the root is no class; every node below it must be one
        for child in nodes.pop().get('Subcategory', []):
            if 'LabelName' in child and child['LabelName'] not in label_ids:
                raise DatasetCheckError(
                    f"hierarchy file {path} names the label '{child['LabelName']}', which the "
                    f'class file {label_file} lacks; {hint}')
            nodes.append(child)


def _check_boxes(ann: str, label_ids: set, label_file: str,
                 key: str) -> tuple[list[str], list[tuple[str, float, float]]]:
    """Check an OpenImages V6 box file row by row; return its image IDs in file order and, per
    box, (image ID, width, height) as fractions of the image size."""
    images, seen, sizes = [], set(), []
    hint = f'fix the file or point --cfg-options {key}.ann_file=... at another one'
    for line, row in _csv_rows(ann, 'box file', f'{key}.ann_file'):
        if line == 1:
            continue  # the header, which OpenImagesDataset skips
        where = f'line {line} of {ann}'
        if len(row) < _BOX_COLUMNS:
            raise DatasetCheckError(
                f'{where} has {len(row)} columns; an OpenImages V6 box file has '
                f'{_BOX_COLUMNS}: ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,'
                f'IsOccluded,IsTruncated,IsGroupOf,IsDepiction,IsInside; {hint}')
        if row[2] not in label_ids:
            raise DatasetCheckError(f"{where}: label '{row[2]}' is not in the class file "
                                    f'{label_file} (--cfg-options {key}.label_file=...)')
        try:
            x0, x1, y0, y1 = (float(v) for v in row[4:8])
        except ValueError as e:
            raise DatasetCheckError(f'{where}: a box coordinate is not a number ({e}); {hint}') \
                from e
        if not all(v.lstrip('-').isdigit() for v in row[8:13]):
            raise DatasetCheckError(f'{where}: IsOccluded..IsInside must be integers, got '
                                    f'{",".join(row[8:13])}; {hint}')
        if not (0 <= x0 <= x1 <= 1 and 0 <= y0 <= y1 <= 1):
            raise DatasetCheckError(
                f'{where}: box XMin,XMax,YMin,YMax = {x0:g},{x1:g},{y0:g},{y1:g} is not inside '
                f'[0, 1] with min <= max (OpenImages boxes are fractions of the image size); '
                f'{hint}')
        sizes.append((row[0], x1 - x0, y1 - y0))
        if not images or images[-1] != row[0]:
            if row[0] in seen:
                raise DatasetCheckError(
                    f'{where}: the boxes of image {row[0]} are not on consecutive lines, which '
                    f'OpenImagesDataset needs; sort the file by ImageID')
            images.append(row[0])
            seen.add(row[0])
    if not images:
        raise DatasetCheckError(f'empty box file {ann}: no box below the header; {hint}')
    return images, sizes


def _check_metas(path: str, images: list[str], ann: str, key: str) -> list[dict]:
    hint = (f"regenerate it with mmdet's tools/misc/get_image_metas.py or point --cfg-options "
            f'{key}.meta_file=... at another file')
    try:
        with open(path, 'rb') as f:
            metas = pickle.load(f)
    except Exception as e:  # unpickling fails in many ways; each means the same here
        raise DatasetCheckError(f'image metas file {path} cannot be unpickled ({e}); {hint}') \
            from e
    if not isinstance(metas, list) or not all(
            isinstance(m, dict) and 'filename' in m and 'ori_shape' in m for m in metas):
        raise DatasetCheckError(f'image metas file {path} is not a list of dicts with "filename" '
                                f'and "ori_shape"; {hint}')
    if len(metas) != len(images):
        raise DatasetCheckError(f'image metas file {path} lists {len(metas)} images, the box '
                                f'file {ann} {len(images)}; {hint}')
    for i, (meta, image) in enumerate(zip(metas, images)):
        if osp.basename(str(meta['filename'])) != f'{image}.jpg':
            raise DatasetCheckError(
                f'image metas file {path}: entry {i} is {meta["filename"]} but image {i} of the '
                f'box file {ann} is {image}; {hint}')
    return metas


def _num_classes_keys(node, path: str) -> Iterator[tuple[str, int]]:
    """(dotted key, value) of every ``num_classes`` under ``node`` (a model config)."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == 'num_classes':
                yield f'{path}.{k}', v
            else:
                yield from _num_classes_keys(v, f'{path}.{k}')
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _num_classes_keys(v, f'{path}.{i}')


def _check_openimages(key: str, ds: ConfigDict, ann: str, img_dir: str, cache: dict,
                      roi_head: ConfigDict | None) -> list[str] | None:
    """Raise DatasetCheckError for OpenImages data that OpenImagesDataset would reject with a bare
    assert or KeyError, or read wrongly, and for RoI heads sized for another number of classes:
    see the module docstring. Returns the image ID of each box under one pixel (None for files
    in another layout)."""
    paths = _openimages_files(key, ds)
    if ds.get('type') != 'OpenImagesDataset' or not ann.endswith('.csv') or any(
            '://' in p for p in paths.values()):
        return None  # other layouts (the challenge's txt files): the files exist, it parses them
    label_file = paths['label_file']
    names, label_ids = [], set()
    for line, row in _csv_rows(label_file, 'class file', f'{key}.label_file'):
        if len(row) < 2:
            raise DatasetCheckError(f'line {line} of the class file {label_file} is not '
                                    f'"LabelName,DisplayName"; fix the file or point '
                                    f'--cfg-options {key}.label_file=... at another one')
        names.append(row[1])
        label_ids.add(row[0])
    if not names:
        raise DatasetCheckError(f'empty class file {label_file}; point --cfg-options '
                                f'{key}.label_file=... at another file')
    classes = (ds.get('metainfo') or {}).get('classes')
    if classes is not None and list(classes) != names:
        raise DatasetCheckError(
            f"{key}.metainfo.classes is {', '.join(map(str, classes))}, but OpenImagesDataset "
            f"takes its classes from the class file {label_file}: {', '.join(names)}; drop the "
            f'override or list those classes, in that order')
    wrong = [f'{k}={len(names)}' for k, v in _num_classes_keys(roi_head or {}, 'model.roi_head')
             if v != len(names)]
    if wrong:
        raise DatasetCheckError(
            f'the class file {label_file} has {len(names)} classes, but the RoI head is sized '
            f'for another number: set --cfg-options {" ".join(wrong)}')
    if ('openimages', ann, label_file) in cache:
        return cache[('openimages', ann, label_file)]
    _check_hierarchy(paths['hierarchy_file'], label_ids, label_file, key)
    images, sizes = _check_boxes(ann, label_ids, label_file, key)
    metas = _check_metas(paths['meta_file'], images, ann, key)
    if 'image_level_ann_file' in paths:
        path = paths['image_level_ann_file']
        for line, row in _csv_rows(path, 'image-level label file',
                                   f'{key}.image_level_ann_file'):
            if line > 1 and (len(row) < 4 or row[2] not in label_ids):
                raise DatasetCheckError(
                    f'line {line} of the image-level label file {path}: expected '
                    f"ImageID,Source,LabelName,Confidence with a label of the class file "
                    f'{label_file}, got {",".join(row)}')
    first = osp.join(img_dir, f'{images[0]}.jpg')
    if not osp.isfile(first):
        raise DatasetCheckError(
            f'image {first} (the first one in {ann}) not found; the image folder is {img_dir}: '
            f'set --cfg-options {key}.data_prefix.img=... to the folder that holds the images')
    shape = {image: meta['ori_shape'] for image, meta in zip(images, metas)}  # (h, w)
    degenerate = [image for image, w, h in sizes
                  if w * shape[image][1] < MIN_BOX_SIZE or h * shape[image][0] < MIN_BOX_SIZE]
    cache[('openimages', ann, label_file)] = degenerate
    return degenerate


def _degenerate_coco_boxes(coco: dict) -> list[str]:
    """``image ID (file name)`` of each COCO box narrower or lower than one pixel."""
    names = {im.get('id'): im.get('file_name') for im in coco['images']}
    found = []
    for a in coco['annotations']:
        bbox = a.get('bbox')
        if isinstance(bbox, list) and len(bbox) == 4 and (
                bbox[2] < MIN_BOX_SIZE or bbox[3] < MIN_BOX_SIZE):
            found.append(f'{a.get("image_id")} ({names.get(a.get("image_id"))})')
    return found


def _drops_degenerate_boxes(ds: ConfigDict) -> str | None:
    """What drops boxes under one pixel before they reach the model, or None: mmdet's
    CocoDataset (it skips them while reading) or a FilterAnnotations of the pipeline."""
    from mmdet.datasets import CocoDataset
    from mmdet.registry import DATASETS
    for step in ds.get('pipeline') or []:
        kind = step.get('type') if isinstance(step, dict) else None
        if kind in ('FilterAnnotations', 'mmdet.FilterAnnotations') and step.get('by_box', True):
            wh = step.get('min_gt_bbox_wh', (1, 1))
            if min(wh) >= MIN_BOX_SIZE:
                return f'FilterAnnotations(min_gt_bbox_wh={tuple(wh)}) in the train pipeline'
    dataset_cls = DATASETS.get(ds.get('type')) if isinstance(ds.get('type'), str) else None
    if dataset_cls is not None and issubclass(dataset_cls, CocoDataset):
        return f'{dataset_cls.__name__}, which skips them while reading the json'
    return None


def _report_degenerate(key: str, ds: ConfigDict, ann: str, found: list[str],
                       policy: str) -> None:
    """Warn that the boxes in ``found`` are dropped, or raise DatasetCheckError (module docstring).
    """
    if not found:
        return
    images = list(dict.fromkeys(found))
    what = (f'{len(found)} training box{"es" if len(found) > 1 else ""} narrower or lower than '
            f'one pixel in {ann} (image{"s" if len(images) > 1 else ""} '
            f'{", ".join(images[:5])}{", ..." if len(images) > 5 else ""})')
    if policy == 'error':
        raise DatasetCheckError(f'{what}: fix the data (dataset_check.degenerate_boxes=error; '
                                "with 'drop' they are dropped with a warning)")
    dropper = _drops_degenerate_boxes(ds)
    if dropper is None:
        raise DatasetCheckError(
            f"{what} would reach the model, which cannot regress them (0 / 0): add "
            f"dict(type='FilterAnnotations', min_gt_bbox_wh=(1, 1), keep_empty=False) after "
            f'LoadAnnotations in {key}.pipeline, or fix the data')
    print_log(f'{what}: dropped by {dropper}', logger='current', level=logging.WARNING)


def check_datasets(cfg: Config, splits=SPLITS) -> None:
    """Raise DatasetCheckError, naming the path and the key to override, for a dataset or metric
    of ``splits`` (e.g. ``('train', 'val')``) that cannot be read.

    COCO json files (``.json``) and OpenImages V6 files (an ``OpenImagesDataset`` with a ``.csv``
    ann_file: boxes, classes, hierarchy, image metas, image-level labels) are parsed and checked;
    other formats are only checked to exist.
    Remote paths (``s3://`` and the like) are left to the dataset. Training boxes under one pixel
    are dropped with a warning or refused, as ``cfg.dataset_check.degenerate_boxes`` says
    (``'drop'``, the default, or ``'error'``): see the module docstring.
    """
    policy = (cfg.get('dataset_check') or {}).get('degenerate_boxes', 'drop')
    if policy not in DEGENERATE_BOX_POLICIES:
        raise DatasetCheckError(f'dataset_check.degenerate_boxes must be one of '
                                f'{DEGENERATE_BOX_POLICIES}, got {policy!r}')
    cache: dict = {}
    checked = []
    dataset_anns = {}  # split -> the annotation file its (first) dataset reads
    for key, ds in iter_datasets(cfg, splits):
        ann, img_dir = resolve_dataset_paths(ds)
        dataset_anns.setdefault(split_of(key), ann)
        if any('://' in p for p in (ann or '', img_dir)):
            continue
        where = f'{key}: data_root={ds.get("data_root")!r}'
        if ann is None:
            raise DatasetCheckError(
                f'{where} has no ann_file; set --cfg-options {key}.ann_file=...')
        if not osp.isfile(ann) or not os.access(ann, os.R_OK):
            raise DatasetCheckError(
                f'annotation file {ann} not found or not readable ({where}, '
                f'ann_file={ds.get("ann_file")!r}); point the config at your data with '
                f'--cfg-options {key}.data_root=... (or {key}.ann_file=...)')
        if not osp.isdir(img_dir) or not os.access(img_dir, os.R_OK | os.X_OK):
            raise DatasetCheckError(
                f'image folder {img_dir} not found or not readable ({where}, '
                f'data_prefix={dict(ds.get("data_prefix") or {})!r}); point the config at your '
                f'data with --cfg-options {key}.data_root=... (or {key}.data_prefix.img=...)')
        if ann.endswith('.json'):
            coco = _load_coco(ann, f'{key}.ann_file', cache)
            first = osp.join(img_dir, str(coco['images'][0].get('file_name', '')))
            if not osp.isfile(first):
                raise DatasetCheckError(
                    f'image {first} (the first one in {ann}) not found; the image folder is '
                    f'{img_dir}: set --cfg-options {key}.data_prefix.img=... to the folder that '
                    f'holds the images')
            names = [c.get('name') for c in coco['categories']]
            classes = (ds.get('metainfo') or {}).get('classes') or _default_classes(ds)
            for name in classes:
                if name not in names:
                    raise DatasetCheckError(
                        f"unknown class '{name}' in {key}.metainfo.classes; the annotation file "
                        f"{ann} has: {', '.join(map(str, names))}")
            degenerate = _degenerate_coco_boxes(coco)
        elif ds.get('label_file') is not None:
            degenerate = _check_openimages(key, ds, ann, img_dir, cache,
                                           cfg.get('model', {}).get('roi_head'))
        else:
            degenerate = None
        if split_of(key) == 'train' and degenerate:
            _report_degenerate(key, ds, ann, degenerate, policy)
        checked.append(ann)
    for key, metric in iter_evaluators(cfg, splits):
        ann = metric.get('ann_file')
        if isinstance(ann, str) and '://' not in ann:
            if not osp.isfile(ann):
                raise DatasetCheckError(f'annotation file {ann} not found (the metric\'s); set '
                                        f'--cfg-options {key}.ann_file=...')
            if ann.endswith('.json'):
                coco = _load_coco(ann, f'{key}.ann_file', cache)
                _check_metric_matches_dataset(key, ann, coco, dataset_anns.get(split_of(key)),
                                              cache)
            checked.append(ann)
    if checked:
        print_log(f'dataset check passed: {", ".join(sorted(set(checked)))}', logger='current')
