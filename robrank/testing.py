"""Pytest fixtures for people who write robrank plugins (and for robrank's own tests).

Registered through the ``pytest11`` entry point, so installing robrank makes them available
in any test suite:

* ``register_plugin`` – a context that registers a plugin object (next to the bundled ones)
  for one test, then forgets it;
* ``robrank_cli`` – run ``robrank ...`` in-process and get the result;

Nothing here loads third-party entry points implicitly.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from .plugins import PluginHost, Provider, load_plugins, use_host


@contextlib.contextmanager
def registered(*plugins: object, bundled: bool = True, distribution: str = "test-plugin", version: str = "0") -> Iterator[PluginHost]:
    """Make a host with ``plugins`` (plus robrank's bundled ones) current for a block."""
    pairs = [(p, Provider(distribution, version, getattr(p, "__name__", None) or f"test-plugin-{i}")) for i, p in enumerate(plugins)]
    host = load_plugins(entry_points=bundled, plugins=pairs, env={"ROBRANK_LOAD_PLUGINS": ""})
    with use_host(host):
        yield host


@pytest.fixture
def register_plugin() -> Callable[..., contextlib.AbstractContextManager[PluginHost]]:
    """``with register_plugin(my_module): ...`` — the plugin is registered inside the block only."""
    return registered


class CliResult:
    def __init__(self, result: Any) -> None:
        self._result = result
        self.exit_code: int = result.exit_code
        self.output: str = result.output
        self.stdout: str = result.stdout
        self.stderr: str = getattr(result, "stderr", "")
        self.exception = result.exception

    def __repr__(self) -> str:
        return f"CliResult(exit_code={self.exit_code}, output={self.output[-400:]!r})"


@pytest.fixture
def robrank_cli() -> Callable[..., CliResult]:
    """``robrank_cli("list", "--json")`` runs the CLI in-process against the current host."""
    from click.testing import CliRunner

    from .cli import cli

    def run(*args: str | Sequence[str], input: str | None = None, env: dict[str, str] | None = None) -> CliResult:
        flat: list[str] = []
        for a in args:
            flat.extend([a] if isinstance(a, str) else list(a))
        return CliResult(CliRunner().invoke(cli, flat, input=input, env=env, catch_exceptions=True))

    return run
