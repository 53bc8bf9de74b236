"""The generated "shapes" dataset: a small, deterministic detection dataset for CPU experiments,
in COCO format (boxes and instance masks) and, converted from it, in OpenImages V6 format.

Not an equation of the paper: the data the main job (``make demo``) and the tests train on.

Six classes told apart by shape *and* texture (colours are random per object, so colour alone
says nothing): disc/stripes, triangle/dots, square/checker, star/noise, ring/concentric and
cross/grid. Objects span 20 to 250 px and aspect ratios 1:3 to 3:1, overlap (later objects are
drawn over earlier ones), and sit on cluttered backgrounds (a colour field, noise, lines and
blobs, some of them wearing the objects' textures). Each box is tight around the object's
*visible* pixels, taken from the final per-object ownership map, and its instance mask (COCO RLE)
is exactly those pixels; objects less than ``min_visible`` visible get no box (their pixels stay,
as clutter). Tight boxes around partly hidden, textured objects make precise localisation matter:
AP75 sits far below AP50 for a plain Faster R-CNN (0.32 against 0.57 after the 800 iterations of
configs/shapes/).

Layout under ``root`` (default ``data/shapes``)::

    train/000001.jpg ...            val/000001.jpg ...
    annotations/instances_train.json  annotations/instances_val.json
    manifest.json                   generator version, parameters and statistics

Every run with the same parameters writes the same bytes (each image has its own seeded
generator, ``numpy.random.default_rng([split_seed, index])``). ``ensure_dataset`` generates only
when the manifest is missing or records another version or other parameters. Files are replaced
one by one (written aside, then renamed), so a job reading the dataset while it is regenerated
never sees a half-written file. Version 3 added the masks (version 2 wrote the box as the
segmentation); its images and boxes are version 2's, byte for byte.

The OpenImages copy (``generate_openimages``, default root ``data/shapes_openimages``) has the
layout and file names of mmdet's configs/_base_/datasets/openimages_detection.py::

    OpenImages/train/000001.jpg ...          OpenImages/validation/000001.jpg ...
    annotations/oidv6-train-annotations-bbox.csv    annotations/validation-annotations-bbox.csv
    annotations/class-descriptions-boxable.csv      annotations/bbox_labels_600_hierarchy.json
    annotations/train-image-metas.pkl               annotations/validation-image-metas.pkl
    annotations/validation-annotations-human-imagelabels-boxable.csv
    manifest.json                   its parameters and the COCO dataset's version and parameters

Same images and boxes (images without a box are left out, as OpenImagesDataset needs), eight
classes: the six and two parents over them (round: disc, ring; angular: triangle, square, star,
cross), so that OpenImagesMetric expands the hierarchy. In a ``group_of`` fraction of the (image,
class) pairs with two or more objects, one group-of box around them all replaces their boxes.
Validation images carry image-level labels: the classes present (confidence 1) and a
``negative_labels`` fraction of the absent ones, verified absent (confidence 0). These draws come
from a generator of their own, ``default_rng([split_seed, index, 1])``: the COCO data does not
depend on them.

    python tools/dataset_converters/generate_shapes.py --root data/shapes --num-train 600 \
        --num-val 100 --openimages-root data/shapes_openimages
"""
import csv
import fcntl
import io
import json
import os
import os.path as osp
import pickle
import shutil

import numpy as np
from PIL import Image, ImageDraw
from pycocotools import mask as mask_utils

