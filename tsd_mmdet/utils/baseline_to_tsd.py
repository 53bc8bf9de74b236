"""Upgrade a trained baseline checkpoint (box head mmdet's Shared2FCBBoxHead) to a TSD model.

Relates to eq. 2 and 9: the baseline's head H_* becomes the sibling and both TSD branches H_1^D
(cls_fcs + fc_cls) and H_2^D (reg_fcs + fc_reg); the offset predictors F_c, F_r (eq. 3, 5) keep
their init. With zero offsets TSD then computes exactly what the baseline computes.
"""
import re
from collections import Counter
from dataclasses import asdict, dataclass, field

from mmengine.config import ConfigDict
from torch import Tensor, nn

from ..models.bbox_heads import TSDBBoxHead
from ..models.roi_heads import TSDStageMixin

# The layers of a plain Shared2FCBBoxHead, and where each goes in TSDBBoxHead.
BASELINE_HEAD_LAYERS = ('shared_fcs.0', 'shared_fcs.1', 'fc_cls', 'fc_reg')
BRANCH_LAYERS = {
    'cls_fcs.0': 'shared_fcs.0',
    'cls_fcs.1': 'shared_fcs.1',
    'fc_cls': 'fc_cls',
    'reg_fcs.0': 'shared_fcs.0',
    'reg_fcs.1': 'shared_fcs.1',
    'fc_reg': 'fc_reg',
}
PARAMS = ('weight', 'bias')
BOX_HEAD = 'roi_head.bbox_head.'


class ConversionError(ValueError):
    """The baseline checkpoint does not fit the TSD model; the message says what differs."""


@dataclass
class ConversionReport:
    """What :func:`convert` did with each key.

    Attributes:
        head (list[tuple[str, str]]): (TSD key, baseline key) of the box heads: TSD branches and
            sibling heads.
        copied (list[str]): keys taken as they are (backbone, neck, RPN, mask branch, ...).
        left_at_init (list[str]): TSD keys the baseline has no weights for (offset predictors).
        dropped (list[str]): baseline keys not used, each with the reason.
    """

    head: list[tuple[str, str]] = field(default_factory=list)
    copied: list[str] = field(default_factory=list)
    left_at_init: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """A readable summary, one layer (weight and bias together) per line."""
        mapped = dict.fromkeys((_layer_of(t), _layer_of(b)) for t, b in self.head)
        copied = Counter(_module_of(k) for k in self.copied)
        out = ['box heads (TSD <- baseline):']
        out += [f'  {t} <- {b}' for t, b in mapped]
        out.append('copied as they are: ' + (
            ', '.join(f'{m} ({n} tensors)' for m, n in copied.items()) or 'nothing'))
        out.append('left at init: ' + (
            ', '.join(dict.fromkeys(_layer_of(k) for k in self.left_at_init)) or 'nothing'))
        out.append('dropped from the baseline: ' + (', '.join(self.dropped) or 'nothing'))
        return out

    def as_meta(self) -> dict:
        """The report as plain lists, for a checkpoint's ``meta``."""
        return asdict(self)


def _layer_of(key: str) -> str:
    """``a.b.weight`` -> ``a.b``."""
    return key.rsplit('.', 1)[0]


def _module_of(key: str) -> str:
    """Top-level module of a detector key: ``backbone``, ``neck``, ``roi_head.mask_head``..."""
    parts = key.split('.')
    return '.'.join(parts[:2]) if parts[0] == 'roi_head' else parts[0]


def unwrap_state_dict(checkpoint: dict) -> dict[str, Tensor]:
    """The model weights of a checkpoint, with or without the ``state_dict`` wrapper.

    A ``module.`` prefix (a checkpoint saved from a distributed wrapper) is removed, as
    mmengine's ``load_checkpoint`` does.
    """
    state_dict = checkpoint.get('state_dict', checkpoint)
    return {re.sub(r'^module\.', '', k): v for k, v in state_dict.items()}


