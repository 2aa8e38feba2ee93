"""The Python API: point robrank at *your* model (docs/api.md has runnable examples).

Three entry points, each taking a plain ``nn.Module`` (no robrank base class or attribute
is needed; a ``(trunk, embedder)`` pair works too) or a model robrank trained:

* :func:`evaluate` — a whole swipe profile (RobustBench's ``benchmark(model, ...)``):
  returns :class:`Results` with the ERS, the raw and rescaled scores, every attack's clean
  and adversarial summaries, and ``.save(path)`` writing the same JSON as ``robrank swipe``;
* :func:`attack` — one attack as a torchattacks-style object: ``atk(images, labels)``
  returns the adversarial images with their summaries; its gallery is computed once from a
  dataset or from tensors you hold (:func:`gallery`) and reused for every batch;
* :func:`load_run` — a model that ``robrank train`` wrote, with its dataset and metric.

Everything heavy (torch, the plugins) is imported when these are first called, so
``import robrank`` stays light. This module is an entry point: each call takes the registry
of the installed plugins (:func:`robrank.plugins.get_registry`) and hands it down.
"""
from __future__ import annotations

import math
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError
from .plugins import Registry, get_registry
from .attacks.spec import parse_spec
from .cards.bench import bench as _bench
from .io import write_json
from .runtime import RuntimeOptions, resolve_device
from .swipe.report import format_report, summarise
from .swipe.schema import load_results as _load
from .swipe.schema import partial_note

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .attacks.gallery import Gallery
    from .models.checkpoint import LoadedRun

DOCS = "see docs/api.md"


# ----------------------------------------------------------------------------- loading


def load_run(path: str | Path, device: str = "cpu") -> LoadedRun:
    """A model trained by ``robrank train`` (run directory or checkpoint), in eval mode on ``device``.

    ``.model`` is the embedding model, ``.dataset`` and ``.metric`` what it was trained on
    and for: ``robrank.evaluate(run.model, dataset=run.dataset)`` swipes it.
    """
    from .models.checkpoint import load_run as _load_run  # lazy: keeps this module torch-free

    return _load_run(path, device=device, registry=get_registry())


def _is_run(target: Any) -> bool:
    if not isinstance(target, (str, Path)):
        return False
    path = Path(target)
    if path.is_dir():
        return True
    if path.is_file() and path.suffix in (".pt", ".pth"):
        from .models.external import _model_file_kind  # lazy: keeps this module torch-free

        return _model_file_kind(path) == "state_dict"  # a robrank checkpoint is a plain torch.save file
    return False


def _load_target(
    model: Any, *, registry: Registry, dataset: str | None, metric: str | None, normalize: Any, gray_to_rgb: bool, device: str,
    weights: Any = (), weights_key: str | None = None, strip_prefix: str | None = None, embedding_dim: int | None = None,
) -> Any:
    """A LoadedRun (a robrank run path) or a LoadedModel (anything else), checked against ``dataset``."""
    from .models import external, zoo  # lazy: keeps this module torch-free

    model_options = {"weights": weights, "weights_key": weights_key, "strip_prefix": strip_prefix, "embedding_dim": embedding_dim}
    if _is_run(model):
        given = [k for k, v in {**model_options, "normalize": normalize, "gray_to_rgb": gray_to_rgb}.items() if v]
        if given:
            raise ConfigError(f"{given[0]}= applies to models from outside robrank; the run {model} carries its own")
        from .models.checkpoint import load_run as _load_run  # lazy: keeps this module torch-free

        run = _load_run(model, device=device, registry=registry)
        if dataset is not None and dataset != run.dataset:
            raise ConfigError(f"the run {model} was trained on {run.dataset}; drop dataset= or pass dataset={run.dataset!r}")
        if metric is not None and metric != run.metric:
            raise ConfigError(f"the run {model} was trained for metric {run.metric}; drop metric= or pass metric={run.metric!r}")
        return run
    if isinstance(model, str) and zoo.is_zoo(model):  # the entry's record says its metric, dataset and normalisation
        filled = zoo.complete_options(model, {**model_options, "metric": metric, "dataset": dataset, "normalize": normalize,
                                              "gray_to_rgb": gray_to_rgb}, registry)
        spec = external.ModelSpec.create(zoo.canonical(model, registry),
                                         **{k: filled[k] for k in ("metric", "dataset", "normalize", "gray_to_rgb")})
        return external.load_model(spec, device, registry=registry)
    if dataset is None:
        raise ConfigError(f"dataset= is required: the evaluation data (robrank list datasets); {DOCS}")
    if isinstance(model, (str, Path)):
        spec = external.ModelSpec.create(str(model), metric=metric, normalize=None if normalize is None else str(normalize),
                                         gray_to_rgb=gray_to_rgb, dataset=dataset, **model_options)
        return external.load_model(spec, device, registry=registry)
    given = [k for k, v in model_options.items() if v]
    if given:
        raise ConfigError(f"{given[0]}= applies to a model spec string (e.g. 'timm:resnet18'); load the weights into your module yourself")
    return external.from_module(model, metric=metric, dataset=dataset, normalize=normalize, gray_to_rgb=gray_to_rgb, device=device,
                                registry=registry)


