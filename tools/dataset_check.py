"""Dataset set-up shared by tools/train.py and tools/test.py: overrides, generation and checks.

- ``apply_data_overrides``: ``--cfg-options data_root=... metainfo.classes=[...]`` changes the
  config's top-level variables, which the dataloaders copied when the file was read; this carries
  the new values into every dataset, evaluator ``ann_file`` and ``num_classes``.
- ``ensure_default_dataset``: generates data/shapes (tools/data/generate_shapes.py) when a dataset
  points at it and it is missing or stale.
- ``check_datasets``: before the runner is built, fails with a message that names the path and
  the key to change when an annotation file or image folder is missing, the json is not COCO, it
  holds no image or annotation, or a configured class is not among its categories.
"""
import importlib.util
import json
import os
import os.path as osp
from collections.abc import Iterator

from mmengine.config import Config, ConfigDict
from mmengine.logging import print_log

SPLITS = ('train', 'val', 'test')


class DatasetCheckError(ValueError):
    """A dataset in the config cannot be used; the message says which path and which key."""


def _load_generator():
    path = osp.join(osp.dirname(osp.abspath(__file__)), 'data', 'generate_shapes.py')
    spec = importlib.util.spec_from_file_location('generate_shapes', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def iter_datasets(cfg: Config, splits=SPLITS) -> Iterator[tuple[str, ConfigDict]]:
    """Yield ``(key, dataset_cfg)`` for each leaf dataset of ``<split>_dataloader``, looking
    through dataset wrappers.

    ``key`` is the dotted path to give ``--cfg-options``, e.g. ``train_dataloader.dataset``.
    """
    def leaves(key, ds):
        if 'dataset' in ds:
            yield from leaves(f'{key}.dataset', ds.dataset)
        elif 'datasets' in ds:
            for i, sub in enumerate(ds.datasets):
                yield from leaves(f'{key}.datasets.{i}', sub)
        else:
            yield key, ds

    for split in splits:
        loader = cfg.get(f'{split}_dataloader')
        if loader is not None and loader.get('dataset') is not None:
            yield from leaves(f'{split}_dataloader.dataset', loader.dataset)


def _split_of(key: str) -> str:
    """``'val'`` for ``'val_dataloader.dataset'`` and for ``'val_evaluator.0'``."""
    return key.split('_', 1)[0]


def _evaluators(cfg: Config, splits=SPLITS) -> Iterator[tuple[str, ConfigDict]]:
    for name in (f'{split}_evaluator' for split in splits if split != 'train'):
        ev = cfg.get(name)
        for i, metric in enumerate(ev if isinstance(ev, list) else [ev] if ev else []):
            yield (f'{name}.{i}' if isinstance(ev, list) else name), metric


def apply_data_overrides(cfg: Config, options: dict | None) -> None:
    """Carry ``data_root`` and ``metainfo.classes`` given on the command line everywhere.

    Called before ``cfg.merge_from_dict(options)``, so that keys given in full (e.g.
    ``val_dataloader.dataset.data_root``) still win.
    """
    options = options or {}
    new_root = options.get('data_root')
    classes = options.get('metainfo.classes')
    if classes is None and isinstance(options.get('metainfo'), dict):
        classes = options['metainfo'].get('classes')
    if new_root is None and classes is None:
        return
    old_root = cfg.get('data_root')
    split_anns = {}  # split -> (annotation file the dataset read before, after)
    for key, ds in iter_datasets(cfg):
        before = _resolve(ds)[0]
        if new_root is not None:
            ds.data_root = new_root
        if classes is not None:
            ds.metainfo = dict(ds.get('metainfo') or {}, classes=list(classes))
        split_anns.setdefault(_split_of(key), (before, _resolve(ds)[0]))
    if new_root is not None:
        for key, metric in _evaluators(cfg):
            ann = metric.get('ann_file')
            if not isinstance(ann, str):
                continue
            # The metric scores the split's dataset: it follows that dataset's annotation file,
            # whatever the config's top-level data_root variable says.
            before, after = split_anns.get(_split_of(key), (None, None))
            if before is not None and osp.normpath(ann) == osp.normpath(before):
                metric.ann_file = after
            elif old_root and ann.startswith(old_root):
                metric.ann_file = osp.join(new_root, ann[len(old_root):].lstrip('/'))
    if classes is not None:
        old_num = len((cfg.get('metainfo') or {}).get('classes', ()))

        def set_num_classes(node):
            if isinstance(node, dict):
                if node.get('num_classes') == old_num:
                    node['num_classes'] = len(classes)
                for value in node.values():
                    set_num_classes(value)
            elif isinstance(node, list):
                for value in node:
                    set_num_classes(value)

        if old_num:
            set_num_classes(cfg.model)
    print_log(f'dataset overrides applied to every dataloader and evaluator: '
              f'data_root={new_root!r} classes={classes!r}', logger='current')


def _resolve(ds: ConfigDict) -> tuple[str | None, str | None]:
    """The annotation file and image folder a dataset will read, as mmengine's BaseDataset joins
    them with ``data_root``."""
    root = ds.get('data_root') or ''
    ann = ds.get('ann_file')
    if ann and not osp.isabs(ann):
        ann = osp.join(root, ann)
    prefix = (ds.get('data_prefix') or {}).get('img', '')
    img_dir = prefix if osp.isabs(prefix) else osp.join(root, prefix)
    return ann or None, img_dir or '.'


def ensure_default_dataset(cfg: Config, splits=SPLITS) -> None:
    """Generate data/shapes when a dataset in the config points there and it is missing or stale."""
    generator = _load_generator()
    default = osp.normpath(generator.DEFAULT_ROOT)
    if any(osp.normpath(ds.get('data_root') or '') == default
           for _, ds in iter_datasets(cfg, splits)):
        if generator.ensure_dataset(default):
            print_log(f'generated the shapes dataset under {default}', logger='current')


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


def check_datasets(cfg: Config, splits=SPLITS) -> None:
    """Raise DatasetCheckError, naming the path and the key to override, for a dataset or metric
    of ``splits`` (e.g. ``('train', 'val')``) that cannot be read.

    COCO json files (``.json``) are parsed and checked; other formats are only checked to exist.
    Remote paths (``s3://`` and the like) are left to the dataset.
    """
    cache: dict = {}
    checked = []
    dataset_anns = {}  # split -> the annotation file its (first) dataset reads
    for key, ds in iter_datasets(cfg, splits):
        ann, img_dir = _resolve(ds)
        dataset_anns.setdefault(_split_of(key), ann)
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
        checked.append(ann)
    for key, metric in _evaluators(cfg, splits):
        ann = metric.get('ann_file')
        if isinstance(ann, str) and '://' not in ann:
            if not osp.isfile(ann):
                raise DatasetCheckError(f'annotation file {ann} not found (the metric\'s); set '
                                        f'--cfg-options {key}.ann_file=...')
            if ann.endswith('.json'):
                coco = _load_coco(ann, f'{key}.ann_file', cache)
                _check_metric_matches_dataset(key, ann, coco, dataset_anns.get(_split_of(key)),
                                              cache)
            checked.append(ann)
    if checked:
        print_log(f'dataset check passed: {", ".join(sorted(set(checked)))}', logger='current')
