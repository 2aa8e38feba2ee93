"""What a sweep evaluates: cells (one model x one profile x one seed) and the swipe settings they share.

A cell is exactly one resumable swipe with its own results file, so a cell is the unit an
executor schedules, retries and reports. Its *source* says what model the swipe loads:
``run`` (a run directory or checkpoint) or ``model`` (a model trained elsewhere: the
``--model`` options of ``robrank swipe``, kept as canonical JSON with absolute paths, so
the cell reads the same in any process). Cell ids are readable (the run's or model's name,
profile, seed) and unique (a short hash of the source), so two runs called ``run`` in
different folders never share a cell.
"""
from __future__ import annotations

import hashlib
import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, get_args, get_type_hints

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the backport has the same API
    import tomli as tomllib

from ..errors import ConfigError
from ..plugins import Registry

#: the kinds of model source a cell can swipe
SOURCES: tuple[str, ...] = ("run", "model")
#: swipe settings that only say where and how fast a cell runs, not what it computes
RUNTIME_SETTINGS: tuple[str, ...] = ("device", "data_root", "channels_last", "compile")


@dataclass(frozen=True)
class SwipeSettings:
    """The swipe options every cell of a sweep shares (``robrank swipe``'s, passed through).

    :data:`RUNTIME_SETTINGS` may change between runs of a sweep; the others decide what the
    cells' results mean, so a sweep directory keeps them for good.
    """

    batch_size: int | None = None
    max_batches: int | None = None
    max_queries: int | None = None
    semantics: str = "reference"
    device: str | None = None
    data_root: str | None = None
    amp: bool = False  # bf16 autocast moves the metrics slightly, so it is part of what a cell computes
    channels_last: bool = False
    compile: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SwipeSettings:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown swipe setting {unknown[0]!r}; known: {', '.join(sorted(known))}")
        hints = get_type_hints(cls)
        for key, value in data.items():
            kinds = get_args(hints[key]) or (hints[key],)
            if value is not None and (not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds)):
                wanted = " or ".join(k.__name__ for k in kinds if k is not type(None))
                raise ConfigError(f"swipe setting {key} must be {wanted}, got {value!r}")
        return cls(**dict(data))


@dataclass(frozen=True)
class Cell:
    """One swipe: ``source`` (``run``: a run directory or checkpoint; ``model``: a model spec) x ``profile`` x ``seed``."""

    target: str
    profile: str
    seed: int = 0
    source: str = "run"

    @property
    def id(self) -> str:
        digest = hashlib.sha256(f"{self.source}:{self.target}".encode()).hexdigest()[:6]
        shown = _model_name(self.target) if self.source == "model" else _display_name(self.target)
        name = re.sub(r"[^A-Za-z0-9_.+-]+", "_", shown)[:60] or "model"
        return f"{name}-{digest}--{self.profile}--seed{self.seed}"

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "source": self.source, "target": self.target, "profile": self.profile, "seed": self.seed}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Cell:
        return cls(target=str(data["target"]), profile=str(data["profile"]), seed=int(data["seed"]), source=str(data.get("source", "run")))


def model_target(spec: Any) -> str:
    """A model cell's target: the :class:`~robrank.models.external.ModelSpec` as canonical JSON, paths made absolute."""
    data = asdict(spec)
    module, sep, call = data["spec"].rpartition(":")
    if sep and module.endswith(".py"):
        data["spec"] = f"{Path(module).resolve()}:{call}"
    elif Path(data["spec"]).is_file():  # a TorchScript / torch.export file
        data["spec"] = str(Path(data["spec"]).resolve())
    data["weights"] = [{**w, "path": str(Path(w["path"]).resolve())} for w in data["weights"]]
    return json.dumps(data, sort_keys=True)


def model_spec(target: str) -> Any:
    """The :class:`~robrank.models.external.ModelSpec` a model cell's target holds."""
    from ..models.external import ModelSpec, WeightsFile  # lazy: keeps this module torch-free

    data = json.loads(target)
    return ModelSpec(**{**data, "weights": tuple(WeightsFile(**w) for w in data["weights"])})


def _model_name(target: str) -> str:
    spec = json.loads(target)["spec"]
    module, _, call = spec.rpartition(":")
    return f"{Path(module).stem}_{call}" if module else Path(spec).stem


def _display_name(target: str) -> str:
    path = Path(target)
    if path.suffix in (".pt", ".pth", ".safetensors") and path.parent.name == "checkpoints":
        return f"{path.parent.parent.name}_{path.stem}"
    return path.name


@dataclass
class Grid:
    """(Runs and models) x profiles x seeds, and the swipe settings; from the command line, a TOML file or both."""

    runs: list[str] = field(default_factory=list)
    profiles: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    #: model cells' targets (:func:`model_target`): models trained elsewhere, swiped like the runs
    models: list[str] = field(default_factory=list)

    def cells(self) -> list[Cell]:
        """Every combination, in a stable order (runs, then profiles, then seeds); duplicates once."""
        seeds = self.seeds or [0]
        out: list[Cell] = []
        for run in _unique(str(Path(r).resolve()) for r in self.runs):
            for profile in _unique(self.profiles):
                for seed in _unique(seeds):
                    out.append(Cell(target=run, profile=profile, seed=int(seed)))
        for model in _unique(self.models):
            for profile in _unique(self.profiles):
                for seed in _unique(seeds):
                    out.append(Cell(target=model, profile=profile, seed=int(seed), source="model"))
        return out

    def merged(self, other: Grid) -> Grid:
        """``other`` (the command line) added to this grid (the file); its settings win."""
        return Grid(
            runs=[*self.runs, *other.runs],
            profiles=[*self.profiles, *other.profiles],
            seeds=[*self.seeds, *other.seeds],
            models=[*self.models, *other.models],
            settings={**self.settings, **{k: v for k, v in other.settings.items() if v is not None}},
        )