# ----------------------------------------------------------------------------- evaluate


@dataclass(frozen=True)
class AttackSummary:
    """One attack of a swipe: its canonical spec, clean (``orig``) and adversarial (``adv``) averages."""

    spec: str
    type: str
    orig: dict[str, float]
    adv: dict[str, float]
    count: int

    @property
    def difference(self) -> dict[str, float]:
        return {k: self.adv[k] - self.orig[k] for k in self.adv if k in self.orig}


@dataclass
class Results:
    """A swipe's results: the payload of a ``robrank swipe`` file plus convenient views of it."""

    payload: dict[str, Any]
    path: Path | None = None
    attacks: list[AttackSummary] = field(init=False)
    #: the registry that reads the attacks' specs and displays (None: the installed plugins')
    registry: Registry | None = field(default=None, repr=False, compare=False)
    #: where the profile (and so every attack's budget) came from: "given", or the dataset's own
    origin: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        self.attacks = [
            AttackSummary(a["spec"], a["type"], dict(a["orig"]), dict(a["adv"]), int(a["count"])) for a in self.payload["attacks"]
        ]

    @property
    def finished(self) -> bool:
        return self.payload.get("finished") is not None

    @property
    def ers(self) -> float | None:
        """The Empirical Robustness Score (None for a profile that defines none)."""
        block = self.payload.get("ers")
        return None if block is None else float(block["ers"])

    @property
    def partial(self) -> str | None:
        """Why the numbers are not a full, comparable result (too few queries or attacks, a ``--force``d
        profile), or None: :func:`robrank.swipe.schema.partial_note`, as every report marks it."""
        return partial_note(self.payload)

    @property
    def raw(self) -> dict[str, float | None]:
        """The raw scores behind the ERS, by score name (empty for a profile without ERS)."""
        return dict(self.payload.get("ers", {}).get("raw", {}))

    @property
    def rescaled(self) -> dict[str, float | None]:
        """The raw scores rescaled to 0 (broken) .. 100 (robust), by score name."""
        return dict(self.payload.get("ers", {}).get("rescaled", {}))

    @property
    def model(self) -> dict[str, Any]:
        """Where the model came from, as recorded in the file (spec, weights sha256, metric, normalisation)."""
        return dict(self.payload["model"])

    def __getitem__(self, spec: str) -> AttackSummary:
        """The summary of one attack, by its spec or type (``results["CA:pm=+:W=1"]``, ``results["ES"]``)."""
        for summary in self.attacks:
            if spec in (summary.spec, summary.type):
                return summary
        canonical = parse_spec(spec, self.registry or get_registry()).text
        for summary in self.attacks:
            if summary.spec == canonical:
                return summary
        raise KeyError(f"no attack {spec!r} in these results; they hold {', '.join(a.spec for a in self.attacks)}")

    def save(self, path: str | Path) -> Path:
        """Write the results as a ``robrank swipe`` JSON file (atomically); ``robrank report`` reads it."""
        path = Path(path)
        write_json(path, self.payload)
        return path

    def report(self, fmt: str = "table") -> str:
        """The table ``robrank report`` prints for these results."""
        return format_report([summarise(self.payload, self.path or "(in memory)", self.registry or get_registry())], fmt)

    def __repr__(self) -> str:
        ers = "n/a" if self.ers is None or not math.isfinite(self.ers) else f"{self.ers:.1f}"
        partial = self.partial
        note = f", partial={partial!r}" if partial else ""
        origin = f" ({self.origin})" if self.origin else ""
        return (f"Results(profile={self.payload['profile']!r}{origin}, dataset={self.payload['dataset']!r}, "
                f"attacks={len(self.attacks)}, ers={ers}{'*' if partial and self.ers is not None else ''}{note})")


