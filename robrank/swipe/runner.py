"""Run every attack of a profile against one model and keep the results in one JSON file.

The reference swipe reloaded the checkpoint and re-embedded the whole test split for each of
its attacks, and wrote its results only at the very end, so a swipe killed after eight of
nine attacks had to start over. Here the model is loaded once, the clean gallery embedded
once and shared by every attack, and the results file is rewritten atomically after each
attack; rerunning the same command continues where the last one stopped, but only if the
file was written for the same model, profile and settings — mixing results of two settings
in one file would make its ERS meaningless.

The loading and attacking functions are reached through a :class:`SwipeBackend`, the seam
where a multi-process swipe plugs in: its ``run_attack`` can attack this rank's share of the
query stream (``indices``) and merge the ranks' results with ``robrank.attacks.merge_results``
while this module keeps the bookkeeping, written by one process.
"""
from __future__ import annotations

import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any
import torch

from .. import __version__, attacks
from .. import progress as progress_output
from ..attacks import accelerate, device_dataset
from ..attacks.runner import AttackOptions, check_against_gallery, check_task, dataset_attack_defaults
from ..data.loading import load_split
from ..errors import ConfigError, RobrankError
from ..io import file_sha256, write_json
from ..models.external import default_results_name, load_any, same_model
from ..plugins import Registry
from ..records import ProfileRecord, size_family
from ..semantics import REFERENCE
from .schema import (
    SCHEMA,
    SCHEMA_VERSION,
    UNITS,
    Bounds,
    SwipeFileError,
    check_metric,
    coverage,
    load_results,
    registered_bounds,
)


class SwipeResumeError(RobrankError):
    """An existing results file that belongs to another model or other settings."""


@dataclass(frozen=True)
class SwipeBackend:
    """The functions a swipe uses to load and attack (the interfaces in docs/architecture.md).

    ``compute_gallery(model, dataset, batch_size, device)`` embeds the clean test split;
    ``run_attack`` has the signature of :func:`robrank.attacks.run_attack` (the swipe calls
    it as ``run_attack(model, dataset, spec, options=AttackOptions, gallery=gallery)``).
    """

    load_run: Callable[..., Any]
    load_split: Callable[..., Any]
    parse_spec: Callable[[str], Any]
    compute_gallery: Callable[..., Any]
    run_attack: Callable[..., Any]
    #: ``prepare(model, dataset, device, options) -> (model, dataset)``: speed options applied
    #: once per swipe (bf16/channels-last/compile wrapper, the split moved to the device)
    prepare: Callable[..., Any] | None = None
    #: this process's rank; only rank 0 reads and writes the results file
    rank: int = 0
    #: ``broadcast(value) -> rank 0's value`` on every rank (None: a single process)
    broadcast: Callable[[Any], Any] | None = None
    world_size: int = 1

    @classmethod
    def default(cls, registry: Registry) -> SwipeBackend:
        """Robrank's own loading and attacking, resolving names through ``registry``."""
        # through the package, so a test that patches robrank.attacks.run_attack sees its attacks
        return cls(load_run=partial(load_any, registry=registry), load_split=partial(load_split, registry=registry),
                   parse_spec=partial(attacks.parse_spec, registry=registry), compute_gallery=attacks.Gallery.compute,
                   run_attack=partial(attacks.run_attack, registry=registry), prepare=prepare_for_speed)


def prepare_for_speed(model: Any, dataset: Any, device: Any, options: AttackOptions) -> tuple[Any, Any]:
    """The default backend's ``prepare``: wrap the model once, move a small split to the device."""
    return accelerate(model, **options.speed), device_dataset(dataset, device)


#: settings that must match for a rerun to continue an existing results file. The batch size
#: joins them only with ``max_batches``: attacks sum per-sample metrics, so over the whole
#: split it is a speed knob, but the first k batches of another size are other queries.
RESUME_KEYS: tuple[str, ...] = ("profile", "semantics", "seed", "max_batches", "dataset")


def resolve_profile(name: str, registry: Registry) -> ProfileRecord:
    """The registered :class:`~robrank.records.ProfileRecord` (unknown -> error listing all)."""
    return registry.get("profiles", name)


