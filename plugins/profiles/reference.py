"""The swipe profiles of the reference code (``robrank/cmdline.py::Swipe``), grid for grid.

Each profile is a function returning attack spec strings in the reference's own order (the
order of ``itertools.product`` over its tuples), so results files list attacks the way the
published tooling printed them. The PGD settings are written with the reference's exact
decimals (``eps=0.30196`` is 77/255 rounded the way the papers used it), because a spec
string is also the key under which a result is stored and compared.
"""
from __future__ import annotations

import itertools as it
from collections.abc import Callable, Iterable

from robrank.plugin_api import SIZE_224, SIZE_28, Score

from .ers import ERS

#: PGD settings of the ERS profiles: (77/255, 3/255, 32) at 28 px, (8/255, 3/255, 32) at 224 px.
ROB28_PGD = "eps=0.30196:alpha=0.011764:pgditer=32"
ROB224_PGD = "eps=0.03137:alpha=0.011764:pgditer=32"

#: The untargeted/targeted attacks that follow CA± and QA± in the ERS profiles.
ERS_TAIL = ("TMA", "ES", "LTM", "GTM", "GTT")

SIGNS = ("pm=+", "pm=-")
WAYS = ("1", "2", "5", "10")


def _grid(*parts: Iterable[str]) -> list[str]:
    return [":".join(combo) for combo in it.product(*parts)]


def _ers_profile(pgd: str) -> list[str]:
    """CA± (W=1), plain QA± (M=1) — not SPQA — then TMA, ES, LTM, GTM, GTT: 9 attacks."""
    return [
        *_grid(("CA",), SIGNS, ("W=1",), (pgd,)),
        *_grid(("QA",), SIGNS, ("M=1",), (pgd,)),
        *_grid(ERS_TAIL, (pgd,)),
    ]


def rob28() -> list[str]:
    return _ers_profile(ROB28_PGD)


def rob224() -> list[str]:
    return _ers_profile(ROB224_PGD)


def _pami(pgds: tuple[str, str]) -> list[str]:
    return [
        *_grid(("SPQA",), SIGNS, tuple(f"M={m}" for m in WAYS), pgds),
        *_grid(("CA",), SIGNS, tuple(f"W={w}" for w in WAYS), pgds),
    ]


def pami28() -> list[str]:
    return _pami(("eps=0.03137:alpha=0.003922:pgditer=32", "eps=0.30196:alpha=0.011764:pgditer=32"))


def pami224() -> list[str]:
    return _pami(("eps=0.00784:alpha=0.003922:pgditer=32", "eps=0.03137:alpha=0.011764:pgditer=32"))


def eccv28() -> list[str]:
    # The reference keeps an ES line commented out here; it is not part of the profile.
    pgds = (
        "eps=0.01:alpha=0.003922:pgditer=10",
        "eps=0.03:alpha=0.003922:pgditer=15",
        "eps=0.1:alpha=0.01:pgditer=20",
        "eps=0.3:alpha=0.01:pgditer=30",
    )
    return [
        *_grid(("CA",), SIGNS, tuple(f"W={w}" for w in WAYS), pgds),
        *_grid(("SPQA",), SIGNS, tuple(f"M={m}" for m in WAYS), pgds),
    ]


def eccv224() -> list[str]:
    # CA's smallest budget runs 24 steps while SPQA's runs 10: the reference lists it so.
    return [
        *_grid(
            ("CA",),
            SIGNS,
            tuple(f"W={w}" for w in WAYS),
            ("eps=0.01:alpha=0.003922:pgditer=24", "eps=0.03:alpha=0.003922:pgditer=15", "eps=0.06:alpha=0.006:pgditer=20"),
        ),
        *_grid(
            ("SPQA",),
            SIGNS,
            tuple(f"M={m}" for m in WAYS),
            ("eps=0.01:alpha=0.003922:pgditer=10", "eps=0.03:alpha=0.003922:pgditer=15", "eps=0.06:alpha=0.006:pgditer=20"),
        ),
    ]


def qccurve28() -> list[str]:
    """The ε curve of CA±/SPQA± at ε = 7i/255, i = 0..11 (the reference: α 3/255, 32 steps)."""
    pgds = tuple(f"eps={7 * i / 255:.5f}:alpha=0.011764:pgditer=32" for i in range(12))
    return [
        *_grid(("CA",), SIGNS, ("W=1",), pgds),
        *_grid(("SPQA",), SIGNS, ("M=1",), pgds),
    ]


#: name -> (factory, image size, score (None = none), one-line summary, aliases)
PROFILES: dict[str, tuple[Callable[[], list[str]], int, Score | None, str, tuple[str, ...]]] = {
    "rob28": (rob28, SIZE_28, ERS, "ERS profile for 28x28 data: CA±, QA±, TMA, ES, LTM, GTM, GTT at eps 77/255", ()),
    "rob224": (
        rob224,
        SIZE_224,
        ERS,
        "ERS profile for 224x224 data: CA±, QA±, TMA, ES, LTM, GTM, GTT at eps 8/255",
        ("cvpr",),  # the reference's profile_cvpr is an identical copy of rob224
    ),
    "pami28": (pami28, SIZE_28, None, "SPQA± and CA± x {1,2,5,10} at eps 8/255 and 77/255 (TPAMI, 28x28)", ()),
    "pami224": (pami224, SIZE_224, None, "SPQA± and CA± x {1,2,5,10} at eps 2/255 and 8/255 (TPAMI, 224x224)", ()),
    "eccv28": (eccv28, SIZE_28, None, "CA± and SPQA± x {1,2,5,10} at eps 0.01-0.3 (ECCV'20, 28x28)", ()),
    "eccv224": (eccv224, SIZE_224, None, "CA± and SPQA± x {1,2,5,10} at eps 0.01-0.06 (ECCV'20, 224x224)", ()),
    "qccurve28": (qccurve28, SIZE_28, None, "CA± and SPQA± (W=M=1) at eps 7i/255, i=0..11: robustness curve", ()),
}
