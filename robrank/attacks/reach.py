"""Whether an attack's steps can reach its ε at all.

A fixed-step PGD that starts from the clean image moves at most ``alpha`` per step (in the
attack's norm), so ``alpha x pgditer < eps`` caps the perturbation below the ε the spec
names: a result printed as "eps=0.3" would then be a result at a smaller radius. Nothing is
changed about such an attack (the reference's own grids are run as written); the CLI and the
Python API only say so, in one line, when it starts. A random start, APGD (its step size
starts at 2ε) and FGSM (``pgditer=1`` steps by ε) are not capped.
"""
from __future__ import annotations

import math
import warnings
from typing import Any

from .nes import REFERENCE as NES_REFERENCE

#: relative slack: the reference's rounded decimals (0.011764 x 32 vs 0.30196) must not warn
SLACK = 1e-6


class ShortStepsWarning(UserWarning):
    """An attack whose steps cannot reach its ε (the Python API's form of the CLI's warning line)."""


def reach(attack: Any) -> float | None:
    """The farthest the attack can move from the clean image (None: not capped by its steps)."""
    if getattr(attack, "random_start", False) or getattr(attack, "opt", "pgd") != "pgd" or (getattr(attack, "restarts", None) or 1) > 1:
        return None
    if getattr(attack, "nes", False):
        return NES_REFERENCE.step * NES_REFERENCE.iterations(attack.pgditer)
    if attack.pgditer == 1:
        return None
    return float(attack.alpha) * int(attack.pgditer)


def short_steps(attack: Any, spec: str, random_start_hint: str = "--random-start") -> str | None:
    """The one-line warning for an attack whose steps stop short of its ε, or None."""
    eps = float(getattr(attack, "eps", 0.0) or 0.0)
    far = reach(attack)
    if far is None or not math.isfinite(eps) or eps <= 0 or far >= eps * (1.0 - SLACK):
        return None
    if getattr(attack, "nes", False):
        steps = math.ceil(eps / NES_REFERENCE.step - SLACK) - NES_REFERENCE.extra_iterations
        fix = f"NES steps {NES_REFERENCE.step:.4g} each: use pgditer>={steps}"
    else:
        fix = f"use alpha>={eps / attack.pgditer:.4g} or pgditer>={math.ceil(eps / attack.alpha - SLACK)}"
    return (f"warning: {spec}: {attack.pgditer} steps reach at most {far:.4g} from the clean image, short of eps={eps:g} "
            f"(an eps-{far:.4g} result); {fix}, or {random_start_hint}")


def warn_short_steps(attack: Any, spec: str) -> None:
    """Issue :class:`ShortStepsWarning` (Python API) when the attack's steps stop short of its ε."""
    message = short_steps(attack, spec, "random_start=True")
    if message is not None:
        warnings.warn(message.removeprefix("warning: "), ShortStepsWarning, stacklevel=3)


__all__ = ["ShortStepsWarning", "reach", "short_steps", "warn_short_steps"]