def profile_for_dataset(record: Any, registry: Registry) -> ProfileRecord:
    """The swipe profile of a dataset: the one its record names, else the one scored profile that fits its size.

    A dataset record that names no profile gets the registered profile with a score whose
    ``image_size`` family is the dataset's (variants of another profile do not count); none
    or several is a one-line error asking the dataset to name one.
    """
    if record.profile:
        return registry.get("profiles", record.profile)
    fitting = [
        c.record
        for c in registry.components("profiles")
        if c.record.score is not None and c.record.variant_of is None and c.record.image_size is not None and c.record.fits(record.image_size)
    ]
    if len(fitting) != 1:
        found = f" ({', '.join(p.name for p in fitting)})" if fitting else ""
        raise ConfigError(
            f"dataset {record.name!r} names no swipe profile and {len(fitting)} scored profiles fit its "
            f"{record.image_size}px images{found}; pass --profile or set DatasetRecord.profile"
        )
    return fitting[0]


def default_output(run_or_ckpt: str | Path, loaded: Any, profile: str, semantics: str = REFERENCE) -> Path:
    """``<run_dir>/swipe-<profile>.json`` for a run directory, ``<ckpt>.swipe-<profile>.json`` for a file.

    A checkpoint file given explicitly gets its own results file, so swiping several epochs
    of one run (as the reference's per-epoch summaries did) never collides; corrected
    semantics get a ``-fixed`` suffix so both variants can sit side by side.
    """
    suffix = "" if semantics == REFERENCE else f"-{semantics}"
    name = f"swipe-{profile}{suffix}.json"
    if hasattr(loaded, "model_block"):  # a model from outside robrank (--model, robrank.evaluate)
        return default_results_name(loaded, name)
    given = Path(run_or_ckpt)
    if given.is_dir() and loaded.run_dir is not None:
        return Path(loaded.run_dir) / name
    checkpoint = Path(loaded.checkpoint)
    return checkpoint.with_name(f"{checkpoint.name}.{name}")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _versions() -> dict[str, str]:
    return {"python": platform.python_version(), "torch": str(torch.__version__), "robrank": __version__}


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _model_block(loaded: Any) -> dict[str, Any]:
    if hasattr(loaded, "model_block"):  # spec, weights sha256, metric, normalisation (docs/swipe-format.md)
        return loaded.model_block()
    checkpoint = Path(loaded.checkpoint).resolve()
    return {
        "checkpoint": str(checkpoint),
        "sha256": file_sha256(checkpoint),
        "run_dir": None if loaded.run_dir is None else str(Path(loaded.run_dir).resolve()),
        "config": dict(loaded.config),
        "epoch": _optional_int(getattr(loaded, "epoch", None)),
        "step": _optional_int(getattr(loaded, "step", None)),
    }


def _resume(out: Path, fresh: dict[str, Any], restart: bool, registry: Registry) -> dict[str, Any] | None:
    """The existing results to continue, or None to start a new file."""
    if restart or not out.exists():
        return None
    how = "pass --output NEW.json to keep both, or --restart to overwrite it"
    try:
        previous = load_results(out, registry)
    except SwipeFileError as exc:
        raise SwipeResumeError(f"{exc}; {how}") from None
    keys = RESUME_KEYS + (("batch_size",) if fresh["max_batches"] is not None else ())
    for key in keys:
        if previous[key] != fresh[key]:
            raise SwipeResumeError(f"{out} holds a swipe with {key}={previous[key]!r}, not {fresh[key]!r}; {how}")
    if previous.get("max_queries") != fresh.get("max_queries"):  # files before --max-queries have none
        raise SwipeResumeError(f"{out} holds a swipe with max_queries={previous.get('max_queries')!r}, not {fresh.get('max_queries')!r}; {how}")
    if bool(previous.get("options", {}).get("amp", False)) != bool(fresh["options"]["amp"]):
        raise SwipeResumeError(f"{out} holds a swipe with amp={not fresh['options']['amp']}, not {fresh['options']['amp']}; {how}")
    if "kind" in previous["model"] or "kind" in fresh["model"]:
        differs = same_model(previous["model"], fresh["model"])
        if differs is not None:
            shown = previous["model"].get("spec") or previous["model"].get("checkpoint")
            raise SwipeResumeError(f"{out} holds a swipe of another model ({shown}, model.{differs} differs); {how}")
    for key in ("sha256", "step") if "kind" not in fresh["model"] else ():
        if previous["model"][key] != fresh["model"][key]:
            raise SwipeResumeError(f"{out} holds a swipe of another checkpoint ({previous['model']['checkpoint']}, model.{key} differs); {how}")
    stale = [a["spec"] for a in previous["attacks"] if a["spec"] not in fresh["planned"]]
    if stale:
        raise SwipeResumeError(f"{out} holds attack {stale[0]!r}, which profile {fresh['profile']!r} no longer lists; {how}")
    return previous