def evaluate(
    model: Any,
    dataset: str | None = None,
    profile: str | None = None,
    metric: str | None = None,
    *,
    normalize: str | None = None,
    gray_to_rgb: bool = False,
    weights: Any = (),
    weights_key: str | None = None,
    strip_prefix: str | None = None,
    embedding_dim: int | None = None,
    output: str | Path | None = None,
    device: str = "cpu",
    data_root: str | Path | None = None,
    progress: bool = False,
    **options: Any,
) -> Results:
    """Swipe ``model`` with every attack of ``profile`` on ``dataset``'s test split.

    ``model`` is an ``nn.Module`` (or ``(trunk, embedder)``), an EmbeddingModel, a robrank
    run directory, or a model spec string as ``robrank swipe --model`` takes (then
    ``weights``/``weights_key``/``strip_prefix``/``embedding_dim`` apply). ``metric`` (C, E
    or N) is required for anything robrank did not train; ``normalize`` (``none``,
    ``imagenet`` or ``"MEAN,STD"``) runs inside the model, so images stay [0, 1] pixels.
    ``profile`` defaults to the dataset's own. ``output`` keeps the results in that file
    (and resumes it when rerun); without it they stay in memory until ``.save(path)``.
    ``options`` are :func:`robrank.swipe.swipe`'s: ``batch_size``, ``max_batches``, ``max_queries``,
    ``seed``, ``semantics``, ``amp``, ...
    """
    from .data.loading import dataset_record  # lazy: keeps this module torch-free
    from .swipe.runner import profile_for_dataset, resolve_profile, swipe  # lazy: keeps this module torch-free

    device = _device(device)
    registry = get_registry()
    loaded = _load_target(model, registry=registry, dataset=dataset, metric=metric, normalize=normalize, gray_to_rgb=gray_to_rgb,
                          device=device, weights=weights, weights_key=weights_key, strip_prefix=strip_prefix, embedding_dim=embedding_dim)
    # the budget is the profile's; without one given, the dataset's own (the one robrank swipe uses)
    record = (resolve_profile(profile, registry) if profile
              else profile_for_dataset(dataset_record(loaded.dataset, registry=registry), registry))
    origin = "given" if profile else f"the own profile of {loaded.dataset}"
    unknown = sorted(set(options) - set(_SWIPE_OPTIONS))
    if unknown:
        raise ConfigError(f"evaluate() got an unknown option {unknown[0]!r}; it takes {', '.join(_SWIPE_OPTIONS)}")
    with tempfile.TemporaryDirectory(prefix="robrank-evaluate-") as tmp:
        out = Path(output) if output is not None else Path(tmp) / f"swipe-{record.name}.json"
        path = swipe(loaded, record.name, registry=registry, output=out, device=device, data_root=data_root, progress=progress, **options)
        payload = _load(path, registry)
    results = Results(payload, Path(output) if output is not None else None, registry=registry)
    results.origin = origin
    return results


#: what evaluate() passes on to robrank.swipe.swipe
_SWIPE_OPTIONS: tuple[str, ...] = (
    "batch_size", "max_batches", "max_queries", "seed", "semantics", "restart", "amp", "channels_last", "compile", "num_workers", "redo",
)


def bench(
    model: Any,
    dataset: str | None = None,
    metric: str | None = None,
    *,
    normalize: str | None = None,
    gray_to_rgb: bool = False,
    weights: Any = (),
    weights_key: str | None = None,
    strip_prefix: str | None = None,
    embedding_dim: int | None = None,
    output: str | Path | None = None,
    device: str = "cpu",
    data_root: str | Path | None = None,
    progress: bool = False,
    name: str | None = None,
    **options: Any,
) -> dict[str, Any]:
    """``robrank bench`` in Python: the recommended evaluation of ``model``; returns its model card.

    ``model`` is what :func:`evaluate` takes. On the full test split: clean metrics, the
    dataset's reference profile and its worst-case profile; the swipes and ``card.json`` go to
    ``output`` (a folder; default beside the run or model file) and a rerun resumes them.
    ``options``: ``batch_size``, ``max_batches``, ``max_queries`` (either limit makes the
    card a draft), ``seed``, ``restart``. The card's path is ``card["_path"]``.
    """
    unknown = sorted(set(options) - set(_BENCH_OPTIONS))
    if unknown:
        raise ConfigError(f"bench() got an unknown option {unknown[0]!r}; it takes {', '.join(_BENCH_OPTIONS)}")
    registry = get_registry()
    loaded = _load_target(model, registry=registry, dataset=dataset, metric=metric, normalize=normalize, gray_to_rgb=gray_to_rgb,
                          device=device, weights=weights, weights_key=weights_key, strip_prefix=strip_prefix, embedding_dim=embedding_dim)
    target = loaded if hasattr(loaded, "model_block") else loaded.checkpoint
    runtime = RuntimeOptions.of(device=device, batch_size=options.pop("batch_size", None))
    path, card = _bench(target, output=output, runtime=runtime, data_root=data_root, progress=progress, name=name, registry=registry,
                        **options)
    return {**card, "_path": str(path)}