def _tsd_stages(model: nn.Module) -> list[tuple[str, TSDBBoxHead, str | None]]:
    """(key prefix, TSD head, sibling key prefix or None) of each stage of the TSD model, from the
    RoI head's stage contract (any TSD host: Faster, Cascade, HTC, Dynamic, ...)."""
    roi_head = getattr(model, 'roi_head', None)
    if not isinstance(roi_head, TSDStageMixin):
        heads = getattr(roi_head, 'bbox_head', None)
        raise ConversionError('the config is not a TSD model: its roi_head.bbox_head is '
                              f'{type(heads).__name__}, not TSDBBoxHead')
    names = {id(module): name for name, module in model.named_modules()}
    stages = []
    for i in range(roi_head.num_tsd_stages):
        stage = roi_head.tsd_stage(i)
        sibling = stage.sibling_head
        stages.append((names[id(stage.bbox_head)] + '.', stage.bbox_head,
                       None if sibling is None else names[id(sibling)] + '.'))
    return stages


def _check_stage_count(baseline: dict, num_tsd_stages: int | None) -> None:
    """Refuse a baseline whose box head has another number of cascade stages than TSD's
    (``num_tsd_stages``; None: a single-stage head)."""
    indices = {k[len(BOX_HEAD):].split('.')[0] for k in baseline if k.startswith(BOX_HEAD)}
    if not indices:
        raise ConversionError(f'the baseline checkpoint has no box head ({BOX_HEAD}*)')
    stages = sorted(int(i) for i in indices if i.isdigit())
    if num_tsd_stages is None and stages:
        raise ConversionError(f'the TSD config has a single-stage box head, the baseline '
                              f'{len(stages)} cascade stages')
    if num_tsd_stages is not None and stages != list(range(num_tsd_stages)):
        found = f'{len(stages)} cascade stages' if stages else 'a single-stage box head'
        raise ConversionError(f'the TSD config has {num_tsd_stages} cascade stages, the '
                              f'baseline {found}')


def _head_problems(baseline: dict, tsd: dict, prefix: str, head: TSDBBoxHead) -> list[str]:
    """Why the baseline's box head at ``prefix`` does not fit ``head`` (empty if it fits)."""
    expected = {f'{layer}.{p}' for layer in BASELINE_HEAD_LAYERS for p in PARAMS}
    found = {k[len(prefix):] for k in baseline if k.startswith(prefix)}
    if found != expected:
        return [f'the baseline head is not a plain Shared2FCBBoxHead (2 shared fcs, fc_cls, '
                f'fc_reg): unexpected keys {sorted(found - expected)}, missing keys '
                f'{sorted(expected - found)}']
    problems = []
    base_fc, tsd_fc = baseline[prefix + 'shared_fcs.0.weight'], tsd[prefix + 'cls_fcs.0.weight']
    if base_fc.shape[1] != tsd_fc.shape[1]:
        problems.append(f'input width (in_channels * roi_feat_size^2): baseline '
                        f'{base_fc.shape[1]}, TSD {tsd_fc.shape[1]}')
    if base_fc.shape[0] != tsd_fc.shape[0]:
        problems.append(f'fc width (fc_out_channels): baseline {base_fc.shape[0]}, TSD '
                        f'{tsd_fc.shape[0]}')
    base_cls, tsd_cls = (len(sd[prefix + 'fc_cls.bias']) for sd in (baseline, tsd))
    num_classes = base_cls - (tsd_cls - head.num_classes)
    if base_cls != tsd_cls:
        problems.append(f'num_classes: baseline {num_classes} (fc_cls has {base_cls} outputs), '
                        f'TSD {head.num_classes} (fc_cls has {tsd_cls} outputs)')
    base_reg, tsd_reg = (len(sd[prefix + 'fc_reg.bias']) for sd in (baseline, tsd))
    box_dim = head.bbox_coder.encode_size
    if base_reg != tsd_reg:
        if base_reg == box_dim and not head.reg_class_agnostic:
            problems.append(f'class-agnostic mismatch: the baseline regresses class-agnostic '
                            f'boxes (fc_reg has {base_reg} outputs), the TSD config has '
                            f'reg_class_agnostic=False ({tsd_reg} outputs)')
        elif head.reg_class_agnostic and base_reg == box_dim * num_classes:
            problems.append(f'class-agnostic mismatch: the baseline regresses per class '
                            f'(fc_reg has {base_reg} outputs), the TSD config has '
                            f'reg_class_agnostic=True ({tsd_reg} outputs)')
        elif base_cls == tsd_cls:
            problems.append(f'fc_reg outputs: baseline {base_reg}, TSD {tsd_reg}')
    return problems


