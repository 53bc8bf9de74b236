"""mmdet 3.3's RoI heads that TSD does not host: each refused with one line that says why.

Not an equation of the paper: where the TSD loss of eq. 9 has no place. ``TSD<RoIHead>`` types
(e.g. ``TSDGridRoIHead``) are registered and raise; a sibling head of a refused kind (SABL's) is
refused by every TSD host (:func:`check_sibling_kind`).
"""
from mmdet.registry import MODELS

__all__ = ['REFUSED_ROI_HEADS', 'REFUSED_SIBLINGS', 'UnsupportedHostError', 'check_sibling_kind']

REFUSED_ROI_HEADS = {
    'GridRoIHead': 'Grid R-CNN locates boxes with grid points (GridHead), not box deltas: no '
                   'P-hat_r regression (eq. 4) for the TSD branch H_2^D nor decoded boxes for '
                   'M_loc (eq. 8); use TSDRoIHead (Faster R-CNN)',
    'DoubleHeadRoIHead': "Double-Head is the paper's D_head peer (Table 5: its own disentangled "
                         'fc-cls / conv-reg heads on one F), compared with TSD, not a host for '
                         'it; use TSDRoIHead (Faster R-CNN)',
    'SCNetRoIHead': "SCNet's box heads feed shared features to its feature relay and mask "
                    "branch, which TSD's branches do not produce; use "
                    'TSDHybridTaskCascadeRoIHead (HTC)',
    'SparseRoIHead': 'Sparse R-CNN / QueryInst refine learned proposals with dynamic heads and '
                     'set (Hungarian) losses: no sampled proposals P with a sibling head for '
                     "eq. 9's joint training",
    'MultiInstanceRoIHead': 'CrowdDet predicts several instances per proposal (EMD loss): '
                            "TSD's one-score, one-box branches and PC (eq. 7-8) have no such "
                            'pairing',
}
REFUSED_SIBLINGS = {
    'SABLHead': "SABL's bucketing head locates box sides by bucket scores and offsets, not "
                'deltas from P: no P-hat_r regression (eq. 4) for the TSD branch H_2^D nor '
                'decoded boxes for M_loc (eq. 8); use a delta head (Shared2FCBBoxHead)',
}


class UnsupportedHostError(ValueError):
    """A TSD config for an RoI head TSD does not host; the message is one line and says why."""


def check_sibling_kind(owner: str, sibling_head) -> None:
    """Refuse a sibling head config (dict, list of dicts or None) of a kind TSD cannot pair with."""
    configs = sibling_head if isinstance(sibling_head, list) else [sibling_head]
    for cfg in configs:
        kind = cfg.get('type') if isinstance(cfg, dict) else None
        if kind in REFUSED_SIBLINGS:
            raise UnsupportedHostError(f'{owner}: sibling_head {kind}: {REFUSED_SIBLINGS[kind]}')


def _refusing_host(roi_head: str, reason: str) -> type:
    """A registered ``TSD<roi_head>`` whose construction raises :class:`UnsupportedHostError`."""

    def __init__(self, *args, **kwargs) -> None:
        raise UnsupportedHostError(f'TSD does not support {roi_head}: {reason}')

    return type(f'TSD{roi_head}', (), {'__init__': __init__, '__doc__': reason})


for _name, _reason in REFUSED_ROI_HEADS.items():
    MODELS.register_module(name=f'TSD{_name}', module=_refusing_host(_name, _reason))
