"""Models trained elsewhere: a plain ``nn.Module`` made into what attacks, swipes and evaluation need.

robrank's engine talks to an :class:`~robrank.models.EmbeddingModel` (a backbone that takes
pixels in [0, 1] plus the metric its embeddings are ranked with). A user's network asks for
nothing of the sort: it may expect normalised inputs, three channels, return a tuple or a
``[B, D, 1, 1]`` map, and it carries no metric. :func:`wrap_model` adds exactly what is
missing — input normalisation *inside* the model (so attacks still perturb [0, 1] pixels),
an optional gray-to-RGB repeat, flattening of the output — and the metric, which is always
the user's choice (there is no silent default: the same embeddings rank differently under
cosine and Euclidean distance).

:class:`ModelSpec` is the picklable description the CLI builds from ``--model``,
``--weights`` and friends (spawned swipe processes load it again); :func:`load_model` turns
it into a :class:`LoadedModel`, which stands where a loaded robrank run stands and records
its source (spec, weights sha256, metric, normalisation, a digest of the weights actually
used) in every results file. Nothing here unpickles code: state dicts are read with
``weights_only=True`` or from safetensors, TorchScript archives with ``torch.jit.load`` and
exported programs with ``torch.export.load``; no weight is ever downloaded.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import re
import sys
import warnings
import zipfile
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..distances import METRICS, check_metric
from ..errors import CheckpointError, ConfigError, PickledCodeError
from ..io import file_sha256, load_checkpoint
from ..data.loading import dataset_record
from ..plugins import Registry
from .checkpoint import fit_error, load_run
from .backbone import IMAGENET_MEAN, IMAGENET_STD, Normalize
from .embedding import EmbeddingModel
from . import zoo

DOCS = "see docs/api.md"
#: how ``--normalize`` spells "no input normalisation" (the one place this spelling means that)
NO_NORMALIZATION_NAME = "none"
#: how ``--normalize`` spells its named choices; anything else is ``MEAN,STD``
NAMED_NORMALIZATIONS = (NO_NORMALIZATION_NAME, "imagenet")
#: spec prefixes of the model libraries robrank builds architectures from
LIBRARIES = ("timm", "torchvision")


# ----------------------------------------------------------------------------- normalisation


@dataclass(frozen=True)
class Normalization:
    """Per-channel ``(x - mean) / std`` applied inside the wrapper; ``name`` is how it was asked for."""

    name: str
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    @property
    def active(self) -> bool:
        return bool(self.mean)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "mean": list(self.mean), "std": list(self.std)}


NO_NORMALIZATION = Normalization(NO_NORMALIZATION_NAME)


def parse_normalization(text: str | Normalization | None) -> Normalization | None:
    """``none``, ``imagenet`` or ``MEAN,STD`` (per-channel values joined by ``/``); None stays None."""
    if text is None or isinstance(text, Normalization):
        return text
    raw = str(text).strip()
    lowered = raw.lower()
    if lowered == NO_NORMALIZATION_NAME:
        return NO_NORMALIZATION
    if lowered == "imagenet":
        return Normalization("imagenet", IMAGENET_MEAN, IMAGENET_STD)
    parts = raw.split(",")
    try:
        if len(parts) != 2:
            raise ValueError
        mean, std = (tuple(float(v) for v in part.split("/")) for part in parts)
    except ValueError:
        raise ConfigError(
            f"--normalize {raw!r} is not none, imagenet or MEAN,STD (e.g. 0.1307,0.3081, or "
            f"0.485/0.456/0.406,0.229/0.224/0.225 per channel); {DOCS}"
        ) from None
    if len(mean) != len(std) or not all(s > 0 for s in std):
        raise ConfigError(f"--normalize {raw!r}: MEAN and STD need the same number of values and every STD must be > 0")
    return Normalization(raw, mean, std)


# ----------------------------------------------------------------------------- the wrapper


class InputAdapter(nn.Module):
    """What sits between [0, 1] pixels and the user's network, and between its output and a ``[B, D]`` embedding.

    The network is the submodule ``net``, so its own parameter names stay recognisable
    (``backbone.net.<name>`` in the wrapped model's state_dict).
    """

    def __init__(self, net: nn.Module, normalization: Normalization = NO_NORMALIZATION, gray_to_rgb: bool = False) -> None:
        super().__init__()
        self.normalize = Normalize(normalization.mean, normalization.std) if normalization.active else nn.Identity()
        self.gray_to_rgb = bool(gray_to_rgb)
        self.net = net

    def train(self, mode: bool = True) -> InputAdapter:
        """Switch modes; a torch.export program keeps the mode it was exported in (it refuses ``train()``)."""
        self.training = mode
        for child in self.children():
            try:
                child.train(mode)
            except NotImplementedError:
                pass
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.gray_to_rgb and images.dim() == 4 and images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        out = self.net(self.normalize(images))
        if isinstance(out, (tuple, list)):  # e.g. (embedding, logits): the first output is the embedding
            out = out[0]
        if not isinstance(out, torch.Tensor):
            raise ConfigError(f"the model returned {type(out).__name__}, not a tensor of embeddings; {DOCS}")
        return out.flatten(1) if out.dim() > 2 else out


def as_module(model: Any) -> nn.Module:
    """An ``nn.Module`` from a module, a ``(trunk, embedder)`` sequence or a ``{name: module}`` mapping.

    The sequence and mapping forms are pytorch-metric-learning's trunk/embedder pattern: the
    parts are chained in order, and a mapping keeps its names for ``--weights NAME=FILE``.
    """
    if isinstance(model, nn.Module):
        return model
    if isinstance(model, Mapping) and model and all(isinstance(m, nn.Module) for m in model.values()):
        return nn.Sequential(OrderedDict((str(k), m) for k, m in model.items()))
    if isinstance(model, Sequence) and not isinstance(model, str) and model and all(isinstance(m, nn.Module) for m in model):
        return nn.Sequential(*model)
    raise ConfigError(
        f"expected an nn.Module (or a sequence/mapping of modules such as (trunk, embedder)), got {type(model).__name__}; {DOCS}"
    )


def require_metric(metric: str | None, what: str = "--metric") -> str:
    """The metric, validated; there is no default because the model's training decides it."""
    if metric is None or str(metric).strip() == "":
        raise ConfigError(
            f"{what} is required: the distance your model's embeddings are ranked with "
            f"({', '.join(METRICS)}: C cosine, E Euclidean, N Euclidean on the unit sphere); {DOCS}"
        )
    return check_metric(str(metric).strip())


def wrap_model(
    model: Any,
    metric: str | None,
    *,
    normalize: str | Normalization | None = None,
    gray_to_rgb: bool = False,
) -> EmbeddingModel:
    """A user's network as an :class:`EmbeddingModel` (an EmbeddingModel is returned as it is).

    ``normalize`` (``none`` by default) is applied inside the model, so attacks and the
    ε-ball stay in [0, 1] pixel space whatever the network expects.
    """
    if isinstance(model, EmbeddingModel):
        if metric is not None and check_metric(metric) != model.metric:
            raise ConfigError(f"the model was trained for metric {model.metric}, not {metric}; drop metric= or pass {model.metric}")
        return model
    metric = require_metric(metric, "metric=" if not isinstance(model, str) else "--metric")
    norm = parse_normalization(normalize) or NO_NORMALIZATION
    return EmbeddingModel(InputAdapter(as_module(model), norm, gray_to_rgb), metric)


def state_digest(module: nn.Module) -> str:
    """sha256 of every tensor of ``module.state_dict()`` (names, dtypes, shapes, values)."""
    digest = hashlib.sha256()
    for name, value in sorted(module.state_dict().items()):
        digest.update(name.encode())
        if isinstance(value, torch.Tensor):
            tensor = value.detach().to("cpu").contiguous()
            digest.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
            digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
        else:
            digest.update(repr(value).encode())
    return digest.hexdigest()


# ----------------------------------------------------------------------------- weights files


@dataclass(frozen=True)
class WeightsFile:
    """One ``--weights [TARGET=]FILE``: a state_dict for the whole network or for submodule TARGET."""

    path: str
    target: str = ""

    @classmethod
    def parse(cls, text: str | WeightsFile) -> WeightsFile:
        if isinstance(text, WeightsFile):
            return text
        text = str(text)
        target, sep, path = text.partition("=")
        if sep and target and not Path(text).exists() and re.fullmatch(r"[A-Za-z0-9_.]+", target):
            return cls(path=path, target=target)
        return cls(path=text)


def read_state(path: str | Path, key: str | None = None, strip_prefix: str | None = None) -> dict[str, torch.Tensor]:
    """The state_dict in a ``.pt``/``.pth``/``.bin`` (``weights_only``) or ``.safetensors`` file.

    ``key`` selects a nested state_dict (``state_dict``, ``model``, ``backbone_state_dict``;
    ``a/b`` for deeper nesting) or, in a flat file such as safetensors, the keys under
    ``key.``; ``strip_prefix`` removes a prefix such as ``module.`` from every key that has it.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"--weights {path} does not exist; pass a state_dict file (.pt or .safetensors)")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file  # optional: safetensors
        except ImportError:  # pragma: no cover - depends on the environment
            raise ConfigError("reading .safetensors needs the safetensors package: pip install 'robrank[models]'") from None
        try:
            payload: Any = load_file(str(path), device="cpu")
        except Exception as exc:  # safetensors raises its own error types for a bad header
            raise CheckpointError(f"--weights {path} is not a valid safetensors file ({str(exc).splitlines()[0]})") from None
    else:
        try:
            payload = load_checkpoint(path)
        except PickledCodeError:
            raise PickledCodeError(
                f"--weights {path} carries pickled objects (code), not only tensors, so it is not loaded "
                f"(robrank never unpickles code): save model.state_dict() instead, or pass a TorchScript or "
                f"torch.export file to --model; {DOCS}"
            ) from None
        except CheckpointError as exc:
            raise CheckpointError(f"--weights {str(exc).replace('checkpoint ', '', 1)}") from None
    state = _select(payload, key, path)
    if strip_prefix:
        if not any(k.startswith(strip_prefix) for k in state):
            raise CheckpointError(f"--strip-prefix {strip_prefix!r}: no key of {path} starts with it (first key {next(iter(state), None)!r})")
        state = {k[len(strip_prefix):] if k.startswith(strip_prefix) else k: v for k, v in state.items()}
    return state


def _tensors_only(obj: Any) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _select(payload: Any, key: str | None, path: Path) -> dict[str, torch.Tensor]:
    node = payload
    if key:
        for part in key.split("/"):
            if isinstance(node, Mapping) and part in node:
                node = node[part]
                continue
            flat = {k[len(part) + 1:]: v for k, v in node.items() if isinstance(k, str) and k.startswith(part + ".")} if isinstance(node, Mapping) else {}
            if not flat:
                shown = ", ".join(repr(k) for k in list(node)[:8]) if isinstance(node, Mapping) else type(node).__name__
                raise CheckpointError(f"--weights-key {key!r}: {path} has no entry {part!r} (top-level keys: {shown})")
            node = flat
    if _tensors_only(node):
        return dict(node)
    if isinstance(node, Mapping):
        nested = [k for k, v in node.items() if _tensors_only(v)]
        if nested:
            raise CheckpointError(f"{path} nests its state_dict; pass --weights-key {nested[0]} (dicts of tensors under: {', '.join(map(repr, nested))})")
    raise CheckpointError(f"{path} holds no state_dict (a mapping of names to tensors) at {key or 'the top level'}; {DOCS}")


def apply_weights(module: nn.Module, state: Mapping[str, Any], where: str, what: str) -> None:
    """``load_state_dict(strict=True)`` after a check that names the first mismatch on one line."""
    problem = fit_error(module, state)
    if problem is not None:
        raise CheckpointError(f"weights {where} do not fit {what}: {problem}; {DOCS}")
    module.load_state_dict(dict(state), strict=True)


# ----------------------------------------------------------------------------- architectures


def _import_callable(spec: str) -> Any:
    """``package.module:callable`` from the working directory or PYTHONPATH, or ``path/file.py:callable``."""
    target, _, attr = spec.rpartition(":")
    if not target or not attr:
        raise ConfigError(f"--model {spec!r} is not MODULE:CALLABLE, FILE.py:CALLABLE, timm:NAME, torchvision:NAME or a model file; {DOCS}")
    if target.endswith(".py"):
        path = Path(target)
        if not path.is_file():
            raise ConfigError(f"--model {spec!r}: {path} does not exist")
        name = f"robrank_user_model_{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]}"
        module_spec = importlib.util.spec_from_file_location(name, path)
        assert module_spec is not None and module_spec.loader is not None
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        try:
            module_spec.loader.exec_module(module)
        except BaseException as exc:  # SystemExit included: user code must not end robrank silently
            sys.modules.pop(name, None)
            if isinstance(exc, (KeyboardInterrupt, GeneratorExit)):
                raise
            raise ConfigError(f"--model {spec!r}: importing {path} failed: {_failure(exc)}") from exc
    else:
        cwd = str(Path.cwd())
        added = cwd not in sys.path
        if added:
            sys.path.insert(0, cwd)
        try:
            module = importlib.import_module(target)
        except ModuleNotFoundError as exc:
            raise ConfigError(f"--model {spec!r}: cannot import module {target!r} ({exc}); run from the folder that holds it or add it to PYTHONPATH") from None
        except BaseException as exc:
            if isinstance(exc, (KeyboardInterrupt, GeneratorExit)):
                raise
            raise ConfigError(f"--model {spec!r}: importing {target} failed: {_failure(exc)}") from exc
        finally:
            if added and cwd in sys.path:
                sys.path.remove(cwd)
    try:
        factory = module
        for part in attr.split("."):
            factory = getattr(factory, part)
    except AttributeError:
        raise ConfigError(f"--model {spec!r}: {target} has no attribute {attr!r}") from None
    if not callable(factory):
        raise ConfigError(f"--model {spec!r}: {attr} is not callable")
    try:
        built = factory()
    except BaseException as exc:
        if isinstance(exc, (KeyboardInterrupt, GeneratorExit)):
            raise
        raise ConfigError(f"--model {spec!r}: calling {attr}() failed: {_failure(exc)}") from exc
    try:
        as_module(built)
    except ConfigError:
        raise ConfigError(f"--model {spec!r}: {attr}() returned {type(built).__name__}, not an nn.Module, a (trunk, embedder) "
                          f"sequence or a {{name: module}} mapping; {DOCS}") from None
    return built


def _failure(exc: BaseException) -> str:
    """``Type: first line`` of an exception from user code; a ``sys.exit()`` is named as such."""
    if isinstance(exc, SystemExit):
        return f"it called sys.exit({exc.code!r})"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def _replace_last_linear(net: nn.Module, dim: int) -> None:
    """Swap the last ``nn.Linear`` (the classifier of torchvision models) for a ``dim``-d one, or drop it (``dim`` 0)."""
    name = None
    for candidate, module in net.named_modules():
        if isinstance(module, nn.Linear):
            name = candidate
    if name is None:
        raise ConfigError(f"--embedding-dim {dim}: the model has no nn.Linear head to replace")
    parent_name, _, child = name.rpartition(".")
    parent = net.get_submodule(parent_name) if parent_name else net
    old = getattr(parent, child) if not child.isdigit() else parent[int(child)]
    new: nn.Module = nn.Linear(old.in_features, dim) if dim > 0 else nn.Identity()
    if child.isdigit() and isinstance(parent, nn.Sequential):
        parent[int(child)] = new
    else:
        setattr(parent, child, new)


def _library_model(library: str, name: str) -> tuple[nn.Module, Normalization, Any]:
    """A randomly initialised ``timm``/``torchvision`` architecture, its pretrained normalisation, and a head setter."""
    if library == "timm":
        try:
            import timm  # optional: timm
        except ImportError:
            raise ConfigError("--model timm:... needs timm: pip install 'robrank[models]'") from None
        if not timm.is_model(name):
            close = timm.list_models(f"*{name}*")[:8]
            raise ConfigError(f"--model timm:{name}: timm has no such model{' (close: ' + ', '.join(close) + ')' if close else ''}")
        net = timm.create_model(name, pretrained=False)
        cfg = dict(getattr(net, "pretrained_cfg", None) or {})
        norm = Normalization(f"timm:{name}", tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD)))
        return net, norm, lambda dim: net.reset_classifier(dim)
    import torchvision  # lazy: torchvision takes seconds to import

    try:
        net = torchvision.models.get_model(name, weights=None)
    except ValueError:
        known = torchvision.models.list_models()
        close = [m for m in known if name.lower() in m][:8]
        raise ConfigError(f"--model torchvision:{name}: torchvision has no such model{' (close: ' + ', '.join(close) + ')' if close else ''}") from None
    mean, std = IMAGENET_MEAN, IMAGENET_STD
    try:
        transform = torchvision.models.get_model_weights(name).DEFAULT.transforms()
        mean, std = tuple(transform.mean), tuple(transform.std)
    except (ValueError, AttributeError, TypeError):
        pass  # a model without published weights: ImageNet statistics, as torchvision's own models use
    norm = Normalization(f"torchvision:{name}", tuple(mean), tuple(std))
    return net, norm, lambda dim: _replace_last_linear(net, dim)


def _model_file_kind(path: Path) -> str:
    """``torchscript``, ``export`` or ``state_dict``/``other`` for a file given to ``--model``."""
    if path.suffix == ".safetensors":
        return "state_dict"
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return "other"
    if any(n.endswith("/archive_format") or n == "archive_format" for n in names):
        return "export"
    if any("/code/" in n for n in names) and any(n.endswith("constants.pkl") for n in names):
        return "torchscript"
    if any(n.endswith("data.pkl") for n in names):
        return "state_dict"
    return "other"


def _load_model_file(path: Path, spec: str) -> nn.Module:
    kind = _model_file_kind(path)
    if kind == "torchscript":
        try:
            with warnings.catch_warnings():  # TorchScript's deprecation notice is not the user's problem here
                warnings.simplefilter("ignore", FutureWarning)
                return torch.jit.load(str(path), map_location="cpu")
        except Exception as exc:
            raise CheckpointError(f"--model {spec}: cannot load the TorchScript archive ({str(exc).splitlines()[0]})") from None
    if kind == "export":
        try:
            return torch.export.load(str(path)).module()
        except Exception as exc:
            raise CheckpointError(f"--model {spec}: cannot load the exported program ({str(exc).splitlines()[0]})") from None
    if kind == "state_dict":
        try:
            load_checkpoint(path) if path.suffix != ".safetensors" else None
        except PickledCodeError:
            raise PickledCodeError(
                f"--model {spec} is a pickled Python object (it carries code), which robrank never loads: "
                f"save it with torch.jit.save or torch.export.save, or pass its architecture as --model "
                f"MODULE:CALLABLE and its state_dict as --weights; {DOCS}"
            ) from None
        raise ConfigError(
            f"--model {spec} holds only weights (a state_dict), not an architecture: pass the architecture as "
            f"--model MODULE:CALLABLE (or timm:NAME, torchvision:NAME) and this file as --weights; {DOCS}"
        )
    raise CheckpointError(f"--model {spec} is neither a TorchScript archive nor a torch.export program; {DOCS}")


# ----------------------------------------------------------------------------- spec -> model


@dataclass(frozen=True)
class ModelSpec:
    """Everything ``--model`` and its options say, as plain (picklable) data."""

    spec: str
    metric: str | None = None
    weights: tuple[WeightsFile, ...] = ()
    weights_key: str | None = None
    strip_prefix: str | None = None
    normalize: str | None = None
    embedding_dim: int | None = None
    gray_to_rgb: bool = False
    dataset: str | None = None

    @classmethod
    def create(cls, spec: str, *, weights: Any = (), **options: Any) -> ModelSpec:
        if isinstance(weights, (str, Path, WeightsFile)):
            weights = (weights,)
        elif isinstance(weights, Mapping):
            weights = tuple(WeightsFile(path=str(p), target=str(t)) for t, p in weights.items())
        return cls(spec=str(spec), weights=tuple(WeightsFile.parse(str(w) if isinstance(w, Path) else w) for w in weights or ()), **options)

    @property
    def library(self) -> str | None:
        prefix, sep, _ = self.spec.partition(":")
        return prefix if sep and prefix in LIBRARIES else None


@dataclass
class LoadedModel:
    """A model from outside robrank, ready for evaluation or attack, with its recorded source.

    It stands where :class:`~robrank.models.checkpoint.LoadedRun` stands (``model``,
    ``dataset``, ``metric``; ``checkpoint``/``run_dir`` are None), and
    :meth:`model_block` is what results files record in place of a checkpoint.
    """

    model: EmbeddingModel
    dataset: str
    metric: str
    source: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    checkpoint: Path | None = None
    run_dir: Path | None = None
    epoch: int | None = None
    step: int | None = None

    @property
    def label(self) -> str:
        return str(self.source.get("spec", "model"))

    def model_block(self) -> dict[str, Any]:
        return {"kind": "external", **self.source}

    def to(self, device: str | torch.device) -> LoadedModel:
        self.model.to(device)
        return self


#: the source fields that decide a model's numbers: resume refuses a file where one differs
IDENTITY_FIELDS: tuple[str, ...] = ("spec", "metric", "normalize", "gray_to_rgb", "embedding_dim", "sha256")


def _zoo_module(spec: str, registry: Registry) -> tuple[nn.Module, str, list[dict[str, Any]]]:
    """The entry's network with its checked weights loaded; returns it, its ``--normalize``, the weights record."""
    record = zoo.zoo_record(spec, registry)
    path = zoo.weights_file(record)
    try:
        net = as_module(zoo.builder(record)())
    except (ConfigError, CheckpointError):
        raise
    except Exception as exc:
        detail = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise ConfigError(f"--model {zoo.PREFIX}{record.name}: its builder failed ({type(exc).__name__}: {detail})") from None
    state = read_state(path, record.weights_key)
    apply_weights(net, state, record.weights, f"{zoo.PREFIX}{record.name}")
    weights = [{"file": str(path.resolve()), "url": record.weights, "target": "", "sha256": record.sha256.lower(),
                "key": record.weights_key, "strip_prefix": None}]
    return net, record.normalize, weights


def build_module(spec: ModelSpec, registry: Registry) -> tuple[nn.Module, Normalization, list[dict[str, Any]]]:
    """The bare network a spec names, with its weights; returns it, its default normalisation, the weights record."""
    library = spec.library
    default_norm = NO_NORMALIZATION
    set_head = None
    if library is not None:
        net, default_norm, set_head = _library_model(library, spec.spec.partition(":")[2])
    elif zoo.is_zoo(spec.spec):
        if spec.weights or spec.embedding_dim is not None:
            raise ConfigError(f"--weights and --embedding-dim do not apply to --model {spec.spec}: a zoo entry carries its own weights")
        net, norm_name, records = _zoo_module(spec.spec, registry)
        return net, parse_normalization(norm_name) or NO_NORMALIZATION, records
    elif Path(spec.spec).is_file() and not spec.spec.endswith(".py"):
        net = _load_model_file(Path(spec.spec), spec.spec)
    else:
        net = as_module(_import_callable(spec.spec))
    if spec.embedding_dim is not None:
        if set_head is None:
            raise ConfigError(f"--embedding-dim applies to timm: and torchvision: models only; {spec.spec} builds its own head")
        if int(spec.embedding_dim) < 0:
            raise ConfigError(f"--embedding-dim must be >= 0 (0 removes the head), got {spec.embedding_dim}")
    records: list[dict[str, Any]] = []
    head_pending = spec.embedding_dim is not None
    for weights in spec.weights:
        state = read_state(weights.path, spec.weights_key, spec.strip_prefix)
        try:
            target = net.get_submodule(weights.target) if weights.target else net
        except AttributeError:
            names = ", ".join(n for n, _ in net.named_children())
            raise ConfigError(
                f"--weights {weights.target}={weights.path}: the model has no submodule {weights.target!r} (children: {names})"
            ) from None
        what = f"{spec.spec}{'.' + weights.target if weights.target else ''}"
        if head_pending and not weights.target and fit_error(target, state) is None:
            apply_weights(target, state, weights.path, what)  # weights of the original head: load, then replace it
        else:
            if head_pending:
                set_head(int(spec.embedding_dim))
                head_pending = False
            suffix = f" with --embedding-dim {spec.embedding_dim}" if spec.embedding_dim is not None else ""
            apply_weights(target, state, weights.path, what + suffix)
        records.append({"file": str(Path(weights.path).resolve()), "target": weights.target, "sha256": file_sha256(weights.path),
                        "key": spec.weights_key, "strip_prefix": spec.strip_prefix})
    if head_pending:
        set_head(int(spec.embedding_dim))
    return net, default_norm, records


def check_input(model: nn.Module, channels: int, size: int, dataset: str, label: str, gray_to_rgb: bool = False) -> int:
    """One forward of two blank ``channels x size x size`` images; returns the embedding size.

    Runs before any work so that a model built for other images fails with one line here,
    not with a shape error in the middle of an attack.
    """
    adapter = getattr(model, "backbone", None)
    norm = getattr(adapter, "normalize", None)
    if isinstance(norm, Normalize):
        given = 3 if (gray_to_rgb and channels == 1) else channels
        if norm.mean.numel() not in (1, given):
            hint = " (add --gray-to-rgb to feed gray images to a 3-channel model)" if given == 1 and norm.mean.numel() == 3 else ""
            raise ConfigError(f"model {label}: the normalisation has {norm.mean.numel()} channels but {dataset} images have {given}{hint}; {DOCS}")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(2, channels, size, size, device=_device_of(model)))
    except Exception as exc:
        detail = " ".join(str(exc).split())[:240] or type(exc).__name__
        hint = " (--gray-to-rgb repeats a gray channel for a 3-channel model)" if channels == 1 and not gray_to_rgb and "channel" in detail else ""
        raise ConfigError(f"model {label} does not accept {dataset} images ({channels}x{size}x{size}): {detail}{hint}; {DOCS}") from None
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != 2:
        raise ConfigError(f"model {label} returned shape {tuple(getattr(out, 'shape', ()))} for 2 images; it must return [batch, dim] embeddings; {DOCS}")
    if out.shape[1] < 1:
        raise ConfigError(f"model {label} returns empty embeddings")
    return int(out.shape[1])


