"""CA-TRIDE, Collapse-Aware TRIplet DEcoupling (Tian et al., ICML 2024), as its released code does it.

Two inner attacks alternate, one per training step (CAP on steps 0, 2, 4, ...; ANP on 1, 3, ...):

* **CAP** perturbs the positive and negative images together against the benign anchors,
  minimising ReLU(M_λ(d_an) − M_λ(d_ap)); the outer loss is triplet(f(a), f(p′), f(n′)).
* **ANP** perturbs the anchor images only, minimising ReLU(M_λ(d_ap) − M_λ(d_an)) +
  g · ReLU(H_an − D_aa); the outer loss is triplet(f(a′), f(p), f(n)).

Both use signed-gradient descent without random start, L∞ projection and a [0, 1] clamp,
stop as soon as the inner loss is below 1e-5 (checked before each step), and take steps of
α · r where r is the training progress (e/E in the code, so the first epoch trains on clean
images). Triplets come from the gradually-hard semihard miner on the benign embeddings. The
formulas are in :mod:`robrank_catride.objectives`; docs/defenses.md lists what differs from
the released code and why.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from robrank.plugin_api import (
    AdversarialDefense,
    TrainingProgress,
    check_family,
    check_metric_in,
    embed_for_metric,
    inner_eval,
    paired,
)

from .fields import CATRIDEDeclaration
from .miner import GraduallyHardMiner
from .objectives import (
    anp_loss,
    cap_loss,
    collapse_gap,
    epoch_fraction,
    extra_triplet_term,
    inner_step_size,
    step_fraction,
)

#: the two phases, in the order the released code runs them
PHASES: tuple[str, str] = ("cap", "anp")


def signed_descent(
    objective: Callable[[torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    *,
    eps: float,
    step: float,
    iterations: int,
    stop_below: float,
    history: list[float] | None = None,
) -> tuple[torch.Tensor, int]:
    """Minimise ``objective`` by sign steps in the L∞ ball of ``x0`` clamped to [0, 1].

    Returns (last iterate, gradient evaluations). The loss is checked against
    ``stop_below`` before each step, as the released code does, so an objective already
    met costs one forward and no gradient. A step of 0 (the first epoch under the step
    decay) returns ``x0`` without running the loop: the released code runs it and gets
    the same images. ``history`` receives the loss before each step.
    """
    x0 = x0.detach()
    x = x0.clone()
    grads = 0
    if step <= 0.0:
        return x, grads
    for _ in range(iterations):
        x.requires_grad_(True)
        value = objective(x)
        if history is not None:
            history.append(float(value.detach()))
        if float(value.detach()) < stop_below:
            break
        (grad,) = torch.autograd.grad(value, x)
        grads += 1
        with torch.no_grad():
            x = x.detach() - step * grad.sign()
            x = torch.min(torch.max(x, x0 - eps), x0 + eps).clamp_(0.0, 1.0)
    return x.detach(), grads


class CATRIDE(CATRIDEDeclaration, AdversarialDefense):
    """CAP and ANP alternating per step, soft-max-weighted triplet distances, the ghard miner.

    Its name, options and budgets are declared on :class:`~robrank_catride.fields.CATRIDEDeclaration`.
    """

    trains_batchnorm = False

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.miner: GraduallyHardMiner | None = None
        self.fraction = 0.0
        #: training steps taken: its parity picks the phase (the code's global flag)
        self.steps_done = 0
        #: the last inner attack's loss before each of its steps
        self.inner_history: list[float] = []
        self.logs = {}

    def check(self, loss_record: Any, metric: str) -> None:
        check_metric_in(self.name, metric, ("N",))
        check_family(self.name, loss_record, ("triplet",))

    # -- schedule and state ------------------------------------------------------------------

    def schedule(self, progress: TrainingProgress) -> None:
        if self.options["schedule"] == "epoch":
            self.fraction = epoch_fraction(progress.epoch, progress.epochs)
        else:
            self.fraction = step_fraction(progress.step, progress.total_steps)
        self.steps_done = progress.step

    @property
    def phase(self) -> str:
        return PHASES[self.steps_done % 2]

    @property
    def step_size(self) -> float:
        return inner_step_size(self.alpha, self.fraction, self.options["step_decay"])

    def state_dict(self) -> dict[str, Any]:
        return {"steps_done": self.steps_done, "fraction": self.fraction}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps_done = int(state.get("steps_done", 0))
        self.fraction = float(state.get("fraction", 0.0))

    def _mine(self, criterion: nn.Module, embedded: torch.Tensor, labels: torch.Tensor) -> Any:
        if self.miner is None:
            generator = getattr(getattr(criterion, "miner", None), "generator", None)
            self.miner = GraduallyHardMiner("N", generator=generator)
        self.miner.progress = self.fraction
        return self.miner(embedded, labels)

    # -- the inner attacks -------------------------------------------------------------------

    def _descend(self, objective: Callable[[torch.Tensor], torch.Tensor], x0: torch.Tensor) -> tuple[torch.Tensor, int]:
        self.inner_history = []
        return signed_descent(objective, x0, eps=self.eps, step=self.step_size, iterations=self.pgditer,
                              stop_below=float(self.options["stop_below"]), history=self.inner_history)

    def perturb_candidates(self, model: nn.Module, anchors: torch.Tensor, positives: torch.Tensor,
                           negatives: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
        """CAP: positives and negatives moved together; ``anchors`` are benign embeddings (fixed)."""
        count = anchors.shape[0]
        lam = float(self.options["lam"])

        def objective(x: torch.Tensor) -> torch.Tensor:
            e = embed_for_metric(model(x), "N")
            return cap_loss(paired(anchors, e[:count], "N"), paired(anchors, e[count:], "N"), lam)

        both, grads = self._descend(objective, torch.cat([positives, negatives]))
        return both[:count], both[count:], grads

    def perturb_anchors(self, model: nn.Module, anchors: torch.Tensor, benign_anchors: torch.Tensor,
                        positives: torch.Tensor, negatives: torch.Tensor) -> tuple[torch.Tensor, int]:
        """ANP: anchor images moved; ``benign_anchors``, ``positives``, ``negatives`` are fixed embeddings."""
        lam = float(self.options["lam"])

        def objective(x: torch.Tensor) -> torch.Tensor:
            e = embed_for_metric(model(x), "N")
            return anp_loss(paired(e, positives, "N"), paired(e, negatives, "N"), paired(e, benign_anchors, "N"), lam)

        return self._descend(objective, anchors)

    # -- one training step -------------------------------------------------------------------

    def loss(self, model: nn.Module, criterion: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        phase = self.phase
        with inner_eval(model):
            with torch.no_grad():
                benign = embed_for_metric(model(images), "N")
            anc, pos, neg = self._mine(criterion, benign, labels)
            if phase == "cap":
                adv_p, adv_n, grads = self.perturb_candidates(model, benign[anc], images[pos], images[neg])
                batch = torch.cat([images[anc], adv_p, adv_n])
            else:
                adv_a, grads = self.perturb_anchors(model, images[anc], benign[anc], benign[pos], benign[neg])
                batch = torch.cat([adv_a, images[pos], images[neg]])
        count = anc.numel()
        emb = embed_for_metric(model(batch), "N")
        a, p, n = emb[:count], emb[count : 2 * count], emb[2 * count :]
        loss = criterion.raw(a, p, n)
        with torch.no_grad():  # logged only, as the released code's benign loss
            loss_benign = criterion.raw(benign[anc], benign[pos], benign[neg])
            gap = collapse_gap(paired(a, p, "N"), paired(a, n, "N"), float(self.options["lam"]))
        if self.options["extra_term"]:
            loss = loss + extra_triplet_term(paired(a, p, "N"), paired(a, n, "N"))
        self.steps_done += 1
        self.logs = {
            "loss_benign": float(loss_benign),
            "loss_adv": float(loss.detach()),
            "collapse_gap": float(gap),
            "inner_grads": float(grads),
            "cap": float(phase == "cap"),
        }
        if self.inner_history:  # no inner attack ran while the step size is 0
            self.logs["inner_loss"] = self.inner_history[-1]
        return loss
