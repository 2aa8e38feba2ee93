"""The model zoo: trained models that plugins register, loaded as ``--model zoo:NAME``.

A :class:`~robrank.records.ModelRecord` names an architecture (its builder), a weights file
(a URL or a path) and that file's sha256. Loading one never trusts the bytes: the file is
looked up in the local cache (``$ROBRANK_CACHE``, else ``robrank/`` under torch's hub
directory), fetched there first with ``torch.hub.download_url_to_file`` when the record
gives a URL, and its sha256 is compared with the record's before anything is read. A file
that does not match is never used: a download that does not match is not kept, and a cached
file that no longer matches is fetched again once. The state_dict is then read as every
``--weights`` file is (``weights_only``, or safetensors), so a zoo entry is exactly an
external model whose spec, metric, normalisation and weights come from its record; results
record the record's provenance (name, weights location, sha256, paper, licence, provider)
beside the usual model block, and :func:`zoo_name` reads it back for the leaderboard.
"""
from __future__ import annotations

import importlib
import os
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch.hub

from ..errors import CheckpointError, ConfigError
from ..io import file_sha256
from ..plugins import Registry
from ..records import ModelRecord
from ..data.loading import dataset_record

#: the ``--model`` prefix of a zoo entry
PREFIX = "zoo:"
#: the environment variable that moves the cache (default: torch's hub directory, robrank/)
ENV_CACHE = "ROBRANK_CACHE"
#: URL schemes fetched with torch's download helper (anything else is a local path)
URL_SCHEMES = ("http", "https", "ftp", "file")
DOCS = "see docs/api.md"
#: the ``--model`` options a zoo entry decides itself (its record says them)
OWN_WEIGHTS = ("weights", "weights_key", "strip_prefix", "embedding_dim")


def is_zoo(spec: Any) -> bool:
    """Whether a ``--model`` spec names a zoo entry."""
    return isinstance(spec, str) and spec[: len(PREFIX)].lower() == PREFIX


def zoo_record(spec: str, registry: Registry) -> ModelRecord:
    """The record ``zoo:NAME`` (or ``NAME``) names; an unknown name lists the registered ones."""
    name = spec[len(PREFIX):] if is_zoo(spec) else spec
    record = registry.get("models", name)
    assert isinstance(record, ModelRecord)
    return record


def canonical(spec: str, registry: Registry) -> str:
    """``zoo:NAME`` spelled as registered (names resolve case-insensitively, results record one spelling)."""
    return f"{PREFIX}{zoo_record(spec, registry).name}"


def zoo_name(source: Any) -> str | None:
    """The zoo name of a results file, its model block, or a ``--model`` spec; None when it is not a zoo model.

    This is the link from a result (a swipe, a model card) back to the registered entry.
    """
    if isinstance(source, Mapping):
        if isinstance(source.get("model"), Mapping):  # a whole results file
            source = source["model"]
        zoo = source.get("zoo")
        if isinstance(zoo, Mapping) and zoo.get("name"):
            return str(zoo["name"])
        source = source.get("spec")
    if is_zoo(source):
        return str(source)[len(PREFIX):]
    return None


def complete_options(model: str, options: Mapping[str, Any], registry: Registry) -> dict[str, Any]:
    """``--model zoo:NAME``'s options: the record fills metric, dataset and normalisation.

    An option that says something else than the record (another metric, dataset or
    normalisation, or weights of its own) would measure another model under the entry's
    name, so it is a one-line error, as it is for a robrank run.
    """
    record = zoo_record(model, registry)
    name = f"{PREFIX}{record.name}"
    out = dict(options)
    for key in OWN_WEIGHTS:
        if out.get(key):
            flag = "--" + key.replace("_", "-")
            raise ConfigError(f"{flag} does not apply to --model {name}: a zoo entry carries its own weights (drop {flag})")
        out.pop(key, None)
    own = {"metric": record.metric, "dataset": dataset_record(record.dataset, registry=registry).name,
           "normalize": record.normalize, "gray_to_rgb": record.gray_to_rgb}
    given_dataset = out.get("dataset")
    if given_dataset:
        out["dataset"] = dataset_record(str(given_dataset), registry=registry).name
    for key, value in own.items():
        given = out.get(key)
        if given not in (None, False, "") and str(given).lower() != str(value).lower():
            flag = "--" + key.replace("_", "-")
            raise ConfigError(f"--model {name} was trained for {key} {value}, not {given}; drop {flag} (the entry says it)")
        out[key] = value
    return out


