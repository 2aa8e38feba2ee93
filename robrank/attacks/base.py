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

Two options apply to every attack without any code in it: ``nes`` swaps the input gradient
for the black-box NES estimate (:mod:`robrank.attacks.nes`), and a :class:`Surrogate` runs
the selection and the optimisation on another model (a transfer attack) while the clean and
adversarial summaries are still measured on the attacked one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from ..distances import pairwise, paired
from ..errors import ConfigError
from ..models.modes import attack_mode, embed
from ..params import REQUIRED
from ..records import TASK_CLASSIFICATION
from ..semantics import REFERENCE, check_semantics
from ..summaries import EMBSHIFT, QUERIES
from . import selection
from .apgd import Best, Judge, apgd_minimize
from .declaration import AttackDeclaration
from .defaults import PM
from .ensemble import Run, combine, runs
from .gallery import Gallery
from .nes import REFERENCE as NES_REFERENCE
from .nes import nes_gradient, query_count
from .pgd import Budget, check_norm, l2_step, normalized, pgd_minimize, sign_step

#: keys the engine adds to summaries itself (an attack's ``reports`` may list them)
ENGINE_KEYS = frozenset({EMBSHIFT, QUERIES})


def _float64(summary: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to(torch.float64).view(-1) for k, v in summary.items()}


@dataclass
class Selection:
    """An attack's choice of targets for one batch, made once from the clean state.

    Each attack subclasses it (a dataclass) with the fields its :meth:`Attack.select` fills
    and its objective and summaries read, and names the subclass in :attr:`Attack.selection`;
    the engine gives every batch a fresh one as ``ctx.sel``. Fields default to None (not
    chosen yet), so an attack may also fill one on first use. An attack that perturbs a
    candidate (``perturbs = "candidate"``) has a ``queries`` field: the ``[B, W]`` gallery
    slots of the queries whose rankings it moves (``robrank show`` draws the first).
    """


@dataclass
class BatchContext:
    """What an attack knows about the batch it perturbs (all tensors on the attack device).

    ``index`` are the global dataset indices of the perturbed objects (they seed the random
    selection); ``self_slot`` is each object's own slot in the gallery (None, like ``gallery``
    and ``clean_dist``, for an attack that uses no gallery): the nearest clean
    gallery item under reference semantics (the reference's ``loc_self``), the true slot
    under fixed semantics. ``sel`` holds the attack's selection (its :attr:`Attack.selection`
    dataclass); ``last`` the embeddings of
    the last PGD forward pass and ``last_input`` the images it embedded.
    """

    gallery: Gallery | None
    metric: str
    labels: torch.Tensor
    index: torch.Tensor
    self_slot: torch.Tensor | None
    clean: torch.Tensor
    clean_dist: torch.Tensor | None
    seed: int
    reference: bool
    sel: Selection = field(default_factory=Selection)
    last: torch.Tensor | None = None
    last_input: torch.Tensor | None = None
    #: model passes spent on this batch, per sample
    budget: Budget = field(default_factory=Budget)

    def dist(self, emb: torch.Tensor) -> torch.Tensor:
        """``[B, N]`` distances from ``emb`` to every gallery item."""
        return pairwise(emb, self.gallery.embeddings, self.metric)


@dataclass
class Surrogate:
    """The model a transfer attack optimises against, with its own clean gallery of the same split.

    Any module with a ``metric`` and an ``embed`` (or a forward whose output the metric
    normalises) works: a trained run, or an external model wrapped the same way.
    """

    model: nn.Module
    gallery: Gallery | None


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


