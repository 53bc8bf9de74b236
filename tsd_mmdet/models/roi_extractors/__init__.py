"""RoI feature extractors of TSD.

Pooling of P, P-hat_c and P-hat_r (eq. 3-6).
"""
from .tsd_roi_extractor import TSDRoIExtractor

__all__ = ['TSDRoIExtractor']
