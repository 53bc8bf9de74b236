"""Generate the "shapes" dataset (COCO format) and, optionally, its OpenImages V6 copy.

The generator is ``tsd_mmdet.datasets.shapes`` (its docstring describes the data). tools/train.py
and ``TSDRunner`` generate what a config reads when it is missing; this makes it by hand::

    python tools/dataset_converters/generate_shapes.py --root data/shapes --num-train 600 \
        --num-val 100 --openimages-root data/shapes_openimages
"""
import argparse
import json
import time

from tsd_mmdet.datasets import shapes


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--root', default=shapes.DEFAULT_ROOT, help='output folder')
    parser.add_argument('--openimages-root',
                        help=f'also write the OpenImages copy there (e.g. '
                        f'{shapes.DEFAULT_OPENIMAGES_ROOT})')
    for key, value in {**shapes.DEFAULT_PARAMS, **shapes.OPENIMAGES_PARAMS}.items():
        parser.add_argument(f'--{key.replace("_", "-")}', type=type(value), default=value)
    parser.add_argument('--force', action='store_true',
                        help='regenerate even when the manifest says the data is current')
    return parser.parse_args(argv)


def _run(root: str, ensure, generate, overrides: dict, force: bool) -> None:
    start = time.perf_counter()
    if force:
        generate(root, **overrides)
    elif not ensure(root, **overrides):
        print(f'{root} is up to date (manifest matches); use --force to regenerate')
        return
    print(f'wrote {root} in {time.perf_counter() - start:.1f}s')
    for split, stats in shapes.read_manifest(root)['stats'].items():
        print(f'{split}: {json.dumps(stats)}')


def main(argv=None):
    args = parse_args(argv)
    _run(args.root, shapes.ensure_dataset, shapes.generate_dataset,
         {k: getattr(args, k) for k in shapes.DEFAULT_PARAMS}, args.force)
    if args.openimages_root:
        overrides = {k: getattr(args, k) for k in shapes.OPENIMAGES_PARAMS}
        _run(args.openimages_root,
             lambda root, **kw: shapes.ensure_openimages(root, args.root, **kw),
             lambda root, **kw: shapes.generate_openimages(root, args.root, **kw), overrides,
             args.force)


if __name__ == '__main__':
    main()
