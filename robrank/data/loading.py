"""The data layer's front door: datasets by registry name, wherever their plugin came from.

Each function takes the registry to look in: the entry point that built it (the CLI, the
Python API, a test fixture) or a run's plan passes it down, so one process can hold several.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import ConfigError
from ..plugins import Registry
from ..records import DatasetRecord
from .base import DatasetSource, ImageDataset, data_root_from_env
from .sources import check_split


def dataset_record(name: str, *, registry: Registry) -> DatasetRecord:
    """The registered record (unknown names raise UnknownNameError listing the registered ones)."""
    record = registry.get("datasets", name)
    assert isinstance(record, DatasetRecord)
    return record


def get_source(name: str, data_root: str | os.PathLike[str] | None = None, *, registry: Registry) -> DatasetSource:
    """The dataset's source, looking in ``data_root`` (default ``$ROBRANK_DATA``) then its own places."""
    record = registry.get("datasets", name)
    source = registry.create("datasets", record.name, data_root_from_env(data_root))
    if not isinstance(source, DatasetSource):
        raise ConfigError(
            f"dataset {record.name!r}'s factory returned {type(source).__name__}, not a robrank.data.DatasetSource; "
            "fix the plugin that registers it"
        )
    if not source.name:
        source.name = record.name
    return source


def load_split(
    name: str,
    split: str,
    data_root: str | os.PathLike[str] | None = None,
    augment: bool = False,
    *,
    registry: Registry,
) -> ImageDataset:
    """The ``train`` or ``test`` split of dataset ``name``; ``augment`` enables training transforms."""
    check_split(split)
    return get_source(name, data_root, registry=registry).load_split(split, augment=augment)


def locate(name: str, data_root: str | os.PathLike[str] | None = None, *, registry: Registry) -> Path:
    """Where dataset ``name``'s files are (DataError saying where to put them otherwise)."""
    return get_source(name, data_root, registry=registry).locate()
