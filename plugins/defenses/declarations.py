"""The bundled defenses' declarations: name and options (``Param``), without torch.

Each defense class in this package inherits its declaration from here (``class
ACT(ACTDeclaration, AdversarialDefense)``), so every option is written once, and ``robrank
list defenses`` reads this module alone: it imports no torch. The records name both
(``DefenseRecord.of("...act:ACT", ..., declared="...declarations:ACTDeclaration")``).
"""
from __future__ import annotations

from robrank.plugin_api import METHODS, REFERENCE_PAIRWISE_EPS, AdversarialDefenseDeclaration, Param

#: EST's and SES's option: the offset inside the ES shift's distance
PAIRWISE_EPS = Param("pairwise_eps", float, REFERENCE_PAIRWISE_EPS, low=0.0,
                     help="added inside the ES shift's distance as torch's pairwise_distance does (1e-06 = the reference, 0 = exact)")


class ESTDeclaration(AdversarialDefenseDeclaration):
    name = "est"
    params = (PAIRWISE_EPS,)


class ACTDeclaration(AdversarialDefenseDeclaration):
    name = "act"
    params = (
        Param("miner_margin", str, "reference",
              help="margin of the miner the inner attack uses: reference (0.2 for C, 1.0 for E and N), loss (the loss's own) or a number"),
    )


class SESDeclaration(AdversarialDefenseDeclaration):
    name = "ses"
    params = (
        Param("weight", float, 1.0, help="weight of the embedding-shift penalty added to the benign loss"),
        PAIRWISE_EPS,
    )


class HMDeclaration(AdversarialDefenseDeclaration):
    name = "hm"
    params = (
        Param("src", str, "softhard", help="sampler of the source triplets: a miner name or a reference letter r/m/s/d/h"),
        Param("dest", str, "semihard", help="sampler of the destination hardness (unused with gradual): a miner name or letter"),
        Param("gradual", bool, True, help="the gradual adversary g_LGA sets the destination hardness from the last loss"),
        Param("ics", bool, False, help="add the intra-class structure term (HM&ICS)"),
        Param("ics_lambda", float, 0.5, help="weight of the intra-class structure term"),
        Param("method", str, "et", help="alignment objective: " + ", ".join(METHODS)),
    )
