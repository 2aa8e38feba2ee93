"""Plugin discovery, the component registry and provenance.

Nothing happens at import time: :func:`load_plugins` builds a :class:`PluginHost` on demand
(the CLI builds one per process through :func:`get_host`; tests build their own). Every
plugin, bundled or third-party, comes from the ``robrank`` entry-point group, is loaded on
its own, and a plugin that fails to import or to register is recorded as a
:class:`PluginFailure` instead of taking the CLI down (unless strict mode is on).

Environment variables (for users debugging a broken install):

``ROBRANK_STRICT_PLUGINS=1``
    turn any plugin failure into an error.
``ROBRANK_LOAD_PLUGINS``
    unset: load every installed plugin. A comma-separated list: load only the third-party
    plugins named there (by distribution or entry-point name). Empty: load no third-party
    plugin at all. The components bundled with robrank itself are always loaded.
"""
from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
import importlib
import warnings

import importlib_metadata
import pluggy

from . import hookspecs
from .errors import PluginError, RobrankError, UnknownNameError, one_line, singular
from .records import KINDS, RECORD_TYPES, Record

ENTRY_POINT_GROUP = "robrank"
BUNDLED_DISTRIBUTION = "robrank"
ENV_STRICT = "ROBRANK_STRICT_PLUGINS"
ENV_LOAD = "ROBRANK_LOAD_PLUGINS"


@dataclass(frozen=True)
class Provider:
    """Where a component came from: the distribution (and version) and the plugin in it."""

    distribution: str
    version: str
    plugin: str

    @property
    def label(self) -> str:
        return f"{self.distribution} {self.version}".strip()

    def as_dict(self) -> dict[str, str]:
        return {"distribution": self.distribution, "version": self.version, "plugin": self.plugin}


