"""The training loop: a plain PyTorch loop over SPC-2 pair batches (or plain batches for classifiers).

One step: ``loss = defense.loss(model, criterion, images, labels)`` (plain metric learning
is the :class:`~robrank.defenses.NoDefense`), backward, optimiser step. The engine owns
everything around it: data (28x28 splits live on the device and batches are gathered with
one indexing op; file datasets go through a DataLoader), optimisers, mixed precision,
BatchNorm freezing, DDP, validation, checkpoints and exact resumption.

Reproducibility: the model is initialised after ``torch.manual_seed(seed)``; the epoch
permutations and SPC-2 partners come from a dedicated ``torch.Generator`` seeded with
``seed``; the miners draw from torch's global generator. Both states go into every
checkpoint, so a resumed run ends with the same weights as an uninterrupted one.
"""
from __future__ import annotations

import copy
import inspect
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import progress as progress_output
from ..data.base import ImageDataset, TensorImageDataset
from ..data.kinds import build_kind, spc2_partners
from ..data.loading import load_split
from ..defenses.base import Defense, TrainingProgress
from ..errors import CheckpointError, ConfigError, NonFiniteError, StorageError
from ..io import check_free_space, save_checkpoint
from ..losses import build_criterion
from ..metrics import CLASSIFICATION_KEYS, METRIC_KEYS, TIES_KEY, classification_metrics, format_metrics, retrieval_metrics, tie_note
from ..models.backbone import build_backbone, freeze_batchnorm
from ..models.checkpoint import CHECKPOINT_DIR, FORMAT, FORMAT_VERSION, LAST, load_state, read_checkpoint
from ..models.embedding import EmbeddingModel
from ..plugins import Registry, get_registry
from ..records import NO_WEIGHTS, TASK_CLASSIFICATION, TASK_RETRIEVAL
from ..runtime import resolve_device
from . import distributed as dist_util
from . import rundir
from .config import TrainConfig, learning_rate
from .distributed import DistInfo
from .plan import RunPlan, build_plan, plan_training

#: optimiser steps between two reads of the divergence flag (each read is one host sync)
CHECK_EVERY = 50


@dataclass
class TrainResult:
    """What a finished (or stopped) run produced."""

    run_dir: Path
    metrics: dict[str, float]
    seconds: float
    epochs: int = 0
    steps: int = 0


@dataclass
class TrainParts:
    """The built components of a run; :func:`build_parts` makes them from a config."""

    model: EmbeddingModel
    criterion: nn.Module
    defense: Defense
    train_set: ImageDataset
    test_set: ImageDataset | None
    num_test_classes: int
    loss_record: Any = None
    task: str = TASK_RETRIEVAL  # TASK_CLASSIFICATION: plain batches, accuracy validation


# ------------------------------------------------------------------------------------ setup


def build_parts(plan: RunPlan | TrainConfig, registry: Registry | None = None) -> TrainParts:
    """Model, criterion and splits of a plan; the defense is the plan's (built and checked once).

    A resolved TrainConfig is planned here with ``registry`` (tests and notebooks that build
    parts by hand); a RunPlan carries the registry it was planned with.
    """
    if isinstance(plan, TrainConfig):
        plan = build_plan(plan, _needed(registry))
    config = plan.config
    torch.manual_seed(config.seed)
    backbone = build_backbone(
        config.backbone,
        embedding_dim=config.embedding_dim,
        pretrained=None if config.pretrained in (None, NO_WEIGHTS) else config.pretrained,
        weights=config.weights,
        registry=plan.registry,
    )
    model = EmbeddingModel(backbone, config.metric or "N")
    criterion = build_criterion(plan.loss, registry=plan.registry)
    train_set = load_split(config.dataset, "train", config.data_root, augment=True, registry=plan.registry)
    test_set = load_split(config.dataset, "test", config.data_root, augment=False, registry=plan.registry)
    task = plan.registry.get("backbones", config.backbone).task
    return TrainParts(model, criterion, plan.defense, train_set, test_set, plan.dataset.test_classes(test_set), plan.loss.record, task)