def profile_misfit(record: Any, image_size: int | None) -> dict[str, int] | None:
    """The results file's ``forced`` block when the profile is made for another image-size family than the data's, else None."""
    wanted = getattr(record, "image_size", None)
    if wanted is None or image_size is None or size_family(int(image_size)) == size_family(int(wanted)):
        return None
    return {"profile_image_size": int(wanted), "data_image_size": int(image_size)}


def check_profile_fits(record: Any, image_size: int | None, dataset_name: str = "the model", *, registry: Registry) -> None:
    """Refuse a profile whose image-size family differs from the data's (``--force`` skips this)."""
    wanted = getattr(record, "image_size", None)
    if profile_misfit(record, image_size) is not None:
        fitting = sorted((p.record for p in registry.components("profiles")
                          if p.record.image_size is not None and size_family(p.record.image_size) == size_family(int(image_size))),
                         key=lambda r: (r.score is None, r.name))  # profiles with a score (ERS) first
        declared = getattr(registry.get("datasets", dataset_name), "profile", None) if ("datasets", dataset_name) in registry else None
        names = [r.name for r in fitting]
        if declared in names:
            names.remove(declared)
            names.insert(0, declared)
        hint = f"use -p {' or -p '.join(names[:2])}" if names else "choose a profile for that size"
        raise ConfigError(f"profile {record.name!r} is made for {wanted}x{wanted} images but {dataset_name} has "
                          f"{image_size}x{image_size}; {hint} (or --force to run it anyway)")


def _progress_bar(total: int, initial: int, profile: str, enabled: bool) -> Any:
    """A bar on a terminal, None otherwise (then each attack is one line: robrank.progress)."""
    return progress_output.bar(enabled, total=total, initial=initial, desc=f"swipe {profile}", unit="attack", position=0, leave=True)


def swipe(
    run_or_ckpt: str | Path,
    profile: str,
    options: AttackOptions | None = None,
    *,
    registry: Registry,
    output: str | Path | None = None,
    data_root: str | Path | None = None,
    restart: bool = False,
    backend: SwipeBackend | None = None,
    redo: Sequence[str] = (),
    force: bool = False,
    **changes: Any,
) -> Path:
    """Run every attack of ``profile`` on the model at ``run_or_ckpt``; return the results path.

    ``options`` (:class:`robrank.attacks.AttackOptions`) say how every attack runs; keyword
    ``changes`` override single fields (``swipe(run, "rob28", seed=1, max_batches=2)``).
    The dataset's attack defaults (SPQA's rate, ...) are filled in from its record.

    ``redo`` names attacks (an attack type such as ``ES``, or a full spec) whose finished
    results in an existing file are dropped and computed again, keeping the others: for
    when one attack's implementation changed. The file's ``redone`` list records each one.

    Every attack is seeded with ``seed`` itself (not a running generator), so an attack's
    result does not depend on which attacks ran before it in this process — the property
    that makes a resumed swipe equal to an uninterrupted one.

    ``amp`` (bf16 autocast), ``channels_last`` and ``compile`` are speed options
    (docs/performance.md); ``amp`` changes the numbers slightly, so it is recorded in the
    file's ``options`` and a rerun only continues a file written with the same ``amp``.
    Under a distributed backend (:mod:`robrank.swipe.distributed`) every rank calls this
    function; rank 0 alone reads and writes the file and tells the others what to run.

    A profile made for another image size (its ``ProfileRecord.image_size``) is refused:
    its budgets are meant for other pixels, and the rescaled scores leave their 0-100 scale.
    ``force`` runs it anyway.
    """
    options = (options or AttackOptions()).replace(**changes)
    session = SwipeSession(run_or_ckpt, resolve_profile(profile, registry), options, registry, backend or SwipeBackend.default(registry))
    session.load(output, data_root, force)
    session.resume(restart, [str(r) for r in redo])
    return session.run()


