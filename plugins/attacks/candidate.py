"""The candidate attack CA+/CA- (W), as registered: :class:`robrank.plugin_api.CandidateAttack` named ``CA``."""
from __future__ import annotations

from robrank.plugin_api import CandidateAttack as _CandidateBase


class CandidateAttack(_CandidateBase):
    name = "CA"
