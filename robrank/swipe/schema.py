"""The swipe results file: its identity, version and a dependency-free checker.

The file is the contract between ``robrank swipe`` (which writes and resumes it) and
``robrank report`` or any external tool that tabulates results, RobustBench-style. The
full field list is in docs/swipe-format.md; :func:`validate` enforces it so that a truncated,
hand-edited or foreign JSON file fails with one line naming the offending field instead of
a KeyError three functions later.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..errors import RobrankError
from ..io import read_json
from ..plugins import Registry
from ..semantics import SEMANTICS
from ..summaries import ENGINE_BOUNDS

SCHEMA = "robrank-swipe"
#: version 2 adds ``coverage`` (how much of the test split and of the profile the numbers
#: cover); version 1 files are still read, their coverage computed from ``attacks``.
#: Version 3 stores every rate in percent (percentile ranks, recalls, retention, accuracies;
#: earlier versions had fractions for some attacks' keys): :func:`upgrade` converts older files.
SCHEMA_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
#: the ``units`` field of a version-3 payload (and of an older one after :func:`upgrade`)
UNITS = "percent"


class SwipeFileError(RobrankError):
    """A results file that is missing, not JSON, or not a valid robrank swipe file."""


_NUMBER = (int, float)
_OPT_INT = (int, type(None))
_OPT_STR = (str, type(None))
_OPT_NUMBER = (int, float, type(None))

#: top-level field -> accepted JSON types (bool is excluded from numbers separately)
TOP_LEVEL: dict[str, tuple[type, ...]] = {
    "schema": (str,),
    "schema_version": (int,),
    "profile": (str,),
    "ers_profile": (bool,),
    "planned": (list,),
    "semantics": (str,),
    "seed": (int,),
    "max_batches": _OPT_INT,
    "batch_size": _OPT_INT,
    "model": (dict,),
    "dataset": (str,),
    "queries": (int,),
    "device": (str,),
    "versions": (dict,),
    "started": (str,),
    "finished": _OPT_STR,
    "timings": (dict,),
    "attacks": (list,),
}
MODEL: dict[str, tuple[type, ...]] = {
    "checkpoint": (str,),
    "sha256": (str,),
    "run_dir": _OPT_STR,
    "config": (dict,),
    "epoch": _OPT_INT,
    "step": _OPT_INT,
}
#: the model block of a model from outside robrank (``"kind": "external"``: --model, robrank.evaluate)
EXTERNAL_MODEL: dict[str, tuple[type, ...]] = {
    "kind": (str,),
    "spec": (str,),
    "weights": (list,),
    "metric": (str,),
    "normalize": (dict,),
    "sha256": (str,),
}
ATTACK: dict[str, tuple[type, ...]] = {
    "spec": (str,),
    "type": (str,),
    "orig": (dict,),
    "adv": (dict,),
    "count": (int,),
    "seconds": _NUMBER,
}
COVERAGE: dict[str, tuple[type, ...]] = {
    "queries": (int,),
    "total_queries": (int,),
    "attacks": (int,),
    "planned_attacks": (int,),
    "partial": _OPT_STR,
}
#: an attack type -> the ranges of its summary keys (``Attack.bounds``)
Bounds = Mapping[str, tuple[float, float]]
_SLACK = 1e-6  # float32 averages may step over a bound by rounding
VERSIONS = ("python", "torch", "robrank")
TIMINGS = ("gallery_seconds", "total_seconds")
ERS = {"raw": (dict,), "rescaled": (dict,), "ers": _NUMBER}
FORCED = {"profile_image_size": (int,), "data_image_size": (int,)}
#: stored averages vs per-sample sums / count: float64 division, so only rounding may differ
_SUM_RTOL = 1e-9


def _type_ok(value: Any, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool) and bool not in types:
        return False
    return isinstance(value, types)


def _names(types: tuple[type, ...]) -> str:
    names = {int: "integer", float: "number", str: "string", list: "list", dict: "object", bool: "boolean", type(None): "null"}
    return " or ".join(dict.fromkeys(names[t] for t in types))


def _check_fields(obj: Mapping[str, Any], fields: Mapping[str, tuple[type, ...]], where: str) -> None:
    for name, types in fields.items():
        if name not in obj:
            raise SwipeFileError(f"{where}: field {name!r} is missing")
        if not _type_ok(obj[name], types):
            raise SwipeFileError(f"{where}: field {name!r} must be {_names(types)}, got {type(obj[name]).__name__}")


def _check_summary(summary: Mapping[str, Any], where: str, bounds: Bounds | None = None) -> None:
    for key, value in summary.items():
        if not _type_ok(value, _NUMBER):
            raise SwipeFileError(f"{where}: metric {key!r} must be a number, got {type(value).__name__}")
        check_metric(key, value, where, bounds)


def check_metric(key: str, value: float, where: str, bounds: Bounds | None = None) -> None:
    """Refuse a metric that is not finite or, for an average, outside its range: one line naming it.

    ``bounds`` are the attack's (``Attack.bounds``); the engine's own keys (``embshift``) are
    bounded here. None: a sum, or an attack that is not installed, which only has to be finite.
    """
    if not math.isfinite(value):
        raise SwipeFileError(f"{where}: metric {key!r} is {value} (not a number a result can hold); re-run that attack, the model or file is broken")
    if bounds is None:
        return
    name = key.rsplit(":", 1)[-1]  # the reference's prefixed keys (CA+:prank)
    low, high = bounds.get(name) or ENGINE_BOUNDS.get(name) or (-math.inf, math.inf)
    if not low - _SLACK <= value <= high + _SLACK:
        raise SwipeFileError(f"{where}: metric {key!r} is {value:g}, outside its range [{low:g}, {high:g}]; the file was edited or is corrupt, re-run that attack")


def coverage(payload: Mapping[str, Any]) -> dict[str, Any]:
    """How much of the test split and of the profile the numbers cover, computed from ``attacks``.

    ``partial`` is None for a full result, else the words every output shows next to its
    numbers (e.g. ``"16 of 364 queries"``, ``"5 of 9 attacks"``): a quick check with
    ``--max-batches`` or an unfinished swipe must never read as a result.
    """
    total = int(payload["queries"])
    counts = [int(a["count"]) for a in payload["attacks"]]
    attacked = min(counts) if counts else 0
    done, planned = len({a["spec"] for a in payload["attacks"]}), len(payload["planned"])
    reasons = []
    if counts and attacked < total:
        reasons.append(f"{attacked} of {total} queries")
    if done < planned:
        reasons.append(f"{done} of {planned} attacks")
    return {"queries": attacked, "total_queries": total, "attacks": done, "planned_attacks": planned,
            "partial": ", ".join(reasons) or None}


def forced_note(payload: Mapping[str, Any]) -> str | None:
    """The words every output shows for a swipe run with ``--force`` on a profile made for other images; else None."""
    forced = payload.get("forced")
    if not forced:
        return None
    return (f"forced: profile made for {forced['profile_image_size']}x{forced['profile_image_size']} images run on "
            f"{forced['data_image_size']}x{forced['data_image_size']} (--force); its rescaled scores leave their 0-100 scale")


def partial_note(payload: Mapping[str, Any]) -> str | None:
    """What keeps the numbers from being a full, comparable result: the coverage
    (``coverage(payload)["partial"]``) and a ``--force`` override (:func:`forced_note`); None
    for a full result. Every output marks a file with this note."""
    reasons = [r for r in (coverage(payload)["partial"], forced_note(payload)) if r]
    return "; ".join(reasons) or None


def _check_search(attack: Mapping[str, Any], at: str, bounds: Bounds) -> None:
    """The optional cost and worst-case fields of an attack entry (docs/swipe-format.md)."""
    if "budget" in attack:
        if not isinstance(attack["budget"], Mapping):
            raise SwipeFileError(f"{at}: field 'budget' must be an object of pass counts")
        _check_summary(attack["budget"], f"{at}.budget")  # pass counts: finite
    if ("members" in attack) != ("wins" in attack):
        raise SwipeFileError(f"{at}: fields 'members' and 'wins' come together (a worst-case attack has both)")
    if "members" in attack:
        members, wins = attack["members"], attack["wins"]
        if not isinstance(members, Mapping) or not all(isinstance(m, Mapping) and isinstance(m.get("adv"), Mapping) for m in members.values()):
            raise SwipeFileError(f"{at}: field 'members' must map each member to an object with an 'adv' summary")
        for name, member in members.items():
            _check_summary(member["adv"], f"{at}.members.{name}.adv", bounds)
        if not isinstance(wins, Mapping) or not all(isinstance(c, Mapping) for c in wins.values()):
            raise SwipeFileError(f"{at}: field 'wins' must map each success measure to member counts")
        for key, counts in wins.items():
            unknown = [name for name in counts if name not in members]
            if unknown:
                raise SwipeFileError(f"{at}: wins.{key} names {unknown[0]!r}, which is not a member")


def validate(payload: Any, where: str = "results", bounds_of: Callable[[str], Bounds] | None = None, *, registry: Registry) -> None:
    """Raise :class:`SwipeFileError` (one line, naming the field) unless ``payload`` is valid.

    A file being written (a swipe still running or killed) is valid too: ``finished`` is
    then null, ``attacks`` holds the finished ones, and ``ers`` is absent. ``bounds_of(type)``
    gives an attack type's metric ranges (default: the ``bounds`` of the attack ``registry`` holds).
    """
    bounds_of = bounds_of or (lambda attack_type: registered_bounds(attack_type, registry))
    if not isinstance(payload, Mapping):
        raise SwipeFileError(f"{where}: top level must be a JSON object, got {type(payload).__name__}")
    if payload.get("schema") != SCHEMA:
        raise SwipeFileError(f"{where}: not a robrank swipe results file (schema is {payload.get('schema')!r}, expected {SCHEMA!r})")
    version = payload.get("schema_version")
    if version not in READABLE_VERSIONS:
        raise SwipeFileError(f"{where}: schema_version {version!r} is not supported (this robrank reads versions {', '.join(map(str, READABLE_VERSIONS))}); upgrade robrank or re-run the swipe")
    _check_fields(payload, TOP_LEVEL, where)
    if payload["semantics"] not in SEMANTICS:
        raise SwipeFileError(f"{where}: semantics must be one of {', '.join(SEMANTICS)}, got {payload['semantics']!r}")
    if not all(isinstance(s, str) for s in payload["planned"]):
        raise SwipeFileError(f"{where}: field 'planned' must be a list of attack spec strings")
    model = payload["model"]
    if "kind" in model and model.get("kind") != "external":
        raise SwipeFileError(f"{where}: model.kind must be 'external' when present, got {model.get('kind')!r}")
    _check_fields(model, EXTERNAL_MODEL if "kind" in model else MODEL, f"{where}: model")
    for i, weights in enumerate(model.get("weights", []) if "kind" in model else []):
        if not isinstance(weights, Mapping) or not isinstance(weights.get("sha256"), str):
            raise SwipeFileError(f"{where}: model.weights[{i}] must be an object with a sha256 string")
    for name in VERSIONS:
        if not isinstance(payload["versions"].get(name), str):
            raise SwipeFileError(f"{where}: versions.{name} must be a string")
    for name in TIMINGS:
        value = payload["timings"].get(name)
        if not _type_ok(value, _NUMBER) or value < 0:
            raise SwipeFileError(f"{where}: timings.{name} must be a non-negative number")
    seen: set[str] = set()
    for i, attack in enumerate(payload["attacks"]):
        at = f"{where}: attacks[{i}]"
        if not isinstance(attack, Mapping):
            raise SwipeFileError(f"{at} must be an object")
        _check_fields(attack, ATTACK, at)
        if attack["spec"] in seen:
            raise SwipeFileError(f"{at}: attack {attack['spec']!r} appears twice")
        if attack["spec"] not in payload["planned"]:
            raise SwipeFileError(f"{at}: attack {attack['spec']!r} is not in the profile's planned list")
        seen.add(attack["spec"])
        if not 0 <= attack["count"] <= payload["queries"]:
            raise SwipeFileError(f"{at}: count {attack['count']} is outside [0, queries={payload['queries']}]")
        bounds = bounds_of(str(attack["type"]))
        _check_summary(attack["orig"], f"{at}.orig", bounds)
        _check_summary(attack["adv"], f"{at}.adv", bounds)
        if "sums" in attack:
            sums = attack["sums"]
            if not isinstance(sums, Mapping) or not all(isinstance(sums.get(side), Mapping) for side in ("orig", "adv")):
                raise SwipeFileError(f"{at}: field 'sums' must be an object with 'orig' and 'adv' objects")
            _check_summary(sums["orig"], f"{at}.sums.orig")  # sums of per-sample values: only finite
            _check_summary(sums["adv"], f"{at}.sums.adv")
        _check_search(attack, at, bounds)
    complete = len(seen) == len(payload["planned"])
    if payload["finished"] is not None and not complete:
        raise SwipeFileError(f"{where}: marked finished but only {len(seen)} of {len(payload['planned'])} attacks have results")
    if "ers" in payload:
        if not (payload["ers_profile"] and complete):
            raise SwipeFileError(f"{where}: has an 'ers' block but the profile is not an ERS profile or attacks are missing")
        _check_fields(payload["ers"], ERS, f"{where}: ers")
        if not math.isfinite(payload["ers"]["ers"]):
            raise SwipeFileError(f"{where}: ers.ers is {payload['ers']['ers']}; the scores behind it are broken, re-run the swipe")
    if version >= 2:
        if not isinstance(payload.get("coverage"), Mapping):
            raise SwipeFileError(f"{where}: field 'coverage' is missing (schema_version {version})")
        _check_fields(payload["coverage"], COVERAGE, f"{where}: coverage")
        # the stored coverage must be what the attacks say: an edited one never makes a partial result look full
        computed = coverage(payload)
        for name, value in computed.items():
            if payload["coverage"][name] != value:
                raise SwipeFileError(f"{where}: coverage.{name} is {payload['coverage'][name]!r} but the attacks in the file give "
                                     f"{value!r}; the file was edited or is corrupt, re-run the swipe")
        if "ers" in payload and payload["ers"].get("partial", computed["partial"]) != computed["partial"]:
            raise SwipeFileError(f"{where}: ers.partial is {payload['ers']['partial']!r} but the attacks in the file give "
                                 f"{computed['partial']!r}; the file was edited or is corrupt, re-run the swipe")
    forced = payload.get("forced")
    if forced is not None:
        if not isinstance(forced, Mapping):
            raise SwipeFileError(f"{where}: field 'forced' must be null or an object with the profile's and the data's image sizes")
        _check_fields(forced, FORCED, f"{where}: forced")
    ties = payload.get("top_ties")
    if ties is not None and (not _type_ok(ties, _NUMBER) or not 0.0 <= ties <= 100.0):
        raise SwipeFileError(f"{where}: field 'top_ties' must be a percentage in [0, 100], got {ties!r}")
    for i, attack in enumerate(payload["attacks"]):
        _check_sums(attack, f"{where}: attacks[{i}]")
    if "ers" in payload:
        _check_score(upgrade(payload, registry), where, registry)


def legacy_fractions(attack_type: str, registry: Registry) -> tuple[str, ...] | None:
    """The keys an installed attack stored as fractions before version 3 (``Attack.legacy_fractions``); None if not installed."""
    if ("attacks", attack_type) not in registry:
        return None
    return tuple(getattr(registry.get("attacks", attack_type), "legacy_fractions", ()))


def upgrade(payload: Mapping[str, Any], registry: Registry, fractions_of: Callable[[str], tuple[str, ...] | None] | None = None) -> dict[str, Any]:
    """The payload in the current units: a copy of a file older than version 3 with every key its
    attack declares in ``legacy_fractions`` multiplied by 100 (averages, sums, members), the rest
    untouched. A version-3 payload, or one already upgraded, is returned as it is. The attack
    types that are not installed (their units unknown) are listed in ``units_unknown``.
    """
    if payload.get("schema_version", SCHEMA_VERSION) >= 3 or payload.get("units") == UNITS:
        return dict(payload)
    fractions_of = fractions_of or (lambda attack_type: legacy_fractions(attack_type, registry))
    out = copy.deepcopy(dict(payload))
    unknown: list[str] = []
    for attack in out.get("attacks", []):
        keys = fractions_of(str(attack.get("type")))
        if keys is None:
            unknown.append(str(attack.get("type")))
            continue
        summaries = [attack.get("orig"), attack.get("adv"), *(attack.get("sums") or {}).values()]
        for member in (attack.get("members") or {}).values():
            summaries += [member.get("adv"), member.get("sums")]
        for summary in summaries:
            if isinstance(summary, dict):
                for key in keys:
                    if _type_ok(summary.get(key), _NUMBER):
                        summary[key] = 100.0 * summary[key]
    out["units"] = UNITS
    if unknown:
        out["units_unknown"] = sorted(set(unknown))
    return out


def _check_sums(attack: Mapping[str, Any], at: str) -> None:
    """Each stored average must be its per-sample sum over ``count``: an edited count or average is refused."""
    if "sums" not in attack:
        return
    count = attack["count"]
    for side in ("orig", "adv"):
        for key, total in attack["sums"][side].items():
            if key not in attack[side]:
                continue
            average = attack[side][key]
            if count == 0:
                if math.isfinite(average) or total != 0:
                    raise SwipeFileError(f"{at}: count is 0 but {side}.{key} is {average!r}; the file was edited or is corrupt, re-run that attack")
                continue
            if not math.isclose(total / count, average, rel_tol=_SUM_RTOL, abs_tol=1e-12):
                raise SwipeFileError(f"{at}: {side}.{key} is {average:g} but sums.{side}.{key} / count is {total:g} / {count} = "
                                     f"{total / count:g}; count or an average was edited, re-run that attack")


def _check_score(payload: Mapping[str, Any], where: str, registry: Registry) -> None:
    """The stored score must be the mean of its rescaled columns and, with the profile installed, what the attacks give."""
    block = payload["ers"]
    rescaled = [v for v in block["rescaled"].values() if v is not None]
    if rescaled and len(rescaled) == len(block["rescaled"]):
        mean = sum(float(v) for v in rescaled) / len(rescaled)
        if not math.isclose(mean, block["ers"], rel_tol=1e-9, abs_tol=1e-9):
            raise SwipeFileError(f"{where}: ers.ers is {block['ers']:g} but the mean of ers.rescaled is {mean:g}; the file was edited, re-run the swipe")
    score = registered_score(str(payload["profile"]), registry)
    if score is None:
        return
    try:
        expected = score.block(payload["attacks"])
    except RobrankError:
        return  # the installed score cannot read this file's attacks; report says so itself
    for key, value in expected["raw"].items():
        stored = block["raw"].get(key)
        if stored is not None and value is not None and not math.isclose(float(stored), value, rel_tol=1e-9, abs_tol=1e-9):
            raise SwipeFileError(f"{where}: ers.raw.{key} is {stored:g} but the attacks in the file give {value:g}; "
                                 "the file was edited, re-run the swipe")


def registered_score(profile: str, registry: Registry) -> Any:
    """The installed profile's score (:class:`robrank.scoring.Score`), or None."""
    return registry.get("profiles", profile).score if ("profiles", profile) in registry else None


def registered_bounds(attack_type: str, registry: Registry) -> Bounds:
    """The installed attack's ``bounds``; {} for one that is not installed (:func:`check_metric` adds the engine's)."""
    return registry.get("attacks", attack_type).bounds if ("attacks", attack_type) in registry else {}


def load_results(path: str | Path, registry: Registry) -> dict[str, Any]:
    """Read and validate a results file; every failure is one :class:`SwipeFileError` line."""
    payload = read_json(path, SwipeFileError, "results file", "pass a JSON file written by robrank swipe",
                        "it was not written by robrank swipe or was edited by hand", parse_constant=_nan)
    validate(payload, where=str(path), registry=registry)
    return upgrade(payload, registry)


def _nan(token: str) -> float:
    # json writes NaN/Infinity for a metric that is undefined on an empty selection
    return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}[token]


__all__ = ["EXTERNAL_MODEL", "SCHEMA", "SCHEMA_VERSION", "READABLE_VERSIONS", "SEMANTICS", "SwipeFileError", "validate", "registered_bounds",
           "check_metric", "coverage", "forced_note", "partial_note", "load_results", "registered_score", "upgrade",
           "legacy_fractions", "UNITS"]
