"""tsd-mmdet: task-aware spatial disentanglement (TSD) and progressive constraint for mmdet 3.x.

Importing the package registers TSD's modules (models, TSDRunner, hooks, an OpenImages metric) in
the mmdet / mmengine registries and makes the changes to mmengine listed in ``tsd_mmdet.compat``.
The op layer, ``tsd_mmdet.ops``, needs torch alone and imports without mmdet.
"""
__version__ = '0.1.0'

try:
    import mmdet  # noqa: F401
except ImportError:  # op layer only (e.g. a GPU machine with torch alone)
    pass
else:
    from . import compat, datasets, engine, evaluation, models, utils  # noqa: F401

    compat.install()