class Attack(AttackDeclaration):
    """Base class of every ranking attack (see the module docstring for the contract).

    The class is the single source of what the attack is: its declared fields (``name``,
    ``params``, ``reports``, ``display``, ``bounds``, ...) come from
    :class:`~robrank.attacks.declaration.AttackDeclaration`, the torch-free half it inherits
    (an attack may declare them on a declaration class of its own, so listing it imports no
    torch). Its registry record is derived from these
    (:meth:`robrank.records.AttackRecord.of`), and the spec grammar validates every field
    against ``params`` once, so the constructor receives clean values.

    The shared fields include the search (docs/autoattack.md): ``norm`` (``inf`` or ``2``),
    ``opt`` (``pgd``, ``apgd`` or ``worst``), ``loss`` (``reference`` or ``smooth``) and
    ``restarts``; all four are implicit, so the reference's specs keep their text.

    Constructor keywords are the spec fields (defaults filled in from ``params``) plus run
    options: ``random_start`` (uniform start in the ball, off like the reference without
    ``RINIT``) and ``semantics`` (``"reference"`` reproduces the reference's quirks,
    ``"fixed"`` corrects them; docs/attacks.md lists each).
    """

    #: the dataclass :meth:`select` fills, one per batch (``ctx.sel``)
    selection: ClassVar[type[Selection]] = Selection

    eps: float
    alpha: float
    pgditer: int
    nes: bool
    norm: str
    opt: str
    loss: str
    restarts: int | None

    def __init__(self, *, semantics: str = REFERENCE, random_start: bool = False, **values: Any) -> None:
        for param in self.parameters():
            value = values.pop(param.name, param.default)
            if value is REQUIRED:
                raise TypeError(f"{type(self).__name__} needs the spec field {param.name} ({param.describe()})")
            setattr(self, param.name, value)
        if values:
            raise TypeError(f"{type(self).__name__} takes no spec field {', '.join(sorted(values))}")
        self.check_values({param.name: getattr(self, param.name) for param in self.parameters()})  # as a spec would be
        self.random_start = bool(random_start)
        self.semantics = check_semantics(semantics)

    @property
    def lp(self) -> float:
        """The threat model's norm as a number: ``math.inf`` or 2.0."""
        return check_norm(math.inf if self.norm == "inf" else float(self.norm))

    @property
    def reference(self) -> bool:
        return self.semantics == REFERENCE

    @property
    def label(self) -> str:
        return f"{self.name}{getattr(self, PM.name, None) or ''}"

    def __repr__(self) -> str:
        fields = []
        for param in self.parameters():
            value = getattr(self, param.name)
            if value is None or (param.implicit and value == param.default):
                continue
            text = f"{value:g}" if isinstance(value, float) else param.format(value)
            fields.append(f"{param.name}={text}")
        return f"{type(self).__name__}({', '.join([*fields, self.semantics])})"

    def distance_width(self) -> int:
        """How many [B, N] distance rows one sample of this attack holds (for the batch-size estimate)."""
        return 6

    # ------------------------------------------------------------------ subclass hooks

    def select(self, ctx: BatchContext) -> None:
        """Choose targets from the clean state (``ctx.clean``, ``ctx.clean_dist``) into ``ctx.sel`` (a :attr:`selection`)."""

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
        return sign_step(x, grad, state, step_size) if self.lp == math.inf else l2_step(x, grad, state, step_size)

    # ------------------------------------------------------------------ engine

    def context(
        self,
        model: nn.Module,
        gallery: Gallery | None,
        images: torch.Tensor,
        labels: torch.Tensor,
        index: torch.Tensor,
        *,
        seed: int = 0,
        self_slot: torch.Tensor | None = None,
    ) -> BatchContext:
        """Clean evaluation of the batch plus the attack's selection."""
        device = images.device
        if gallery is None:
            with torch.no_grad():
                clean = embed(model, images).detach()
            ctx = BatchContext(
                gallery=None, metric=model.metric, labels=labels.to(device).view(-1),
                index=index.to(device=device, dtype=torch.int64).view(-1), self_slot=None, clean=clean,
                clean_dist=None, seed=int(seed), reference=self.reference, sel=self.selection(),
            )
            with torch.no_grad():
                self.select(ctx)
            return ctx
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
            sel=self.selection(),
        )
        with torch.no_grad():
            self.select(ctx)
        return ctx

    @property
    def uses_gallery(self) -> bool:
        """Whether the attack measures against a gallery: every attack but those on a classifier's logits."""
        return self.task != TASK_CLASSIFICATION

    @property
    def queries(self) -> int | None:
        """Model forward passes per attacked image an NES attack spends (None for white-box)."""
        return query_count(self.pgditer, NES_REFERENCE) if self.nes else None

    def random_point(self, x0: torch.Tensor, ctx: BatchContext, stream: int) -> torch.Tensor:
        """A reproducible random point of the ball around ``x0`` (per-sample hashes of ``stream``).

        L∞: uniform in [-ε, ε] per pixel; L2: uniform direction (Gaussian from Box-Muller) at
        radius ε. Then clamped to [0, 1].
        """
        size = x0[0].numel()
        if self.lp == math.inf:
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
            dist = ctx.dist(emb) if self.uses_gallery else None
            summary = self.summarize(emb, dist, ctx, adversarial=True)
            if EMBSHIFT in success:
                summary[EMBSHIFT] = paired(emb, ctx.clean, ctx.metric)
            return torch.stack([-direction * summary[key].to(torch.float64) for key, direction in success.items()], dim=1)

        return judge

    def perturb(self, model: nn.Module, images: torch.Tensor, ctx: BatchContext, run: Run | None = None) -> torch.Tensor:
        """One search (``run``, this attack's own by default) on its objective; returns the adversarial images.

        PGD returns its last iterate with this attack's ``step``; APGD its best iterate by
        :meth:`success`; with ``restarts`` > 1 either keeps, per sample, the best of its runs
        by :meth:`success` (a PGD run is judged at its last iterate). Random start, restarts'
        starts, projection, clamping and the budget (``ctx.budget``) are handled here and in
        the loops. With ``nes`` the direction is the NES estimate and the loop runs the
        reference's NES schedule (``pgditer + 1`` sign steps of 3/255; ``alpha`` unused).
        """
        run = run or self.runs()[0]
        x0 = images.detach()
        start = None
        if self.random_start and self.eps > 0:
            start = self.random_point(x0, ctx, selection.STREAM_START)
        loss = self.objective if run.loss == "reference" else self.surrogate

        if self.nes:  # check_values kept apgd, worst and restarts away
            # ctx.last stays unset: the reference measured NES's embshift on the result, not a probe
            def losses(x: torch.Tensor, step: int) -> torch.Tensor:
                return loss(embed(model, x), ctx, step)

            gradient = nes_gradient(losses, x0, eps=self.eps, seed=ctx.seed, index=ctx.index, settings=NES_REFERENCE, norm=self.lp)
            x = pgd_minimize(
                lambda x, step: losses(x, step).sum(), x0, eps=self.eps, alpha=NES_REFERENCE.step,
                steps=NES_REFERENCE.iterations(run.steps), start=start, update=self.step, gradient=gradient, norm=self.lp,
            )
            ctx.budget.forwards += query_count(run.steps, NES_REFERENCE)
            return x

        def objective(x: torch.Tensor, step: int) -> torch.Tensor:
            emb = embed(model, x)
            ctx.last = emb.detach()  # the reference's embshift reads this last forward
            ctx.last_input = x.detach()
            return loss(emb, ctx, step)

        def starts(r: int) -> torch.Tensor:
            return self.random_point(x0, ctx, selection.STREAM_RESTART + r)

        if run.opt == "apgd":
            best = apgd_minimize(
                objective, x0, eps=self.eps, steps=run.steps, norm=self.lp, start=start, restarts=run.restarts,
                starts=starts, judge=self.judge(ctx), budget=ctx.budget,
            )
            ctx.last = ctx.last_input = None  # the result is the best iterate, not the last forward: measure it
            return best.x
        found: Best | None = None
        judge = self.judge(ctx)
        for r in range(run.restarts):
            x = pgd_minimize(
                objective, x0, eps=self.eps, alpha=self.alpha, steps=run.steps, start=start if r == 0 else starts(r),
                update=self.step, norm=self.lp, budget=ctx.budget,
            )
            if run.restarts == 1:
                return x  # the reference: the last iterate, and ctx.last its last forward
            with torch.no_grad():  # restarts: judge each run's last iterate, keep the best per sample
                key = objective(x, None).detach().view(-1, 1).to(torch.float64)
                ctx.budget.forwards += 1
                if judge is not None:
                    key = torch.cat([judge().to(torch.float64), key], dim=1)
            if found is None:
                found = Best(x, key)
            else:
                found.update(x, key)
        ctx.last = ctx.last_input = None
        assert found is not None
        return found.x

    def embshift(self, adv_emb: torch.Tensor, ctx: BatchContext) -> torch.Tensor:
        """Per-sample embedding shift; the reference measured the last PGD forward, not the result."""
        shifted = ctx.last if (self.reference and ctx.last is not None) else adv_emb
        return paired(shifted, ctx.clean, ctx.metric).to(torch.float64)

    def __call__(
        self,
        model: nn.Module,
        gallery: Gallery | None,
        images: torch.Tensor,
        labels: torch.Tensor,
        index: torch.Tensor,
        *,
        seed: int = 0,
        self_slot: torch.Tensor | None = None,
        surrogate: Surrogate | None = None,
    ) -> BatchOutcome:
        """Attack one batch: clean summary, PGD, adversarial summary (model state restored).

        With a ``surrogate`` the selection and the optimisation run on the surrogate model
        (its own clean context, same seed), and the resulting images are summarised on
        ``model`` with ``model``'s own selection: a transfer attack. A surrogate identical to
        the model gives exactly the white-box result. An attack that uses no gallery gets
        ``gallery=None`` (and a surrogate without one).
        """
        if self.uses_gallery != (gallery is not None):
            raise ConfigError(f"attack {self.name} {'needs' if self.uses_gallery else 'takes no'} gallery")
        if gallery is not None and model.metric != gallery.metric:
            raise ConfigError(f"the gallery was embedded for metric {gallery.metric} but the model uses {model.metric}")
        if surrogate is not None and surrogate.gallery is not None and surrogate.model.metric != surrogate.gallery.metric:
            raise ConfigError(
                f"the surrogate gallery was embedded for metric {surrogate.gallery.metric} but the surrogate uses {surrogate.model.metric}"
            )
        with attack_mode(model):
            ctx = self.context(model, gallery, images, labels, index, seed=seed, self_slot=self_slot)
            with torch.no_grad():
                orig = _float64(self.summarize(ctx.clean, ctx.clean_dist, ctx, adversarial=False))
            source = ctx
            if surrogate is not None:
                with attack_mode(surrogate.model):
                    source = self.context(surrogate.model, surrogate.gallery, images, labels, index, seed=seed, self_slot=self_slot)
                source.budget = ctx.budget  # one account for the batch, whichever model spends it
            members: dict[str, dict[str, torch.Tensor]] = {}
            found: list[torch.Tensor] = []
            for run in self.runs():
                ctx.last = source.last = source.last_input = None
                if surrogate is None:
                    adversarial = self.perturb(model, images, ctx, run)
                else:
                    with attack_mode(surrogate.model):
                        adversarial = self.perturb(surrogate.model, images, source, run)
                    if source.last_input is not None:
                        # the reference's embshift quirk (the last PGD forward), measured on the attacked model
                        with torch.no_grad():
                            ctx.last = embed(model, source.last_input)
                with torch.no_grad():
                    adv_emb = embed(model, adversarial)
                    ctx.budget.forwards += 1
                    adv = self.summarize(adv_emb, ctx.dist(adv_emb) if gallery is not None else None, ctx, adversarial=True)
                    own = set(orig) | set(adv)
                    if gallery is not None:
                        adv[EMBSHIFT] = self.embshift(adv_emb, ctx)
                    if self.queries is not None:
                        adv[QUERIES] = torch.full((images.shape[0],), float(self.queries), dtype=torch.float64, device=images.device)
                declared = set(self.reports) - ENGINE_KEYS
                if self.reports and own - ENGINE_KEYS != declared:
                    raise ConfigError(
                        f"attack {self.name} reports {sorted(own)} but declares reports={sorted(self.reports)}; "
                        "make its summarize() and its reports agree"
                    )
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
