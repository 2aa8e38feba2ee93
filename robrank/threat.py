"""The threat model of a results file: the norm and radius of the ball its attacks search.

Scores measured in different balls (L-infinity rob28 beside L2 rob28-l2) do not compare, so
every figure that shows several files groups them by this label and says it. It is read
from the attack specs the file planned, as written (no registry needed): ``norm`` (the
attacks' default is L-infinity) and ``eps``.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .scoring import spec_fields

#: how a spec's ``norm`` field is printed (figures), and in ASCII (tables that LaTeX typesets too)
NORM_NAMES: dict[str, str] = {"inf": "L∞", "2": "L2"}
ASCII_NORM_NAMES: dict[str, str] = {"inf": "Linf", "2": "L2"}


def _eps_text(norm: str, eps: str, plain: bool = False) -> str:
    value = float(eps)
    symbol = "eps" if plain else "ε"
    if norm == "inf" and value > 0 and abs(value * 255 - round(value * 255)) < 0.01:
        return f"{symbol} = {round(value * 255)}/255"
    return f"{symbol} = {value:g}"


def threat_model(payload: Mapping[str, Any], plain: bool = False) -> str:
    """``"L∞, ε = 77/255"``, ``"L2, ε = 2"``, or only the norm when the file's attacks use several radii (a curve).

    ``plain`` spells it in ASCII (``"Linf, eps = 77/255"``).
    """
    specs = [str(s) for s in payload.get("planned") or []] or [str(a["spec"]) for a in payload.get("attacks", [])]
    fields = [spec_fields(s) for s in specs]
    norms = sorted({f.get("norm", "inf") for f in fields}) or ["inf"]
    names = " + ".join((ASCII_NORM_NAMES if plain else NORM_NAMES).get(n, f"L{n}") for n in norms)
    radii = {f["eps"] for f in fields if "eps" in f}
    if len(norms) == 1 and len(radii) == 1 and all("eps" in f for f in fields):
        try:
            return f"{names}, {_eps_text(norms[0], next(iter(radii)), plain)}"
        except ValueError:
            return names
    return names


__all__ = ["ASCII_NORM_NAMES", "NORM_NAMES", "threat_model"]
