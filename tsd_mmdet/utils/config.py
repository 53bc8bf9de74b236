"""Config loading shared by every tool: ``--cfg-options`` with data overrides that reach everything.

Not an equation of the paper. ``data_root=...`` and ``metainfo.classes=[...]`` change a config's
top-level variables, which its dataloaders copied when the file was read; ``apply_data_overrides``
carries the new values into every dataset, evaluator ``ann_file`` and ``num_classes``, and
``load_config`` is the one call every tool makes (mmdet's ``Config.fromfile`` + ``merge_from_dict``
with this in between).
"""
import os.path as osp
from collections.abc import Iterator

from mmengine.config import Config, ConfigDict
from mmengine.logging import print_log

SPLITS = ('train', 'val', 'test')

__all__ = ['SPLITS', 'apply_data_overrides', 'iter_datasets', 'iter_evaluators', 'load_config',
           'resolve_dataset_paths', 'split_of']


def load_config(path: str, cfg_options: dict | None = None) -> Config:
    """``Config.fromfile(path)`` with ``cfg_options`` merged, data overrides carried everywhere.

    Args:
        path (str): Config file.
        cfg_options (dict, optional): ``--cfg-options`` as parsed by mmengine's ``DictAction``.

    Returns:
        Config: The config, ready for a runner.
    """
    cfg = Config.fromfile(path)
    if cfg_options:
        apply_data_overrides(cfg, cfg_options)
        cfg.merge_from_dict(cfg_options)
    return cfg


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


def split_of(key: str) -> str:
    """``'val'`` for ``'val_dataloader.dataset'`` and for ``'val_evaluator.0'``."""
    return key.split('_', 1)[0]


def iter_evaluators(cfg: Config, splits=SPLITS) -> Iterator[tuple[str, ConfigDict]]:
    """Yield ``(key, metric_cfg)`` for each metric of ``<split>_evaluator`` (a dict or a list)."""
    for name in (f'{split}_evaluator' for split in splits if split != 'train'):
        ev = cfg.get(name)
        for i, metric in enumerate(ev if isinstance(ev, list) else [ev] if ev else []):
            yield (f'{name}.{i}' if isinstance(ev, list) else name), metric


def resolve_dataset_paths(ds: ConfigDict) -> tuple[str | None, str]:
    """The annotation file and image folder a dataset will read, as mmengine's BaseDataset joins
    them with ``data_root``."""
    root = ds.get('data_root') or ''
    ann = ds.get('ann_file')
    if ann and not osp.isabs(ann):
        ann = osp.join(root, ann)
    prefix = (ds.get('data_prefix') or {}).get('img', '')
    img_dir = prefix if osp.isabs(prefix) else osp.join(root, prefix)
    return ann or None, img_dir or '.'


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
        before = resolve_dataset_paths(ds)[0]
        if new_root is not None:
            ds.data_root = new_root
        if classes is not None:
            ds.metainfo = dict(ds.get('metainfo') or {}, classes=list(classes))
        split_anns.setdefault(split_of(key), (before, resolve_dataset_paths(ds)[0]))
    if new_root is not None:
        for key, metric in iter_evaluators(cfg):
            ann = metric.get('ann_file')
            if not isinstance(ann, str):
                continue
            # The metric scores the split's dataset: it follows that dataset's annotation file,
            # whatever the config's top-level data_root variable says.
            before, after = split_anns.get(split_of(key), (None, None))
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