#: what bench() passes on to robrank.cards.bench.bench
_BENCH_OPTIONS: tuple[str, ...] = ("batch_size", "max_batches", "max_queries", "seed", "restart")


def load_results(path: str | Path) -> Results:
    """A results file written by ``robrank swipe`` or :meth:`Results.save`, validated."""
    registry = get_registry()
    return Results(_load(path, registry), Path(path), registry=registry)


# ----------------------------------------------------------------------------- galleries


def _pixels(images: Any, what: str) -> torch.Tensor:
    """Float images in [0, 1] (uint8 is divided by 255); anything else is a one-line error."""
    import torch  # lazy: keeps this module torch-free

    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ConfigError(f"{what} must be a [N, C, H, W] tensor of pixels, got {shape}; {DOCS}")
    if images.dtype == torch.uint8:
        return images.float().div_(255.0)
    images = images.float()
    bad = int((~torch.isfinite(images)).sum()) if images.numel() else 0
    if bad:  # a NaN pixel would otherwise score as a "perfect" attack (prank 0)
        where = int((~torch.isfinite(images)).flatten(1).any(1).nonzero()[0])
        raise ConfigError(f"{what} hold {bad} non-finite value(s) (NaN or inf), the first in image {where}; "
                          f"pass pixels in [0, 1]; {DOCS}")
    if images.numel() and (float(images.min()) < 0.0 or float(images.max()) > 1.0):
        raise ConfigError(f"{what} must be pixels in [0, 1] (normalisation belongs in normalize=, divide uint8 by 255); "
                          f"got values in [{float(images.min()):.3g}, {float(images.max()):.3g}]; {DOCS}")
    return images


def _labels(labels: Any, n: int, what: str) -> torch.Tensor:
    import torch  # lazy: keeps this module torch-free

    labels = torch.as_tensor(labels).view(-1).to(torch.int64)
    if labels.numel() != n:
        raise ConfigError(f"{what}: {n} images but {labels.numel()} labels")
    return labels


def _embed_tensors(model: Any, images: torch.Tensor, labels: torch.Tensor, batch_size: int, device: Any) -> Gallery:
    import torch  # lazy: keeps this module torch-free

    from .attacks.base import attack_mode  # lazy: keeps this module torch-free
    from .attacks.gallery import Gallery, embed  # lazy: keeps this module torch-free

    chunks = []
    with attack_mode(model), torch.no_grad():
        for start in range(0, images.shape[0], batch_size):
            try:
                chunks.append(embed(model, images[start : start + batch_size].to(device)).detach())
            except (RuntimeError, ValueError) as exc:  # a model built for other images: say so on one line
                detail = " ".join(str(exc).split())[:240]
                raise ConfigError(f"the model does not accept the gallery images {tuple(images.shape[1:])}: {detail}; {DOCS}") from None
    return Gallery(torch.cat(chunks), labels.to(device), model.metric)


