"""Run one attack over a test split: batches, averaging, shards, progress.

Every test image is in turn the perturbed object. Per-sample metrics are *summed* and
divided by the number of attacked samples at the end, so the result does not depend on the
batch size (the reference averaged per-batch means, which weights the last partial batch
differently); the sums travel with the result so shards (``indices``) can be merged exactly
with :func:`merge_results`.
"""
from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .. import progress as progress_output
from ..errors import ConfigError, SpecError
from ..models.modes import attack_mode, embed
from ..params import ParamError
from ..plugins import Registry
from ..semantics import REFERENCE, check_semantics
from .base import Attack, Surrogate
from .gallery import Gallery, device_dataset, iter_images
from .spec import AttackSpec, parse_spec
from ..distances import embed_for_metric
from ..records import TASK_CLASSIFICATION

#: CPU batch sizes when none is given (28x28-ish inputs vs 224x224)
CPU_BATCH_SMALL = 256
CPU_BATCH_LARGE = 32
#: largest automatic CUDA batch: a C2F2 step saturates an H200 at about 10,000 images
CUDA_BATCH_MAX = 16384


class FastEmbedding(nn.Module):
    """An embedding model run with speed options: bf16 autocast, channels-last, ``torch.compile``.

    It shares the wrapped model's parameters (``attack_mode`` and ``eval`` reach them) and
    returns float32 embeddings, normalised for the metric in float32, so distances, ranks
    and summaries are computed exactly as without it; only the backbone's arithmetic
    changes. ``amp`` uses bfloat16 (no loss scaling: PGD only needs the *sign* of the input
    gradient). ``channels_last`` converts the weights' layout in place (values unchanged).
    ``compile`` compiles the backbone's forward (and, through AOTAutograd, its backward);
    the compiled callable is kept outside the module tree so ``state_dict`` is unchanged.
    """

    def __init__(self, model: nn.Module, *, amp: bool = False, channels_last: bool = False, compile: bool = False) -> None:
        super().__init__()
        self.inner = model
        self.metric = model.metric
        self.dataset = getattr(model, "dataset", None)
        self.amp, self.channels_last, self.compiled = bool(amp), bool(channels_last), bool(compile)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        backbone = getattr(model, "backbone", model)
        # plain attributes, not submodules: the parameters are registered once, under ``inner``
        self.__dict__["_eager"] = backbone
        self.__dict__["_forward"] = torch.compile(backbone) if self.compiled else backbone

    @property
    def options(self) -> dict[str, bool]:
        return {"amp": self.amp, "channels_last": self.channels_last, "compile": self.compiled}

    def _run(self, images: torch.Tensor, fn: Any) -> torch.Tensor:
        if self.channels_last and images.dim() == 4:
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type=images.device.type, dtype=torch.bfloat16, enabled=self.amp):
            out = fn(images)
        return out.float()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self._run(images, self._forward)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        return embed_for_metric(self.forward(images), self.metric)

    def eager_embed(self, images: torch.Tensor) -> torch.Tensor:
        """``embed`` without the compiled forward (memory probes must not trigger a compilation)."""
        return embed_for_metric(self._run(images, self._eager), self.metric)


def accelerate(model: nn.Module, *, amp: bool = False, channels_last: bool = False, compile: bool = False) -> nn.Module:
    """``model`` itself when no option is on, else a :class:`FastEmbedding` around it."""
    if isinstance(model, FastEmbedding):
        if model.options == {"amp": bool(amp), "channels_last": bool(channels_last), "compile": bool(compile)}:
            return model
        model = model.inner
    if not (amp or channels_last or compile):
        return model
    return FastEmbedding(model, amp=amp, channels_last=channels_last, compile=compile)


