"""Pytest fixtures for people who write robrank plugins (and for robrank's own tests).

Registered through the ``pytest11`` entry point, so installing robrank makes them available
in any test suite:

* ``register_plugin`` – a context that registers a plugin object (next to the bundled ones)
  for one test, then forgets it;
* ``robrank_cli`` – run ``robrank ...`` in-process and get the result;
* ``tiny_run`` – the run directory of a tiny trained model (the quickstart dataset's default
  backbone and loss on its data: LeNet + ptripletN on the bundled digits, a few dozen steps on
  the CPU): something real to attack, evaluate and swipe in seconds, trained once per test
  session;
* ``tiny_run_factory`` – the same for another dataset, backbone or loss (e.g. a dataset your
  plugin registers), each combination trained once per session.

Nothing here loads third-party entry points implicitly.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
import traceback

import pytest
from click.testing import CliRunner

from .plugins import PluginHost, Provider, Registry, get_registry, load_plugins, use_host
from .cli import cli
from .errors import ConfigError
from .io import save_checkpoint


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
    """What a CLI run left: ``exit_code``, ``output`` (both streams), ``stdout``, ``stderr``.

    An unexpected exception (a bug, not a user error: those exit with code 2 and a one-line
    message) is kept in ``exception`` with its formatted ``traceback``, which ``repr`` shows,
    so ``assert result.exit_code == 0, result`` explains itself.
    """

    def __init__(self, result: Any) -> None:
        self._result = result
        self.exit_code: int = result.exit_code
        self.output: str = result.output
        self.stdout: str = result.stdout
        self.stderr: str = getattr(result, "stderr", "")
        self.exception = result.exception
        self.traceback = ""
        if result.exc_info is not None and not isinstance(result.exception, SystemExit):
            self.traceback = "".join(traceback.format_exception(*result.exc_info))

    def __repr__(self) -> str:
        tail = f", traceback={self.traceback[-2000:]!r}" if self.traceback else ""
        return f"CliResult(exit_code={self.exit_code}, output={self.output[-400:]!r}{tail})"


@pytest.fixture
def robrank_cli() -> Callable[..., CliResult]:
    """``robrank_cli("list", "--json")`` runs the CLI in-process against the current host."""
    def run(*args: str | Sequence[str], input: str | None = None, env: dict[str, str] | None = None) -> CliResult:
        flat: list[str] = []
        for a in args:
            flat.extend([a] if isinstance(a, str) else list(a))
        return CliResult(CliRunner().invoke(cli, flat, input=input, env=env, catch_exceptions=True))

    return run


#: how long and how wide a tiny run trains: small enough for a CPU test session (640 images
#: of 28x28 through LeNet), trained enough that attacks have a ranking to break (R@1 about
#: 0.89 on digits' 364 test images, chance is 0.1)
TINY_TRAINING: dict[str, Any] = {"steps": 40, "batch_size": 16, "embedding_dim": 64, "seed": 0}


def quickstart_components(registry: Registry | None = None) -> dict[str, str]:
    """``dataset``, ``backbone`` and ``loss`` of the quickstart dataset (``DatasetRecord.quickstart``).

    The fixtures train and write their runs on it, so this module names no component itself:
    the bundled ``digits`` record says it is the quickstart dataset and that LeNet and
    ptripletN are its defaults. These are test fixtures, an entry point: without ``registry``
    they read the plugin host current when they are called.
    """
    registry = registry or get_registry()
    quick = [c.record for c in registry.components("datasets") if c.record.quickstart]
    if not quick:
        raise ConfigError("no registered dataset is marked quickstart=True; the tiny-run fixtures need one (pass dataset=, backbone=, loss=)")
    record = quick[0]
    return {"dataset": record.name, "backbone": record.default_backbone, "loss": record.default_loss}


def tiny_run_settings(registry: Registry | None = None) -> dict[str, Any]:
    """What :func:`train_tiny_run` trains by default: the quickstart components and :data:`TINY_TRAINING`."""
    return {**quickstart_components(registry), **TINY_TRAINING}


def __getattr__(name: str) -> Any:
    # TINY_RUN is resolved against the plugin host current when it is read
    if name == "TINY_RUN":
        return tiny_run_settings()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def train_tiny_run(run_dir: str | Path, **options: Any) -> Path:
    """Train a tiny run into ``run_dir`` (options override :func:`tiny_run_settings`); returns the run directory.

    Options are ``dataset``, ``backbone``, ``loss``, ``steps``, ``batch_size``,
    ``embedding_dim``, ``seed``, ``data_root`` and any other :class:`robrank.training.TrainConfig`
    field. It runs on the CPU for one epoch of at most ``steps`` steps, under the plugin host
    that is current when it is called.
    """
    from .training import TrainConfig, train  # lazy: keeps this module torch-free

    settings = {**tiny_run_settings(), **options}
    steps = int(settings.pop("steps"))
    config = TrainConfig(
        **settings,
        epochs=1,
        max_steps=steps,
        device="cpu",
        num_workers=0,
        run_dir=str(run_dir),
    )
    return Path(train(config, registry=get_registry(), progress=False).run_dir)


@pytest.fixture(scope="session")
def tiny_run_factory(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``tiny_run_factory(dataset="imagefolder28", data_root=tree)`` -> run directory, trained once per combination."""
    cache: dict[tuple[tuple[str, str], ...], Path] = {}

    def make(**options: Any) -> Path:
        settings = {**tiny_run_settings(), **options}
        key = tuple(sorted((k, repr(v)) for k, v in settings.items()))
        if key not in cache:
            name = "-".join(str(settings[k]) for k in ("dataset", "backbone"))
            cache[key] = train_tiny_run(tmp_path_factory.mktemp(f"tiny-{name}") / "run", **options)
        return cache[key]

    return make