class SwipeSession:
    """One call of :func:`swipe`: the profile, the loaded model and split, and the results payload being written.

    Rank 0 alone (``main``) reads and writes the file; every rank runs the same steps so the
    attacks' collective calls line up.
    """

    def __init__(self, run_or_ckpt: str | Path, record: ProfileRecord, options: AttackOptions, registry: Registry,
                 backend: SwipeBackend) -> None:
        self.run_or_ckpt, self.record, self.options, self.registry, self.backend = run_or_ckpt, record, options, registry, backend
        self.parsed = [backend.parse_spec(text) for text in record.factory()]
        self.planned = [p.text for p in self.parsed]
        if len(set(self.planned)) != len(self.planned):
            raise ConfigError(f"profile {record.name!r} lists an attack twice; a profile's attacks must be distinct")
        self.main = backend.rank == 0
        self.session_start = time.perf_counter()
        self.spent_before = 0.0
        self.finished_before = False
        self.done: set[str] = set()
        self.payload: dict[str, Any] = {}

    def load(self, output: str | Path | None, data_root: str | Path | None, force: bool) -> None:
        """Load the model and its test split, check the profile fits them, and start a fresh payload."""
        options, record = self.options, self.record
        self.loaded = loaded = self.backend.load_run(self.run_or_ckpt, device=options.device)
        task = getattr(loaded, "task", None)
        if task is not None:
            for spec in self.parsed:
                check_task(spec, task, registry=self.registry)
        self.out = Path(output) if output is not None else default_output(self.run_or_ckpt, loaded, record.name, options.semantics)
        self.dataset = self.backend.load_split(loaded.dataset, "test", data_root=data_root)
        if not force:
            check_profile_fits(record, getattr(self.dataset, "image_size", None), loaded.dataset, registry=self.registry)
        if not options.defaults:
            self.options = options = options.replace(defaults=dataset_attack_defaults(str(loaded.dataset), self.registry))
        self.payload = {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "units": UNITS,
            "profile": record.name,
            "ers_profile": record.score is not None,
            "planned": self.planned,
            "semantics": options.semantics,
            "seed": int(options.seed),
            "max_batches": _optional_int(options.max_batches),
            "max_queries": _optional_int(options.max_queries),
            "batch_size": _optional_int(options.batch_size),
            "model": _model_block(loaded),
            "dataset": str(loaded.dataset),
            "queries": len(self.dataset),
            "device": str(options.device),
            "versions": _versions(),
            "started": _now(),
            "finished": None,
            "timings": {"gallery_seconds": 0.0, "total_seconds": 0.0},
            "options": {**options.speed, "world_size": int(self.backend.world_size)},
            # a --force override of the image-size check: every output marks the file (schema.partial_note)
            "forced": profile_misfit(record, getattr(self.dataset, "image_size", None)),
            "attacks": [],
        }

    def resume(self, restart: bool, redo: list[str]) -> None:
        """Continue an existing file of the same swipe (dropping the ``redo`` attacks), and agree with the other ranks on what is done."""
        payload, backend = self.payload, self.backend
        unknown = [r for r in redo if not any(r in (p.text, str(p.type)) for p in self.parsed)]
        if unknown:
            types = sorted({str(p.type) for p in self.parsed})
            raise ConfigError(f"--redo {unknown[0]!r}: profile {self.record.name!r} has no such attack; its types are {', '.join(types)}")
        previous = None
        if self.main:
            try:
                previous = _resume(self.out, payload, restart, self.registry)
            except RobrankError as exc:
                if backend.broadcast is not None:
                    backend.broadcast(("error", type(exc), str(exc)))
                raise
        if previous is not None:
            payload["started"] = previous["started"]
            payload["attacks"] = list(previous["attacks"])
            payload["timings"] = dict(previous["timings"])
            self.spent_before = float(previous["timings"]["total_seconds"])
            if "top_ties" in previous:
                payload["top_ties"] = previous["top_ties"]
            redone = list(previous.get("redone", []))
            dropped = [a for a in payload["attacks"] if a["spec"] in redo or a["type"] in redo]
            if dropped:
                payload["attacks"] = [a for a in payload["attacks"] if a not in dropped]
                redone += [{"spec": a["spec"], "at": _now(), "versions": payload["versions"]} for a in dropped]
                previous["finished"] = None
            if redone:  # present only in files that had an attack recomputed
                payload["redone"] = redone
        self.done = {a["spec"] for a in payload["attacks"]}
        self.finished_before = previous is not None and previous["finished"] is not None
        if backend.broadcast is not None:  # the other ranks run what rank 0 found still to do
            message = backend.broadcast(("ok", sorted(self.done), self.finished_before) if self.main else None)
            if message[0] == "error":
                raise message[1](message[2])
            self.done, self.finished_before = set(message[1]), message[2]

    def save(self) -> None:
        """Rewrite the results file (rank 0), attacks in the profile's order."""
        if not self.main:
            return
        payload = self.payload
        order = {spec: i for i, spec in enumerate(self.planned)}
        payload["attacks"].sort(key=lambda a: order[a["spec"]])
        payload["timings"]["total_seconds"] = self.spent_before + (time.perf_counter() - self.session_start)
        payload["coverage"] = coverage(payload)
        write_json(self.out, payload)

    def run(self) -> Path:
        """Run the attacks still to do, then mark the file finished with its score; a finished file is left as it is."""
        todo = [p for p in self.parsed if p.text not in self.done]
        if todo:
            self.save()  # claim the file (and check it is writable) before the long work starts
            self._attack(todo)
        elif self.finished_before:
            return self.out  # a finished file is left exactly as it is
        payload, record = self.payload, self.record
        payload["finished"] = _now()
        if record.score is not None and self.main:
            payload["ers"] = record.score.block(payload["attacks"])
            # the score carries its own trust marker, so every format that shows it can say so
            payload["ers"]["partial"] = coverage(payload)["partial"]
            winners = record.score.winners(payload["attacks"])
            if winners:  # a worst-case profile: which search won each column, per query
                payload["winners"] = winners
        self.save()
        return self.out

    def _attack(self, todo: list[Any]) -> None:
        """Embed the clean gallery once, then run and save each attack in turn."""
        options, backend, payload, device = self.options, self.backend, self.payload, self.options.device
        started = time.perf_counter()
        model, dataset = self.loaded.model, self.dataset
        if backend.prepare is not None:
            model, dataset = backend.prepare(model, dataset, device, options)
        # the gallery is embedded without gradients, at the evaluation batch size, not -b
        gallery = backend.compute_gallery(model, dataset, None, device)
        payload["timings"]["gallery_seconds"] = time.perf_counter() - started
        if hasattr(gallery, "embeddings"):  # a collapsed or quantised embedding: outputs say so
            payload["top_ties"] = 100.0 * float(gallery.top_ties)  # percent, like every rate in the file
        if hasattr(gallery, "labels"):  # every attack must fit this gallery before the first one runs
            for spec in todo:
                check_against_gallery(spec, gallery, self.registry)
        show = options.progress and self.main
        bar = _progress_bar(len(self.planned), len(self.done), self.record.name, show)
        attack_options = options.replace(progress=show)
        try:
            for spec in todo:
                if bar is not None:
                    bar.set_postfix_str(spec.text, refresh=True)
                result = backend.run_attack(model, dataset, spec, options=attack_options, gallery=gallery)
                bounds = registered_bounds(str(spec.type), self.registry)
                entry = {"spec": spec.text, "type": str(spec.type), **_result_fields(result, spec.text, bounds)}
                payload["attacks"].append(entry)
                self.save()
                if bar is not None:
                    bar.update(1)
                progress_output.line(show, f"swipe {self.record.name}: {len(payload['attacks'])}/{len(self.planned)} "
                                           f"{spec.text} ({entry['count']} queries, {entry['seconds']:.1f} s)")
        finally:
            if bar is not None:
                bar.close()