GENERATOR_VERSION = 3
DEFAULT_ROOT = 'data/shapes'
DEFAULT_OPENIMAGES_ROOT = 'data/shapes_openimages'
CLASSES = ('disc', 'triangle', 'square', 'star', 'ring', 'cross')
TEXTURES = ('stripes', 'dots', 'checker', 'noise', 'concentric', 'grid')
DEFAULT_PARAMS = dict(
    num_train=600,
    num_val=100,
    seed=0,
    min_image_size=320,
    max_image_size=480,
    min_objects=3,
    max_objects=10,
    min_object_size=20,
    max_object_size=250,
    max_aspect_ratio=3.0,
    min_visible=0.5,
    max_blobs=6,
    max_lines=8,
    textured_blobs=0.1,
)
OPENIMAGES_PARAMS = dict(group_of=0.3, negative_labels=0.5)
PARENT_CLASSES = dict(round=('disc', 'ring'), angular=('triangle', 'square', 'star', 'cross'))
# OpenImages files, named as in mmdet's configs/_base_/datasets/openimages_detection.py
OPENIMAGES_SPLITS = dict(train='train', val='validation')
OPENIMAGES_FILES = dict(
    label_file='annotations/class-descriptions-boxable.csv',
    hierarchy_file='annotations/bbox_labels_600_hierarchy.json',
    train_ann_file='annotations/oidv6-train-annotations-bbox.csv',
    val_ann_file='annotations/validation-annotations-bbox.csv',
    train_meta_file='annotations/train-image-metas.pkl',
    val_meta_file='annotations/validation-image-metas.pkl',
    val_image_level_ann_file='annotations/validation-annotations-human-imagelabels-boxable.csv',
)
OPENIMAGES_BOX_HEADER = ('ImageID', 'Source', 'LabelName', 'Confidence', 'XMin', 'XMax', 'YMin',
                         'YMax', 'IsOccluded', 'IsTruncated', 'IsGroupOf', 'IsDepiction',
                         'IsInside')
_OPENIMAGES_STREAM = 1  # third seed word: the OpenImages draws never reuse the images' stream
_MAX_ROTATION = np.pi / 9
_JPEG_QUALITY = 92


def _unit_polygons(label: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
    """Outline (N, 2) of a class's shape around the origin, and the hole's outline for a ring."""
    circle = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    circle = np.stack([np.cos(circle), np.sin(circle)], axis=1)
    if label == 'disc':
        return circle, None
    if label == 'ring':
        return circle, circle * rng.uniform(0.45, 0.65)
    if label == 'triangle':
        angles = np.deg2rad([90.0, 210.0, 330.0])
        return np.stack([np.cos(angles), -np.sin(angles)], axis=1), None
    if label == 'square':
        return np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]]), None
    if label == 'star':
        angles = np.pi / 2 + np.arange(10) * np.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, 1.0, rng.uniform(0.38, 0.5))
        return np.stack([radii * np.cos(angles), -radii * np.sin(angles)], axis=1), None
    if label == 'cross':
        a = rng.uniform(0.2, 0.34)
        return np.array([[-a, -1], [a, -1], [a, -a], [1, -a], [1, a], [a, a], [a, 1], [-a, 1],
                         [-a, a], [-1, a], [-1, -a], [-a, -a]], dtype=float), None
    raise ValueError(f'unknown shape {label!r}')