def make_optimizers(config: TrainConfig, model: EmbeddingModel, criterion: nn.Module) -> list[torch.optim.Optimizer]:
    """Adam (or ``config.optimizer``, with ``config.momentum``) over the backbone; the loss's own SGD for learnable loss params."""
    cls = getattr(torch.optim, config.optimizer or "Adam")
    extra: dict[str, Any] = {}
    if config.momentum is not None:
        if "momentum" not in inspect.signature(cls).parameters:
            raise ConfigError(f"optimizer {config.optimizer} takes no momentum; use SGD (or RMSprop) or drop momentum")
        extra["momentum"] = float(config.momentum)
    optimizers = [cls(model.backbone.parameters(), lr=config.lr, weight_decay=config.weight_decay, **extra)]
    loss_params = [p for p in criterion.parameters() if p.requires_grad]
    if loss_params:
        make = getattr(criterion, "make_optimizer", None)
        extra = make() if callable(make) else None
        optimizers.append(extra if extra is not None else torch.optim.SGD(loss_params, lr=5e-4))
    return optimizers


class _Step(nn.Module):
    """The whole loss computation as one module, so DDP sees one forward per step.

    Defenses run inner attacks (extra forwards and input gradients) inside
    ``defense.loss``; wrapping the step rather than the backbone keeps those inside DDP's
    forward, where its reducer does not see them, exactly as Lightning wraps training_step.
    """

    def __init__(self, model: EmbeddingModel, criterion: nn.Module, defense: Defense) -> None:
        super().__init__()
        self.model = model
        self.criterion = criterion
        self.defense = defense

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.defense.loss(self.model, self.criterion, images, labels)


# ------------------------------------------------------------------------------------- data


