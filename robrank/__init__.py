"""robrank: adversarial robustness of deep ranking models, as a plugin framework.

Plugin authors import from :mod:`robrank.plugin_api` (docs/plugins.md), the one module with
a stability promise for them; :data:`hookimpl` and the records are also here. Users evaluate their own models with :func:`evaluate`,
:func:`attack`, :func:`gallery` and :func:`load_run` (docs/api.md); they live in
:mod:`robrank.api` and are imported on first use, so ``import robrank`` stays light.
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
    ModelRecord,
    ProfileRecord,
)

try:
    from importlib.metadata import version as _version

    __version__ = _version("robrank")
except Exception:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

#: the Python API (robrank.api), imported on first access
_API = ("evaluate", "bench", "attack", "gallery", "load_run", "load_results", "wrap_model", "Results", "RankingAttack", "AttackOutput")


def __getattr__(name: str):
    if name in _API:
        if name == "wrap_model":
            from .models.external import wrap_model  # lazy: keeps robrank --help torch-free

            return wrap_model
        from . import api  # lazy: keeps robrank --help fast

        return getattr(api, name)
    raise AttributeError(f"module 'robrank' has no attribute {name!r}")


__all__ = [
    *_API,
    "hookimpl",
    "AttackRecord",
    "BackboneRecord",
    "DatasetRecord",
    "DefenseRecord",
    "LossRecord",
    "MinerRecord",
    "ModelRecord",
    "ProfileRecord",
    "__version__",
]
