"""Checkpoint loading across the training set-up (with sibling H_*) and the inference one (without).

The sibling head of eq. 9 is trained jointly and dropped at inference (§3.2); this mixin lets
TSDRoIHead and TSDCascadeRoIHead load strictly in both directions.
"""
from mmengine.logging import print_log


class SiblingTolerantLoadMixin:
    """``_load_from_state_dict`` for an RoI head with an optional ``sibling_head``.

    ``sibling_head`` is a module, a ModuleList (one per cascade stage) or None. With a sibling and
    none of its weights in ``state_dict``, the current (initialised) sibling weights are put in
    (the loaders pass a copy of the checkpoint), so nothing is reported missing. Without a
    sibling, the checkpoint's ``sibling_head.*`` keys are not reported unexpected. A checkpoint
    holding only part of the sibling still reports the rest missing. Put it before the mmdet
    RoI head in the bases.
    """

    def _load_from_state_dict(self, state_dict: dict, prefix: str, local_metadata: dict,
                              strict: bool, missing_keys: list[str], unexpected_keys: list[str],
                              error_msgs: list[str]) -> None:
        sibling_prefix = f'{prefix}sibling_head.'
        sibling = self.sibling_head
        if sibling is not None and not any(k.startswith(sibling_prefix) for k in state_dict):
            print_log(f'{sibling_prefix}* not in the checkpoint: keeping the initialised sibling '
                      'head', logger='current')
            state_dict.update({sibling_prefix + k: v for k, v in sibling.state_dict().items()})
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)
        if sibling is None:
            unexpected_keys[:] = [k for k in unexpected_keys if not k.startswith(sibling_prefix)]
