"""Progressive constraint (PC) loss modules of TSD.

M_cls of eq. 7 and M_loc of eq. 8.
"""
from .progressive_constraint import ProgressiveConstraintCls, ProgressiveConstraintLoc

__all__ = ['ProgressiveConstraintCls', 'ProgressiveConstraintLoc']
