"""MICA's declaration: its name and its one spec field, without torch.

:class:`robrank_myattack.attack.MICA` inherits it, and the record names it (``declared=``),
so ``robrank list attacks`` reads this module alone and imports no torch. CA's fields
(``pm``, ``W``), reports and display come from the public base declaration.
"""
from __future__ import annotations

from robrank.plugin_api import CandidateAttackDeclaration, Param


class MICADeclaration(CandidateAttackDeclaration):
    """The momentum candidate attack's fields: CA's, plus the decay ``mu``."""

    name = "MICA"
    #: MICA's own field; CA's (pm, W) and the PGD settings are inherited from its base classes.
    #: 1.0 is the MI-FGSM paper's setting for L-infinity attacks.
    params = (Param("mu", float, 1.0, low=0.0, help="momentum decay of the MI-FGSM velocity", example="mu=1.0", implicit=True),)
