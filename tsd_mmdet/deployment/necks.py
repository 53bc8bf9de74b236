"""Export-mode necks: mmdet's BFP (Libra R-CNN's balanced feature pyramid) with free H and W.

Implements no equation of the paper: the neck before TSD's pooling (eq. 3-6), computed as mmdet's
``BFP.forward`` with its adaptive max pooling written in gathers that ``torch.export`` keeps
symbolic in H and W (``F.adaptive_max_pool2d`` fixes them to the traced size).
"""
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ['ExportBFP', 'adaptive_max_pool2d', 'export_necks']


def _pool_dim(x: Tensor, out: int, dim: int, window: int) -> Tensor:
    """Adaptive max pooling along ``dim`` (2 or 3) of ``x`` to ``out``: bin i is
    [floor(i * n / out), ceil((i + 1) * n / out)) as in ATen's kernel, read as ``window`` gathered
    rows (the bin's last row repeated where the bin is shorter)."""
    n = x.shape[dim]
    i = torch.arange(out, device=x.device)
    start = torch.div(i * n, out, rounding_mode='floor')
    end = torch.div((i + 1) * n + out - 1, out, rounding_mode='floor')
    index = torch.minimum(start[:, None] + torch.arange(window, device=x.device)[None],
                          end[:, None] - 1)
    # A 2-D index (a Gather with (out, window) indices), not index_select + reshape: the reshape's
    # size check is a guard on H and W that torch.export cannot prove and so specialises.
    gathered = x[:, :, index] if dim == 2 else x[:, :, :, index]
    return gathered.amax(dim + 1)


def adaptive_max_pool2d(x: Tensor, size: tuple[int, int], window: int) -> Tensor:
    """``F.adaptive_max_pool2d(x, size)`` exactly (the max over each bin is separable in H and W),
    for inputs at most ``window - 1`` times larger than ``size`` in each dimension.

    Args:
        x (Tensor): (N, C, H, W).
        size (tuple[int, int]): (out_h, out_w), symbolic under torch.export.
        window (int): Static bound on a bin's length: ``ceil(H / out_h) + 1`` and likewise for W.
    """
    return _pool_dim(_pool_dim(x, size[0], 2, window), size[1], 3, window)


class ExportBFP(nn.Module):
    """mmdet's ``BFP`` forward (gather to ``refine_level``'s size by adaptive max pooling / nearest
    resizing, average, refine, scatter back by a residual) with :func:`adaptive_max_pool2d`.

    FPN levels halve their size level by level (``ceil``), so level i is at most ``2**|i - r|``
    times larger than level r, and a bin holds at most ``2**|i - r| + 1`` rows: the static window.
    """

    def __init__(self, bfp: nn.Module):
        super().__init__()
        self.bfp = bfp

    def forward(self, inputs: tuple[Tensor]) -> tuple[Tensor]:
        bfp = self.bfp
        assert len(inputs) == bfp.num_levels
        refine = bfp.refine_level
        gather_size = inputs[refine].shape[2:]
        feats = []
        for i in range(bfp.num_levels):
            if i < refine:
                feats.append(adaptive_max_pool2d(inputs[i], gather_size, 2**(refine - i) + 1))
            else:
                feats.append(F.interpolate(inputs[i], size=gather_size, mode='nearest'))
        bsf = sum(feats) / len(feats)
        if bfp.refine_type is not None:
            bsf = bfp.refine(bsf)
        outs = []
        for i in range(bfp.num_levels):
            out_size = inputs[i].shape[2:]
            if i < refine:
                residual = F.interpolate(bsf, size=out_size, mode='nearest')
            else:
                residual = adaptive_max_pool2d(bsf, out_size, 2**(i - refine) + 1)
            outs.append(residual + inputs[i])
        return tuple(outs)


EXPORT_NECKS = {'BFP': ExportBFP}  # mmdet's class name -> its export-mode forward


def export_necks(detector: nn.Module) -> None:
    """Replace, in place, each neck module of ``detector`` that has an export-mode forward
    (``EXPORT_NECKS``, by exact class name) with it."""
    for path, module in list(detector.named_modules()):
        if type(module).__name__ in EXPORT_NECKS and path:
            parent_path, _, name = path.rpartition('.')
            parent = detector.get_submodule(parent_path) if parent_path else detector
            setattr(parent, name, EXPORT_NECKS[type(module).__name__](module))