def _result_fields(result: Any, spec: str, bounds: Bounds) -> dict[str, Any]:
    """The stored fields of one attack's result; a non-finite or out-of-range average is refused here,
    so it is never written (and later printed) as if it were a result."""
    data = result.as_dict() if hasattr(result, "as_dict") else dict(result)
    for side in ("orig", "adv"):
        for key, value in data[side].items():
            check_metric(key, float(value), f"{spec} ({'clean' if side == 'orig' else 'adversarial'})", bounds)
    fields = {
        "orig": {k: float(v) for k, v in data["orig"].items()},
        "adv": {k: float(v) for k, v in data["adv"].items()},
        "count": int(data["count"]),
        "seconds": float(data["seconds"]),
    }
    if data.get("sums"):  # per-sample sums: what merging shards of one attack needs
        fields["sums"] = {side: {k: float(v) for k, v in values.items()} for side, values in data["sums"].items()}
    if data.get("budget"):  # model passes per attacked sample
        fields["budget"] = {k: float(v) for k, v in data["budget"].items()}
    if data.get("members"):  # a worst case: every member's result and who won each measure
        fields["members"] = {name: {part: {k: float(v) for k, v in values.items()} for part, values in m.items()} for name, m in data["members"].items()}
        fields["wins"] = {k: {name: int(n) for name, n in counts.items()} for k, counts in data["wins"].items()}
    return fields


__all__ = ["swipe", "SwipeBackend", "SwipeSession", "prepare_for_speed", "SwipeResumeError", "profile_for_dataset", "default_output", "resolve_profile", "file_sha256", "RESUME_KEYS"]
