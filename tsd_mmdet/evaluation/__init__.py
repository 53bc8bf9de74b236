"""Evaluation beyond mmdet's metrics: AP across IoU thresholds and object sizes (Figure 6, Table 9),
and the OpenImages metric with the dataset's own class names (not an equation of the paper).
"""
from . import iou_breakdown
from .openimages_metric import OpenImagesOwnClassesMetric

__all__ = ['iou_breakdown', 'OpenImagesOwnClassesMetric']