def _gallery_for(model: Any, data: Any, *, batch_size: int | None, device: Any, data_root: Any,
                 registry: Registry) -> tuple[Gallery, str | None]:
    """The gallery of ``data`` (a dataset name, an ImageDataset or ``(images, labels)``) and the dataset name."""
    from .attacks.gallery import Gallery  # lazy: keeps this module torch-free

    if isinstance(data, Gallery):
        return data.to(device), None
    if isinstance(data, str):
        from .data.loading import load_split  # lazy: keeps this module torch-free

        split = load_split(data, "test", data_root, registry=registry)
        return Gallery.compute(model, split, batch_size=batch_size, device=device), getattr(split, "name", None) or data
    if isinstance(data, Sequence) and len(data) == 2:
        images = _pixels(data[0], "gallery images")
        if images.shape[0] == 0:
            raise ConfigError(f"the gallery is empty (0 images); a ranking needs gallery items to rank; {DOCS}")
        return _embed_tensors(model, images, _labels(data[1], images.shape[0], "gallery"), batch_size or 256, device), None
    if hasattr(data, "labels") and hasattr(data, "__len__"):
        return Gallery.compute(model, data, batch_size=batch_size, device=device), getattr(data, "name", None)
    raise ConfigError(f"a gallery is a dataset name, a robrank dataset split, an (images, labels) pair or a Gallery; got {type(data).__name__}; {DOCS}")


def gallery(
    model: Any,
    data: Any,
    metric: str | None = None,
    *,
    normalize: str | None = None,
    gray_to_rgb: bool = False,
    batch_size: int | None = None,
    device: str = "cpu",
    data_root: str | Path | None = None,
) -> Gallery:
    """Embed a gallery once, to reuse across attacks: ``data`` is a dataset name (its test split),
    a robrank split, or an ``(images, labels)`` pair of tensors (pixels in [0, 1]).

    Pass the same ``metric``/``normalize`` to :func:`attack` (or hand it the model this
    function wrapped: ``robrank.attack(..., gallery=g)`` checks the metric).
    """
    from .models.external import check_input, wrap_model  # lazy: keeps this module torch-free

    device = _device(device)
    registry = get_registry()
    wrapped = wrap_model(model, metric, normalize=normalize, gray_to_rgb=gray_to_rgb).to(device)
    if isinstance(data, str):
        from .data.loading import dataset_record  # lazy: keeps this module torch-free

        record = dataset_record(data, registry=registry)
        check_input(wrapped, record.channels, record.image_size, record.name, type(model).__name__, gray_to_rgb)
    return _gallery_for(wrapped, data, batch_size=batch_size, device=device, data_root=data_root, registry=registry)[0]


# ----------------------------------------------------------------------------- attacks


@dataclass
class AttackOutput:
    """What one call of an attack returns.

    ``adversarial`` are the perturbed images (same shape as the input, pixels in [0, 1],
    within ε of it); ``orig`` and ``adv`` the clean and adversarial summaries averaged over
    the batch; ``per_sample`` the same per image (``{"orig": {key: [B]}, "adv": {...}}``).
    """

    adversarial: torch.Tensor
    orig: dict[str, float]
    adv: dict[str, float]
    per_sample: dict[str, dict[str, torch.Tensor]]

    @property
    def difference(self) -> dict[str, float]:
        return {k: self.adv[k] - self.orig[k] for k in self.adv if k in self.orig}