def _shape_mask(label: str, w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """Boolean (h, w) mask of a shape rotated by up to 20 degrees, then stretched to fill w x h."""
    outline, hole = _unit_polygons(label, rng)
    theta = rng.uniform(-_MAX_ROTATION, _MAX_ROTATION)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    outline = outline @ rot.T
    lo, hi = outline.min(0), outline.max(0)
    scale = np.array([w, h]) / (hi - lo)
    canvas = Image.new('L', (w, h), 0)
    draw = ImageDraw.Draw(canvas)
    draw.polygon([tuple(p) for p in (outline - lo) * scale], fill=1)
    if hole is not None:
        draw.polygon([tuple(p) for p in (hole @ rot.T - lo) * scale], fill=0)
    return np.asarray(canvas, dtype=bool)


def _two_colours(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two random RGB colours far enough apart for a texture drawn with them to show."""
    while True:
        a, b = rng.uniform(0, 255, size=(2, 3))
        if np.abs(a - b).sum() > 150:
            return a, b


def _texture(kind: str, w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """A (h, w, 3) float texture with random colours; its scale follows the object's size."""
    c1, c2 = _two_colours(rng)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    period = float(np.clip(min(w, h) / rng.uniform(3.0, 6.0), 3.0, 18.0))
    if kind == 'stripes':
        phi = rng.uniform(0, np.pi)
        t = ((xx * np.cos(phi) + yy * np.sin(phi)) / period) % 1.0 < 0.5
    elif kind == 'dots':
        cx, cy = (xx % period) - period / 2, (yy % period) - period / 2
        t = cx * cx + cy * cy < (0.3 * period) ** 2
    elif kind == 'checker':
        t = ((xx // period) + (yy // period)) % 2 == 0
    elif kind == 'grid':
        t = ((xx % period) < max(1.0, period / 4)) | ((yy % period) < max(1.0, period / 4))
    elif kind == 'concentric':
        t = (np.hypot(xx - w / 2, yy - h / 2) / period) % 1.0 < 0.5
    elif kind == 'noise':
        noise = rng.normal(0.0, 40.0, size=(h, w, 3)).astype(np.float32)
        return c1.astype(np.float32) + noise
    else:
        raise ValueError(f'unknown texture {kind!r}')
    return np.where(t[..., None], c1, c2).astype(np.float32)


def _background(w: int, h: int, rng: np.random.Generator, params: dict) -> np.ndarray:
    """A (h, w, 3) cluttered background: a smooth colour field, blobs (a ``textured_blobs``
    fraction of them wearing an object texture) and lines."""
    field = rng.uniform(0, 255, size=(rng.integers(2, 6), rng.integers(2, 6), 3)).astype(np.uint8)
    img = Image.fromarray(field).resize((w, h), Image.BICUBIC)
    draw = ImageDraw.Draw(img)
    for _ in range(rng.integers(2, params['max_blobs'] + 1)):
        # an irregular blob: a star-convex polygon with jittered radii, solid or textured
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(8, 0.25 * min(w, h))
        angles = np.sort(rng.uniform(0, 2 * np.pi, size=rng.integers(5, 11)))
        radii = r * rng.uniform(0.4, 1.0, size=angles.size)
        pts = [(cx + q * np.cos(a), cy + q * np.sin(a)) for a, q in zip(angles, radii)]
        if rng.random() < params['textured_blobs']:
            mask = Image.new('L', (w, h), 0)
            ImageDraw.Draw(mask).polygon(pts, fill=255)
            tex = _texture(TEXTURES[rng.integers(len(TEXTURES))], w, h, rng)
            img.paste(Image.fromarray(np.clip(tex, 0, 255).astype(np.uint8)), (0, 0), mask)
            draw = ImageDraw.Draw(img)
        else:
            draw.polygon(pts, fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    for _ in range(rng.integers(2, params['max_lines'] + 1)):
        x0, x1 = rng.uniform(-0.2 * w, 1.2 * w, size=2)
        y0, y1 = rng.uniform(-0.2 * h, 1.2 * h, size=2)
        draw.line([(x0, y0), (x1, y1)], fill=tuple(int(c) for c in rng.integers(0, 256, 3)),
                  width=int(rng.integers(1, 4)))
    return np.asarray(img, dtype=np.float32)


def render_image(rng: np.random.Generator,
                 params: dict) -> tuple[np.ndarray, list[dict], np.ndarray]:
    """Draw one image and its objects.

    Returns:
        image: (H, W, 3) uint8 RGB.
        objects: dicts with ``label`` (index into CLASSES), ``bbox`` [x, y, w, h] tight around the
            visible pixels, ``area`` (visible pixel count) and ``visibility`` (visible / full area),
            in drawing order, objects less than ``min_visible`` visible left out.
        owner: (H, W) int32, the index into ``objects`` of the object each pixel shows, -1 for
            background and for the pixels of objects left out.
    """
    w = int(rng.integers(params['min_image_size'], params['max_image_size'] + 1))
    h = int(rng.integers(params['min_image_size'], params['max_image_size'] + 1))
    img = _background(w, h, rng, params)
    owner = np.full((h, w), -1, dtype=np.int32)
    full_area = []
    n = int(rng.integers(params['min_objects'], params['max_objects'] + 1))
    max_size = min(params['max_object_size'], 0.8 * min(w, h))
    log_ar = np.log(params['max_aspect_ratio'])
    placed: list[tuple[float, float, int, int]] = []
    for i in range(n):
        label = int(rng.integers(len(CLASSES)))
        size = np.exp(rng.uniform(np.log(params['min_object_size']), np.log(max_size)))
        ratio = np.exp(rng.uniform(-log_ar, log_ar))
        ow = int(np.clip(round(size * np.sqrt(ratio)), 6, 1.2 * max_size))
        oh = int(np.clip(round(size / np.sqrt(ratio)), 6, 1.2 * max_size))
        if placed and rng.random() < 0.4:
            # next to an earlier object, so that occlusion is common rather than accidental
            px, py, pw, ph = placed[rng.integers(len(placed))]
            x0 = int(px + pw / 2 + rng.uniform(-0.6, 0.6) * (pw + ow) - ow / 2)
            y0 = int(py + ph / 2 + rng.uniform(-0.6, 0.6) * (ph + oh) - oh / 2)
        else:
            x0 = int(rng.uniform(-0.15 * ow, w - 0.85 * ow))
            y0 = int(rng.uniform(-0.15 * oh, h - 0.85 * oh))
        placed.append((x0, y0, ow, oh))
        mask = _shape_mask(CLASSES[label], ow, oh, rng)
        tex = _texture(TEXTURES[label], ow, oh, rng)
        full_area.append((label, int(mask.sum())))
        # the part of the object's box that lies inside the image
        ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x0 + ow, w), min(y0 + oh, h)
        if ix0 >= ix1 or iy0 >= iy1:
            continue
        m = mask[iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0]
        img[iy0:iy1, ix0:ix1][m] = tex[iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0][m]
        owner[iy0:iy1, ix0:ix1][m] = i
    img += rng.normal(0.0, rng.uniform(3.0, 12.0), size=img.shape).astype(np.float32)
    image = np.clip(img, 0, 255).astype(np.uint8)

    counts = np.bincount(owner.ravel() + 1, minlength=n + 1)[1:]
    objects = []
    kept = np.full((h, w), -1, dtype=np.int32)
    for i, (label, area) in enumerate(full_area):
        visible = int(counts[i])
        if visible == 0 or visible < params['min_visible'] * area:
            continue
        mine = owner == i
        ys, xs = np.nonzero(mine)
        x, y = int(xs.min()), int(ys.min())
        bw, bh = int(xs.max()) - x + 1, int(ys.max()) - y + 1
        if min(bw, bh) < 4:
            continue
        kept[mine] = len(objects)
        objects.append(dict(label=label, bbox=[x, y, bw, bh], area=visible,
                            visibility=round(visible / area, 3)))
    return image, objects, kept


def _write(path: str, data: bytes) -> None:
    """Write ``data`` beside ``path``, then rename it over ``path``: a reader sees the old file or
    the new one, never part of one."""
    tmp = osp.join(osp.dirname(path), f'.{osp.basename(path)}.tmp')
    with open(tmp, 'wb') as f:
        f.write(data)
    os.replace(tmp, path)


def _remove_others(folder: str, keep: set[str]) -> None:
    """Delete the files in ``folder`` that this run did not write (a previous, larger dataset's)."""
    for name in os.listdir(folder):
        path = osp.join(folder, name)
        if name not in keep:
            if osp.isdir(path) and not osp.islink(path):
                shutil.rmtree(path)
            else:
                os.remove(path)


def mask_to_rle(mask: np.ndarray) -> dict:
    """COCO compressed RLE (``size`` [h, w], ``counts`` str) of a boolean (h, w) mask."""
    rle = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))
    return dict(size=[int(s) for s in rle['size']], counts=rle['counts'].decode('ascii'))


def generate_split(root: str, split: str, num_images: int, split_seed: int, params: dict) -> dict:
    """Write ``root/<split>/*.jpg`` and ``root/annotations/instances_<split>.json``; return
    the COCO dict."""
    os.makedirs(osp.join(root, split), exist_ok=True)
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    images, annotations = [], []
    for idx in range(num_images):
        rng = np.random.default_rng([split_seed, idx])
        image, objects, owner = render_image(rng, params)
        file_name = f'{idx + 1:06d}.jpg'
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format='JPEG', quality=_JPEG_QUALITY, subsampling=0)
        _write(osp.join(root, split, file_name), buffer.getvalue())
        images.append(dict(id=idx + 1, file_name=file_name, width=image.shape[1],
                           height=image.shape[0]))
        for k, obj in enumerate(objects):
            annotations.append(dict(
                id=len(annotations) + 1, image_id=idx + 1, category_id=obj['label'] + 1,
                bbox=obj['bbox'], area=obj['area'], iscrowd=0,
                segmentation=mask_to_rle(owner == k), visibility=obj['visibility']))
    _remove_others(osp.join(root, split), {im['file_name'] for im in images})
    coco = dict(
        info=dict(description=f'shapes {split}', version=GENERATOR_VERSION),
        images=images, annotations=annotations,
        categories=[dict(id=i + 1, name=name, supercategory='shape')
                    for i, name in enumerate(CLASSES)])
    _write(osp.join(root, 'annotations', f'instances_{split}.json'), json.dumps(coco).encode())
    return coco


def dataset_stats(coco: dict) -> dict:
    """Counts per class, box sizes and aspect ratios, and how many objects are partly hidden."""
    anns = coco['annotations']
    sides = np.array([np.sqrt(a['bbox'][2] * a['bbox'][3]) for a in anns]) if anns else np.zeros(1)
    ratios = np.array([a['bbox'][2] / a['bbox'][3] for a in anns]) if anns else np.ones(1)
    names = {c['id']: c['name'] for c in coco['categories']}
    per_class = {name: 0 for name in names.values()}
    for a in anns:
        per_class[names[a['category_id']]] += 1
    return dict(
        images=len(coco['images']),
        objects=len(anns),
        per_class=per_class,
        box_side_px=dict(min=round(float(sides.min()), 1), median=round(float(np.median(sides)), 1),
                         max=round(float(sides.max()), 1)),
        aspect_ratio=dict(min=round(float(ratios.min()), 2), max=round(float(ratios.max()), 2)),
        occluded=sum(a['visibility'] < 0.99 for a in anns),
    )


def _start(root: str) -> str:
    """Create ``root`` and remove its manifest, so that an interrupted run counts as stale; return
    the manifest's path."""
    os.makedirs(root, exist_ok=True)
    manifest_path = osp.join(root, 'manifest.json')
    if osp.exists(manifest_path):
        os.remove(manifest_path)
    return manifest_path


def generate_dataset(root: str = DEFAULT_ROOT, **overrides) -> dict:
    """Generate both splits under ``root`` (replacing old ones) and write the manifest.

    Keyword arguments override DEFAULT_PARAMS. Training images use ``seed``, validation images
    ``seed + 1``. Returns the manifest: version, parameters and per-split statistics.
    """
    unknown = set(overrides) - set(DEFAULT_PARAMS)
    if unknown:
        raise TypeError(f'unknown parameter(s) {sorted(unknown)}; known: {sorted(DEFAULT_PARAMS)}')
    params = {**DEFAULT_PARAMS, **overrides}
    manifest_path = _start(root)
    stats = {}
    for split, num, split_seed in (('train', params['num_train'], params['seed']),
                                   ('val', params['num_val'], params['seed'] + 1)):
        stats[split] = dataset_stats(generate_split(root, split, num, split_seed, params))
    _remove_others(osp.join(root, 'annotations'),
                   {f'instances_{split}.json' for split in ('train', 'val')})
    manifest = dict(version=GENERATOR_VERSION, params=params, stats=stats)
    with open(manifest_path, 'w') as f:
        json.dump(manifest, f, indent=2)
    return manifest


def read_manifest(root: str) -> dict | None:
    try:
        with open(osp.join(root, 'manifest.json')) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _is_current(root: str, params: dict) -> bool:
    manifest = read_manifest(root) or {}
    return (manifest.get('version') == GENERATOR_VERSION and manifest.get('params') == params
            and all(osp.isfile(osp.join(root, 'annotations', f'instances_{s}.json'))
                    for s in ('train', 'val')))


def _ensure(root: str, is_current, generate) -> bool:
    """Run ``generate()`` unless ``is_current()``, under a file lock in ``root`` (several processes
    may call at once); True when it generated."""
    if is_current():
        return False
    os.makedirs(root, exist_ok=True)
    with open(osp.join(root, '.generate.lock'), 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_current():
            return False
        generate()
        return True


def ensure_dataset(root: str = DEFAULT_ROOT, **overrides) -> bool:
    """Generate the dataset under ``root`` unless its manifest matches this version and parameters.

    Safe to call from several processes at once (a file lock serialises them). Returns True when
    it generated, False when the data was already current.
    """
    params = {**DEFAULT_PARAMS, **overrides}
    return _ensure(root, lambda: _is_current(root, params),
                   lambda: generate_dataset(root, **overrides))


def openimages_classes() -> tuple[str, ...]:
    """The OpenImages copy's classes in label order: the six shapes, then their parents."""
    return CLASSES + tuple(PARENT_CLASSES)


def openimages_label_id(name: str) -> str:
    """The label ID (OpenImages' MID column) of a class name."""
    return f'/shapes/{name}'


def _csv_bytes(rows: list) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator='\n').writerows(rows)
    return out.getvalue().encode()


def _link_or_copy(src: str, dst: str) -> None:
    """Hard-link ``src`` to ``dst`` (a copy where links are not possible), replacing ``dst``."""
    tmp = osp.join(osp.dirname(dst), f'.{osp.basename(dst)}.tmp')
    if osp.lexists(tmp):
        os.remove(tmp)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def _openimages_image(image: dict, anns: list[dict], rng: np.random.Generator, params: dict,
                      with_image_labels: bool) -> tuple[list[list], list[list]]:
    """The box rows (OPENIMAGES_BOX_HEADER) and image-level label rows of one image.

    Boxes are normalised to [0, 1]. IsOccluded: less than 99 % visible (any object of a group);
    IsTruncated: the box touches the image's edge.
    """
    image_id = osp.splitext(image['file_name'])[0]
    w, h = image['width'], image['height']
    by_label: dict[int, list[dict]] = {}
    for ann in anns:
        by_label.setdefault(ann['category_id'] - 1, []).append(ann)
    rows = []
    for label in sorted(by_label):
        group = by_label[label]
        boxes = [[a['bbox'][0], a['bbox'][1], a['bbox'][0] + a['bbox'][2],
                  a['bbox'][1] + a['bbox'][3]] for a in group]
        occluded = [a['visibility'] < 0.99 for a in group]
        group_of = len(group) >= 2 and rng.random() < params['group_of']
        if group_of:
            xy = np.array(boxes)
            boxes = [[*xy[:, :2].min(0).tolist(), *xy[:, 2:].max(0).tolist()]]
            occluded = [any(occluded)]
        for (x0, y0, x1, y1), occ in zip(boxes, occluded):
            truncated = x0 == 0 or y0 == 0 or x1 == w or y1 == h
            rows.append([image_id, 'xclick', openimages_label_id(CLASSES[label]), 1,
                         x0 / w, x1 / w, y0 / h, y1 / h, int(occ), int(truncated), int(group_of),
                         0, 0])
    labels = []
    if with_image_labels:
        present = {CLASSES[label] for label in by_label}
        present |= {parent for parent, children in PARENT_CLASSES.items()
                    if present & set(children)}
        for name in openimages_classes():
            if name in present:
                labels.append([image_id, 'verification', openimages_label_id(name), 1])
            elif rng.random() < params['negative_labels']:
                labels.append([image_id, 'verification', openimages_label_id(name), 0])
    return rows, labels


def generate_openimages(root: str = DEFAULT_OPENIMAGES_ROOT, coco_root: str = DEFAULT_ROOT,
                        **overrides) -> dict:
    """Write the OpenImages V6 copy of the COCO dataset under ``coco_root`` (generated already)
    to ``root``, replacing an old one, and its manifest.

    Keyword arguments override OPENIMAGES_PARAMS. Returns the manifest: version, parameters, the
    COCO dataset's version and parameters (``source``) and per-split statistics.
    """
    unknown = set(overrides) - set(OPENIMAGES_PARAMS)
    if unknown:
        raise TypeError(
            f'unknown parameter(s) {sorted(unknown)}; known: {sorted(OPENIMAGES_PARAMS)}')
    params = {**OPENIMAGES_PARAMS, **overrides}
    source = read_manifest(coco_root)
    if source is None:
        raise FileNotFoundError(f'{coco_root}/manifest.json not found: generate the COCO dataset '
                                f'first (ensure_dataset)')
    manifest_path = _start(root)
    ann_dir = osp.join(root, 'annotations')
    os.makedirs(ann_dir, exist_ok=True)
    names = openimages_classes()
    _write(osp.join(root, OPENIMAGES_FILES['label_file']),
           _csv_bytes([[openimages_label_id(n), n] for n in names]))
    hierarchy = {'LabelName': '/m/0bl9f',  # OpenImages' root, "Entity"; not a class
                 'Subcategory': [
                     {'LabelName': openimages_label_id(parent),
                      'Subcategory': [{'LabelName': openimages_label_id(c)} for c in children]}
                     for parent, children in PARENT_CLASSES.items()]}
    _write(osp.join(root, OPENIMAGES_FILES['hierarchy_file']), json.dumps(hierarchy).encode())
    written = {osp.basename(OPENIMAGES_FILES[k]) for k in ('label_file', 'hierarchy_file')}
    stats = {}
    for split, split_seed in (('train', source['params']['seed']),
                              ('val', source['params']['seed'] + 1)):
        with open(osp.join(coco_root, 'annotations', f'instances_{split}.json')) as f:
            coco = json.load(f)
        anns_of: dict[int, list[dict]] = {}
        for ann in coco['annotations']:
            anns_of.setdefault(ann['image_id'], []).append(ann)
        img_dir = osp.join(root, 'OpenImages', OPENIMAGES_SPLITS[split])
        os.makedirs(img_dir, exist_ok=True)
        boxes, labels, metas = [list(OPENIMAGES_BOX_HEADER)], [], []
        for image in coco['images']:
            if not anns_of.get(image['id']):
                continue  # OpenImagesDataset lists the images of the box file only
            rng = np.random.default_rng([split_seed, image['id'] - 1, _OPENIMAGES_STREAM])
            rows, image_labels = _openimages_image(image, anns_of[image['id']], rng, params,
                                                   with_image_labels=split == 'val')
            boxes += rows
            labels += image_labels
            file_name = f'{rows[0][0]}.jpg'
            _link_or_copy(osp.join(coco_root, split, image['file_name']),
                          osp.join(img_dir, file_name))
            metas.append(dict(filename=f'OpenImages/{OPENIMAGES_SPLITS[split]}/{file_name}',
                              ori_shape=(image['height'], image['width'], 3)))
        _remove_others(img_dir, {osp.basename(m['filename']) for m in metas})
        _write(osp.join(root, OPENIMAGES_FILES[f'{split}_ann_file']), _csv_bytes(boxes))
        _write(osp.join(root, OPENIMAGES_FILES[f'{split}_meta_file']),
               pickle.dumps(metas, protocol=4))
        written |= {osp.basename(OPENIMAGES_FILES[f'{split}_{k}'])
                    for k in ('ann_file', 'meta_file')}
        if split == 'val':
            _write(osp.join(root, OPENIMAGES_FILES['val_image_level_ann_file']),
                   _csv_bytes([['ImageID', 'Source', 'LabelName', 'Confidence'], *labels]))
            written.add(osp.basename(OPENIMAGES_FILES['val_image_level_ann_file']))
        stats[split] = dict(
            images=len(metas), boxes=len(boxes) - 1,
            group_of=sum(row[10] for row in boxes[1:]),
            image_labels=dict(positive=sum(row[3] == 1 for row in labels),
                              negative=sum(row[3] == 0 for row in labels)))
    _remove_others(ann_dir, written)
    manifest = dict(version=GENERATOR_VERSION, params=params,
                    source=dict(version=source['version'], params=source['params']), stats=stats)
    with open(manifest_path, 'w') as f:
        json.dump(manifest, f, indent=2)
    return manifest


def _is_current_openimages(root: str, coco_root: str, params: dict) -> bool:
    manifest, source = read_manifest(root) or {}, read_manifest(coco_root) or {}
    return (manifest.get('version') == GENERATOR_VERSION and manifest.get('params') == params
            and manifest.get('source') == dict(version=source.get('version'),
                                               params=source.get('params'))
            and all(osp.isfile(osp.join(root, path)) for path in OPENIMAGES_FILES.values()))


def ensure_openimages(root: str = DEFAULT_OPENIMAGES_ROOT, coco_root: str = DEFAULT_ROOT,
                      **overrides) -> bool:
    """Write the OpenImages copy of ``coco_root`` (which ``ensure_dataset`` made current first)
    to ``root`` unless its manifest matches this version, these parameters and that dataset.

    Safe to call from several processes at once. Returns True when it generated.
    """
    params = {**OPENIMAGES_PARAMS, **overrides}
    return _ensure(root, lambda: _is_current_openimages(root, coco_root, params),
                   lambda: generate_openimages(root, coco_root, **overrides))
