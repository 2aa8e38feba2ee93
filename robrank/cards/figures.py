"""The leaderboard's optional figures: an entry's robustness curve and its before/after retrieval picture.

A curve swipe belongs to an entry only when it attacked the same model: the swipe file's
model digest must be the card's (the checkpoint file's sha256 for a robrank run, the
tensors' sha256 for a model from elsewhere), so a curve can never be drawn on another
model's page. The retrieval picture costs an attack run, so it is drawn only on request and
only where the very checkpoint the card measured is still on disk (same sha256); anything
else is said on the page instead of drawn.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..plugins import Registry
    from ..swipe.summary import FileSummary

#: the test image whose ranking the picture shows
SHOWN_QUERY = 0


def _digests(card: dict[str, Any]) -> set[str]:
    model = card["model"]
    return {d for d in (model.get("sha256_file"), model.get("sha256_tensors")) if d}


def curve_summaries(cards: Sequence[dict[str, Any]], paths: Sequence[str | Path], registry: Registry) -> list[list[FileSummary]]:
    """For each card, the curve swipes among ``paths`` that attacked its model on its dataset."""
    from ..swipe.schema import load_results  # lazy: loaded when this figure is drawn (keeps robrank --help fast)
    from ..swipe.summary import summarise  # lazy: loaded when this figure is drawn (keeps robrank --help fast)

    found: list[list[FileSummary]] = [[] for _ in cards]
    for path in paths:
        payload = load_results(path, registry=registry)
        digest = (payload.get("model") or {}).get("sha256")
        owners = [i for i, card in enumerate(cards)
                  if digest in _digests(card) and payload.get("dataset") == card["data"]["dataset"]]
        if not owners:
            raise ConfigError(f"curve file {path} attacked a model (sha256 {str(digest)[:12]}) on {payload.get('dataset')} that no "
                              "card names; pass a swipe of one of the carded models")
        for i in owners:
            found[i].append(summarise(payload, path, registry))
    return found


def curve_picture(summaries: Sequence[FileSummary]) -> Figure:
    from ..plot.curve import curve_figure  # lazy: loaded when this figure is drawn (keeps robrank --help fast)

    return curve_figure(summaries)


def model_at_hand(card: dict[str, Any], card_path: str | Path, registry: Registry) -> tuple[Path | None, str]:
    """The checkpoint the card measured, if it is still on disk unchanged; else why not."""
    from ..io import file_sha256  # lazy: loaded when this figure is drawn (keeps robrank --help fast)
    from ..swipe.schema import load_results  # lazy: loaded when this figure is drawn (keeps robrank --help fast)

    model = card["model"]
    if model["kind"] != "run":
        return None, "the model is not a robrank run; draw it with robrank show --model (docs/api.md)"
    swipe = Path(card_path).parent / card["evaluation"]["files"]["reference"]
    if not swipe.is_file():
        return None, f"the card's swipe file {card['evaluation']['files']['reference']} is not beside it, so its run is unknown"
    checkpoint = Path(load_results(swipe, registry=registry)["model"]["checkpoint"])
    if not checkpoint.is_file():
        return None, f"its checkpoint ({checkpoint.name}) is not on this machine"
    if file_sha256(checkpoint) != model.get("sha256_file"):
        return None, f"its checkpoint ({checkpoint.name}) changed since the card was written"
    return checkpoint, ""


def shown_spec(card: dict[str, Any], registry: Registry) -> Any:
    """The reference profile's first attack, parsed (the profile's order is its author's; the core names no attack)."""
    from ..attacks.spec import parse_spec  # lazy: keeps this module torch-free

    specs = card["threat_model"]["reference"].get("specs") or []
    return parse_spec(specs[0], registry) if specs else None


def retrieval_picture(card: dict[str, Any], card_path: str | Path, registry: Registry, *, device: str = "cpu",
                      data_root: str | None = None) -> tuple[Figure | None, str]:
    """``robrank show``'s figure of one query under the reference profile's first attack; else (None, why not)."""
    checkpoint, why = model_at_hand(card, card_path, registry)
    if checkpoint is None:
        return None, why
    spec = shown_spec(card, registry)
    if spec is None:
        return None, "the card lists no reference attack specs to show"
    from ..data.loading import load_split  # lazy: keeps this module torch-free
    from ..models.external import load_any  # lazy: keeps this module torch-free
    from ..plot.show import retrieval_examples, show_figure  # lazy: keeps this module torch-free

    run = load_any(str(checkpoint), device=device, registry=registry)
    dataset = load_split(run.dataset, "test", data_root, registry=registry)
    examples = retrieval_examples(run.model, dataset, spec, [SHOWN_QUERY], seed=0, device=device, dataset_name=run.dataset,
                                  registry=registry)
    return show_figure(examples, spec.text, class_names=getattr(dataset, "classes", None)), ""


__all__ = ["curve_summaries", "curve_picture", "model_at_hand", "shown_spec", "retrieval_picture", "SHOWN_QUERY"]
