"""robrank: adversarial robustness of deep ranking models, as a plugin framework.

The public surface for plugin authors is :data:`hookimpl` and the records in
:mod:`robrank.records`; everything else is reached through the CLI or the submodules.
"""
from __future__ import annotations

from .hookspecs import hookimpl
from .records import (
    AttackRecord,
    BackboneRecord,
    DatasetRecord,
    DefenseRecord,
    LossRecord,
    MinerRecord,
    ProfileRecord,
)

try:
    from importlib.metadata import version as _version

    __version__ = _version("robrank")
except Exception:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "hookimpl",
    "AttackRecord",
    "BackboneRecord",
    "DatasetRecord",
    "DefenseRecord",
    "LossRecord",
    "MinerRecord",
    "ProfileRecord",
    "__version__",
]
