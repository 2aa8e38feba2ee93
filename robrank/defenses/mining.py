"""Triplet mining inside defenses: the loss's own miner, or a named one, at a chosen margin.

ACT mines with the loss's miner but hands it the margin the reference hard-coded (1.0 for
E *and* N, 0.2 for C), and HM mines source and destination triplets with samplers named by
the user; both need a miner rebuilt with another margin or looked up by name. The margin
only changes the semihard rule.
"""
from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from ..losses.names import find_miner
from ..plugins import Registry


def with_margin(miner: Any, margin: float) -> Any:
    """A copy of ``miner`` (a robrank.losses.Miner) that mines with ``margin``."""
    if getattr(miner, "margin", None) == margin:
        return miner
    try:
        return type(miner)(miner.metric, margin, generator=getattr(miner, "generator", None))
    except (AttributeError, TypeError) as exc:
        raise ConfigError(
            f"cannot rebuild miner {miner!r} with margin {margin}: {exc}; pass miner_margin='loss'"
        ) from exc


def miner_name(name: str, registry: Registry) -> str:
    """The registered miner name for a name, alias (``spc2-semihard``) or reference letter (``m``).

    The letters are the miners' own (``MinerRecord.letter``, the table of the loss-name
    grammar in :mod:`robrank.losses.names`); ``""`` is the letterless default miner.
    """
    return find_miner(name, registry).name


def build_miner(name: str, metric: str, margin: float, *, generator: Any = None, registry: Registry) -> Any:
    record = registry.get("miners", miner_name(name, registry))
    try:
        return record.factory(metric, margin, generator=generator)
    except TypeError:  # a third-party miner whose factory takes no generator
        return record.factory(metric, margin)