def _device_of(model: nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def source_block(
    spec: str, metric: str, normalization: Normalization, gray_to_rgb: bool, embedding_dim: int | None,
    weights: list[dict[str, Any]], model: nn.Module, dims: int,
) -> dict[str, Any]:
    return {
        "spec": spec,
        "weights": weights,
        "metric": metric,
        "normalize": normalization.as_dict(),
        "gray_to_rgb": bool(gray_to_rgb),
        "embedding_dim": embedding_dim,
        "output_dim": dims,
        "sha256": state_digest(model),
    }


def load_model(spec: ModelSpec, device: str | torch.device = "cpu", dataset: str | None = None, *, registry: Registry) -> LoadedModel:
    """Build, load and check the model ``spec`` describes (eval mode, on ``device``)."""
    if zoo.is_zoo(spec.spec):  # the entry's record says its metric, dataset and normalisation
        options = zoo.complete_options(spec.spec, {**vars(spec), "dataset": dataset or spec.dataset}, registry)
        spec = dataclasses.replace(spec, **{**options, "spec": zoo.canonical(spec.spec, registry)})
    metric = require_metric(spec.metric)
    name = dataset or spec.dataset
    if not name:
        raise ConfigError(f"--dataset is required with --model: it names the evaluation data (and the default swipe profile); {DOCS}")
    record = dataset_record(name, registry=registry)
    norm_choice = parse_normalization(spec.normalize)
    net, default_norm, weights = build_module(spec, registry)
    normalization = norm_choice if norm_choice is not None else default_norm
    model = EmbeddingModel(InputAdapter(net, normalization, spec.gray_to_rgb), metric)
    dims = check_input(model, record.channels, record.image_size, record.name, spec.spec, spec.gray_to_rgb)
    model.to(device).eval()
    source = source_block(spec.spec, metric, normalization, spec.gray_to_rgb, spec.embedding_dim, weights, net, dims)
    if zoo.is_zoo(spec.spec):
        source["zoo"] = zoo.provenance(spec.spec, registry)
    return LoadedModel(model=model, dataset=record.name, metric=metric, source=source)


def from_module(
    model: Any, *, metric: str | None, dataset: str, normalize: str | Normalization | None = None,
    gray_to_rgb: bool = False, device: str | torch.device = "cpu", label: str | None = None, registry: Registry,
) -> LoadedModel:
    """A live Python model (``robrank.evaluate``/``robrank.attack``) as a checked :class:`LoadedModel`."""
    record = dataset_record(dataset, registry=registry)
    if isinstance(model, EmbeddingModel) and metric is None:
        metric = model.metric
    wrapped = wrap_model(model, metric, normalize=normalize, gray_to_rgb=gray_to_rgb)
    norm = parse_normalization(normalize) or NO_NORMALIZATION
    inner = wrapped.backbone.net if isinstance(wrapped.backbone, InputAdapter) else wrapped.backbone
    label = label or f"python:{type(inner).__module__}.{type(inner).__qualname__}"
    dims = check_input(wrapped, record.channels, record.image_size, record.name, label, gray_to_rgb)
    wrapped.to(device)
    source = source_block(label, wrapped.metric, norm, gray_to_rgb, None, [], inner, dims)
    return LoadedModel(model=wrapped, dataset=record.name, metric=wrapped.metric, source=source)


def same_model(previous: Mapping[str, Any], fresh: Mapping[str, Any]) -> str | None:
    """The first identity field in which two model blocks differ (None when they are the same model)."""
    if previous.get("kind") != fresh.get("kind"):
        return "kind"
    for key in IDENTITY_FIELDS:
        if previous.get(key) != fresh.get(key):
            return key
    if [w.get("sha256") for w in previous.get("weights", [])] != [w.get("sha256") for w in fresh.get("weights", [])]:
        return "weights"
    return None


__all__ = [
    "IDENTITY_FIELDS",
    "InputAdapter",
    "LoadedModel",
    "ModelSpec",
    "Normalization",
    "WeightsFile",
    "apply_weights",
    "as_module",
    "build_module",
    "check_input",
    "fit_error",
    "from_module",
    "load_any",
    "load_model",
    "default_results_name",
    "parse_normalization",
    "read_state",
    "require_metric",
    "same_model",
    "state_digest",
    "wrap_model",
]


def load_any(target: Any, device: str | torch.device = "cpu", *, registry: Registry) -> Any:
    """What a swipe or attack loads: a :class:`LoadedModel` as is, a :class:`ModelSpec`, or a robrank run path."""
    if isinstance(target, LoadedModel):
        return target.to(device)
    if isinstance(target, ModelSpec):
        return load_model(target, device, registry=registry)
    return load_run(target, device=device, registry=registry)


def default_results_name(loaded: LoadedModel, name: str) -> Path:
    """Where a model's results go by default: beside its model or first weights file, else in the working directory."""
    spec = str(loaded.source.get("spec", "model"))
    weights = loaded.source.get("weights") or []
    anchor = Path(spec) if Path(spec).is_file() else (Path(weights[0]["file"]) if weights else None)
    if zoo.is_zoo(spec):  # its weights live in the cache, which is no place for results
        anchor = None
    if anchor is not None:
        return anchor.with_name(f"{anchor.name}.{name}")
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", spec).strip("-") or "model"
    return Path(f"{safe}.{name}")