@dataclass(frozen=True)
class Component:
    """A registered record together with its provider."""

    kind: str
    record: Record
    provider: Provider

    @property
    def name(self) -> str:
        return self.record.name

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.record.name,
            "summary": self.record.summary,
            "aliases": list(self.record.aliases),
            "provider": self.provider.as_dict(),
            **self.record.details(),
        }


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that could not be used, and why."""

    plugin: str
    distribution: str
    version: str
    stage: str  # "import", "validate", "register", "collision" or "commands"
    error: str

    def as_dict(self) -> dict[str, str]:
        return {
            "plugin": self.plugin,
            "distribution": self.distribution,
            "version": self.version,
            "stage": self.stage,
            "error": self.error,
        }


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):  # sys.exit() inside plugin code: say so, with the code it asked for
        return f"SystemExit: the plugin called sys.exit({exc.code!r})"
    text = str(exc).strip().splitlines()
    return one_line(f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__)


def _reraise_interrupt(exc: BaseException) -> None:
    """Plugin code may raise anything, ``SystemExit`` included, without taking robrank down.

    A plugin calling ``sys.exit()`` at import time would otherwise end every robrank command
    silently with its exit code; only the user's own Ctrl-C goes through.
    """
    if isinstance(exc, (KeyboardInterrupt, GeneratorExit)):
        raise exc


class Registry:
    """Components by kind and name; aliases resolve to the same component."""

    def __init__(self) -> None:
        self._components: dict[str, dict[str, Component]] = {k: {} for k in KINDS}
        self._alias: dict[str, dict[str, str]] = {k: {} for k in KINDS}

    def add(self, kind: str, record: Record, provider: Provider) -> None:
        expected = RECORD_TYPES[kind]
        if not isinstance(record, expected):
            raise PluginError(
                f"plugin {provider.plugin!r} ({provider.label}) registered a "
                f"{type(record).__name__} through register_{kind}; expected {expected.__name__}"
            )
        if not record.name or not isinstance(record.name, str):
            raise PluginError(f"plugin {provider.plugin!r} ({provider.label}) registered a {kind[:-1]} without a name")
        keys = (record.name, *record.aliases)
        for key in keys:
            # names are case-insensitive across components (--backbone LENET finds lenet), so LeNet beside
            # lenet is a collision too; one component's own aliases may differ in case (pdtripletN, pDtripletN)
            owner = self._owner(kind, key) or self._folded_owner(kind, key)
            if owner is not None:
                taken = key if self._owner(kind, key) is not None else self._folded_key(kind, key)
                same = repr(key) if taken == key else f"{key!r} (the same as {taken!r} but for case)"
                raise PluginError(
                    f"{singular(kind)} name {same} is registered twice: by {owner.provider.plugin!r} "
                    f"({owner.provider.label}) and by {provider.plugin!r} ({provider.label}); "
                    f"uninstall one of them or disable it with {ENV_LOAD}"
                )
        component = Component(kind, record, provider)
        self._components[kind][record.name] = component
        for alias in record.aliases:
            self._alias[kind][alias] = record.name

    def _owner(self, kind: str, key: str) -> Component | None:
        if key in self._components[kind]:
            return self._components[kind][key]
        if key in self._alias[kind]:
            return self._components[kind][self._alias[kind][key]]
        return None

    def _folded_key(self, kind: str, key: str) -> str | None:
        """The registered name or alias equal to ``key`` but for case (unique: :meth:`add` sees to it)."""
        folded = key.lower() if isinstance(key, str) else key
        for known in (*self._components[kind], *self._alias[kind]):
            if known.lower() == folded:
                return known
        return None

    def _folded_owner(self, kind: str, key: str) -> Component | None:
        known = self._folded_key(kind, key)
        return None if known is None else self._owner(kind, known)

    def component(self, kind: str, name: str) -> Component:
        if kind not in self._components:
            raise UnknownNameError("kinds", kind, KINDS)
        # names are unique case-insensitively, so a name in another case is that component (MNIST, es, LENET)
        found = self._owner(kind, name) or self._folded_owner(kind, name)
        if found is None:
            raise UnknownNameError(kind, name, self._components[kind], aliases=self._alias[kind])
        return self._resolved(found)

    def _resolved(self, component: Component) -> Component:
        """``component`` with its record's lazy parts loaded (:meth:`Record.resolved`), kept for next time.

        A record registered with a lazy ``"module:attr"`` factory imports its implementation
        here, on first use; an import that fails is a one-line error naming the plugin.
        """
        try:
            record = component.record.resolved()
        except PluginError:
            raise
        except BaseException as exc:
            _reraise_interrupt(exc)
            if os.environ.get("ROBRANK_DEBUG"):
                raise
            declared = getattr(component.record, "declared", None)  # a declared record loads its declaration here
            what = f"its declaration {str(declared)!r}" if declared else f"its implementation {str(component.record.factory)!r}"
            raise PluginError(
                f"{singular(component.kind)} {component.name!r} from {component.provider.label}: {what} "
                f"failed to load: {_describe(exc)} (set ROBRANK_DEBUG=1 for the traceback)"
            ) from exc
        if record is component.record:
            return component
        resolved = Component(component.kind, record, component.provider)
        self._components[component.kind][component.name] = resolved
        return resolved

    def get(self, kind: str, name: str) -> Record:
        return self.component(kind, name).record

    def __contains__(self, key: tuple[str, str]) -> bool:
        kind, name = key
        if kind not in self._components:
            return False
        return (self._owner(kind, name) or self._folded_owner(kind, name)) is not None

    def names(self, kind: str) -> list[str]:
        return sorted(self._components[kind])

    def components(self, kind: str) -> list[Component]:
        """Every component of ``kind``, by name, lazy records loaded (a declared attack or defense: its declaration only)."""
        return [self._resolved(self._components[kind][n]) for n in self.names(kind)]

    def create(self, kind: str, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call a component's factory; a crash (``sys.exit`` included) or a result of the wrong
        type inside plugin code becomes a one-line error naming the component and its provider."""
        component = self.component(kind, name)
        try:
            built = component.record.factory(*args, **kwargs)
        except PluginError:
            raise
        except BaseException as exc:
            _reraise_interrupt(exc)
            if isinstance(exc, RobrankError) or os.environ.get("ROBRANK_DEBUG"):
                raise
            raise PluginError(
                f"{singular(kind)} {component.name!r} from {component.provider.label} failed to build: "
                f"{_describe(exc)} (set ROBRANK_DEBUG=1 for the traceback)"
            ) from exc
        expected = _expected_type(kind)
        if expected is not None and not isinstance(built, expected):
            where = ".".join(FACTORY_RETURNS[kind])
            raise PluginError(
                f"{singular(kind)} {component.name!r} from {component.provider.label}: its factory returned "
                f"{type(built).__name__}, not a {where}; fix the plugin that registers it"
            )
        return built


#: what a factory of each kind must return, imported only when a component is built (torch is heavy)
FACTORY_RETURNS: dict[str, tuple[str, str]] = {
    "backbones": ("torch.nn", "Module"),
    "losses": ("torch.nn", "Module"),
    "attacks": ("robrank.attacks.base", "Attack"),
    "defenses": ("robrank.defenses.base", "Defense"),
    "datasets": ("robrank.data.base", "DatasetSource"),
}


def _expected_type(kind: str) -> type | None:
    where = FACTORY_RETURNS.get(kind)
    if where is None:
        return None

    return getattr(importlib.import_module(where[0]), where[1])


