"""What an attack *is*, apart from what it does: the torch-free half of every attack class.

An attack class is two layers. Its declaration (:class:`AttackDeclaration` and subclasses)
holds the facts a listing, the spec grammar and a results reader need: the spec TYPE
(``name``), the typed spec fields (``params``), the summary keys it reports and how they are
shown, their ranges, and the checks across fields. Its implementation
(:class:`robrank.attacks.Attack` and subclasses) holds the selection, objective and metrics,
which need torch. The implementation class inherits its declaration, so each fact is written
once; a record that names both (``AttackRecord.of(impl, ..., declared=...)``) lets
``robrank list attacks`` read the declaration without importing torch, and checks on first
use that the implementation is that declaration's subclass and changes none of it.
"""
from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, ClassVar

from ..params import Param, ParamError, collect
from ..records import TASK_RETRIEVAL
from ..summaries import EMBSHIFT, PERCENT, WITH_PM, MetricDisplay
from .defaults import DEFAULT_ALPHA, DEFAULT_EPS, DEFAULT_PGDITER, LOSSES, OPTIMIZERS, PM

#: the search fields every attack shares (docs/autoattack.md); implicit: the default search
#: (the reference's) is never written, so stored specs keep their text
SEARCH: tuple[Param, ...] = (
    Param("norm", str, "inf", choices=("inf", "2"), implicit=True, help="threat model: the L-infinity or the L2 ball of radius eps"),
    Param("opt", str, "pgd", choices=OPTIMIZERS, implicit=True,
          help="search: fixed-step PGD, APGD, or the per-sample worst case of PGD, APGD and smooth-objective APGD"),
    Param("loss", str, "reference", choices=LOSSES, implicit=True, help="objective: the attack's own, or its smooth surrogate"),
    Param("restarts", int, None, low=1, implicit=True,
          help="runs per sample, the best kept (first from the start, the others random); opt=worst: the smooth member's runs (2)"),
)

#: CA/QA percentile ranks, in percent of the ranking
PCTL = MetricDisplay("prank", "PCTL", full=100.0, robust=WITH_PM)


class AttackDeclaration:
    """The declared fields of an attack: everything ``robrank list attacks`` and the spec grammar read.

    ``name`` is the spec TYPE; ``params`` the typed spec fields a class adds (the PGD and
    search settings declared here reach every subclass, see :meth:`parameters`); ``reports``
    the summary keys it produces; ``display`` how reports show them; ``bounds`` their ranges;
    ``legacy_fractions`` the keys stored as fractions before schema version 3; ``task`` the
    kind of model it attacks; ``perturbs`` what the perturbed image plays.
    """

    name: ClassVar[str] = ""
    #: the kind of model it attacks: ranking (a gallery of embeddings) or a classifier's logits (no gallery)
    task: ClassVar[str] = TASK_RETRIEVAL
    #: spec fields of every PGD attack; a subclass lists only the fields it adds
    params: ClassVar[tuple[Param, ...]] = (
        Param("eps", float, DEFAULT_EPS, low=0.0,
              help="radius of the perturbation in the norm= ball (pixels in [0, 1], so at most 1 for L-infinity)"),
        Param("alpha", float, DEFAULT_ALPHA, low=0.0, help="PGD step size (eps is used when pgditer=1: FGSM)"),
        Param("pgditer", int, DEFAULT_PGDITER, low=1, help="number of PGD steps"),
        Param("nes", bool, False, implicit=True, example="nes=1",
              help="black-box: NES estimates of the gradient from model outputs (robrank.attacks.nes) instead of autograd"),
        *SEARCH,
    )
    #: summary keys this attack reports (clean and adversarial; the engine adds ``embshift``)
    reports: ClassVar[tuple[str, ...]] = ()
    #: how reports show the summary keys (none: each key as it is)
    display: ClassVar[tuple[MetricDisplay, ...]] = ()
    #: the range each reported key's average lies in (a rate in percent: ``PERCENT``, (0, 100));
    #: an average outside it is never written or read as a result. A key not listed only has to be finite.
    bounds: ClassVar[Mapping[str, tuple[float, float]]] = {}
    #: keys this attack reported as fractions in results files before schema version 3 (which
    #: moved every rate to percent); readers multiply them by 100 when they load an older file
    legacy_fractions: ClassVar[tuple[str, ...]] = ()
    #: what the perturbed image plays: "query" (its own ranking is attacked) or "candidate"
    #: (a gallery item moved in the rankings of the queries its select() stores in
    #: ``ctx.sel.queries``, a [B, W] tensor of gallery slots); robrank show draws each its way
    perturbs: ClassVar[str] = "query"

    @classmethod
    def parameters(cls) -> tuple[Param, ...]:
        """Every spec field of this attack, in canonical spec order.

        The fields of the attack's own class chain come first, base classes before
        subclasses (CA's ``pm, W``, then a CA subclass's own fields), then the fields every
        PGD attack shares, declared once here (``eps, alpha, pgditer`` and any later
        addition, which must be ``implicit`` so stored specs keep their text).
        """
        chain = [c for c in reversed(inspect.getmro(cls)) if c is not AttackDeclaration]
        own = collect(chain)
        names = {p.name for p in own}
        return own + tuple(p for p in AttackDeclaration.__dict__["params"] if p.name not in names)

    @classmethod
    def check_values(cls, values: Mapping[str, Any]) -> None:
        """Checks that span several fields (each field alone was checked against its ``Param``).

        Called by the spec parser with every field's value (defaults filled in); raise
        :class:`robrank.params.ParamError` naming the fields. A subclass extending it calls
        ``super().check_values(values)``.
        """
        # pixels lie in [0, 1]: an L-infinity radius above 1 is a typo (eps=8 for 8/255), while an
        # L2 radius above 1 is ordinary (the ball's size grows with the image's dimension)
        if values.get("norm", "inf") == "inf" and values.get("eps", 0.0) > 1.0:
            raise ParamError(f"field eps must be at most 1.0 under norm=inf, pixels lying in [0, 1] (got {values['eps']}); "
                             "write eps=8/255 as 0.0314, or use norm=2 for an L2 radius")
        if values.get("nes") and values.get("pgditer", 2) < 2:
            raise ParamError("nes=1 needs pgditer >= 2 (NES takes no single FGSM-like step)")
        if values.get("nes") and (values.get("opt", "pgd") != "pgd" or (values.get("restarts") or 1) > 1):
            raise ParamError("nes=1 runs the reference's NES schedule: it takes no opt=apgd/worst and no restarts")


class CandidateAttackDeclaration(AttackDeclaration):
    """The candidate attack CA+/CA- (W)'s fields: the declaration of :class:`robrank.attacks.candidate.CandidateAttack`."""

    params = (PM, Param("W", int, low=1, help="number of queries whose rankings the candidate moves in", example="W=1",
                        outside_class=True))
    reports = ("loss", "prank", EMBSHIFT)
    display = (PCTL,)
    bounds = {"prank": PERCENT}
    legacy_fractions = ("prank",)
    perturbs = "candidate"


__all__ = ["PCTL", "SEARCH", "AttackDeclaration", "CandidateAttackDeclaration"]
