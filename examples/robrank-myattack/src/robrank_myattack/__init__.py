"""robrank-myattack: a third-party robrank plugin, end to end.

It contributes, through the ``robrank`` entry point ``myattack = "robrank_myattack"``:

* the attack ``MICA`` (momentum candidate attack, see :mod:`robrank_myattack.attack`),
* the swipe profiles ``mi28`` and ``mi224`` (MICA± next to CA± at the ERS budgets),
* the subcommand ``robrank myattack-info``.
"""
from __future__ import annotations

import importlib
from typing import Any

from robrank.plugin_api import SIZE_224, SIZE_28, AttackRecord, ProfileRecord, hookimpl

from . import commands, profiles

__version__ = "0.1.0"
__all__ = ["MICA", "register_attacks", "register_profiles", "register_commands"]

#: the attack imports torch: robrank loads it by this lazy reference when MICA is first built,
#: so registering it (``robrank --help``) imports none of it; its fields are declared without
#: torch in ``fields``, which is all ``robrank list attacks`` reads
_ATTACK = f"{__name__}.attack"
_FIELDS = f"{__name__}.fields"


def __getattr__(name: str) -> Any:
    if name == "MICA":  # the package's class, loaded on first access
        return importlib.import_module(_ATTACK).MICA
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@hookimpl
def register_attacks(register):
    # the name now; spec fields (pm, W, mu, eps, ...), reports and display come from the declaration when MICA is
    # first looked up, and the class (checked to extend it) when MICA is first built
    register(AttackRecord.of(f"{_ATTACK}:MICA", name="MICA", declared=f"{_FIELDS}:MICADeclaration",
                             summary="momentum candidate attack: CA± with MI-FGSM updates (decay mu, L1-normalised gradients)"))


@hookimpl
def register_profiles(register):
    register(ProfileRecord(name="mi28", factory=profiles.mi28, summary="MICA± and CA± (W=1) at rob28's eps 77/255: what momentum adds", image_size=SIZE_28))
    register(ProfileRecord(name="mi224", factory=profiles.mi224, summary="MICA± and CA± (W=1) at rob224's eps 8/255: what momentum adds", image_size=SIZE_224))


@hookimpl
def register_commands(cli):
    commands.register(cli)
