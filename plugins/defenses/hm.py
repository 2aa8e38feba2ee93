"""HM, Hardness Manipulation (CVPR'22; reference ``defenses/amd.py::hm_training_step``).

1. Benign embeddings (eval, no gradient, normalised) → *source* triplets from sampler
   ``src`` and *destination* triplets from sampler ``dest``.
2. Destination hardness H_D: the destination triplets' hardness, or with the gradual
   adversary g_LGA (``gradual``, default) −0.2 · clamp(ℓ_{t−1}, 0, 0.2)/0.2 from the previous
   step's adversarial loss ℓ_{t−1} (2.0 before the first step).
3. PGD on the source triplets' (a, p, n) images minimising the alignment objective
   (``method`` et: mean(min(0, H_S − H_D)²)); stops early once the objective changes by
   less than 1e-7; no perturbation at all when ``src`` and ``dest`` name the same sampler.
4. Loss = raw(ã, p̃, ñ) (triplet margin 0.2 for ptripletN) and, with ICS, + λ · raw(a, ã, p;
   margin 0) on benign train-mode anchors and positives.

Defaults are HM[S, g_LGA] of the paper (reference model ``ghmetsm``): source softhard,
destination semihard, gradual adversary on, ICS off; ``ics=True`` gives HM[S, g_LGA]&ICS
(``ghmetsmi``), the README's "HM" rows.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from robrank.plugin_api import (
    GA_INITIAL_LOSS,
    METHODS,
    AdversarialDefense,
    ConfigError,
    Registry,
    UnknownNameError,
    alignment,
    build_miner,
    check_family,
    check_metric_in,
    embed_for_metric,
    gradual_destination,
    hardness,
    inner_eval,
    miner_name,
    pgd_minimize,
)

from . import FAMILIES
from .declarations import HMDeclaration

#: the miner margin the reference used for HM's samplers with metric N (triplet margin_cosine)
HM_MINER_MARGIN = 0.2
#: HM's saturation stop: the objective changed by less than this between two steps
EARLY_STOP = 1e-7


#: the reference's HM model names (``ghmet<src><dest>``) spell the letterless (random) miner ``r``
REFERENCE_RANDOM_LETTER = "r"


def _letterless(name: str) -> str:
    return "" if name == REFERENCE_RANDOM_LETTER else name


class HM(HMDeclaration, AdversarialDefense):
    """Hardness manipulation with the gradual adversary and optional intra-class structure term."""

    trains_batchnorm = False

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        opts = self.options
        opts["ics_lambda"] = float(opts["ics_lambda"])
        opts["method"] = str(opts["method"]).lower()
        if opts["method"] not in METHODS:
            raise ConfigError(f"defense 'hm': method must be one of {', '.join(METHODS)}, got {opts['method']!r}")
        self.previous_loss = GA_INITIAL_LOSS
        self._miners: dict[str, Any] = {}
        self._registry: Registry | None = None

    def bind(self, registry: Registry) -> None:
        """Resolve ``src`` and ``dest`` (names, aliases or reference letters) to registered miners."""
        opts = self.options
        try:
            opts["src"] = miner_name(_letterless(str(opts["src"])), registry)
            opts["dest"] = miner_name(_letterless(str(opts["dest"])), registry)
        except UnknownNameError as exc:
            raise ConfigError(f"defense 'hm': {exc} (or a reference letter r/m/s/d/h)") from None
        self._registry = registry

    def check(self, loss_record: Any, metric: str) -> None:
        check_metric_in(self.name, metric, ("N",))
        check_family(self.name, loss_record, FAMILIES)

    def state_dict(self) -> dict[str, Any]:
        return {"previous_loss": self.previous_loss}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.previous_loss = float(state.get("previous_loss", GA_INITIAL_LOSS))

    def _sampler(self, which: str, criterion: nn.Module) -> Any:
        name = self.options[which]
        if name not in self._miners:
            miner = getattr(criterion, "miner", None)
            generator = getattr(miner, "generator", None) or getattr(criterion, "generator", None)
            if self._registry is None:
                raise ConfigError("defense 'hm' was not bound to a registry; build it through a run plan (robrank.plan.build_plan)")
            self._miners[name] = build_miner(name, "N", HM_MINER_MARGIN, generator=generator, registry=self._registry)
        return self._miners[name]

    def destination(self, embedded: torch.Tensor, labels: torch.Tensor, criterion: nn.Module) -> torch.Tensor:
        """H_D: a scalar under the gradual adversary, else the destination triplets' hardness."""
        if self.options["gradual"]:
            return embedded.new_tensor(gradual_destination(self.previous_loss))
        da, dp, dn = self._sampler("dest", criterion)(embedded, labels)
        return hardness(embedded[da], embedded[dp], embedded[dn], "N")

    def perturb(
        self,
        model: nn.Module,
        criterion: nn.Module,
        images: torch.Tensor,
        labels: torch.Tensor,
        history: list[float] | None = None,
    ) -> tuple[tuple[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor, torch.Tensor]:
        """The inner attack: (source triplet indices, adversarial [a; p; n] images, H_D)."""
        opts = self.options
        with inner_eval(model):
            with torch.no_grad():
                embedded = embed_for_metric(model(images), "N")
            sa, sp, sn = self._sampler("src", criterion)(embedded, labels)
            dest_h = self.destination(embedded, labels, criterion)
            count = sa.numel()
            source = torch.cat([images[sa], images[sp], images[sn]])
            if opts["src"] == opts["dest"]:
                # the reference skips PGD when the samplers coincide, even with g_LGA
                return (sa, sp, sn), source, dest_h

            def objective(x: torch.Tensor, step: int) -> torch.Tensor:
                e = embed_for_metric(model(x), "N")
                return alignment(hardness(e[:count], e[count : 2 * count], e[2 * count :], "N"), dest_h, opts["method"])

            adversarial = pgd_minimize(
                objective, source, eps=self.eps, alpha=self.alpha, steps=self.pgditer,
                early_stop=EARLY_STOP, history=history,
            )
        return (sa, sp, sn), adversarial, dest_h

    def loss(self, model: nn.Module, criterion: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        opts = self.options
        history: list[float] = []
        (sa, sp, _sn), adversarial, dest_h = self.perturb(model, criterion, images, labels, history)
        count = sa.numel()
        if opts["ics"]:  # benign anchors and positives, train mode, forwarded first (the reference's order)
            benign_ap = embed_for_metric(model(torch.cat([images[sa], images[sp]])), "N")
        emb = embed_for_metric(model(adversarial), "N")
        adv_a, adv_p, adv_n = emb[:count], emb[count : 2 * count], emb[2 * count :]
        loss = criterion.raw(adv_a, adv_p, adv_n)
        if opts["gradual"]:
            self.previous_loss = float(loss.detach())
        self.logs = {
            "loss_adv": float(loss.detach()),
            "h_dest": float(dest_h.detach().mean()),
            "h_adv": float(hardness(adv_a, adv_p, adv_n, "N").detach().mean()),
            "pgd_steps": float(len(history)),
        }
        if opts["ics"]:
            ics = criterion.raw(benign_ap[:count], adv_a, benign_ap[count:], margin=0.0)
            loss = loss + opts["ics_lambda"] * ics
            self.logs["loss_ics"] = float(ics.detach())
        return loss