@dataclass(frozen=True)
class AttackOptions:
    """How attacks are run: everything but the spec, the model and the data, in one object.

    ``semantics`` (reference quirks or fixed), ``seed`` (of every random selection) and
    ``random_start`` change the numbers; ``batch_size`` and ``max_batches`` choose the
    queries' batches (the batch size is a speed knob over a whole split: summaries are
    per-sample sums); ``device``, ``progress``, ``num_workers`` and the speed options
    ``amp``/``channels_last``/``compile`` (docs/performance.md; ``amp`` moves the numbers
    slightly) only change how fast. ``defaults`` maps an attack name to spec-field defaults
    that depend on the data (:attr:`robrank.records.DatasetRecord.attack_defaults`); see
    :meth:`for_dataset`. The CLI, :func:`run_attack` and the swipe all pass this one object.
    """

    semantics: str = REFERENCE
    seed: int = 0
    random_start: bool = False
    device: str = "cpu"
    batch_size: int | None = None
    max_batches: int | None = None
    #: attack only the first N queries, whatever the batch size (``max_batches`` counts batches,
    #: whose size is chosen per device); both may be given, the smaller cut wins
    max_queries: int | None = None
    progress: bool = True
    amp: bool = False
    channels_last: bool = False
    compile: bool = False
    num_workers: int | None = None
    defaults: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        check_semantics(self.semantics)
        for name in ("batch_size", "max_batches", "max_queries"):
            value = getattr(self, name)
            if value is not None and int(value) < 1:
                raise ConfigError(f"{name.replace('_', ' ')} must be at least 1 (got {value})")

    def replace(self, **changes: Any) -> AttackOptions:
        """A copy with ``changes`` (field names of this class; anything else is a TypeError)."""
        return dataclasses.replace(self, **changes) if changes else self

    @property
    def speed(self) -> dict[str, bool]:
        """The model-wrapping speed options, as :func:`accelerate` takes them."""
        return {"amp": bool(self.amp), "channels_last": bool(self.channels_last), "compile": bool(self.compile)}

    @classmethod
    def for_dataset(cls, dataset: str | None, registry: Registry, **fields: Any) -> AttackOptions:
        """Options whose ``defaults`` are the registered dataset's ``attack_defaults`` (none if unregistered)."""
        return cls(defaults=dataset_attack_defaults(dataset, registry), **fields)


def dataset_attack_defaults(dataset: str | None, registry: Registry) -> dict[str, dict[str, Any]]:
    """The spec-field defaults the dataset's record declares per attack ({} for an unknown dataset)."""
    if not dataset:
        return {}
    if ("datasets", dataset) not in registry:
        return {}
    return {k: dict(v) for k, v in registry.get("datasets", dataset).attack_defaults.items()}


@dataclass
class AttackResult:
    """Averaged clean (``orig``) and adversarial (``adv``) summaries of one attack.

    ``sums`` holds the per-sample sums behind the averages (``{"orig": {...}, "adv": {...}}``)
    and ``count`` the number of attacked samples, which is what :func:`merge_results` needs.
    ``budget`` is the cost per attacked sample: ``gradients`` (forward+backward passes) and
    ``forwards`` (forward-only passes). A worst case over several searches (``opt=worst``)
    also keeps each member's adversarial averages and sums (``members``) and, per success
    measure, how many samples each member won (``wins``; ties go to the earlier member).
    """

    spec: str
    orig: dict[str, float]
    adv: dict[str, float]
    count: int
    seconds: float
    sums: dict[str, dict[str, float]] = field(default_factory=dict)
    semantics: str = REFERENCE
    seed: int = 0
    budget: dict[str, float] = field(default_factory=dict)
    members: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    wins: dict[str, dict[str, int]] = field(default_factory=dict)
    #: percent of the gallery's items whose two nearest items tie (:func:`robrank.metrics.top_tie_share`); None without a gallery
    top_ties: float | None = None

    def as_dict(self) -> dict[str, Any]:
        out = {
            "spec": self.spec,
            "orig": dict(self.orig),
            "adv": dict(self.adv),
            "count": self.count,
            "seconds": self.seconds,
            "sums": {k: dict(v) for k, v in self.sums.items()},
            "semantics": self.semantics,
            "seed": self.seed,
            "budget": dict(self.budget),
        }
        if self.members:
            out["members"] = {name: {k: dict(v) for k, v in m.items()} for name, m in self.members.items()}
            out["wins"] = {k: dict(v) for k, v in self.wins.items()}
        if self.top_ties is not None:
            out["top_ties"] = self.top_ties
        return out

    @property
    def difference(self) -> dict[str, float]:
        return {k: self.adv[k] - self.orig[k] for k in self.adv if k in self.orig}


def _averages(sums: dict[str, float], count: int) -> dict[str, float]:
    return {k: (v / count if count else math.nan) for k, v in sums.items()}


