"""The hooks a robrank plugin can implement.

Each component kind has one *register callback* hook: the host calls
``register_<kind>(register)`` and the plugin calls ``register(record)`` once per component.
The host owns validation, provenance (which distribution provided what) and collisions, so a
plugin module stays a few lines long::

    from robrank.plugin_api import AttackRecord, hookimpl

    @hookimpl
    def register_attacks(register):
        register(AttackRecord.of("my_plugin.attack:MyCA", name="MYCA", summary="...",
                                 declared="my_plugin.fields:MyCADeclaration"))  # torch-free fields

Plugins are found through the ``robrank`` entry-point group; the bundled ones use it too.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

PROJECT = "robrank"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

Register = Callable[[Any], None]


@hookspec
def register_datasets(register: Register) -> None:
    """Register datasets: call ``register(DatasetRecord(...))`` once per dataset."""


@hookspec
def register_backbones(register: Register) -> None:
    """Register embedding backbones: ``register(BackboneRecord(...))``."""


@hookspec
def register_losses(register: Register) -> None:
    """Register metric-learning loss families: ``register(LossRecord(...))``."""


@hookspec
def register_miners(register: Register) -> None:
    """Register triplet miners for SPC-2 batches: ``register(MinerRecord(...))``."""


@hookspec
def register_attacks(register: Register) -> None:
    """Register ranking attacks: ``register(AttackRecord(...))``."""


@hookspec
def register_defenses(register: Register) -> None:
    """Register adversarial-training defenses: ``register(DefenseRecord(...))``."""


@hookspec
def register_profiles(register: Register) -> None:
    """Register swipe profiles (named lists of attack specs): ``register(ProfileRecord(...))``."""


@hookspec
def register_executors(register: Register) -> None:
    """Register sweep executors (where ``robrank sweep`` runs its cells): ``register(ExecutorRecord(...))``."""


@hookspec
def register_models(register: Register) -> None:
    """Register trained models for ``--model zoo:NAME``: ``register(ModelRecord(...))``."""


@hookspec
def register_commands(cli: Any) -> None:
    """Add subcommands to the ``robrank`` click group, e.g. ``@cli.command()``."""


#: hook name -> component kind it registers
REGISTER_HOOKS: dict[str, str] = {
    "register_datasets": "datasets",
    "register_backbones": "backbones",
    "register_losses": "losses",
    "register_miners": "miners",
    "register_attacks": "attacks",
    "register_defenses": "defenses",
    "register_profiles": "profiles",
    "register_executors": "executors",
    "register_models": "models",
}
