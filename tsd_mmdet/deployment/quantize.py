"""INT8 post-training quantization of an exported detector with NNCF, as OpenVINO IR.

Not an equation of the paper: quantizes the exported graph (eq. 3-6 as ``RoiAlign``; the offset
predictors of delta_c / delta_r, eq. 4 and 6, may be kept in fp32 by module name) on calibration
images taken from the config's training set through its test pipeline (the graph's input contract).
"""
import json
import logging
import os
import os.path as osp
import re
import time
from collections.abc import Sequence

import numpy as np
from mmdet.registry import DATASETS
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.utils import ProgressBar

from .checks import ExportError, innermost_dataset
from .runtimes import build_runtime
from .runtimes.openvino import RT_INFO, _metadata, _openvino

__all__ = ['KEEP_FP32', 'NAME_SCOPES_KEY', 'CalibrationDataError', 'calibration_images',
           'keep_fp32_nodes', 'module_scopes', 'quantize_detector']

# Where the ONNX export (torch.onnx, dynamo) records each node's module path, e.g.
# "['', 'detector.roi_head.bbox_head.delta_c_fc', 'linear_1']".
NAME_SCOPES_KEY = 'pkg.torch.onnx.name_scopes'
# Kept in fp32 by default: the RoI extractors' box arithmetic (the derived proposals P-hat_c,
# P-hat_r of eq. 3-6 from delta_c / delta_r, the FPN level mapping). NNCF's default puts 8-bit
# quantizers on its Add / Subtract / Multiply inputs, i.e. on box coordinates: on the trained TSD
# Faster R-CNN shapes model that cost 5.8 box AP (36.4 -> 30.6, large objects 45.7 -> 24.1);
# keeping them fp32 gave 36.4 (docs/deploy.md). Keeping the offset predictors fp32 instead
# ('delta_[cr]|offset_fc') did not help (30.3).
KEEP_FP32 = ('roi_extractor', )


class CalibrationDataError(ExportError):
    """The config's training set cannot give calibration images (missing, unreadable, empty)."""


def _nncf():
    try:
        import nncf
    except ImportError:
        raise ExportError('nncf is not installed: pip install -c requirements/constraints.txt '
                          'nncf (requirements/base.txt has it)') from None
    return nncf


def calibration_images(cfg: Config, num: int, seed: int = 0,
                       log=print) -> tuple[list[np.ndarray], str]:
    """``num`` images of the config's training set, chosen at random with ``seed``, each through
    the config's *test* pipeline: (1, 3, H, W) float32 arrays as the exported graph takes them.

    Args:
        cfg (Config): Detector config (its ``train_dataloader`` and ``test_dataloader``).
        num (int): How many images (fewer where the training set is smaller).
        seed (int): Seed of the choice.
        log (callable): Progress output (a progress bar is drawn on stdout too).

    Returns:
        tuple[list[ndarray], str]: The images and a description of where they come from (for
        the metadata).

    Raises:
        ExportError: ``num`` < 1.
        CalibrationDataError: the training set cannot be read or is empty (one line naming why).
    """
    if num < 1:
        raise ExportError(f'--calib-images must be at least 1, got {num}')
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    train = innermost_dataset(cfg.train_dataloader.dataset).copy()
    train['pipeline'] = innermost_dataset(cfg.test_dataloader.dataset)['pipeline']
    try:
        dataset = DATASETS.build(train)
        size = len(dataset)
    except Exception as e:  # the dataset's or its pipeline's own errors
        raise CalibrationDataError(
            f'cannot read the training set for calibration ({type(e).__name__}: '
            f'{str(e).strip().splitlines()[0][:200]}): check data_root '
            '(--cfg-options data_root=...)') from None
    if size == 0:
        raise CalibrationDataError('the training set is empty: no calibration images')
    indices = sorted(np.random.default_rng(seed).choice(size, min(num, size), replace=False))
    log(f'calibration: {len(indices)} of {size} training images (seed {seed}) through the test '
        'pipeline')
    images, bar = [], ProgressBar(len(indices))
    for index in indices:
        images.append(dataset[int(index)]['inputs'][None].float().numpy())
        bar.update()
    print(flush=True)
    root = train.get('data_root') or ''
    source = f"{train['type']} {osp.join(root, train.get('ann_file') or '')}".strip()
    return images, f'{len(indices)} of {size} training images of {source}, seed {seed}'


def module_scopes(onnx_file: str) -> dict[str, str]:
    """ONNX node name -> the module path the export recorded for it (``NAME_SCOPES_KEY``, joined
    by spaces: ``' detector.roi_head.bbox_head.delta_c_fc linear_1'``); nodes without one are
    left out."""
    import onnx
    scopes = {}
    for node in onnx.load(onnx_file, load_external_data=False).graph.node:
        for prop in node.metadata_props:
            if prop.key == NAME_SCOPES_KEY:
                scopes[node.name] = ' '.join(re.findall(r"'([^']*)'", prop.value))
    return scopes


