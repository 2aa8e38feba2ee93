"""The one ``Attack`` base class: L-infinity PGD on [0, 1] pixels against an embedding model.

The base class owns everything the attacks of the reference shared (``AdvRank.attack``):
putting the model in eval mode with frozen weights (and restoring it afterwards), the pixel
contract, projected sign-gradient descent (FGSM when ``pgditer == 1``), the clean evaluation
that fixes the query/candidate selection, the adversarial re-evaluation with the *same*
selection, and the embedding shift. A concrete attack says only three things:

* :meth:`Attack.select` — its target selection, from the clean embeddings and distances;
* :meth:`Attack.objective` — the per-sample loss it *minimises* (a ``[B]`` vector; the
  engine sums it, so one sample's gradient never depends on the rest of the batch);
* :meth:`Attack.summarize` — its per-sample metrics (``[B]`` tensors; the runner averages
  them over all attacked samples).

The PGD loop is one forward, one input-gradient and a few element-wise ops per step: no
Python loop over samples and no host synchronisation, so an attack step costs about as
much as a bare forward/backward of the model (see ``benchmarks/pgd_overhead.py``).
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from ..distances import pairwise, paired
from ..errors import ConfigError, SpecError
from . import selection
from .apgd import Judge, apgd_minimize
from .ensemble import LOSSES, OPTIMIZERS, Run, combine, runs
from .gallery import Gallery, embed
from .spec import DEFAULT_ALPHA, DEFAULT_EPS, DEFAULT_PGDITER
from .pgd import Budget, Objective, autograd_gradient, check_norm, l2_step, normalized, pgd_minimize, sign_step

SEMANTICS: tuple[str, ...] = ("reference", "fixed")


@contextlib.contextmanager
def attack_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode (BatchNorm frozen) and no weight gradients for the block; restored afterwards."""
    was_training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(was_training)


def _float64(summary: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to(torch.float64).view(-1) for k, v in summary.items()}


@dataclass
class BatchContext:
    """What an attack knows about the batch it perturbs (all tensors on the attack device).

    ``index`` are the global dataset indices of the perturbed objects (they seed the random
    selection); ``self_slot`` is each object's own slot in the gallery: the nearest clean
    gallery item under reference semantics (the reference's ``loc_self``), the true slot
    under fixed semantics. ``sel`` holds the attack's selection; ``last`` the embeddings of
    the last PGD forward pass.
    """

    gallery: Gallery
    metric: str
    labels: torch.Tensor
    index: torch.Tensor
    self_slot: torch.Tensor
    clean: torch.Tensor
    clean_dist: torch.Tensor
    seed: int
    reference: bool
    sel: dict[str, Any] = field(default_factory=dict)
    last: torch.Tensor | None = None
    #: model passes spent on this batch, per sample
    budget: Budget = field(default_factory=Budget)

    def dist(self, emb: torch.Tensor) -> torch.Tensor:
        """``[B, N]`` distances from ``emb`` to every gallery item."""
        return pairwise(emb, self.gallery.embeddings, self.metric)


@dataclass
class BatchOutcome:
    """Adversarial images and per-sample summaries (``[B]`` float64 tensors) of one batch.

    ``budget`` is the model passes spent per sample; a worst case over several searches
    also gives each member's adversarial summary (``members``) and, per success measure,
    the index of the member that won each sample (``wins``, in the order of ``members``).
    """

    adversarial: torch.Tensor
    orig: dict[str, torch.Tensor]
    adv: dict[str, torch.Tensor]
    budget: dict[str, int] = field(default_factory=dict)
    members: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    wins: dict[str, torch.Tensor] = field(default_factory=dict)


