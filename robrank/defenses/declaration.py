"""What a defense declares, apart from how it trains: the torch-free half of every defense class.

A defense's options (:class:`~robrank.params.Param` objects: type, range, default, help)
and the defaults that depend on the image-size family are facts ``robrank list defenses``
and the training config read before anything is built. They live on
:class:`DefenseDeclaration` subclasses, which import no torch; the implementation
(:class:`robrank.defenses.Defense` and subclasses) inherits them, so each is written once.
A record that names both (``DefenseRecord.of(impl, ..., declared=...)``) lists the defense
from its declaration and checks, when it is built, that the implementation is that
declaration's subclass and changes none of it.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from ..params import Param, collect
from .settings import ADVTRAIN_DEFAULTS

#: the inner attack's budget, which every adversarial defense takes
PGD_OPTIONS: tuple[str, ...] = ("eps", "alpha", "pgditer")


class DefenseDeclaration:
    """A defense's ``name``, the options it adds (``params``) and its image-size-family defaults."""

    name: ClassVar[str] = ""
    #: the options this class adds to its bases' (see :meth:`parameters`)
    params: ClassVar[tuple[Param, ...]] = ()
    #: image-size family -> defaults of declared options that depend on it
    family_defaults: ClassVar[Mapping[int, Mapping[str, Any]]] = {}

    @classmethod
    def parameters(cls) -> tuple[Param, ...]:
        """Every option of this defense: its bases' ``params`` first, then its own."""
        return collect(reversed(cls.__mro__))


class AdversarialDefenseDeclaration(DefenseDeclaration):
    """The options of a defense with an inner L-infinity PGD attack (ε, α, η, BatchNorm policy).

    The declaration of :class:`robrank.defenses.base.AdversarialDefense`; ``eps``/``alpha``/
    ``pgditer`` left as None take the reference defaults for the image-size family.
    """

    params = (
        Param("eps", float, None, low=0.0, high=1.0, help="L-inf budget of the inner attack, in [0, 1] pixels (28px: 77/255, 224px: 8/255)"),
        Param("alpha", float, None, low=0.0, help="PGD step size of the inner attack (28px: 3/255, 224px: 1/255)"),
        Param("pgditer", int, None, low=1, help="PGD steps of the inner attack (32; 1 = FGSM)"),
        Param("image_size", int, None, low=1, help="image size whose family fills eps/alpha/pgditer left unset (the training config passes them)"),
        Param("train_bn", bool, None, help="train BatchNorm layers (default: the defense's reference policy)"),
    )
    family_defaults = {family: dict(zip(PGD_OPTIONS, budget)) for family, budget in ADVTRAIN_DEFAULTS.items()}


__all__ = ["PGD_OPTIONS", "AdversarialDefenseDeclaration", "DefenseDeclaration"]