def merge_results(results: Sequence[AttackResult]) -> AttackResult:
    """Combine shards of one attack (same spec) into the result of their union."""
    if not results:
        raise ConfigError("merge_results needs at least one result")
    specs = {r.spec for r in results}
    if len(specs) != 1:
        raise ConfigError(f"cannot merge results of different attacks: {', '.join(sorted(specs))}")
    sums: dict[str, dict[str, float]] = {"orig": {}, "adv": {}}
    for r in results:
        if not r.sums:
            raise ConfigError(f"result of {r.spec} carries no per-sample sums; it cannot be merged")
        for side in ("orig", "adv"):
            for k, v in r.sums[side].items():
                sums[side][k] = sums[side].get(k, 0.0) + v
    count = sum(r.count for r in results)
    first = results[0]
    budget = {k: (sum(r.budget.get(k, 0.0) * r.count for r in results) / count if count else math.nan) for k in first.budget}
    member_sums: dict[str, dict[str, float]] = {}
    wins: dict[str, dict[str, int]] = {}
    for r in results:
        for name, member in r.members.items():
            into = member_sums.setdefault(name, {})
            for k, v in member["sums"].items():
                into[k] = into.get(k, 0.0) + v
        for key, counts in r.wins.items():
            into = wins.setdefault(key, {})
            for name, n in counts.items():
                into[name] = into.get(name, 0) + int(n)
    return AttackResult(
        spec=first.spec,
        orig=_averages(sums["orig"], count),
        adv=_averages(sums["adv"], count),
        count=count,
        seconds=sum(r.seconds for r in results),
        sums=sums,
        semantics=first.semantics,
        seed=first.seed,
        budget=budget,
        members={name: {"adv": _averages(m, count), "sums": m} for name, m in member_sums.items()},
        wins=wins,
        top_ties=first.top_ties,
    )


def build_attack(spec: AttackSpec | str, options: AttackOptions | None = None, *, registry: Registry, **changes: Any) -> Attack:
    """Instantiate a parsed spec's attack through the plugin registry.

    The spec's fields were validated when it was parsed; the data's defaults
    (``options.defaults[spec.type]``) fill only fields the spec leaves out, and are checked
    against the attack's declared fields here, where they enter.
    """
    options = (options or AttackOptions()).replace(**changes)
    spec = parse_spec(spec, registry)
    record = registry.get("attacks", spec.type)
    declared = {p.name: p for p in record.params}
    values = {}
    for key, value in options.defaults.get(record.name, {}).items():
        if key in spec.params:
            continue
        if key not in declared:
            raise ConfigError(f"the dataset's defaults for attack {record.name} set {key!r}, which it does not take; it takes {', '.join(declared)}")
        try:
            values[key] = declared[key].check(value)
        except ParamError as exc:
            raise SpecError(f"the dataset's default for attack {record.name}: {exc}") from None
    values.update(spec.params)
    return registry.create("attacks", spec.type, **values, semantics=options.semantics, random_start=options.random_start)


def check_task(spec: str | AttackSpec, task: str, *, registry: Registry) -> None:
    """One-line error when an attack is meant for another kind of model (ranking vs classifier)."""
    spec = parse_spec(spec, registry)
    wanted = registry.get("attacks", spec.type).task
    if wanted == task:
        return
    if task == TASK_CLASSIFICATION:
        options = [c.record.name for c in registry.components("attacks") if c.record.task == task]
        raise ConfigError(f"{spec.type} is a ranking attack but the model is a classifier; attack it with {', '.join(options) or 'a classifier attack'}")
    raise ConfigError(f"{spec.type} attacks a classifier's logits but the model is a {task} model; use a ranking attack (robrank list attacks)")