class RankingAttack:
    """A ranking attack bound to a model and a gallery, called like a torchattacks attack.

    ``out = atk(images, labels)`` perturbs a batch; pass ``index=`` (each image's position in
    the gallery) when the images are gallery members, so that each is left out of its own
    ranking by position; without it the nearest gallery item plays that role, as in the
    reference code.
    """

    def __init__(self, spec: str, attack: Any, model: Any, gallery: Gallery, *, seed: int, dataset: str | None,
                 budget_source: str = "", image_shape: tuple[int, ...] | None = None) -> None:
        self.spec = spec
        self.attack = attack
        self.model = model
        self.gallery = gallery
        self.seed = int(seed)
        self.dataset = dataset
        #: where eps/alpha/pgditer came from: the caller, the dataset's swipe profile, or the attack's own defaults
        self.budget_source = budget_source
        #: the C, H, W the gallery's images had (None when the gallery came embedded)
        self.image_shape = image_shape

    @property
    def budget(self) -> dict[str, Any]:
        """The attack's ``eps``, ``alpha`` and ``pgditer``."""
        return {k: getattr(self.attack, k) for k in BUDGET if hasattr(self.attack, k)}

    def __repr__(self) -> str:
        budget = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.budget.items())
        source = f" ({self.budget_source})" if self.budget_source else ""
        return (f"RankingAttack({self.spec}, gallery={len(self.gallery)} items, metric={self.gallery.metric}, "
                f"budget {budget}{source})")

    def __call__(self, images: Any, labels: Any, index: Any = None) -> AttackOutput:
        import torch  # lazy: keeps this module torch-free

        device = self.gallery.device
        images = _pixels(images, "images").to(device)
        if images.shape[0] == 0:
            raise ConfigError(f"no images to attack (a batch of 0); {DOCS}")
        if self.image_shape is not None and tuple(images.shape[1:]) != tuple(self.image_shape):
            raise ConfigError(f"images are {'x'.join(map(str, images.shape[1:]))} but the gallery's were "
                              f"{'x'.join(map(str, self.image_shape))} (channels x height x width); attack images of the gallery's kind; {DOCS}")
        labels = _labels(labels, images.shape[0], "images").to(device)
        if index is None:
            position = torch.arange(images.shape[0], device=device)
            self_slot = None
        else:
            position = torch.as_tensor(index).view(-1).to(device=device, dtype=torch.int64)
            if position.numel() != images.shape[0] or (position.numel() and (int(position.min()) < 0 or int(position.max()) >= len(self.gallery))):
                raise ConfigError(f"index= must give one gallery position in [0, {len(self.gallery)}) per image")
            self_slot = position
        try:
            outcome = self.attack(self.model, self.gallery, images, labels, position, seed=self.seed, self_slot=self_slot)
        except RuntimeError as exc:  # a model built for other images (a gallery handed in embedded): one line
            detail = " ".join(str(exc).split())[:240]
            raise ConfigError(f"the model does not accept the images {tuple(images.shape[1:])}: {detail}; {DOCS}") from None
        mean = lambda d: {k: float(v.mean()) for k, v in d.items()}  # noqa: E731
        return AttackOutput(outcome.adversarial, mean(outcome.orig), mean(outcome.adv), {"orig": outcome.orig, "adv": outcome.adv})


def _spec_text(spec: str, fields: Mapping[str, Any]) -> str:
    extra = [f"{k}={v}" for k, v in fields.items() if v is not None]
    return ":".join([spec.rstrip(":"), *extra]) if extra else spec


def attack(
    spec: str,
    model: Any,
    *,
    gallery: Any,
    metric: str | None = None,
    normalize: str | None = None,
    gray_to_rgb: bool = False,
    semantics: str = "reference",
    seed: int = 0,
    random_start: bool = False,
    device: str = "cpu",
    batch_size: int | None = None,
    data_root: str | Path | None = None,
    dataset: str | None = None,
    **fields: Any,
) -> RankingAttack:
    """An attack object for ``model``: ``robrank.attack("CA:pm=+:W=1", net, gallery="digits", metric="N", eps=8/255)``.

    ``spec`` is an attack spec or just its type; ``fields`` (``eps``, ``alpha``, ``pgditer``,
    ``pm``, ``W``, ``M``) are added to it and validated like the spec itself. ``gallery`` is a
    dataset name (its test split is embedded once), an ``(images, labels)`` pair, a robrank
    split or a :class:`~robrank.attacks.Gallery` from :func:`gallery`; ``atk.gallery`` is
    the embedded one, to reuse. ``dataset`` names the data when the gallery is given as
    tensors (its record may declare defaults for the attack's fields).

    The budget (``eps``, ``alpha``, ``pgditer``) that the spec and ``fields`` leave out is the
    dataset's own: the numbers of the swipe profile ``robrank swipe`` uses for it (on MNIST
    77/255 and 32 steps of 3/255), never a class default that no published number uses; only
    without a dataset (a tensor gallery and no ``dataset=``) do the attack's own defaults
    apply. ``repr(atk)`` says which budget it is and where it came from.
    """
    from .attacks.reach import warn_short_steps  # lazy: keeps this module torch-free
    from .attacks.runner import AttackOptions, build_attack  # lazy: keeps this module torch-free
    from .models.external import check_input, wrap_model  # lazy: keeps this module torch-free

    device = _device(device)
    registry = get_registry()
    parse_spec(_spec_text(str(spec), fields), registry)  # a bad spec fails before the model runs
    if isinstance(model, (str, Path)):
        raise ConfigError(f"attack() takes a module; load a run with robrank.load_run({str(model)!r}).model first; {DOCS}")
    wrapped = wrap_model(model, metric, normalize=normalize, gray_to_rgb=gray_to_rgb).to(device)
    image_shape = None
    if isinstance(gallery, str):
        from .data.loading import dataset_record  # lazy: keeps this module torch-free

        record = dataset_record(gallery, registry=registry)
        check_input(wrapped, record.channels, record.image_size, record.name, type(model).__name__, gray_to_rgb)
        image_shape = (record.channels, record.image_size, record.image_size)
    elif isinstance(gallery, Sequence) and len(gallery) == 2 and hasattr(gallery[0], "shape") and len(gallery[0].shape) == 4:
        image_shape = tuple(int(d) for d in gallery[0].shape[1:])
    embedded, name = _gallery_for(wrapped, gallery, batch_size=batch_size, device=device, data_root=data_root, registry=registry)
    if len(embedded) == 0:
        raise ConfigError(f"the gallery is empty (0 items); a ranking needs gallery items to rank; {DOCS}")
    if embedded.metric != wrapped.metric:
        raise ConfigError(f"the gallery was embedded for metric {embedded.metric} but the attack uses {wrapped.metric}; compute it with the same metric")
    name = dataset or name
    budget, source = _dataset_budget(str(spec), fields, name, registry)
    parsed = parse_spec(_spec_text(str(spec), {**budget, **fields}), registry)
    # the dataset's records may declare defaults for fields the spec leaves out (e.g. a rate per dataset)
    built = build_attack(parsed, AttackOptions.for_dataset(name, registry, semantics=semantics, random_start=random_start, seed=seed),
                         registry=registry)
    warn_short_steps(built, parsed.text)
    return RankingAttack(parsed.text, built, wrapped, embedded, seed=seed, dataset=name, budget_source=source, image_shape=image_shape)