@pytest.fixture(scope="session")
def tiny_run(tiny_run_factory: Callable[..., Path]) -> Path:
    """The run directory of a tiny model of the quickstart dataset (see :func:`tiny_run_settings`), shared by the session."""
    return tiny_run_factory()


def write_untrained_run(run_dir: str | Path, *, seed: int = 0, **config: Any) -> Path:
    """A run directory in robrank's checkpoint format holding an untrained model.

    For tests of attacks, swipes and reports that need a loadable run but no training:
    defaults to the quickstart dataset's default backbone and loss (:func:`quickstart_components`),
    untrained, with 16-d embeddings and metric N.
    """
    import torch  # lazy: keeps this module torch-free

    from .models import checkpoint  # lazy: keeps this module torch-free
    from .training.config import TrainConfig  # lazy: keeps this module torch-free
    from .training.rundir import write_config  # lazy: keeps this module torch-free

    run = Path(run_dir)
    config = {**quickstart_components(), "metric": "N", "embedding_dim": 16, **config}
    torch.manual_seed(seed)
    model = checkpoint.build_model(config, get_registry())
    write_config(run, TrainConfig.from_dict(config), device="cpu", world_size=1)
    save_checkpoint(
        run / "checkpoints" / "last.pt",
        {
            "format": checkpoint.FORMAT,
            "format_version": checkpoint.FORMAT_VERSION,
            "config": config,
            "epoch": 1,
            "step": 7,
            "model": model.state_dict(),
        },
    )
    return run


@pytest.fixture
def untrained_run(tmp_path: Path) -> Path:
    """An untrained model (embedding 16) of the quickstart dataset's defaults, written as a run directory.

    With the bundled plugins: LeNet on ``digits``, in ``digits-lenet-ptripletN``.
    """
    parts = quickstart_components()
    return write_untrained_run(tmp_path / f"{parts['dataset']}-{parts['backbone']}-{parts['loss']}")