def auto_batch_size(model: nn.Module, dataset: Any, gallery: Gallery | None, attack: Attack, device: torch.device) -> int:
    """A batch size that fits: a fixed default on CPU, a memory estimate on CUDA.

    On CUDA one probe step (forward + input gradient of 16 images, under the model's own
    speed options) measures the activation memory per image; the attack's [B, K, N]
    distance tensors are added analytically, and half of the free memory is budgeted. The
    result is capped at :data:`CUDA_BATCH_MAX` and never exceeds the number of queries.
    Batch size is a speed knob only: summaries are per-sample sums.
    """
    image_size = int(getattr(dataset, "image_size", 28))
    if device.type != "cuda":
        return CPU_BATCH_SMALL if image_size <= 64 else CPU_BATCH_LARGE
    probe = min(16, len(dataset))
    images = next(iter_images(dataset, [torch.arange(probe)], device, num_workers=0))
    forward = getattr(model, "eager_embed", None) or (lambda x: embed(model, x))
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    with attack_mode(model):
        x = images.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(forward(x).sum(), x)
    del grad, x
    per_image = max(1, (torch.cuda.max_memory_allocated(device) - base) // probe)
    per_image += 4 * (len(gallery) if gallery is not None else 0) * (8 + 3 * attack.distance_width())
    free, _total = torch.cuda.mem_get_info(device)
    return int(max(1, min(CUDA_BATCH_MAX, len(dataset), (free // 2) // per_image)))


def check_against_gallery(spec: Any, gallery: Gallery, registry: Registry) -> None:
    """Refuse spec fields that do not fit this gallery, where the gallery is known.

    A field declared ``outside_class`` (``robrank.params.Param``) counts items drawn from
    outside the query's class, so it may not exceed the gallery size minus the largest
    class: a bigger value would silently clamp or repeat items. (Ranges that need no gallery,
    such as eps <= 1, are checked when the spec is parsed.)
    """
    record = registry.get("attacks", spec.type)
    counts = [p.name for p in getattr(record, "params", ()) if getattr(p, "outside_class", False) and spec.params.get(p.name) is not None]
    if not counts:
        return
    labels = gallery.labels
    largest = int(torch.bincount(labels - labels.min()).max()) if labels.numel() else 0
    limit = len(gallery) - largest
    for key in counts:
        if int(spec.params[key]) > limit:
            raise SpecError(f"attack {spec.text}: {key}={spec.params[key]} exceeds the {limit} gallery items outside a query's "
                            f"class ({len(gallery)} images, largest class {largest}); use {key}<={limit}")


def run_attack(
    model: nn.Module,
    dataset: Any,
    spec: str | AttackSpec,
    options: AttackOptions | None = None,
    *,
    gallery: Gallery | None = None,
    indices: Iterable[int] | torch.Tensor | None = None,
    registry: Registry,
    on_batch: Callable[[torch.Tensor, Any], None] | None = None,
    surrogate: nn.Module | None = None,
    surrogate_gallery: Gallery | None = None,
    **changes: Any,
) -> AttackResult:
    """Attack every test image (or ``indices``) of ``dataset`` and average the summaries.

    ``dataset`` is an :class:`~robrank.data.ImageDataset` (the test split; also the gallery
    unless ``gallery`` is given). ``options`` say how (:class:`AttackOptions`); keyword
    ``changes`` override single fields of it (``run_attack(model, data, spec, seed=3)``).
    The model is left in the mode it came in.

    Speed options (docs/performance.md): ``amp`` (bf16 autocast of the backbone),
    ``channels_last``, ``compile`` (``torch.compile`` of the backbone) wrap the model in a
    :class:`FastEmbedding`; a gallery computed here uses the same forward. ``num_workers``
    decodes file datasets in DataLoader workers (default: up to 8). In-memory splits are
    moved to the device once; the loop over batches never synchronises with the device
    (indices, labels and the running sums all stay there until the end).

    ``surrogate`` makes it a transfer attack: the selection and the optimisation run on the
    surrogate model (any embedding module with a ``metric``; its clean gallery of the same
    split is ``surrogate_gallery`` or computed here), the summaries on ``model``.
    ``on_batch(index, outcome)`` sees each batch's dataset indices and :class:`BatchOutcome`
    (adversarial images included), e.g. to save them (``robrank attack --save-adversarial``).
    """
    options = (options or AttackOptions()).replace(**changes)
    spec = parse_spec(spec, registry)
    device = torch.device(options.device)
    attack = build_attack(spec, options, registry=registry)
    model = accelerate(model.to(device), **options.speed)
    start = time.perf_counter()
    dataset = device_dataset(dataset, device)
    gallery, source = _galleries(model, dataset, attack, options, device, gallery, surrogate, surrogate_gallery)
    if gallery is not None:
        check_against_gallery(spec, gallery, registry)
    # the gallery is this split when sizes agree: a query's own slot is its dataset index
    own_slots = gallery is not None and len(gallery) == len(dataset)
    order = _query_order(dataset, indices)
    if options.max_queries is not None:
        order = order[: int(options.max_queries)]
    batch_size = options.batch_size
    if batch_size is None:
        batch_size = auto_batch_size(model, dataset, gallery, attack, device)
    batches = [order[i : i + batch_size] for i in range(0, order.numel(), batch_size)]
    if options.max_batches is not None:
        batches = batches[: options.max_batches]
    totals = _Totals([run.name for run in attack.runs()])
    # a bar on a terminal only: in a log file the swipe's per-attack line is the progress
    bar = progress_output.bar(options.progress, total=len(batches), desc=spec.text, unit="batch", leave=False)
    # indices and labels go to the device once, not once per batch: a pageable host-to-device
    # copy waits for the device, which would stall the host behind every batch's PGD
    order_dev = torch.cat(batches).to(device) if batches else order[:0]
    labels_dev = dataset.labels.to(device)
    offsets = [0]
    for index in batches:
        offsets.append(offsets[-1] + int(index.numel()))
    try:
        for b, images in enumerate(iter_images(dataset, batches, device, options.num_workers)):
            index_dev = order_dev[offsets[b] : offsets[b + 1]]
            outcome = attack(model, gallery, images, labels_dev[index_dev], index_dev, seed=options.seed,
                             self_slot=index_dev if own_slots else None, surrogate=source)
            if on_batch is not None:
                on_batch(index_dev, outcome)
            totals.add(outcome, offsets[b + 1] - offsets[b])
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return totals.result(spec.text, options, start, None if gallery is None else 100.0 * gallery.top_ties)


def _galleries(model: nn.Module, dataset: Any, attack: Attack, options: AttackOptions, device: torch.device, gallery: Gallery | None,
               surrogate: nn.Module | None, surrogate_gallery: Gallery | None) -> tuple[Gallery | None, Surrogate | None]:
    """The target's clean gallery on the device (None for an attack that uses none) and the transfer surrogate, checked."""
    if not attack.uses_gallery:
        gallery = surrogate_gallery = None
    elif gallery is None:
        gallery = Gallery.compute(model, dataset, batch_size=None, device=device)
    if gallery is not None:
        gallery = gallery.to(device)
        if gallery.metric != model.metric:
            raise ConfigError(f"the gallery was embedded for metric {gallery.metric} but the model uses {model.metric}")
    if surrogate is None:
        return gallery, None
    surrogate = accelerate(surrogate.to(device), **options.speed)
    if gallery is not None:
        if surrogate_gallery is None:
            surrogate_gallery = Gallery.compute(surrogate, dataset, batch_size=None, device=device)
        if len(surrogate_gallery) != len(gallery):
            raise ConfigError(f"the surrogate gallery has {len(surrogate_gallery)} items but the target's has {len(gallery)}; embed the same split")
        surrogate_gallery = surrogate_gallery.to(device)
    return gallery, Surrogate(surrogate, surrogate_gallery)


def _query_order(dataset: Any, indices: Iterable[int] | torch.Tensor | None) -> torch.Tensor:
    """The dataset indices to attack, in order (all of them without ``indices``)."""
    if indices is None:
        return torch.arange(len(dataset))
    order = torch.as_tensor(list(indices) if not isinstance(indices, torch.Tensor) else indices, dtype=torch.int64).view(-1)
    if order.numel() and (int(order.min()) < 0 or int(order.max()) >= len(dataset)):
        raise ConfigError(f"attack indices must lie in [0, {len(dataset)}); got {int(order.min())}..{int(order.max())}")
    return order


class _Totals:
    """Per-sample sums of one attack's batches, kept on the device until :meth:`result` (no sync per batch)."""

    def __init__(self, names: list[str]) -> None:
        self.names = names  # the searches of a worst case, in the order that breaks ties
        self.sums: dict[str, dict[str, torch.Tensor]] = {"orig": {}, "adv": {}}
        self.budget: dict[str, int] = {}
        self.members: dict[str, dict[str, torch.Tensor]] = {}
        self.wins: dict[str, torch.Tensor] = {}
        self.count = 0

    def add(self, outcome: Any, size: int) -> None:
        for side, values in (("orig", outcome.orig), ("adv", outcome.adv)):
            for k, v in values.items():
                self.sums[side][k] = self.sums[side].get(k, 0) + v.sum()
        for k, v in outcome.budget.items():
            self.budget[k] = self.budget.get(k, 0) + int(v) * size
        for name, values in outcome.members.items():
            into = self.members.setdefault(name, {})
            for k, v in values.items():
                into[k] = into.get(k, 0) + v.sum()
        for k, winner in outcome.wins.items():
            self.wins[k] = self.wins.get(k, 0) + torch.bincount(winner, minlength=len(self.names))
        self.count += size

    def result(self, spec: str, options: AttackOptions, start: float, top_ties: float | None) -> AttackResult:
        """The averages; ``seconds`` runs from ``start`` to here, after the one sync that brings the sums to the host."""
        count = self.count
        host = {side: {k: float(v) for k, v in values.items()} for side, values in self.sums.items()}
        members = {name: {k: float(v) for k, v in values.items()} for name, values in self.members.items()}
        return AttackResult(
            spec=spec,
            orig=_averages(host["orig"], count),
            adv=_averages(host["adv"], count),
            count=count,
            seconds=time.perf_counter() - start,
            sums=host,
            semantics=options.semantics,
            seed=options.seed,
            budget=_averages({k: float(v) for k, v in self.budget.items()}, count),
            members={name: {"adv": _averages(m, count), "sums": m} for name, m in members.items()},
            wins={k: dict(zip(self.names, (int(n) for n in v.tolist()))) for k, v in self.wins.items()},
            top_ties=top_ties,
        )
