"""``robrank run``: train (optionally with a defense), swipe the ERS profile, print the report.

One command for the whole experiment of a table row: ``robrank run --plugin act --dataset
fashion`` trains the dataset's default backbone with ACT, attacks it with the dataset's
swipe profile and prints raw scores, rescaled scores and ERS. The defaults (backbone, loss,
profile, and the dataset itself for the quickstart) are what the DatasetRecord declares;
the plan (:func:`robrank.plan.plan_run`) resolves them once. Everything lands in one run
directory: config.json (with a ``run`` section saying what is swiped and which defaults
this command chose), checkpoints/, metrics.jsonl, swipe-<profile>.json, report.md /
report.txt / report.html and the ERS figure ers.png.

With no options it is the quickstart: the bundled embedded ``digits`` dataset (no
download) with LeNet, the reference's other 28x28 backbone (C2F2 needs 6x its
multiply-adds per image, which a full rob28 swipe cannot afford in two minutes on a 2-core
CPU), ``ptripletN``, no defense, 8 epochs and the complete rob28 swipe of the 364 test
digits.

``--resume`` continues a killed run with its saved plan: training from its last
checkpoint, then the swipe from its last finished attack. A missing dataset fails before
any work, with the dataset's one-line "where to put the files" message.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .options import (
    apply_triple,
    echo_json,
    force_profile_option,
    max_batches_option,
    max_queries_option,
    output_group,
    profile_option,
    semantics_option,
    training_options,
    training_settings,
    with_default,
)
from ..errors import RobrankError
from ..plot.ers import plot_ers
from ..plugins import get_registry
from ..runtime import RuntimeOptions
from ..swipe.html import format_html
from ..swipe.report import PARTIAL_MARK
from ..swipe.report import format_report, load_summaries
from ..swipe.schema import SwipeFileError, load_results

if TYPE_CHECKING:
    from ..plugins import Registry

REPORT_MD = "report.md"
REPORT_TXT = "report.txt"
REPORT_HTML = "report.html"
ERS_FIGURE = "ers.png"


def _header(
    config: dict[str, Any], trained: tuple[int, int], metrics: dict[str, float], profile: str, ers: float | None,
    partial: str | None = None,
) -> list[str]:
    defense = config.get("defense")
    options = config.get("defense_options") or {}
    shown = ", ".join(f"{k}={v:.5g}" if isinstance(v, float) else f"{k}={v}" for k, v in options.items())
    lines = [
        f"run: {config.get('dataset')} / {config.get('backbone')} / {config.get('loss')} / defense {defense}"
        + (f" ({shown})" if shown else ""),
        f"trained: {trained[0]} epoch(s), {trained[1]} step(s), batch {config.get('batch_size')} pairs, "
        f"lr {config.get('lr')}, seed {config.get('seed')}",
    ]
    if metrics:
        from ..metrics import HEADLINE_KEYS, TIES_KEY, tie_note  # lazy: keeps robrank --help torch-free

        shown_metrics = (f"{k} {100 * v:.1f}" for k, v in metrics.items() if k in HEADLINE_KEYS)
        lines.append("clean: " + "  ".join(shown_metrics))
        note = tie_note(metrics.get(TIES_KEY))
        if note:
            lines.append(note)

    shown = "n/a" if ers is None else f"{ers:.1f}" + (PARTIAL_MARK if partial else "")
    lines.append(f"robustness ({profile}): ERS {shown}" + (f" ({PARTIAL_MARK} partial: {partial}; not a full result)" if partial else ""))
    return lines


def write_report(
    run_dir: Path,
    results: Path,
    config: dict[str, Any],
    trained: tuple[int, int],
    metrics: dict[str, float],
    profile: str,
    registry: Registry,
) -> tuple[str, float | None]:
    """report.txt / report.md / report.html and the ERS figure in the run directory; returns the text version and the ERS.

    Without matplotlib (the ``plot`` extra) the figure is skipped and report.html holds the
    tables only, saying so: a finished swipe is never lost to a missing optional package.
    """
    from ..io import write_text  # lazy: keeps robrank --help fast

    summaries = load_summaries([results], registry)
    ers = summaries[0].ers if summaries else None
    head = _header(config, trained, metrics, profile, ers, summaries[0].partial if summaries else None)
    text = "\n".join(head) + "\n\n" + format_report(summaries, "table")
    markdown = "\n".join(f"- {line}" for line in head) + "\n\n" + format_report(summaries, "markdown")
    figure = None
    if summaries and summaries[0].ers_profile:
        try:
            figure = plot_ers([results], run_dir / ERS_FIGURE, registry)
        except RobrankError as exc:
            if "matplotlib" not in str(exc):
                raise
    if figure is not None:
        markdown += f"\n![ERS scores per attack]({ERS_FIGURE})\n"
    write_text(run_dir / REPORT_TXT, text)
    write_text(run_dir / REPORT_MD, markdown)
    write_text(run_dir / REPORT_HTML, format_html(summaries, title=f"robrank run {run_dir.name}", header=head))
    return text, ers


def swipe_output(run_dir: Path, file_name: str, registry: Registry) -> tuple[Path, Path | None]:
    """Where ``run`` swipes the run's checkpoint, and the earlier results file it keeps (or None).

    ``run --resume --epochs 4`` on a finished 3-epoch run trains epoch 4: the run's
    ``swipe-PROFILE.json`` then holds the results of another checkpoint. They are kept, and the
    new checkpoint goes to ``swipe-PROFILE-epochE.json`` (continued when rerun after an
    interruption); a results file of this very checkpoint (an interrupted swipe) is continued.
    """
    from ..io import file_sha256  # lazy: keeps robrank --help fast
    from ..models.checkpoint import find_checkpoint, read_checkpoint  # lazy: keeps robrank --help torch-free

    default = run_dir / file_name
    if not default.is_file():
        return default, None
    try:
        previous = load_results(default, registry)
    except SwipeFileError:
        return default, None  # the swipe refuses it with its own message
    checkpoint = find_checkpoint(run_dir)
    if previous.get("model", {}).get("sha256") in (None, file_sha256(checkpoint)):
        return default, None
    epoch = read_checkpoint(checkpoint)[1].get("epoch")
    stem = file_name[: -len(".json")] if file_name.endswith(".json") else file_name
    return run_dir / f"{stem}-epoch{epoch}.json", default


@click.command("run")
@training_options
@profile_option
@click.option("--swipe-batch-size", type=click.IntRange(min=1), default=None,
              help=with_default("Queries per attack batch (recorded in the swipe file; a resume keeps it).", "automatic, fitted to the device"))
@max_batches_option
@max_queries_option
@semantics_option
@force_profile_option
@output_group
def run_command(
    triple: str | None,
    profile: str | None,
    swipe_batch_size: int | None,
    max_batches: int | None,
    max_queries: int | None,
    semantics: str | None,
    force: bool,
    resume: bool,
    as_json: bool,
    quiet: bool,
    no_progress: bool,
    runtime: RuntimeOptions,
    **options: Any,
) -> None:
    """Train with a defense, swipe the ERS profile, print the report — in one run directory.

    With no options it is the quickstart: the dataset marked for it (embedded, no download),
    the dataset's default backbone and loss, no defense, the dataset's swipe profile. The
    backbone, loss and profile default to what the dataset declares (robrank list datasets).

    \b
    Examples:
      robrank run                                   # quickstart: digits, lenet, ptripletN, no defense
      robrank run --plugin act --dataset fashion    # ACT on Fashion-MNIST (C2F2), rob28, ERS
      robrank run --plugin hm --ics --dataset cub   # HM[S,g_LGA]&ICS on CUB (ResNet-18), rob224
      robrank run --plugin act --dataset cars       # fails at once if Cars-196 is not installed
      robrank run --resume --run-dir runs/...       # continue after a kill, with the saved settings
    """
    from ..training.plan import plan_run  # lazy: keeps robrank --help torch-free
    from ..swipe.runner import swipe  # lazy: keeps robrank --help torch-free
    from ..training import train  # lazy: keeps robrank --help torch-free
    from ..training.distributed import from_env  # lazy: keeps robrank --help torch-free
    from ..training.rundir import locked  # lazy: keeps robrank --help torch-free

    registry = get_registry()
    given = apply_triple(triple, training_settings(options, runtime), registry)
    swipe_given = {"profile": profile, "batch_size": swipe_batch_size, "max_batches": max_batches,
                   "max_queries": max_queries, "semantics": semantics, "device": runtime.device, "force": force}
    plan = plan_run(given, swipe_given, resume=resume, registry=registry)
    assert plan.swipe is not None
    progress = not (no_progress or quiet or as_json)
    chatty = not (quiet or as_json)
    if chatty:
        click.echo(f"run: {plan.run_dir}")
    if not from_env().is_main:
        train(plan, progress=progress)  # the plan carries its registry
        return
    with locked(plan.run_dir, "robrank run"):
        result = train(plan, progress=progress)
        run_dir = Path(result.run_dir)
        output, kept = swipe_output(run_dir, plan.swipe.file_name, registry)
        if kept is not None and chatty:
            click.echo(f"run: {kept.name} holds the swipe of an earlier checkpoint and is kept; "
                       f"the checkpoint of epoch {result.epochs} is swiped into {output.name}")
        try:
            results = swipe(run_dir, plan.swipe.profile, registry=registry, output=output, data_root=plan.config.data_root,
                            progress=progress, force=force, **plan.swipe.runner_kwargs())
        except KeyboardInterrupt:
            click.echo(
                "robrank run: interrupted; finished attacks are saved, continue with: "
                f"robrank run --resume --run-dir {run_dir}",
                err=True,
            )
            sys.exit(130)
        trained = (result.epochs, result.steps)
        text, ers = write_report(run_dir, Path(results), plan.config.to_dict(), trained, result.metrics, plan.swipe.profile,
                                 registry)
    if as_json:
        from ..metrics import in_percent  # lazy: keeps robrank --help torch-free

        echo_json({"run_dir": str(run_dir), "epochs": result.epochs, "steps": result.steps, "metrics": in_percent(result.metrics),
                   "profile": plan.swipe.profile, "swipe_file": str(results), "ers": ers,
                   "reports": [str(run_dir / name) for name in (REPORT_MD, REPORT_TXT, REPORT_HTML, ERS_FIGURE)
                               if (run_dir / name).is_file()]})
        return
    click.echo(text, nl=False)
    if chatty:
        listing = f"config.json, checkpoints/, metrics.jsonl, {Path(results).name}, {REPORT_MD}, {REPORT_TXT}, {REPORT_HTML}"
        if (run_dir / ERS_FIGURE).is_file():
            listing += f", {ERS_FIGURE}"
        click.echo(f"files: {run_dir}/{{{listing}}}")
