"""Pictures of what TSD learnt: P, P-hat_r and P-hat_c of eq. 3-6 over an image (Figure 5).
"""
from . import derived_proposals

__all__ = ['derived_proposals']