class Attack:
    """Base class of every ranking attack (see the module docstring for the contract).

    Constructor keywords are the spec fields (``eps``, ``alpha``, ``pgditer``, ``pm``, ``W``,
    ``M``; the search: ``norm`` (``inf`` or ``2``), ``opt`` (``pgd``, ``apgd`` or ``worst``),
    ``loss`` (``reference`` or ``smooth``), ``restarts``) plus run options: ``random_start``
    (uniform start in the ball, off like the reference without ``RINIT``), ``semantics``
    (``"reference"`` reproduces the reference's quirks, ``"fixed"`` corrects them;
    docs/attacks.md lists each) and ``dataset`` (the dataset name, used by SPQA's adaptive
    weight).
    """

    name: ClassVar[str] = ""
    signed: ClassVar[bool] = False
    required: ClassVar[tuple[str, ...]] = ()
    reports: ClassVar[tuple[str, ...]] = ()
    #: the objective needs the [B, N] distance matrix of the current iterate
    needs_dist: ClassVar[bool] = False

    def __init__(
        self,
        *,
        eps: float = DEFAULT_EPS,
        alpha: float = DEFAULT_ALPHA,
        pgditer: int = DEFAULT_PGDITER,
        pm: str | None = None,
        W: int | None = None,
        M: int | None = None,
        norm: float | str = math.inf,
        opt: str = "pgd",
        loss: str = "reference",
        restarts: int | None = None,
        random_start: bool = False,
        semantics: str = "reference",
        dataset: str | None = None,
    ) -> None:
        if semantics not in SEMANTICS:
            raise ConfigError(f"unknown attack semantics {semantics!r}; use reference or fixed")
        if not (math.isfinite(eps) and eps >= 0):
            raise SpecError(f"attack {self.name}: field eps must be a finite number >= 0 (got {eps!r})")
        if not (math.isfinite(alpha) and alpha >= 0):
            raise SpecError(f"attack {self.name}: field alpha must be a finite number >= 0 (got {alpha!r})")
        if int(pgditer) != pgditer or pgditer < 1:
            raise SpecError(f"attack {self.name}: field pgditer must be a whole number >= 1 (got {pgditer!r})")
        if self.signed and pm not in ("+", "-"):
            raise SpecError(f"attack {self.name}: field pm must be + or - (got {pm!r})")
        for key, value in (("W", W), ("M", M)):
            if key in self.required and (value is None or int(value) != value or value < 1):
                raise SpecError(f"attack {self.name}: field {key} must be a whole number >= 1 (got {value!r})")
        if opt not in OPTIMIZERS:
            raise SpecError(f"attack {self.name}: field opt must be one of {', '.join(OPTIMIZERS)} (got {opt!r})")
        if loss not in LOSSES:
            raise SpecError(f"attack {self.name}: field loss must be one of {', '.join(LOSSES)} (got {loss!r})")
        if restarts is not None and (int(restarts) != restarts or restarts < 1):
            raise SpecError(f"attack {self.name}: field restarts must be a whole number >= 1 (got {restarts!r})")
        if restarts is not None and restarts > 1 and opt == "pgd":
            raise SpecError(f"attack {self.name}: restarts={restarts} needs opt=apgd or opt=worst (PGD keeps its last iterate)")
        try:
            self.norm = check_norm(float(norm))
        except ValueError:
            raise SpecError(f"attack {self.name}: field norm must be inf or 2 (got {norm!r})") from None
        self.opt, self.loss = opt, loss
        self.restarts = None if restarts is None else int(restarts)
        self.eps, self.alpha, self.pgditer = float(eps), float(alpha), int(pgditer)
        self.pm, self.W, self.M = pm, (int(W) if W is not None else None), (int(M) if M is not None else None)
        self.random_start = bool(random_start)
        self.semantics = semantics
        self.dataset = dataset

    @property
    def reference(self) -> bool:
        return self.semantics == "reference"

    @property
    def label(self) -> str:
        return f"{self.name}{self.pm or ''}"

    def __repr__(self) -> str:
        fields = [f"pm={self.pm}"] if self.pm else []
        fields += [f"W={self.W}"] if self.W is not None else []
        fields += [f"M={self.M}"] if self.M is not None else []
        fields += [f"eps={self.eps:g}", f"alpha={self.alpha:g}", f"pgditer={self.pgditer}"]
        fields += [] if self.norm == math.inf else [f"norm={self.norm:g}"]
        fields += [] if self.opt == "pgd" else [f"opt={self.opt}"]
        fields += [] if self.loss == "reference" else [f"loss={self.loss}"]
        fields += [] if self.restarts is None else [f"restarts={self.restarts}"]
        fields += [self.semantics]
        return f"{type(self).__name__}({', '.join(fields)})"

    # ------------------------------------------------------------------ subclass hooks

    def select(self, ctx: BatchContext) -> None:
        """Choose targets from the clean state (``ctx.clean``, ``ctx.clean_dist``) into ``ctx.sel``."""

    def objective(self, emb: torch.Tensor, ctx: BatchContext, step: int | None) -> torch.Tensor:
        """Per-sample loss ``[B]`` to minimise; ``step`` is the PGD iteration (None when evaluating)."""
        raise NotImplementedError(f"{type(self).__name__} must define objective()")

    def summarize(self, emb: torch.Tensor, dist: torch.Tensor, ctx: BatchContext, adversarial: bool) -> dict[str, torch.Tensor]:
        """Per-sample metrics ``{key: [B]}`` of embeddings ``emb`` (clean or adversarial)."""
        raise NotImplementedError(f"{type(self).__name__} must define summarize()")

    def surrogate(self, emb: torch.Tensor, ctx: BatchContext, step: int | None) -> torch.Tensor:
        """A smooth per-sample objective ``[B]`` tracking the success measure (``loss=smooth``).

        The second objective of the worst case (:mod:`robrank.attacks.surrogates` has the
        building blocks); an attack without one falls back to :meth:`objective`.
        """
        return self.objective(emb, ctx, step)

    def success(self) -> dict[str, int]:
        """The per-sample measures of this attack's success: summary key -> direction.

        +1 where a larger value is a stronger attack, -1 where a smaller one is. APGD keeps
        the iterate that is strongest on them (in order, the objective breaking ties), and
        the worst case over several searches keeps, per sample and per measure, the
        strongest value; each ERS column reads one of them. Empty: judge by the objective.
        """
        return {}

    def gradient(self, objective: Objective, x: torch.Tensor, step: int, budget: Budget) -> tuple[torch.Tensor, torch.Tensor]:
        """The gradient the search descends: white-box autograd; a black-box estimator overrides it."""
        return autograd_gradient(objective, x, step, budget)

    def runs(self) -> tuple[Run, ...]:
        """The searches this attack performs: one, or the members of ``opt=worst``."""
        return runs(self.opt, self.loss, self.pgditer, self.restarts)

    def step(self, x: torch.Tensor, grad: torch.Tensor, state: dict[str, Any], step_size: float) -> torch.Tensor:
        """One descent step on the objective, before the projection onto the ε-ball and [0, 1].

        The default is the reference's sign step ``x - step_size * sign(grad)`` (with
        ``norm=2``: ``x - step_size * grad / ‖grad‖₂``). Override it
        for another update rule (momentum as in MI-FGSM, ...) without copying the PGD loop:
        ``state`` is a dict that lives for one batch's PGD run (empty at its first step);
        random start, projection, clamping and bookkeeping stay in :meth:`perturb`. Runs
        under ``torch.no_grad``; ``grad`` is ``[B, C, H, W]`` and each sample's row depends on
        that sample only, which an override must preserve.
        """
        return sign_step(x, grad, state, step_size) if self.norm == math.inf else l2_step(x, grad, state, step_size)

    # ------------------------------------------------------------------ engine

    def context(
        self,
        model: nn.Module,
        gallery: Gallery,
        images: torch.Tensor,
        labels: torch.Tensor,
        index: torch.Tensor,
        *,
        seed: int = 0,
        self_slot: torch.Tensor | None = None,
    ) -> BatchContext:
        """Clean evaluation of the batch plus the attack's selection."""
        device = images.device
        with torch.no_grad():
            if self_slot is not None:
                # the clean embedding of a gallery member *is* its gallery row: reusing it skips
                # a forward pass and makes ties with the own slot exact, whatever the batch size
                self_slot = self_slot.to(device=device, dtype=torch.int64)
                clean = gallery.embeddings[self_slot]
            else:
                clean = embed(model, images).detach()
            clean_dist = pairwise(clean, gallery.embeddings, gallery.metric)
        slot = clean_dist.argmin(dim=1) if (self.reference or self_slot is None) else self_slot
        ctx = BatchContext(
            gallery=gallery,
            metric=gallery.metric,
            labels=labels.to(device).view(-1),
            index=index.to(device=device, dtype=torch.int64).view(-1),
            self_slot=slot,
            clean=clean,
            clean_dist=clean_dist,
            seed=int(seed),
            reference=self.reference,
        )
        with torch.no_grad():
            self.select(ctx)
        return ctx

    def random_point(self, x0: torch.Tensor, ctx: BatchContext, stream: int) -> torch.Tensor:
        """A reproducible random point of the ball around ``x0`` (per-sample hashes of ``stream``).

        L∞: uniform in [-ε, ε] per pixel; L2: uniform direction (Gaussian from Box-Muller) at
        radius ε. Then clamped to [0, 1].
        """
        size = x0[0].numel()
        if self.norm == math.inf:
            noise = selection.uniform(ctx.seed, stream, ctx.index, size).to(x0.dtype).view_as(x0)
            return (x0 + self.eps * (2.0 * noise - 1.0)).clamp_(0.0, 1.0)
        u = selection.uniform(ctx.seed, stream, ctx.index, 2 * size)
        radius = torch.sqrt(-2.0 * torch.log1p(-u[:, :size]))  # 1 - u lies in (0, 1]
        gauss = (radius * torch.cos(2.0 * math.pi * u[:, size:])).to(x0.dtype).view_as(x0)
        return (x0 + self.eps * normalized(gauss)).clamp_(0.0, 1.0)

    def judge(self, ctx: BatchContext) -> Judge | None:
        """APGD's judge: :meth:`success` of the last evaluated iterate as ``[B, K]``, lower = stronger."""
        success = self.success()
        if not success:
            return None

        def judge() -> torch.Tensor:
            emb = ctx.last
            summary = self.summarize(emb, ctx.dist(emb), ctx, adversarial=True)
            if "embshift" in success:
                summary["embshift"] = paired(emb, ctx.clean, ctx.metric)
            return torch.stack([-direction * summary[key].to(torch.float64) for key, direction in success.items()], dim=1)

        return judge

    def perturb(self, model: nn.Module, images: torch.Tensor, ctx: BatchContext, run: Run | None = None) -> torch.Tensor:
        """One search (``run``, this attack's own by default) on its objective; returns the adversarial images.

        PGD returns its last iterate with this attack's ``step``; APGD its best iterate by
        :meth:`success`. Random start, restarts' starts, projection, clamping and the
        budget (``ctx.budget``) are handled here and in the loops.
        """
        run = run or self.runs()[0]
        x0 = images.detach()
        start = None
        if self.random_start and self.eps > 0:
            start = self.random_point(x0, ctx, selection.STREAM_START)
        loss = self.objective if run.loss == "reference" else self.surrogate

        def objective(x: torch.Tensor, step: int) -> torch.Tensor:
            emb = embed(model, x)
            ctx.last = emb.detach()  # the reference's embshift reads this last forward
            return loss(emb, ctx, step)

        if run.opt == "pgd":
            return pgd_minimize(
                objective, x0, eps=self.eps, alpha=self.alpha, steps=run.steps, start=start, update=self.step,
                norm=self.norm, gradient=self.gradient, budget=ctx.budget,
            )
        best = apgd_minimize(
            objective, x0, eps=self.eps, steps=run.steps, norm=self.norm, start=start, restarts=run.restarts,
            starts=lambda r: self.random_point(x0, ctx, selection.STREAM_RESTART + r),
            judge=self.judge(ctx), gradient=self.gradient, budget=ctx.budget,
        )
        ctx.last = None  # the result is the best iterate, not the last forward: measure it
        return best.x

    def embshift(self, adv_emb: torch.Tensor, ctx: BatchContext) -> torch.Tensor:
        """Per-sample embedding shift; the reference measured the last PGD forward, not the result."""
        shifted = ctx.last if (self.reference and ctx.last is not None) else adv_emb
        return paired(shifted, ctx.clean, ctx.metric).to(torch.float64)

    def __call__(
        self,
        model: nn.Module,
        gallery: Gallery,
        images: torch.Tensor,
        labels: torch.Tensor,
        index: torch.Tensor,
        *,
        seed: int = 0,
        self_slot: torch.Tensor | None = None,
    ) -> BatchOutcome:
        """Attack one batch: clean summary, PGD, adversarial summary (model state restored)."""
        if model.metric != gallery.metric:
            raise ConfigError(f"the gallery was embedded for metric {gallery.metric} but the model uses {model.metric}")
        with attack_mode(model):
            ctx = self.context(model, gallery, images, labels, index, seed=seed, self_slot=self_slot)
            with torch.no_grad():
                orig = _float64(self.summarize(ctx.clean, ctx.clean_dist, ctx, adversarial=False))
            members: dict[str, dict[str, torch.Tensor]] = {}
            found: list[torch.Tensor] = []
            for run in self.runs():
                ctx.last = None
                adversarial = self.perturb(model, images, ctx, run)
                with torch.no_grad():
                    adv_emb = embed(model, adversarial)
                    ctx.budget.forwards += 1
                    adv = self.summarize(adv_emb, ctx.dist(adv_emb), ctx, adversarial=True)
                    adv["embshift"] = self.embshift(adv_emb, ctx)
                members[run.name] = _float64(adv)
                found.append(adversarial)
        budget = ctx.budget.as_dict()
        if len(found) == 1:
            return BatchOutcome(adversarial=found[0], orig=orig, adv=members[run.name], budget=budget)
        adversarial, adv, wins = combine(list(members.values()), found, self.success())
        return BatchOutcome(adversarial=adversarial, orig=orig, adv=adv, budget=budget, members=members, wins=wins)

    # ------------------------------------------------------------------ helpers for subclasses

    def exclude_slot(self, ctx: BatchContext) -> torch.Tensor | None:
        """The slot left out of losses and ranks: none in reference semantics, the own slot if fixed."""
        return None if ctx.reference else ctx.self_slot
