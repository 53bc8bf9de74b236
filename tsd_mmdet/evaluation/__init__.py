"""Evaluation beyond mmdet's metrics: AP across IoU thresholds and object sizes (Figure 6, Table 9).
"""
from . import iou_breakdown

__all__ = ['iou_breakdown']
