"""Loss names: the reference grammar ``p<miner letter?><family><metric>`` and "by parts".

The reference code names a loss by one token, e.g. ``ptripletN`` (SPC-2 batch, random
miner, triplet, metric N), ``pmtripletN`` (semihard miner), ``pstripletC`` (softhard, C),
``pgliftE``. Users coming from it type those names, so they keep working; but the token is
only a spelling of three independent choices, so :func:`resolve_loss` also takes them
apart (``resolve_loss("triplet", metric="N", miner="semihard")``), which is what lets a
third-party miner or loss compose with the bundled ones without a new name.

Parsing is driven by the registry, not by a fixed table: a family token is any registered
loss name or alias, a miner letter is any registered miner's ``letter``. Bundled loss
records also list every valid reference name as an alias (see :func:`reference_aliases`)
so that ``robrank list losses`` shows them and ``registry.get("losses", "ptripletN")``
works.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from ..distances import METRICS
from ..errors import ConfigError, UnknownNameError
from ..plugins import Registry
from ..records import REFERENCE_MINER_LETTERS, SPC2_PREFIX, LossRecord, MinerRecord, reference_aliases

@dataclass(frozen=True)
class LossChoice:
    """A resolved loss: which record, which metric, which miner, and its reference name.

    ``miner`` is a miner registry name (``"random"``, ``"semihard"``, ...) or ``""`` for a
    loss that does its own pair selection (multisim, glift, npair, infonce).
    ``reference_name`` is the reference spelling (``"pmtripletN"``), or ``""`` when the
    combination has none (a miner without a letter).
    """

    record: LossRecord
    family: str
    metric: str
    miner: str
    reference_name: str


def _loss_tokens(registry: Registry) -> dict[str, LossRecord]:
    tokens: dict[str, LossRecord] = {}
    for component in registry.components("losses"):
        record = component.record
        for key in (record.name, *record.aliases):
            tokens.setdefault(key, record)
    return tokens


def _miner_letters(registry: Registry) -> dict[str, MinerRecord]:
    letters: dict[str, MinerRecord] = {}
    for component in registry.components("miners"):
        letters.setdefault(component.record.letter, component.record)
    return letters


def parse_reference_name(name: str, registry: Registry) -> tuple[LossRecord, str, str, str] | None:
    """Split a reference name into (record, miner letter, family token, metric), or None."""
    if len(name) < 3 or not name.startswith(SPC2_PREFIX) or name[-1] not in METRICS:
        return None
    middle, metric = name[1:-1], name[-1]
    tokens = _loss_tokens(registry)
    letters = _miner_letters(registry)
    if middle in tokens:
        return tokens[middle], "", middle, metric
    letter, token = middle[:1], middle[1:]
    if letter and letter in letters and token in tokens:
        return tokens[token], letter, token, metric
    return None


def _reference_token(record: LossRecord, letter: str, metric: str) -> str:
    """The family token the reference spells this record with (``contrast`` for contrastive)."""
    for token in (record.name, *record.aliases):
        if f"{SPC2_PREFIX}{letter}{token}{metric}" in record.aliases:
            return token
    return record.name


def _miner_record(registry: Registry, miner: str) -> MinerRecord:
    letters = _miner_letters(registry)
    if len(miner) == 1 and miner in letters:  # a bare letter: "m", "D"
        return letters[miner]
    return registry.get("miners", miner)


def find_miner(miner: str, registry: Registry) -> MinerRecord:
    """The miner for a registered name, an alias or a reference letter (``m``; ``""`` = the letterless one)."""
    if miner == "":
        letters = _miner_letters(registry)
        if "" in letters:
            return letters[""]
    return _miner_record(registry, miner)


def resolve_loss(
    name: str,
    *,
    metric: str | None = None,
    miner: str | None = None,
    registry: Registry,
) -> LossChoice:
    """Resolve a reference name (``pmtripletN``) or a family plus parts.

    Raises :class:`UnknownNameError` for a name no plugin registered and
    :class:`ConfigError` for an unsupported metric, a miner on a loss that takes none, or
    parts that contradict the reference name.
    """
    parsed = parse_reference_name(name, registry)
    if parsed is not None:
        record, letter, _token, parsed_metric = parsed
        if metric is not None and metric != parsed_metric:
            raise ConfigError(
                f"loss {name!r} already fixes metric {parsed_metric}; drop metric={metric!r} or use the family name"
            )
        metric = parsed_metric
        parsed_miner = _miner_letters(registry)[letter] if letter else None
        if letter and not record.uses_miner:
            raise ConfigError(
                f"loss {record.name!r} does its own pair selection and takes no miner letter; "
                f"use {SPC2_PREFIX}{_reference_token(record, '', metric)}{metric}"
            )
        if miner is not None:
            given = _miner_record(registry, miner)
            if letter and given.name != parsed_miner.name:
                raise ConfigError(f"loss {name!r} already names miner {parsed_miner.name!r}; drop miner={miner!r}")
            parsed_miner = given
        miner_record = parsed_miner
    else:
        try:
            record = registry.get("losses", name)
        except UnknownNameError:
            raise UnknownNameError("losses", name, registry.names("losses")) from None
        if metric is None:
            if len(record.metrics) != 1:
                raise ConfigError(
                    f"loss {record.name!r} needs a metric: one of {', '.join(record.metrics)} "
                    f"(e.g. {SPC2_PREFIX}{_reference_token(record, '', record.metrics[-1])}{record.metrics[-1]})"
                )
            metric = record.metrics[0]
        miner_record = _miner_record(registry, miner) if miner is not None else None

    if metric not in record.metrics:
        raise ConfigError(
            f"loss {record.name!r} does not support metric {metric!r}; supported: {', '.join(record.metrics)}"
        )
    default_miner = _default_miner(registry, record) if record.uses_miner else None
    if record.uses_miner:
        if miner_record is None:
            miner_record = default_miner
    elif miner_record is not None:
        raise ConfigError(f"loss {record.name!r} does its own pair selection and takes no miner; drop miner={miner!r}")

    miner_name = miner_record.name if miner_record is not None else ""
    if miner_record is None:
        reference = f"{SPC2_PREFIX}{_reference_token(record, '', metric)}{metric}"
    elif miner_record.letter or (default_miner is not None and miner_record.name == default_miner.name):
        letter = miner_record.letter
        reference = f"{SPC2_PREFIX}{letter}{_reference_token(record, letter, metric)}{metric}"
    else:
        reference = ""
    family = record.family or record.name
    return LossChoice(record=record, family=family, metric=metric, miner=miner_name, reference_name=reference)


def _default_miner(registry: Registry, record: LossRecord) -> MinerRecord:
    """The loss's declared default miner, else the registered miner without a letter (the reference's plain one)."""
    if record.default_miner:
        return registry.get("miners", record.default_miner)
    plain = [c.record for c in registry.components("miners") if not c.record.letter]
    if not plain:
        raise ConfigError(f"loss {record.name!r} needs a miner and no installed plugin registers one without a letter; pass --miner")
    return plain[0]


def build_criterion(choice: LossChoice, *, registry: Registry, **params: Any) -> nn.Module:
    """Instantiate the loss of ``choice`` with its miner.

    ``params`` go to the loss factory (e.g. ``margin=0.8``), except ``generator`` (a
    ``torch.Generator`` for mining and any sampling inside the loss) and ``miner_margin``
    (the margin handed to the miner; by default the loss's own, as in the reference).
    """
    generator = params.pop("generator", None)
    miner_margin = params.pop("miner_margin", None)
    if generator is not None:
        params["generator"] = generator
    criterion = registry.create("losses", choice.record.name, choice.metric, miner=None, **params)
    if choice.miner:
        if miner_margin is None:
            miner_margin = getattr(criterion, "miner_margin", getattr(criterion, "margin", None))
        extra = {"generator": generator} if generator is not None else {}
        criterion.miner = registry.create("miners", choice.miner, choice.metric, miner_margin, **extra)
    elif not hasattr(criterion, "miner"):
        criterion.miner = None
    if not hasattr(criterion, "metric"):
        criterion.metric = choice.metric
    return criterion


__all__ = [
    "LossChoice",
    "REFERENCE_MINER_LETTERS",
    "SPC2_PREFIX",
    "build_criterion",
    "parse_reference_name",
    "reference_aliases",
    "resolve_loss",
]