class _Batches:
    """One epoch's SPC-2 batches for this rank (plain batches for a classifier): in-memory gather or a DataLoader."""

    def __init__(self, dataset: ImageDataset, config: TrainConfig, info: DistInfo, device: torch.device, *, layout: str = "SPC-2") -> None:
        #: the batch layout (robrank.data.kinds) of the loss: SPC-2 pairs, or plain classification batches
        self.layout = layout
        self.pairs = layout != TASK_CLASSIFICATION
        self.dataset = dataset
        self.config = config
        self.info = info
        self.device = device
        self.in_memory = isinstance(dataset, TensorImageDataset)
        self.labels_cpu = dataset.labels.cpu()
        if self.in_memory:
            self.data = dataset.data.to(device)
            self.labels = dataset.labels.to(device)
            # a split with its own batch transform (CIFAR's crop + flip) is gathered through it
            self.transformed = type(dataset).images is not TensorImageDataset.images
            if self.transformed:
                self.source = copy.copy(dataset)
                self.source.data = self.data

    def plan(self, generator: torch.Generator) -> list[torch.Tensor]:
        """This rank's batches for one epoch: B x 2 (anchor, partner), or B x 1 for plain batches."""
        n = self.labels_cpu.numel()
        anchors = torch.randperm(n, generator=generator)
        if not self.pairs:
            return dist_util.shard_pairs(anchors.view(-1, 1), self.config.batch_size, self.info)
        partners = spc2_partners(self.labels_cpu, generator)[anchors]
        pairs = torch.stack([anchors, partners], dim=1)
        return dist_util.shard_pairs(pairs, self.config.batch_size, self.info)

    def iterate(self, batches: list[torch.Tensor], epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.in_memory:
            if not batches:
                return
            # the epoch's indices go to the device in one copy: a pageable host-to-device copy
            # per step would make the host wait for the previous step's kernels every time
            flat = torch.cat([pairs.reshape(-1) for pairs in batches]).to(self.device)  # [a1, p1, a2, p2, ...]
            start = 0
            for pairs in batches:
                index = flat[start : start + pairs.numel()]
                start += pairs.numel()
                images = self.source.images(index) if self.transformed else self.data[index].float().div_(255.0)
                yield images, self.labels[index]
            return
        yield from self._loader(batches, epoch)

    def _loader(self, batches: list[torch.Tensor], epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        # the partner of each anchor is redrawn inside PairDataset (per worker RNG); only
        # the anchors of the plan are used, so sharding and order still follow the plan
        sampler = [pairs[:, 0].tolist() for pairs in batches]
        loader_gen = torch.Generator().manual_seed(self.config.seed * 100_003 + epoch)
        loader = torch.utils.data.DataLoader(
            build_kind(self.layout, self.dataset),
            batch_sampler=sampler,
            num_workers=self.config.num_workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
            generator=loader_gen,
        )
        for images, labels in loader:
            if self.pairs:
                images = images.reshape(-1, *images.shape[2:])
            yield images.to(self.device, non_blocking=True), labels.reshape(-1).to(self.device, non_blocking=True)


def embed_split(model: EmbeddingModel, dataset: ImageDataset, config: TrainConfig, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised embeddings of a whole split (eval mode, no grad), in dataset order."""
    was_training = model.training
    model.eval()
    chunks: list[torch.Tensor] = []
    amp = _autocast(config, device)
    try:
        with torch.no_grad():
            if isinstance(dataset, TensorImageDataset):
                data = dataset.data.to(device)
                for start in range(0, data.shape[0], config.val_batch_size):
                    with amp:
                        chunks.append(model.embed(data[start : start + config.val_batch_size].float().div_(255.0)).float())
            else:
                loader = torch.utils.data.DataLoader(
                    dataset, batch_size=config.val_batch_size, shuffle=False,
                    num_workers=config.num_workers, pin_memory=device.type == "cuda",
                )
                for images, _ in loader:
                    with amp:
                        chunks.append(model.embed(images.to(device, non_blocking=True)).float())
    finally:
        model.train(was_training)
    return torch.cat(chunks), dataset.labels.to(device)


def validate(
    model: EmbeddingModel, dataset: ImageDataset, num_classes: int, config: TrainConfig, device: torch.device, task: str = TASK_RETRIEVAL
) -> dict[str, float]:
    """Retrieval metrics of the test split, or accuracy for a classifier (its ``embed`` is its logits)."""
    embeddings, labels = embed_split(model, dataset, config, device)
    if task == TASK_CLASSIFICATION:
        return classification_metrics(embeddings, labels)
    return retrieval_metrics(embeddings, labels, model.metric, num_classes)


def _autocast(config: TrainConfig, device: torch.device) -> Any:
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=bool(config.amp))


# ----------------------------------------------------------------------------- checkpoints


@dataclass
class _State:
    epoch: int = 0  # completed epochs
    step: int = 0  # completed optimiser steps
    epoch_step: int = 0  # steps completed inside the current epoch
    epoch_generator: torch.Tensor | None = None  # sampler state at the start of the current epoch
    history: list[dict[str, Any]] = field(default_factory=list)
    # the current epoch's running loss (rank 0's): saved inside an epoch so a resumed epoch
    # reports the mean over all its steps, exactly as an uninterrupted one
    loss_sum: torch.Tensor | None = None
    loss_count: int = 0


def checkpoint_bytes(model: nn.Module, criterion: nn.Module) -> int:
    """About the size of one checkpoint: the weights plus Adam's two moments, and some slack."""
    weights = sum(t.numel() * t.element_size() for m in (model, criterion) for t in m.state_dict().values() if hasattr(t, "numel"))
    return 3 * weights + 2**20


class Trainer:
    """One training run in progress: the model, criterion and defense on the device, their optimisers,
    the AMP scaler, the epoch sampler's generator and the step counters (:class:`_State`).

    :func:`fit` builds one and calls :meth:`fit`; holding everything a checkpoint needs is
    what lets :meth:`save` take no arguments but whether to keep an epoch file.
    """

    def __init__(self, config: TrainConfig, parts: TrainParts, run_dir: Path, *, info: DistInfo, progress: bool) -> None:
        self.config, self.parts, self.run_dir, self.info, self.progress = config, parts, run_dir, info, progress
        self.device = device = resolve_device(config.device, info)
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist_util.init_process_group(info, device)
        self.model, self.criterion, self.defense = parts.model.to(device), parts.criterion.to(device), parts.defense
        if info.enabled:  # different miner draws per rank, identical model init (already built)
            torch.manual_seed(config.seed + info.rank)
        self.optimizers = make_optimizers(config, self.model, self.criterion)
        self.scaler = torch.amp.GradScaler("cuda") if config.amp and device.type == "cuda" else None
        self.generator = torch.Generator().manual_seed(config.seed)
        self.state = _State()
        # Divergence watch: a flag on the device (no per-step host sync) that is read every
        # CHECK_EVERY steps and before anything is saved or validated, so a diverged model is
        # never checkpointed over the last good one nor scored.
        self.nonfinite = torch.zeros((), dtype=torch.bool, device=device)
        self.saved_step: int | None = None

    # -- checkpoints

    def _rng_payload(self) -> dict[str, Any]:
        state, info, device = self.state, self.info, self.device
        gen_state = state.epoch_generator if state.epoch_step > 0 and state.epoch_generator is not None else self.generator.get_state()
        per_rank = dist_util.all_gather_object(info, torch.get_rng_state())
        rng: dict[str, Any] = {"torch": per_rank[0], "generator": gen_state}
        if info.enabled:
            rng["torch_ranks"] = per_rank
        if device.type == "cuda":
            rng["cuda"] = dist_util.all_gather_object(info, torch.cuda.get_rng_state(device))
        return rng

    def save(self, *, epoch_file: bool = False) -> None:
        """Checkpoint everything a resumed run needs into ``checkpoints/last.pt`` (rank 0; a collective)."""
        rng = self._rng_payload()  # collective: every rank takes part
        if not self.info.is_main:
            return
        state, parts = self.state, self.parts
        payload = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "config": self.config.to_dict(),
            "epoch": state.epoch,
            "step": state.step,
            "epoch_step": state.epoch_step,
            "world_size": self.info.world_size,
            "epoch_loss": {
                "sum": (state.loss_sum if state.loss_sum is not None else torch.zeros(())).detach().float().cpu(),
                "count": state.loss_count,
            },
            "model": parts.model.state_dict(),
            "criterion": parts.criterion.state_dict(),
            "optimizers": [opt.state_dict() for opt in self.optimizers],
            "scaler": self.scaler.state_dict() if self.scaler is not None else {},
            "defense": parts.defense.state_dict() if hasattr(parts.defense, "state_dict") else {},
            "rng": rng,
        }
        folder = self.run_dir / CHECKPOINT_DIR
        save_checkpoint(folder / LAST, payload)
        if epoch_file and state.epoch_step == 0:
            save_checkpoint(folder / f"epoch-{state.epoch}.pt", payload)

    def restore(self) -> None:
        """Load ``checkpoints/last.pt``: weights, optimisers, scaler, defense, every RNG, counters and history."""
        parts, info, device = self.parts, self.info, self.device
        checkpoint, payload = read_checkpoint(self.run_dir / CHECKPOINT_DIR / LAST)
        load_state(parts.model, payload["model"], "model", checkpoint)
        if payload.get("criterion"):
            load_state(parts.criterion, payload["criterion"], "loss", checkpoint)
        saved_opts = payload.get("optimizers") or []
        if len(saved_opts) != len(self.optimizers):
            raise CheckpointError(f"{checkpoint} holds {len(saved_opts)} optimiser state(s) but this run uses {len(self.optimizers)}")
        for opt, saved in zip(self.optimizers, saved_opts):
            opt.load_state_dict(saved)
        if payload.get("defense") and hasattr(parts.defense, "load_state_dict"):
            parts.defense.load_state_dict(payload["defense"])
        if self.scaler is not None and payload.get("scaler"):
            self.scaler.load_state_dict(payload["scaler"])
        rng = payload.get("rng") or {}
        per_rank = rng.get("torch_ranks")
        torch_state = per_rank[info.rank] if per_rank and len(per_rank) == info.world_size else rng.get("torch")
        if torch_state is not None:
            torch.set_rng_state(torch_state)
        cuda = rng.get("cuda")
        if device.type == "cuda" and cuda and len(cuda) == info.world_size:
            torch.cuda.set_rng_state(cuda[info.rank], device)
        if rng.get("generator") is not None:
            self.generator.set_state(rng["generator"])
        state = _State(epoch=int(payload["epoch"]), step=int(payload["step"]), epoch_step=int(payload.get("epoch_step", 0)))
        epoch_loss = payload.get("epoch_loss") or {}
        if state.epoch_step > 0 and isinstance(epoch_loss.get("sum"), torch.Tensor):
            state.loss_sum = epoch_loss["sum"].to(device)
            state.loss_count = int(epoch_loss.get("count", 0))
        state.history = rundir.read_metrics(self.run_dir)
        self.state = state

    def check_finite(self) -> None:
        """Stop (NonFiniteError, every rank) once the loss or the weights became NaN/inf."""
        info, state = self.info, self.state
        local = bool(self.nonfinite) or not all(bool(torch.isfinite(p).all()) for p in self.model.parameters())
        if any(dist_util.all_gather_object(info, local) if info.enabled else [local]):
            kept = (f"the last good checkpoint (step {self.saved_step}) is kept" if self.saved_step is not None
                    else "no checkpoint was written yet")
            raise NonFiniteError(f"training diverged: the loss or weights became NaN/inf by step {state.step} "
                                 f"(epoch {state.epoch + 1}); {kept}; start a new run with a lower --lr or check the data")

    # -- the loop

    def start(self, resume: bool, run_section: dict[str, Any] | None) -> None:
        """Restore a resumed run, or write a fresh run's config.json; then check the disk can hold the checkpoints."""
        config, info = self.config, self.info
        if resume:
            self.restore()
            self.saved_step = self.state.step
        elif info.is_main:
            settings = self.defense.settings() if hasattr(self.defense, "settings") else None
            rundir.write_config(self.run_dir, config, device=str(self.device), world_size=info.world_size, defense_settings=settings,
                                run=run_section)
        if info.is_main:  # a read-only folder failed at config.json above; a full disk fails here, before any epoch
            check_free_space(self.run_dir, checkpoint_bytes(self.model, self.criterion) * (1 + (config.epochs if config.keep_epochs else 0)),
                             "this run's checkpoints")

    def step_module(self) -> nn.Module:
        """The model in training mode (BatchNorm frozen, compiled as asked) inside the one module a step calls (DDP-wrapped)."""
        config, model, device = self.config, self.model, self.device
        model.train()
        if config.freeze_bn and not getattr(self.defense, "trains_batchnorm", False):
            freeze_batchnorm(model.backbone)
        if config.compile:
            # in place (nn.Module.compile): parameter names and checkpoints stay as without it;
            # the defense's inner PGD forwards and input gradients go through the compiled graph
            model.backbone.compile()
        step_module: nn.Module = _Step(model, self.criterion, self.defense)
        if self.info.enabled:
            from torch.nn.parallel import DistributedDataParallel  # lazy: torch.distributed only under DDP

            step_module = DistributedDataParallel(step_module, device_ids=[device.index] if device.type == "cuda" else None)
        return step_module

    def fit(self, *, resume: bool = False, run_section: dict[str, Any] | None = None) -> TrainResult:
        """Train until ``epochs`` or ``max_steps``; validate and checkpoint after each epoch."""
        started = time.perf_counter()
        self.start(resume, run_section)
        step_module = self.step_module()
        batches = _Batches(self.parts.train_set, self.config, self.info, self.device, layout=getattr(self.parts.loss_record, "batch", "SPC-2"))
        state = self.state
        last_metrics: dict[str, float] = dict(state.history[-1]) if state.history else {}
        stop = False
        while state.epoch < self.config.epochs and not stop:
            if self.config.max_steps is not None and state.step >= self.config.max_steps:
                break
            stop, record = self.epoch(batches, step_module)
            if record is not None:
                last_metrics = record
        metrics = {k: float(v) for k, v in last_metrics.items() if k in (*METRIC_KEYS, *CLASSIFICATION_KEYS, TIES_KEY)}
        return TrainResult(run_dir=self.run_dir, metrics=metrics, seconds=time.perf_counter() - started, epochs=state.epoch, steps=state.step)

    def epoch(self, batches: _Batches, step_module: nn.Module) -> tuple[bool, dict[str, Any] | None]:
        """Train (the rest of) one epoch, validate when due, checkpoint; returns (stop, the metrics line written or None)."""
        config, state, info = self.config, self.state, self.info
        state.epoch_generator = self.generator.get_state()
        if config.milestones:
            for group in self.optimizers[0].param_groups:
                group["lr"] = learning_rate(config, state.epoch)
        plan = batches.plan(self.generator)
        skip = state.epoch_step
        total_steps = config.epochs * len(plan)
        if config.max_steps is not None:
            total_steps = min(total_steps, config.max_steps)
        if skip == 0 or state.loss_sum is None:
            state.loss_sum, state.loss_count = torch.zeros((), device=self.device), 0
        epoch_started = time.perf_counter()
        stop = self._train_steps(batches, plan, skip, step_module, total_steps)
        self.check_finite()  # before validating (NaN embeddings) or saving
        train_seconds = time.perf_counter() - epoch_started
        finished_epoch = state.epoch_step >= len(plan)
        if finished_epoch:
            state.epoch += 1
            state.epoch_step = 0
        final = state.epoch >= config.epochs or stop
        record: dict[str, Any] | None = None
        if info.is_main and (finished_epoch and state.epoch % config.validate_every == 0 or final):
            record = self._validate(train_seconds, final)
        self.save(epoch_file=config.keep_epochs)
        self.saved_step = state.step
        dist_util.barrier(info)
        return stop, record

    def _train_steps(self, batches: _Batches, plan: list[torch.Tensor], skip: int, step_module: nn.Module, total_steps: int) -> bool:
        """The optimiser steps of one epoch from step ``skip``; True when ``max_steps`` stopped it."""
        config, state, info = self.config, self.state, self.info
        scheduled = callable(getattr(self.defense, "schedule", None))
        bar = _progress(self.progress and info.is_main, len(plan), skip, f"epoch {state.epoch + 1}/{config.epochs}")
        amp = _autocast(config, self.device)
        loss_sum = state.loss_sum
        tick, tick_images = time.perf_counter(), 0
        try:
            for images, labels in batches.iterate(plan[skip:], state.epoch):
                progress = TrainingProgress(state.epoch, config.epochs, state.step, total_steps) if scheduled else None
                loss = self._step(step_module, amp, images, labels, progress)
                state.step += 1
                state.epoch_step += 1
                loss_sum += loss.detach().float()
                state.loss_count += 1
                tick_images += images.shape[0] * info.world_size
                if bar is not None and (state.epoch_step % 10 == 0 or state.epoch_step == len(plan)):
                    now = time.perf_counter()
                    postfix = {"loss": f"{float(loss.detach()):.4f}", "img/s": f"{tick_images / max(now - tick, 1e-9):.0f}"}
                    postfix.update({k: f"{v:.3g}" for k, v in getattr(self.defense, "logs", {}).items()})
                    bar.set_postfix(postfix, refresh=False)
                    bar.update(state.epoch_step - bar.n)
                    tick, tick_images = now, 0
                if config.max_steps is not None and state.step >= config.max_steps:
                    return True
                if state.step % CHECK_EVERY == 0:
                    self.check_finite()
                if config.checkpoint_every and state.step % config.checkpoint_every == 0 and state.epoch_step < len(plan):
                    self.check_finite()
                    self.save()
                    self.saved_step = state.step
        except BaseException as exc:
            # Ctrl-C or a failure inside the loop (e.g. a corrupt image in a DataLoader worker):
            # keep the steps done so far, unless the model diverged (never saved over the last
            # good checkpoint) or the save itself is what failed. The save is a collective, so
            # under DDP only an interrupt (which reaches every rank) saves from here.
            if bar is not None:
                bar.close()
                bar = None
            interrupt = isinstance(exc, KeyboardInterrupt)
            if (interrupt or not info.enabled) and not bool(self.nonfinite) and not isinstance(exc, (NonFiniteError, StorageError)) \
                    and state.step != self.saved_step:
                self.save()
            raise
        finally:
            if bar is not None:
                bar.close()
        return False

    def _step(self, step_module: nn.Module, amp: Any, images: torch.Tensor, labels: torch.Tensor,
              progress: TrainingProgress | None) -> torch.Tensor:
        """One optimiser step (scaled under a GradScaler); ``progress`` goes to a defense with a schedule first. Returns the loss."""
        self.model.train()
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=True)
        if progress is not None:
            self.defense.schedule(progress)
        with amp:
            loss = step_module(images, labels)
        if self.scaler is None:  # under a GradScaler an inf loss is a skipped step, not a divergence
            self.nonfinite |= ~torch.isfinite(loss.detach())
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            for opt in self.optimizers:
                self.scaler.step(opt)
            self.scaler.update()
        else:
            loss.backward()
            for opt in self.optimizers:
                opt.step()
        return loss

    def _validate(self, train_seconds: float, final: bool) -> dict[str, Any]:
        """Validate (rank 0), append the epoch's line to metrics.jsonl and print it; returns the line."""
        config, state, parts = self.config, self.state, self.parts
        mean_loss = float(state.loss_sum) / max(state.loss_count, 1)
        if parts.test_set is not None:
            val_started = time.perf_counter()
            try:
                metrics = validate(self.model, parts.test_set, parts.num_test_classes, config, self.device, parts.task)
            except BaseException:
                # e.g. a corrupt test image: the epoch's training is kept (the save is a
                # collective, so only a single process can do it from here)
                if not self.info.enabled:
                    self.save()
                raise
            val_seconds = time.perf_counter() - val_started
        else:
            metrics, val_seconds = {}, 0.0
        record = {"epoch": state.epoch, "step": state.step, **metrics, "train_loss": mean_loss,
                  "train_seconds": round(train_seconds, 3), "val_seconds": round(val_seconds, 3)}
        rundir.append_metrics(self.run_dir, record)
        if self.progress:
            print(f"epoch {state.epoch}: loss {mean_loss:.4f}  {format_metrics(metrics)}  "
                  f"({train_seconds:.1f} s train, {val_seconds:.1f} s validation)", flush=True)
            note = tie_note(metrics.get(TIES_KEY)) if final else None
            if note:
                print(note, flush=True)
        return record


# ------------------------------------------------------------------------------------- loop


def fit(
    config: TrainConfig,
    parts: TrainParts,
    run_dir: Path,
    *,
    resume: bool = False,
    progress: bool = True,
    info: DistInfo = dist_util.SINGLE,
    run_section: dict[str, Any] | None = None,
) -> TrainResult:
    """Train ``parts`` under a resolved ``config``; files go to ``run_dir`` (rank 0 only).

    A fresh run writes config.json first (with ``run_section``, the plan's ``run`` part).
    """
    return Trainer(config, parts, run_dir, info=info, progress=progress).fit(resume=resume, run_section=run_section)


def _needed(registry: Registry | None) -> Registry:
    """The registry a bare TrainConfig is planned against.

    ``train(TrainConfig(...))`` is a Python entry point (docs/api.md), so without one given it
    loads the installed plugins here, as the CLI and ``robrank.evaluate`` do at theirs.
    """
    if registry is None:
        from ..plugins import get_registry  # lazy: an entry point; the layers below are handed the registry

        return get_registry()
    return registry


def _progress(enabled: bool, total: int, initial: int, desc: str) -> Any:
    """A bar on a terminal; without one the epoch's summary line is the progress (robrank.progress)."""
    return progress_output.bar(enabled, total=total, initial=initial, desc=desc, unit="step", leave=False)


# --------------------------------------------------------------------------------- entry


def train(
    plan: RunPlan | TrainConfig, *, registry: Registry | None = None, resume: bool = False, progress: bool = True,
    devices: int | None = None,
) -> TrainResult:
    """Train a model as ``robrank train`` does; returns the run directory and final metrics.

    ``plan`` comes from :func:`robrank.plan.plan_training` (or ``plan_run``); a TrainConfig
    is planned here with ``resume`` against ``registry``. ``devices`` > 1 spawns that many processes (one per
    GPU, or gloo on CPU); under torchrun the process group comes from the environment.
    ``batch_size`` is per process.
    """
    started = time.perf_counter()
    if isinstance(plan, TrainConfig):
        plan = plan_training(plan, resume=resume, registry=_needed(registry))
    info = dist_util.from_env()
    if plan.resume and info.is_main:
        _record_run_section(plan)
    if devices is not None and devices > 1 and not info.enabled:
        if resolve_device(plan.config.device).type == "cuda" and torch.cuda.device_count() < devices:
            raise ConfigError(f"--devices {devices} but only {torch.cuda.device_count()} CUDA GPU(s) are visible")
        dist_util.spawn(_spawned_worker, devices, (plan.config.to_dict(), plan.resume, progress, plan.run_section()))
        history = rundir.read_metrics(plan.run_dir)
        last = history[-1] if history else {}
        metrics = {k: float(v) for k, v in last.items() if k in (*METRIC_KEYS, *CLASSIFICATION_KEYS, TIES_KEY)}
        return TrainResult(run_dir=plan.run_dir, metrics=metrics, seconds=time.perf_counter() - started,
                           epochs=int(last.get("epoch", 0)), steps=int(last.get("step", 0)))
    if info.enabled:
        # every rank must agree on the run directory (its timestamp): rank 0's plan decides
        device = resolve_device(plan.config.device, info)
        dist_util.init_process_group(info, device)
        chosen = dist_util.broadcast_object(info, plan.config.to_dict() if info.is_main else None)
        plan = plan.with_config(TrainConfig.from_dict(chosen))
    try:
        parts = build_parts(plan)
        result = fit(plan.config, parts, plan.run_dir, resume=plan.resume, progress=progress, info=info,
                     run_section=plan.run_section())
    finally:
        if info.enabled:
            dist_util.destroy_process_group()
    result.seconds = time.perf_counter() - started
    return result


def _record_run_section(plan: RunPlan) -> None:
    """A resumed ``robrank run`` on a directory whose config.json lacks (or has another) ``run`` section."""
    section = plan.run_section()
    if section is None:
        return
    saved = rundir.read_payload(plan.run_dir).get("run")
    if saved != section:
        rundir.write_config(plan.run_dir, run=section)


def _spawned_worker(
    rank: int, world_size: int, config: dict[str, Any], resume: bool, progress: bool, run_section: dict[str, Any] | None
) -> None:
    """One ``--devices`` process: the parent planned (and locked) the run, so the plan is only rebuilt.

    A new interpreter, so an entry point: it loads the installed plugins itself (the parent's
    registry holds plugin code that need not pickle).
    """
    plan = build_plan(TrainConfig.from_dict(config), get_registry(), resolved=True, resume=resume)
    info = dist_util.from_env()
    device = resolve_device(plan.config.device, info)
    dist_util.init_process_group(info, device)
    try:
        parts = build_parts(plan)
        fit(plan.config, parts, plan.run_dir, resume=resume, progress=progress, info=info, run_section=run_section)
    finally:
        dist_util.destroy_process_group()


__all__ = ["TrainResult", "TrainParts", "train", "fit", "build_parts", "validate", "embed_split", "make_optimizers", "resolve_device"]
