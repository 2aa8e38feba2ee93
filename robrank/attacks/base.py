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
from .gallery import Gallery, embed
from .nes import REFERENCE as NES_REFERENCE
from .nes import nes_gradient, query_count
from .spec import DEFAULT_ALPHA, DEFAULT_EPS, DEFAULT_PGDITER
from .pgd import pgd_minimize, sign_step

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


@dataclass
class BatchContext:
    """What an attack knows about the batch it perturbs (all tensors on the attack device).

    ``index`` are the global dataset indices of the perturbed objects (they seed the random
    selection); ``self_slot`` is each object's own slot in the gallery (None, like ``gallery``
    and ``clean_dist``, for an attack that uses no gallery): the nearest clean
    gallery item under reference semantics (the reference's ``loc_self``), the true slot
    under fixed semantics. ``sel`` holds the attack's selection; ``last`` the embeddings of
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
    sel: dict[str, Any] = field(default_factory=dict)
    last: torch.Tensor | None = None
    last_input: torch.Tensor | None = None

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
    """Adversarial images and per-sample summaries (``[B]`` float64 tensors) of one batch."""

    adversarial: torch.Tensor
    orig: dict[str, torch.Tensor]
    adv: dict[str, torch.Tensor]


class Attack:
    """Base class of every ranking attack (see the module docstring for the contract).

    Constructor keywords are the spec fields (``eps``, ``alpha``, ``pgditer``, ``pm``, ``W``,
    ``M``, ``nes``: black-box NES estimation instead of the input gradient) plus run options: ``random_start`` (uniform start in [-eps, eps], off like the
    reference without ``RINIT``), ``semantics`` (``"reference"`` reproduces the reference's
    quirks, ``"fixed"`` corrects them; docs/attacks.md lists each) and ``dataset`` (the
    dataset name, used by SPQA's adaptive weight).
    """

    name: ClassVar[str] = ""
    signed: ClassVar[bool] = False
    required: ClassVar[tuple[str, ...]] = ()
    reports: ClassVar[tuple[str, ...]] = ()
    #: the objective needs the [B, N] distance matrix of the current iterate
    needs_dist: ClassVar[bool] = False
    #: the attack measures against a gallery (ranking); False for attacks on a classifier's logits
    uses_gallery: ClassVar[bool] = True

    def __init__(
        self,
        *,
        eps: float = DEFAULT_EPS,
        alpha: float = DEFAULT_ALPHA,
        pgditer: int = DEFAULT_PGDITER,
        pm: str | None = None,
        W: int | None = None,
        M: int | None = None,
        nes: int | bool = 0,
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
        if nes not in (0, 1, False, True):
            raise SpecError(f"attack {self.name}: field nes must be 0 or 1 (got {nes!r})")
        if nes and int(pgditer) < 2:
            raise SpecError(f"attack {self.name}: nes=1 needs pgditer >= 2 (NES takes no single FGSM-like step; got {pgditer!r})")
        for key, value in (("W", W), ("M", M)):
            if key in self.required and (value is None or int(value) != value or value < 1):
                raise SpecError(f"attack {self.name}: field {key} must be a whole number >= 1 (got {value!r})")
        self.eps, self.alpha, self.pgditer = float(eps), float(alpha), int(pgditer)
        self.pm, self.W, self.M = pm, (int(W) if W is not None else None), (int(M) if M is not None else None)
        self.nes = bool(nes)
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
        fields += ["nes=1"] if self.nes else []
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

    def step(self, x: torch.Tensor, grad: torch.Tensor, state: dict[str, Any], step_size: float) -> torch.Tensor:
        """One descent step on the objective, before the projection onto the ε-ball and [0, 1].

        The default is the reference's sign step ``x - step_size * sign(grad)``. Override it
        for another update rule (momentum as in MI-FGSM, ...) without copying the PGD loop:
        ``state`` is a dict that lives for one batch's PGD run (empty at its first step);
        random start, projection, clamping and bookkeeping stay in :meth:`perturb`. Runs
        under ``torch.no_grad``; ``grad`` is ``[B, C, H, W]`` and each sample's row depends on
        that sample only, which an override must preserve.
        """
        return sign_step(x, grad, state, step_size)

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
                clean_dist=None, seed=int(seed), reference=self.reference,
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
        )
        with torch.no_grad():
            self.select(ctx)
        return ctx

    @property
    def queries(self) -> int | None:
        """Model forward passes per attacked image an NES attack spends (None for white-box)."""
        return query_count(self.pgditer, NES_REFERENCE) if self.nes else None

    def perturb(self, model: nn.Module, images: torch.Tensor, ctx: BatchContext) -> torch.Tensor:
        """Projected descent on ``objective`` with this attack's ``step``; returns the last iterate.

        With ``nes`` the direction is the NES estimate and the loop runs the reference's NES
        schedule (``pgditer + 1`` sign steps of 3/255); ``alpha`` is then unused.
        """
        x0 = images.detach()
        start = None
        if self.random_start and self.eps > 0:
            noise = selection.uniform(ctx.seed, selection.STREAM_START, ctx.index, x0[0].numel())
            noise = noise.to(x0.dtype).view_as(x0)
            start = (x0 + self.eps * (2.0 * noise - 1.0)).clamp_(0.0, 1.0)

        if self.nes:
            # ctx.last stays unset: the reference measured NES's embshift on the result, not a probe
            def losses(x: torch.Tensor, step: int) -> torch.Tensor:
                return self.objective(embed(model, x), ctx, step)

            gradient = nes_gradient(losses, x0, eps=self.eps, seed=ctx.seed, index=ctx.index, settings=NES_REFERENCE)
            return pgd_minimize(
                lambda x, step: losses(x, step).sum(), x0, eps=self.eps, alpha=NES_REFERENCE.step,
                steps=NES_REFERENCE.iterations(self.pgditer), start=start, update=self.step, gradient=gradient,
            )

        def objective(x: torch.Tensor, step: int) -> torch.Tensor:
            emb = embed(model, x)
            ctx.last = emb.detach()  # the reference's embshift reads this last forward
            ctx.last_input = x.detach()
            return self.objective(emb, ctx, step).sum()

        return pgd_minimize(
            objective, x0, eps=self.eps, alpha=self.alpha, steps=self.pgditer, start=start, update=self.step
        )

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
                orig = self.summarize(ctx.clean, ctx.clean_dist, ctx, adversarial=False)
            if surrogate is None:
                adversarial = self.perturb(model, images, ctx)
            else:
                with attack_mode(surrogate.model):
                    source = self.context(surrogate.model, surrogate.gallery, images, labels, index, seed=seed, self_slot=self_slot)
                    adversarial = self.perturb(surrogate.model, images, source)
                if source.last_input is not None:
                    # the reference's embshift quirk (the last PGD forward), measured on the attacked model
                    with torch.no_grad():
                        ctx.last = embed(model, source.last_input)
            with torch.no_grad():
                adv_emb = embed(model, adversarial)
                adv_dist = ctx.dist(adv_emb) if gallery is not None else None
                adv = self.summarize(adv_emb, adv_dist, ctx, adversarial=True)
                if gallery is not None:
                    adv["embshift"] = self.embshift(adv_emb, ctx)
                if self.queries is not None:
                    adv["queries"] = torch.full((images.shape[0],), float(self.queries), dtype=torch.float64, device=images.device)
        cast = lambda d: {k: v.detach().to(torch.float64).view(-1) for k, v in d.items()}  # noqa: E731
        return BatchOutcome(adversarial=adversarial, orig=cast(orig), adv=cast(adv))

    # ------------------------------------------------------------------ helpers for subclasses

    def exclude_slot(self, ctx: BatchContext) -> torch.Tensor | None:
        """The slot left out of losses and ranks: none in reference semantics, the own slot if fixed."""
        return None if ctx.reference else ctx.self_slot
