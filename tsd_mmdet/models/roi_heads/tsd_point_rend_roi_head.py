"""TSDPointRendRoIHead: PointRend with TSD's box branch (TSD host, one stage).

Implements the TSD loss of eq. 9 for detection, as TSDRoIHead does; the coarse mask head and the
point head are PointRend's, unchanged.
"""
from mmdet.models.roi_heads import PointRendRoIHead
from mmdet.registry import MODELS

from .tsd_roi_head import TSDRoIHead


@MODELS.register_module()
class TSDPointRendRoIHead(TSDRoIHead, PointRendRoIHead):
    """PointRend (``PointRendRoIHead``) whose box branch is TSD's (Fig. 2).

    Nothing is overridden: the box forward, losses and box inference are :class:`TSDRoIHead`'s;
    the mask losses (coarse masks and points, on the sampled proposals P) and the mask inference
    (iterative subdivision on TSD's detections) are ``PointRendRoIHead``'s. Its mask inference is
    its own, so export refuses it (``tsd_inference`` None).

    Args:
        **kwargs: :class:`TSDRoIHead` and ``PointRendRoIHead`` arguments (``point_head``).
    """

    tsd_inference = None