def keep_fp32_nodes(onnx_file: str, patterns: Sequence[str]) -> list[str]:
    """Names of the ONNX nodes whose module path (recorded by the export) matches any of the
    regular expressions ``patterns`` (``re.search``), e.g. ``'delta_[cr]|offset_fc'`` for the
    offset predictors of TSD's Prop.w / Point.w (eq. 4 and 6).

    Raises:
        ExportError: a pattern matches no module of the file (the message lists some).
    """
    scopes = module_scopes(onnx_file)
    if not scopes:
        raise ExportError(f'{onnx_file} records no module paths ({NAME_SCOPES_KEY}): export it '
                          'with tools/deployment/pytorch2onnx.py')
    names = []
    for pattern in patterns:
        found = [name for name, scope in scopes.items() if re.search(pattern, scope)]
        if not found:
            modules = sorted({s.split()[-2] for s in scopes.values() if len(s.split()) > 1})
            raise ExportError(f'--keep-fp32 {pattern!r} matches no module of {onnx_file}; some '
                              f"of its modules: {', '.join(modules[-8:])}")
        names += found
    return sorted(set(names))


def quantize_detector(cfg: Config, onnx_file: str, out: str, num_images: int = 100,
                      seed: int = 0, keep_fp32: Sequence[str] = KEEP_FP32, log=print,
                      calibration: tuple[list[np.ndarray], str] | None = None) -> dict:
    """Quantize an exported detector to INT8 with NNCF's post-training quantization (its default
    settings: performance preset, 8-bit weights and activations, fast bias correction), the
    nodes of the modules ``keep_fp32`` left in fp32, and write it as OpenVINO IR (``out``, and the
    ``.bin`` beside).

    The file keeps the export's contract (the same input and outputs, run by ``--backend
    openvino``); its metadata is the ONNX file's plus ``quantization``: precision, tool, the
    calibration images, the modules kept in fp32.

    Args:
        cfg (Config): The config the ONNX file was exported from (checked against its metadata).
        onnx_file (str): File written by ``export_detector``.
        out (str): The IR to write (``.xml``).
        num_images (int): Calibration images (:func:`calibration_images`).
        seed (int): Seed of their choice.
        keep_fp32 (Sequence[str]): Module-path patterns left unquantized
            (:func:`keep_fp32_nodes`). Default :data:`KEEP_FP32`, the RoI extractors.
        log (callable): Progress output.
        calibration (tuple, optional): ``(images, description)`` to calibrate on instead of the
            training set's (the latency benchmark's random images, where the set is not here).

    Returns:
        dict: The ``quantization`` entry of the metadata.

    Raises:
        ExportError: ``out`` is not .xml, the ONNX file is not an export of this config, the
            training set cannot be read, or a ``keep_fp32`` pattern matches nothing.
    """
    if not out.endswith('.xml'):
        raise ExportError(f'the INT8 model is OpenVINO IR, an .xml file (and a .bin beside it), '
                          f'got {out}')
    build_runtime('openvino', onnx_file).check_config(cfg)  # contract, metadata and config
    nncf, ov = _nncf(), _openvino()
    keep = set(keep_fp32_nodes(onnx_file, keep_fp32)) if keep_fp32 else set()
    model = ov.Core().read_model(onnx_file)
    meta = json.loads(_metadata(model))
    # The ONNX node names are the prefix of OpenVINO's friendly names ('node_linear_1/...').
    ignored = [op.get_friendly_name() for op in model.get_ordered_ops()
               if op.get_friendly_name().split('/')[0] in keep]
    images, source = calibration or calibration_images(cfg, num_images, seed, log)
    log(f'quantizing with NNCF {nncf.__version__} ({len(ignored)} nodes kept in fp32)')
    start = time.perf_counter()
    scope = nncf.IgnoredScope(names=ignored, validate=False) if ignored else None
    from nncf.common.logging import nncf_logger
    level = nncf_logger.level
    nncf.set_log_level(logging.WARNING)  # not a line per node left without a quantizer
    try:
        quantized = nncf.quantize(model, nncf.Dataset(images), subset_size=len(images),
                                  **({'ignored_scope': scope} if scope else {}))
    finally:
        nncf.set_log_level(level)
    seconds = time.perf_counter() - start
    entry = dict(precision='int8', tool=f'nncf {nncf.__version__} quantize (post-training, '
                 'default preset)', calibration=source, keep_fp32=list(keep_fp32),
                 fp32_nodes=len(ignored), source=osp.basename(onnx_file))
    meta['quantization'] = entry
    quantized.set_rt_info(json.dumps(meta), list(RT_INFO))
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    ov.save_model(quantized, out, compress_to_fp16=False)
    log(f'wrote {out} in {seconds:.0f} s of quantization')
    return entry