def _mapping(prefix: str, sibling_prefix: str | None) -> dict[str, str]:
    """TSD key -> baseline key for one stage's box head (branches and sibling)."""
    mapping = {f'{prefix}{tsd}.{p}': f'{prefix}{base}.{p}'
               for tsd, base in BRANCH_LAYERS.items() for p in PARAMS}
    if sibling_prefix is not None:
        mapping.update({f'{sibling_prefix}{layer}.{p}': f'{prefix}{layer}.{p}'
                        for layer in BASELINE_HEAD_LAYERS for p in PARAMS})
    return mapping


def convert(tsd_model_cfg: ConfigDict,
            baseline_state_dict: dict[str, Tensor],
            seed: int = 0) -> tuple[dict[str, Tensor], ConversionReport]:
    """Map a baseline detector's weights onto the TSD model of ``tsd_model_cfg``.

    Backbone, neck, RPN, mask branch, ...: copied where the TSD model has the same key with the
    same shape. The baseline's box head (each stage's, for Cascade R-CNN): into the sibling head
    and into both TSD branches (classification: shared fcs + fc_cls; regression: shared fcs +
    fc_reg). Offset predictors and anything else the baseline lacks: the TSD model's init.

    Args:
        tsd_model_cfg (ConfigDict): ``model`` of a TSD config (any TSD RoI head).
        baseline_state_dict (dict[str, Tensor]): The baseline's weights (see
            :func:`unwrap_state_dict`).
        seed (int): Seed of the TSD model's init (the weights left at init).

    Returns:
        tuple[dict[str, Tensor], ConversionReport]: The TSD model's full state dict (loads
        strictly into the model of ``tsd_model_cfg``) and what was mapped, kept and dropped.

    Raises:
        ConversionError: The baseline's box head does not fit TSD's (another number of classes,
            fc widths or stages, class-agnostic regression on one side only, or not a plain
            Shared2FC head); the message names every mismatch.
    """
    # here, not at the top: the deployment package brings the runtimes (onnx, openvino) with it
    from ..deployment.loading import build_initialised_model
    model = build_initialised_model(tsd_model_cfg, seed)
    tsd = model.state_dict()
    stages = _tsd_stages(model)
    _check_stage_count(baseline_state_dict, None if stages[0][0] == BOX_HEAD else len(stages))
    problems, mapping = [], {}
    for prefix, head, sibling_prefix in stages:
        stage_problems = _head_problems(baseline_state_dict, tsd, prefix, head)
        stage_mapping = _mapping(prefix, sibling_prefix)
        if not stage_problems:
            stage_problems = [
                f'{t}: baseline {tuple(baseline_state_dict[b].shape)}, TSD {tuple(tsd[t].shape)}'
                for t, b in stage_mapping.items() if tsd[t].shape != baseline_state_dict[b].shape]
        problems += [f"{prefix.rstrip('.')}: {p}" for p in stage_problems]
        mapping.update(stage_mapping)
    if problems:
        raise ConversionError('the baseline box head does not fit the TSD config:\n  ' +
                              '\n  '.join(problems))

    report = ConversionReport()
    state_dict = dict(tsd)
    for tsd_key, base_key in mapping.items():
        state_dict[tsd_key] = baseline_state_dict[base_key].clone()
        report.head.append((tsd_key, base_key))
    for key, value in baseline_state_dict.items():
        if key.startswith(BOX_HEAD):
            continue
        if key not in tsd:
            report.dropped.append(f'{key} (not in the TSD model)')
        elif tsd[key].shape != value.shape:
            report.dropped.append(f'{key} (shape {tuple(value.shape)}, TSD '
                                  f'{tuple(tsd[key].shape)})')
        else:
            state_dict[key] = value.clone()
            report.copied.append(key)
    filled = set(mapping) | set(report.copied)
    report.left_at_init = [k for k in tsd if k not in filled]
    return state_dict, report
