"""The candidate attack CA+/CA- (W), as registered: :class:`robrank.plugin_api.CandidateAttack` named ``CA``."""
from __future__ import annotations

from robrank.plugin_api import CandidateAttack as _CandidateBase

from .declarations import CADeclaration


class CandidateAttack(CADeclaration, _CandidateBase):
    """CA, declared in :mod:`.declarations` (its name; the fields are the public base's)."""