@dataclass
class PluginHost:
    """A loaded set of plugins: the pluggy manager, the registry and the failures."""

    pm: pluggy.PluginManager
    registry: Registry
    failures: list[PluginFailure] = field(default_factory=list)
    providers: dict[str, Provider] = field(default_factory=dict)
    strict: bool = False
    _commands: dict[str, Any] | None = None

    def commands(self) -> dict[str, Any]:
        """Click commands contributed through ``register_commands`` (built once)."""
        if self._commands is None:
            import click  # lazy: a library user's `import robrank.plugins` needs no click

            self._commands = {}
            for impl in self.pm.hook.register_commands.get_hookimpls():
                provider = self.providers[impl.plugin_name]
                group = click.Group(name=provider.plugin)
                try:
                    impl.function(**{arg: group for arg in impl.argnames})
                except BaseException as exc:
                    _reraise_interrupt(exc)
                    self._fail(provider, "commands", exc)
                    continue
                for name, command in group.commands.items():
                    self._commands.setdefault(name, command)
        return self._commands

    def _fail(self, provider: Provider, stage: str, exc: BaseException | str) -> None:
        message = exc if isinstance(exc, str) else _describe(exc)
        failure = PluginFailure(provider.plugin, provider.distribution, provider.version, stage, message)
        if self.strict:
            raise PluginError(
                f"plugin {provider.plugin!r} ({provider.label}) failed at {stage}: {message} "
                f"(strict mode: unset {ENV_STRICT} to skip failing plugins)"
            )

        warnings.warn(f"robrank: skipping plugin {provider.plugin!r} ({provider.label}): {message}", stacklevel=2)
        self.failures.append(failure)


def _entry_points() -> list[importlib_metadata.EntryPoint]:
    return sorted(importlib_metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)


def _wanted(ep_name: str, dist: str, allow: set[str] | None) -> bool:
    if dist == BUNDLED_DISTRIBUTION or allow is None:
        return True
    return ep_name in allow or dist in allow or dist.replace("_", "-") in allow


def load_plugins(
    *,
    entry_points: bool = True,
    plugins: Iterable[tuple[object, Provider]] = (),
    env: Mapping[str, str] | None = None,
    strict: bool | None = None,
) -> PluginHost:
    """Build a plugin host.

    ``entry_points`` loads the installed ``robrank`` entry points (filtered by
    ``ROBRANK_LOAD_PLUGINS``); ``plugins`` adds plugin objects (modules or instances) with
    an explicit provider, which is how tests register a plugin without installing it.
    """
    env = os.environ if env is None else env
    if strict is None:
        strict = env.get(ENV_STRICT, "").strip().lower() not in ("", "0", "false", "no")
    allow: set[str] | None = None
    if ENV_LOAD in env:
        allow = {part.strip() for part in env[ENV_LOAD].split(",") if part.strip()}

    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    host = PluginHost(pm=pm, registry=Registry(), strict=strict)

    candidates: list[tuple[Any, Provider]] = []
    if entry_points:
        for ep in _entry_points():
            dist = ep.dist.name if ep.dist is not None else "?"
            version = ep.dist.version if ep.dist is not None else ""
            if not _wanted(ep.name, dist, allow):
                continue
            provider = Provider(dist, version, ep.name)
            try:
                obj = ep.load()
            except BaseException as exc:  # a broken plugin must not break the CLI
                _reraise_interrupt(exc)
                host._fail(provider, "import", exc)
                continue
            candidates.append((obj, provider))
    candidates.extend(plugins)

    for obj, provider in candidates:
        _register_plugin(host, obj, provider)
    pm.check_pending()
    _collect(host)
    return host


def _register_plugin(host: PluginHost, obj: object, provider: Provider) -> None:
    name = provider.plugin
    if name in host.providers:
        host._fail(provider, "validate", f"a plugin named {name!r} is already loaded from {host.providers[name].label}")
        return
    try:
        host.pm.register(obj, name=name)
        host.pm.check_pending()
    except BaseException as exc:  # e.g. a typo'd hook name or a wrong hook signature
        _reraise_interrupt(exc)
        if host.pm.is_registered(obj):
            host.pm.unregister(obj)
        host._fail(provider, "validate", exc)
        return
    host.providers[name] = provider