def _unique(values: Iterable[Any]) -> list[Any]:
    seen: list[Any] = []
    for v in values:
        if v not in seen:
            seen.append(v)
    return seen


#: TOML key -> (Grid attribute, element type)
_LIST_KEYS: dict[str, tuple[str, type]] = {"runs": ("runs", str), "profiles": ("profiles", str), "seeds": ("seeds", int)}


def load_grid(path: str | Path, registry: Registry) -> Grid:
    """A grid file: ``runs``, ``profiles``, ``seeds`` lists and a ``[swipe]`` table of settings.

    Relative run paths are relative to the file, so a grid file travels with its runs::

        runs = ["runs/mnist-c2f2-ptripletN", "runs/mnist-c2f2-ptripletN-act"]
        profiles = ["rob28", "pami28"]
        seeds = [0, 1]

        [swipe]
        max_batches = 10
        semantics = "reference"

        [[models]]                      # a model trained elsewhere: robrank swipe's --model options
        model = "nets/mine.py:build"    # paths relative to the file, like the runs
        weights = ["nets/mine.pt"]
        metric = "N"
        dataset = "mnist"
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read grid file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"grid file {path} is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - set(_LIST_KEYS) - {"swipe", "models"})
    if unknown:
        raise ConfigError(f"grid file {path}: unknown key {unknown[0]!r}; use runs, profiles, seeds, [[models]] and a [swipe] table")
    grid = Grid()
    for key, (attr, kind) in _LIST_KEYS.items():
        values = data.get(key, [])
        if not isinstance(values, list) or not all(isinstance(v, kind) and not isinstance(v, bool) for v in values):
            raise ConfigError(f"grid file {path}: {key} must be a list of {'strings' if kind is str else 'integers'}")
        if key == "runs":
            values = [str((path.parent / v)) if not Path(v).is_absolute() else v for v in values]
        setattr(grid, attr, list(values))
    settings = data.get("swipe", {})
    if not isinstance(settings, dict):
        raise ConfigError(f"grid file {path}: [swipe] must be a table of settings")
    SwipeSettings.from_dict(settings)  # names checked here, with the file named in the error
    grid.settings = dict(settings)
    grid.models = [_model_from_table(path, table, registry) for table in _tables(path, data.get("models", []))]
    return grid


def _tables(path: Path, value: Any) -> list[Mapping[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise ConfigError(f"grid file {path}: models must be [[models]] tables (model, weights, metric, dataset, ...)")
    return value


def _model_from_table(path: Path, table: Mapping[str, Any], registry: Registry) -> str:
    """A ``[[models]]`` table checked as ``--model`` and its options are (the same one-line errors)."""
    from ..models import zoo  # lazy: keeps this module torch-free
    from ..models.external import ModelSpec, parse_normalization, require_metric  # lazy: keeps this module torch-free

    known = ("model", "weights", "weights_key", "strip_prefix", "metric", "dataset", "normalize", "embedding_dim", "gray_to_rgb")
    unknown = sorted(set(table) - set(known))
    if unknown or "model" not in table:
        raise ConfigError(f"grid file {path}: a [[models]] table needs 'model' and takes only {', '.join(known)}"
                          + (f" (got {unknown[0]!r})" if unknown else ""))
    near = lambda value: str(value) if Path(str(value)).is_absolute() else str(path.parent / str(value))  # noqa: E731
    spec = str(table["model"])
    module, sep, call = spec.rpartition(":")
    if sep and module.endswith(".py"):
        spec = f"{near(module)}:{call}"
    elif (path.parent / spec).is_file():
        spec = near(spec)
    if zoo.is_zoo(spec):  # the entry's record says its metric, dataset and normalisation
        filled = zoo.complete_options(spec, {k: table.get(k) for k in known if k != "model"}, registry)
        return model_target(ModelSpec.create(zoo.canonical(spec, registry), **{k: filled[k] for k in ("metric", "dataset", "normalize", "gray_to_rgb")}))
    weights = table.get("weights", [])
    weights = [weights] if isinstance(weights, str) else list(weights)
    resolved = []
    for item in weights:
        target, eq, file = str(item).rpartition("=")
        resolved.append(f"{target}={near(file)}" if eq else near(file))
    require_metric(table.get("metric"), what=f"grid file {path}: a [[models]] table's metric")
    parse_normalization(table.get("normalize"))
    if not table.get("dataset"):
        raise ConfigError(f"grid file {path}: a [[models]] table needs dataset (the evaluation data; robrank list datasets)")
    options = {k: table[k] for k in known if k in table and k not in ("model", "weights")}
    return model_target(ModelSpec.create(spec, weights=resolved, **options))


def check_targets(cells: Sequence[Cell]) -> None:
    """Every run of the grid exists (a typo fails before anything is scheduled)."""
    for cell in cells:
        if cell.source == "run" and not Path(cell.target).exists():
            raise ConfigError(f"run {cell.target} does not exist; give a run directory or a checkpoint file")
        if cell.source == "model":
            for weights in model_spec(cell.target).weights:
                if not Path(weights.path).is_file():
                    raise ConfigError(f"--weights {weights.path} does not exist; give the model's state_dict file (docs/api.md)")


__all__ = ["Cell", "Grid", "SwipeSettings", "SOURCES", "load_grid", "check_targets", "model_target", "model_spec"]