#: the spec fields that make an attack's budget
BUDGET: tuple[str, ...] = ("eps", "alpha", "pgditer")


def _device(device: Any) -> str:
    """``device`` checked as the CLI checks ``--device`` (``cuda`` without a GPU is a one-line error)."""
    return str(resolve_device(None if device is None else str(device)))


def _dataset_budget(spec: str, fields: Mapping[str, Any], dataset: str | None, registry: Registry) -> tuple[dict[str, Any], str]:
    """The budget fields the caller left out, from the dataset's swipe profile, and a line saying where it came from."""
    given = {item.partition("=")[0].strip() for item in spec.split(":")[1:] if "=" in item}
    given |= {k for k, v in fields.items() if v is not None}
    missing = [k for k in BUDGET if k not in given]
    if not missing:
        return {}, "given"
    own = parse_spec(_spec_text(spec, fields), registry)
    if own.type not in _budgeted_types(registry):
        return {}, "given"
    where = "the attack's own defaults, no dataset named (pass dataset= or eps=, alpha=, pgditer=)"
    if not dataset:
        return {}, where
    from .data.loading import dataset_record  # lazy: keeps this module torch-free
    from .swipe.runner import profile_for_dataset  # lazy: keeps this module torch-free

    if ("datasets", dataset) not in registry:
        return {}, f"the attack's own defaults: {dataset!r} is no registered dataset"
    try:
        profile = profile_for_dataset(dataset_record(dataset, registry=registry), registry)
    except ConfigError:
        return {}, f"the attack's own defaults: dataset {dataset!r} has no swipe profile"
    norm = own.params.get("norm", "inf")
    specs = [parse_spec(text, registry) for text in profile.factory()]
    same_norm = [p for p in specs if p.params.get("norm", "inf") == norm and all(k in p.params for k in BUDGET)]
    chosen = next((p for p in same_norm if p.type == own.type), same_norm[0] if same_norm else None)
    if chosen is None:
        raise ConfigError(f"profile {profile.name!r} of dataset {dataset!r} has no norm={norm} attack to take a budget from; "
                          f"pass {', '.join(f'{k}=' for k in missing)}; {DOCS}")
    taken = {k: chosen.params[k] for k in missing}
    kept = [k for k in BUDGET if k in given]
    origin = f"{', '.join(taken)} from profile {profile.name} of {dataset}" + (f"; {', '.join(kept)} given" if kept else "")
    return taken, origin


def _budgeted_types(registry: Registry) -> set[str]:
    """The attack types that declare the PGD budget fields (every bundled one)."""
    out = set()
    for component in registry.components("attacks"):
        names = {p.name for p in component.record.params}
        if all(k in names for k in BUDGET):
            out.add(component.record.name)
    return out


__all__ = [
    "AttackOutput",
    "AttackSummary",
    "RankingAttack",
    "Results",
    "attack",
    "bench",
    "evaluate",
    "gallery",
    "load_results",
    "load_run",
]