def cache_dir() -> Path:
    """Where fetched weights are kept: ``$ROBRANK_CACHE``, else ``robrank/`` under torch's hub directory."""
    configured = os.environ.get(ENV_CACHE, "").strip()
    if configured:
        return Path(configured).expanduser()

    return Path(torch.hub.get_dir()) / "robrank"


def _is_url(location: str) -> bool:
    return urllib.parse.urlparse(location).scheme.lower() in URL_SCHEMES


def _mismatch(record: ModelRecord, where: str, found: str) -> CheckpointError:
    return CheckpointError(
        f"--model {PREFIX}{record.name}: {where} has sha256 {found[:16]}..., the entry says {record.sha256[:16]}...; "
        f"not loaded (a changed or corrupted file: the plugin's entry or its weights are wrong)"
    )


def weights_file(record: ModelRecord) -> Path:
    """The entry's weights on disk, checked against its sha256 (fetched into the cache first for a URL)."""
    expected = record.sha256.lower()
    if not _is_url(record.weights):
        path = Path(record.weights).expanduser()
        if not path.is_file():
            raise CheckpointError(f"--model {PREFIX}{record.name}: its weights {path} do not exist (the plugin that registers it is broken)")
        found = file_sha256(path)
        if found != expected:
            raise _mismatch(record, str(path), found)
        return path
    basename = Path(urllib.parse.urlparse(record.weights).path).name or "weights.pt"
    path = cache_dir() / "models" / f"{expected[:16]}-{basename}"
    if path.is_file():
        if file_sha256(path) == expected:
            return path
        path.unlink()  # a cached file that no longer matches is fetched again
    _download(record, path)
    return path


def _download(record: ModelRecord, path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CheckpointError(f"cannot create the model cache {path.parent} ({exc.strerror}); set {ENV_CACHE} to a writable folder") from None
    partial = path.with_name(f"{path.name}.{os.getpid()}.unverified")
    try:
        torch.hub.download_url_to_file(record.weights, str(partial), progress=False)
    except Exception as exc:  # urllib's errors, a refused write, ...
        partial.unlink(missing_ok=True)
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise CheckpointError(f"--model {PREFIX}{record.name}: fetching {record.weights} failed ({reason})") from None
    found = file_sha256(partial)
    if found != record.sha256.lower():
        partial.unlink(missing_ok=True)
        raise _mismatch(record, record.weights, found)
    os.replace(partial, path)


def builder(record: ModelRecord) -> Any:
    builder = record.factory
    if callable(builder):
        return builder
    module, _, attr = str(builder).rpartition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"--model {PREFIX}{record.name}: its builder {builder!r} cannot be imported ({exc})") from None


def provenance(spec: str, registry: Registry) -> dict[str, Any]:
    """What results record about a zoo entry: where it comes from and under which terms."""
    component = registry.component("models", spec[len(PREFIX):] if is_zoo(spec) else spec)
    record = component.record
    assert isinstance(record, ModelRecord)
    return {"name": record.name, "weights": record.weights, "sha256": record.sha256.lower(), "paper": record.paper,
            "licence": record.licence, "provider": component.provider.as_dict()}


__all__ = ["ENV_CACHE", "PREFIX", "cache_dir", "canonical", "complete_options", "is_zoo", "provenance", "weights_file",
           "zoo_name", "zoo_record"]