def _collect(host: PluginHost) -> None:
    """Run every register hook, one plugin at a time, so a failure is contained.

    A plugin is all or nothing: a hook that raises, a record of the wrong type or a name
    that another plugin also claims marks the whole plugin as failed and none of its
    components is registered. Bundled components are added first and win every collision;
    two third-party plugins claiming one name both fail, since robrank cannot know which
    one the user meant (``ROBRANK_LOAD_PLUGINS`` picks one).
    """
    per_plugin: dict[str, list[tuple[str, Record]]] = {}
    failed: set[str] = set()
    for hook_name, kind in hookspecs.REGISTER_HOOKS.items():
        for impl in getattr(host.pm.hook, hook_name).get_hookimpls():
            provider = host.providers[impl.plugin_name]
            if impl.plugin_name in failed:
                continue
            records: list[tuple[str, Record]] = []
            try:
                impl.function(**{arg: (lambda rec, _k=kind, _r=records: _r.append((_k, rec))) for arg in impl.argnames})
                for record_kind, record in records:
                    _check_record(record_kind, record, provider)
            except BaseException as exc:
                _reraise_interrupt(exc)
                failed.add(impl.plugin_name)
                per_plugin.pop(impl.plugin_name, None)
                _drop(host, impl.plugin_name, provider, "register", exc)
                continue
            per_plugin.setdefault(impl.plugin_name, []).extend(records)

    bundled = [p for p in per_plugin if host.providers[p].distribution == BUNDLED_DISTRIBUTION]
    for plugin_name in bundled:
        for kind, record in per_plugin[plugin_name]:
            host.registry.add(kind, record, host.providers[plugin_name])  # two bundled claims are robrank's own bug
    third_party = [p for p in per_plugin if p not in bundled]
    claims: dict[tuple[str, str], list[tuple[str, str, str]]] = {}  # (kind, folded name) -> (plugin, component, name)
    for plugin_name in third_party:
        for kind, record in per_plugin[plugin_name]:
            for key in dict.fromkeys((record.name, *record.aliases)):
                claims.setdefault((kind, key.lower()), []).append((plugin_name, record.name, key))
    for plugin_name in third_party:
        provider = host.providers[plugin_name]
        reason = _collision(host, plugin_name, per_plugin[plugin_name], claims)
        if reason:
            _drop(host, plugin_name, provider, "collision", reason)
            continue
        for kind, record in per_plugin[plugin_name]:
            host.registry.add(kind, record, provider)


def _check_record(kind: str, record: object, provider: Provider) -> None:
    expected = RECORD_TYPES[kind]
    if not isinstance(record, expected):
        raise PluginError(f"registered a {type(record).__name__} through register_{kind}; expected {expected.__name__}")
    if not record.name or not isinstance(record.name, str):
        raise PluginError(f"registered a {kind[:-1]} without a name")


def _collision(host: PluginHost, plugin_name: str, records: list[tuple[str, Record]], claims: dict) -> str:
    for kind, record in records:
        for key in (record.name, *record.aliases):
            # names are case-insensitive: LeNet beside the bundled lenet is the same name
            owner = host.registry._owner(kind, key) or host.registry._folded_owner(kind, key)
            if owner is not None:
                taken = host.registry._folded_key(kind, key) or key
                same = repr(key) if taken == key else f"{key!r} (the same as {taken!r} but for case)"
                return (
                    f"{singular(kind)} name {same} is already robrank's own ({owner.provider.label}); "
                    "the bundled one is kept, rename the plugin's"
                )
            others = [(p, name) for p, component, name in claims[(kind, key.lower())] if (p, component) != (plugin_name, record.name)]
            if others:
                other, name = host.providers[others[0][0]], others[0][1]
                same = repr(key) if name == key else f"{key!r} (the same as {name!r} but for case)"
                return (
                    f"{singular(kind)} name {same} is also registered by {other.plugin!r} ({other.label}); "
                    f"uninstall one of them or choose one with {ENV_LOAD}"
                )
    return ""


def _drop(host: PluginHost, plugin_name: str, provider: Provider, stage: str, reason: BaseException | str) -> None:
    """Skip a plugin as a whole (no commands either) and record why."""
    if host.pm.has_plugin(plugin_name):
        host.pm.unregister(name=plugin_name)
    host._fail(provider, stage, reason)


_HOST: PluginHost | None = None
_LOCK = threading.Lock()


def get_host() -> PluginHost:
    """The process-wide host, built on first use from the installed entry points."""
    global _HOST
    with _LOCK:
        if _HOST is None:
            _HOST = load_plugins()
        return _HOST


def get_registry() -> Registry:
    return get_host().registry


@contextlib.contextmanager
def use_host(host: PluginHost) -> Iterator[PluginHost]:
    """Make ``host`` the process-wide host for the duration of the block (tests)."""
    global _HOST
    previous = _HOST
    _HOST = host
    try:
        yield host
    finally:
        _HOST = previous
