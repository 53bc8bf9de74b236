"""Checkpoint loading across the training set-up (with sibling H_*) and the inference one (without).

The sibling head of eq. 9 is trained jointly and dropped at inference (§3.2); this helper lets
TSDRoIHead and TSDCascadeRoIHead load strictly in both directions.
"""
from mmengine.logging import print_log
from torch import nn


def load_tolerating_sibling(head: nn.Module, load_rest, state_dict: dict, prefix: str,
                            unexpected_keys: list[str]) -> None:
    """Run ``load_rest()`` (the parent's ``_load_from_state_dict``) around the sibling keys.

    ``head.sibling_head`` is a module, a ModuleList (one per cascade stage) or None. With a
    sibling and none of its weights in ``state_dict``, the current (initialised) sibling weights
    are put in (the loaders pass a copy of the checkpoint), so nothing is reported missing.
    Without a sibling, the checkpoint's ``sibling_head.*`` keys are not reported unexpected.
    A checkpoint holding only part of the sibling still reports the rest missing.
    """
    sibling_prefix = f'{prefix}sibling_head.'
    sibling = head.sibling_head
    if sibling is not None and not any(k.startswith(sibling_prefix) for k in state_dict):
        print_log(f'{sibling_prefix}* not in the checkpoint: keeping the initialised sibling '
                  'head', logger='current')
        state_dict.update({sibling_prefix + k: v for k, v in sibling.state_dict().items()})
    load_rest()
    if sibling is None:
        unexpected_keys[:] = [k for k in unexpected_keys if not k.startswith(sibling_prefix)]
