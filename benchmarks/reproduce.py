"""Reproduce the published MNIST / Fashion-MNIST robustness table (Zhou et al., TPAMI 2024, via the reference code's README).

Six rows: C2F2 + ``ptripletN`` on MNIST and Fashion-MNIST, with no defense, EST and ACT.
Each row is one ``robrank run`` at the reference settings (the reference: 8 epochs of SPC-2
pairs, batch 128 pairs, Adam 1e-3, wd 1e-7, embedding 512; defenses at eps 77/255, alpha
3/255, 32 PGD steps) followed by the full rob28 swipe of the 10,000-image test split. This
script only drives ``robrank run`` (in a subprocess, so the exact command is what a user
would type) and then writes ``docs/results.md``: our numbers next to the published ones, the
differences and the tolerance verdicts, where and how long each row ran, the ERS ordering
none < EST < ACT, and the per-attack scores behind every measured ERS. Each row's swipe
JSON, config.json, metrics.jsonl and command record are copied to ``docs/results/<row>/``
(never a checkpoint). The page also shows the ERS figure of the rows with a finished swipe
(drawn into ``docs/results/ers.png``, needs robrank's ``plot`` extra) and, when
``docs/results/show-example.png`` and its record ``show-example.json`` are there, a
``robrank show`` picture.

A run directory that already holds a checkpoint is continued with ``robrank run --resume``
(training picks up where it stopped, or goes straight to the swipe when it is finished;
the swipe skips finished attacks), so a row can be started with ``robrank train`` and
finished here. ``--collect-only`` only reads the run directories and rewrites the results.

    ROBRANK_DATA=path/to/data python benchmarks/reproduce.py --rows mnist-none --device cpu
    python benchmarks/reproduce.py --rows mnist-est,mnist-act,fashion-est,fashion-act --device cuda
    python benchmarks/reproduce.py --collect-only
    python benchmarks/reproduce.py --collect-only --out-root runs/repro --collect-from docs/results   # from the copies
    python benchmarks/reproduce.py --small --rows mnist-none --out-root runs/check \\
        --results-md runs/check/results.md --results-dir runs/check/results      # plumbing check

``--small`` is a plumbing check only: every row trains LeNet on the embedded ``digits``
data for 2 steps and attacks 4 queries per rob28 attack; its numbers are not comparable with
the published ones and the generated page says so at the top.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from robrank.plugins import get_registry

REPO = Path(__file__).resolve().parents[1]
DEFAULT_RESULTS_MD = REPO / "docs" / "results.md"
DEFAULT_RESULTS_DIR = REPO / "docs" / "results"
DEFAULT_OUT_ROOT = Path("runs") / "reproduce"
PROFILE = "rob28"
SWIPE_FILE = f"swipe-{PROFILE}.json"
RECORD_FILE = "reproduce.json"
COPIED = ("config.json", "metrics.jsonl", SWIPE_FILE, RECORD_FILE)
METRICS = ("R@1", "R@2", "mAP", "NMI", "ERS")
#: |ours - published| allowed per column, in points (the project's tolerance)
TOLERANCE = {"R@1": 1.5, "R@2": 1.5, "mAP": 3.0, "NMI": 3.0, "ERS": 5.0}
NOT_MEASURED = "not yet measured"

#: the small configuration: a stand-in dataset and backbone, 2 training steps, 4 queries per attack
SMALL_DATASET = "digits"
SMALL_BACKBONE = "lenet"
SMALL_ARGS = ("--epochs", "1", "--max-steps", "2", "--pgditer", "2", "-m", "1", "--swipe-batch-size", "4")


@dataclass(frozen=True)
class Row:
    """One line of the published table."""

    name: str
    dataset: str
    dataset_label: str
    defense: str
    defense_label: str
    published: dict[str, float]
    #: extra ``robrank run`` arguments; non-empty only for a variant
    extra: tuple[str, ...] = ()
    #: what a variant changes (None: the published settings)
    variant: str | None = None


def _row(dataset: str, dataset_label: str, defense: str, defense_label: str, *values: float) -> Row:
    return Row(f"{dataset}-{defense}", dataset, dataset_label, defense, defense_label, dict(zip(METRICS, values)))


def _variant(base: Row, suffix: str, extra: tuple[str, ...], what: str) -> Row:
    """A row that departs from the published settings on purpose; compared with ``base``'s numbers."""
    return Row(f"{base.name}-{suffix}", base.dataset, base.dataset_label, base.defense,
               f"{base.defense_label} ({suffix})", dict(base.published), extra, what)


#: the published table (Zhou et al., TPAMI 2024; README of the reference, ``ptripletN``, C2F2)
ROWS: tuple[Row, ...] = (
    _row("mnist", "MNIST", "none", "none", 99.0, 99.4, 98.7, 84.7, 13.3),
    _row("mnist", "MNIST", "est", "EST", 98.3, 99.0, 91.3, 80.7, 40.5),
    _row("mnist", "MNIST", "act", "ACT", 98.6, 99.1, 98.1, 86.4, 78.6),
    _row("fashion", "Fashion", "none", "none", 87.6, 92.7, 84.9, 77.8, 4.5),
    _row("fashion", "Fashion", "est", "EST", 78.6, 86.8, 64.6, 64.9, 36.4),
    _row("fashion", "Fashion", "act", "ACT", 79.4, 87.9, 71.6, 69.6, 67.7),
)
#: variants run to explain a gap (docs/results.md reports them apart from the table, as variants)
VARIANTS: tuple[Row, ...] = tuple(
    _variant(r, "exact", ("-o", "pairwise_eps=0"),
             "EST's embedding shift measured exactly, ‖a − b‖, instead of the reference's ‖a − b + 1e-6‖ "
             "(torch's pairwise_distance), which starts every image's shift in the same direction")
    for r in ROWS if r.defense == "est"
)
ROW_BY_NAME = {r.name: r for r in (*ROWS, *VARIANTS)}


class ReproduceError(Exception):
    """Bad options: the message names what is wrong (the script exits with code 2)."""


def parse_rows(text: str | None) -> list[Row]:
    if not text:
        return list(ROWS)
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in ROW_BY_NAME]
    if unknown or not names:
        raise ReproduceError(f"unknown row(s) {', '.join(unknown) or repr(text)}; choose from {', '.join(ROW_BY_NAME)}")
    return [ROW_BY_NAME[n] for n in dict.fromkeys(names)]


# ----------------------------------------------------------------------------------- commands


def row_command(row: Row, run_dir: Path, *, seed: int, device: str | None, data_root: str | None,
                swipe_batch_size: int | None, small: bool, resume: bool) -> list[str]:
    """The ``robrank`` arguments (after the program name) that train and swipe one row."""
    args = ["run"]
    if resume:
        args.append("--resume")
    args += ["--plugin", row.defense,
             "--dataset", SMALL_DATASET if small else row.dataset,
             "--backbone", SMALL_BACKBONE if small else "c2f2",
             "--loss", "ptripletN", "--seed", str(seed), "--run-dir", str(run_dir)]
    if device:
        args += ["--device", device]
    if data_root:
        args += ["--data-root", data_root]
    if small:
        extra = list(SMALL_ARGS)
        if row.defense == "none":  # --pgditer is a defense option; robrank run refuses it without one
            i = extra.index("--pgditer")
            del extra[i:i + 2]
        args += extra
    args += list(row.extra)
    if swipe_batch_size and not small:
        args += ["--swipe-batch-size", str(swipe_batch_size)]
    args.append("--no-progress")
    return args


def command_text(args: list[str], data_root: str | None) -> str:
    """What a user types: ``robrank ARGS``. The data root is the reader's own, so this
    machine's is left out (the record keeps it in ``data_root``, which is not published)."""
    return "robrank " + shlex.join(args)


def hardware_name(device: str | None) -> str:
    """The card or the CPU a row runs on (robrank.hardware: the same words config.json uses)."""
    from robrank.hardware import describe

    return describe(device)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _write_json(path: Path, payload: Any) -> None:
    from robrank.io import write_json

    write_json(path, payload)


def run_row(row: Row, run_dir: Path, options: argparse.Namespace) -> int:
    """Train and swipe one row with ``robrank run`` in a subprocess; record the command."""
    resume = (run_dir / "checkpoints" / "last.pt").is_file()
    args = row_command(row, run_dir, seed=options.seed, device=options.device, data_root=options.data_root,
                       swipe_batch_size=options.swipe_batch_size, small=options.small, resume=resume)
    text = command_text(args, options.data_root)
    record_path = run_dir / RECORD_FILE
    previous = _read_json(record_path) or {}
    log = run_dir.parent / f"{run_dir.name}.run.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {
        "row": row.name,
        "command": text,
        "argv": ["robrank", *args],
        "resumed": resume,
        "small": options.small,
        "status": "running",
        "pid": os.getpid(),
        "hardware": hardware_name(options.device),
        "data_root": options.data_root or os.environ.get("ROBRANK_DATA"),
        "started": _now(),
        "log": str(log),
        "earlier_sessions": previous.get("earlier_sessions", [])
        + ([{k: v for k, v in previous.items() if k != "earlier_sessions"}] if previous.get("command") else []),
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    _write_json(record_path, record)
    print(f"[{row.name}] {text}", flush=True)
    started = time.perf_counter()
    with open(log, "a") as handle:
        handle.write(f"\n# {_now()} {text}\n")
        handle.flush()
        proc = subprocess.run([sys.executable, "-m", "robrank", *args], stdout=handle, stderr=subprocess.STDOUT)
    record.update(status="finished" if proc.returncode == 0 else "failed", returncode=proc.returncode,
                  finished=_now(), wall_seconds=round(time.perf_counter() - started, 1))
    _write_json(record_path, record)
    print(f"[{row.name}] exit {proc.returncode} after {record['wall_seconds']} s (log: {log})", flush=True)
    return proc.returncode


# ----------------------------------------------------------------------------------- collecting


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _pid_alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except (OSError, TypeError, ValueError):
        return False
    return True


@dataclass
class RowResult:
    """What a row's run directory says: clean metrics, swipe, timings, provenance."""

    row: Row
    run_dir: Path
    values: dict[str, float | None] = field(default_factory=dict)
    status: str = NOT_MEASURED
    ers_status: str = NOT_MEASURED
    device: str | None = None
    hardware: str | None = None
    train_seconds: float | None = None
    swipe_seconds: float | None = None
    run_seconds: float | None = None
    seed: int | None = None
    commands: list[str] = field(default_factory=list)
    epochs_done: str = ""
    summary: Any = None  # robrank.swipe.report.FileSummary of the swipe file
    small: bool = False
    redone: list[str] = field(default_factory=list)  # attack types recomputed with `robrank swipe --redo`

    @property
    def measured(self) -> bool:
        return any(v is not None for v in self.values.values())

    def diff(self, metric: str) -> float | None:
        ours = self.values.get(metric)
        return None if ours is None else ours - self.row.published[metric]

    def within(self, metric: str) -> bool | None:
        d = self.diff(metric)
        return None if d is None else abs(d) <= TOLERANCE[metric] + 1e-9


def _train_command(config_payload: dict[str, Any]) -> str | None:
    argv = config_payload.get("command")
    if not argv:
        return None
    return "robrank " + shlex.join([str(a) for a in argv[1:]])


def collect_row(row: Row, run_dir: Path, shown_dir: Path | None = None) -> RowResult:
    """Read one row's run directory (nothing is run); ``shown_dir`` is the run directory the page names."""
    from robrank.io import read_jsonl
    from robrank.swipe.report import summarise
    from robrank.swipe.schema import load_results

    result = RowResult(row=row, run_dir=run_dir, values={m: None for m in METRICS})
    config_payload = _read_json(run_dir / "config.json")
    record = _read_json(run_dir / RECORD_FILE) or {}
    result.small = bool(record.get("small"))
    if config_payload is None:
        result.status = result.ers_status = f"{NOT_MEASURED} (not started: no {shown_dir or run_dir}/config.json)"
        return result
    config = config_payload.get("config", {})
    result.seed = config_payload.get("seed", config.get("seed"))
    result.device = config_payload.get("device") or config.get("device")
    history = read_jsonl(run_dir / "metrics.jsonl") if (run_dir / "metrics.jsonl").is_file() else []
    epochs = int(config.get("epochs") or 0)
    max_steps = config.get("max_steps")
    last = history[-1] if history else {}
    done = bool(last) and (int(last.get("epoch", 0)) >= epochs or (max_steps is not None and int(last.get("step", 0)) >= int(max_steps)))
    result.epochs_done = f"{int(last.get('epoch', 0)) if last else 0}/{epochs} epochs, {int(last.get('step', 0)) if last else 0} steps"
    if history:
        result.train_seconds = sum(float(h.get("train_seconds", 0.0)) + float(h.get("val_seconds", 0.0)) for h in history)
    running = record.get("status") == "running" and _pid_alive(record.get("pid"))
    if done:
        for key in ("R@1", "R@2", "mAP", "NMI"):
            if last.get(key) is not None:
                result.values[key] = 100.0 * float(last[key])
        result.status = "trained"
    else:
        result.status = f"{NOT_MEASURED} (training {'in progress' if running or not record else 'stopped'}: {result.epochs_done})"
        result.ers_status = f"{NOT_MEASURED} (training not finished)"

    swipe_path = run_dir / SWIPE_FILE
    if swipe_path.is_file():
        payload = load_results(swipe_path, registry=get_registry())
        result.summary = summarise(payload, swipe_path, label=row.name, registry=get_registry())
        result.swipe_seconds = float(payload.get("timings", {}).get("total_seconds") or 0.0) or None
        result.redone = sorted({str(r.get("spec", "?")).split(":")[0] for r in payload.get("redone", [])})
        swipe_device = payload.get("device")
        if swipe_device and swipe_device != result.device:
            result.device = f"{result.device} (swipe: {swipe_device})"
        n_done, n_planned = len(payload["attacks"]), len(payload["planned"])
        if result.summary.ers is not None:
            result.values["ERS"] = float(result.summary.ers)
            result.ers_status = "measured"
            result.status = "measured"
        else:
            state = "in progress" if running else "stopped"
            result.ers_status = f"swipe {state} ({n_done}/{n_planned} attacks), {NOT_MEASURED}"
    elif done:
        result.ers_status = f"swipe {'in progress' if running else 'not started'} (0/9 attacks), {NOT_MEASURED}"

    result.hardware = record.get("hardware") or config_payload.get("hardware")
    if not result.hardware:
        result.hardware = "not recorded (run not started by benchmarks/reproduce.py)"
    train_cmd = _train_command(config_payload)
    run_cmd = record.get("command")
    earlier = [s.get("command") for s in record.get("earlier_sessions", []) if s.get("command")]
    if train_cmd and not (train_cmd.startswith("robrank run") or (run_cmd and train_cmd in run_cmd)):
        result.commands.append(train_cmd)
    for cmd in [*earlier, run_cmd, record.get("swipe_command")]:
        if cmd and cmd not in result.commands:
            result.commands.append(cmd)
    if not result.commands and train_cmd:
        result.commands.append(train_cmd)
    if record.get("wall_seconds") is not None:
        result.run_seconds = float(record["wall_seconds"])
    return result


def copy_artifacts(result: RowResult, results_dir: Path) -> list[Path]:
    """Copy the row's small result files (never checkpoints) to ``results_dir/<row>/``,
    made publishable by :func:`portable` (no host name, no absolute path of this machine)."""
    from robrank.io import write_text

    copied = []
    for name in COPIED:
        source = result.run_dir / name
        if source.is_file():
            target = results_dir / result.row.name / name
            if name.endswith(".jsonl"):
                lines = [json.dumps(portable(json.loads(x))) for x in source.read_text().splitlines() if x.strip()]
                write_text(target, "".join(line + "\n" for line in lines))
            else:
                write_text(target, json.dumps(portable(json.loads(source.read_text())), indent=2) + "\n")
            copied.append(target)
    return copied


#: keys that identify the machine rather than describe the measurement (dropped), and keys
#: whose value is this machine's folder (kept, emptied)
PRIVATE_KEYS = ("hostname",)
LOCAL_PATH_KEYS = ("data_root",)
_ABSOLUTE = re.compile(r"(?<![\w.~$-])/(?:[\w.+@-]+/)*[\w.+@-]+")


def portable(value: Any) -> Any:
    """``value`` (parsed JSON) without this machine in it: private keys dropped, absolute paths
    made relative to their ``runs/`` folder (else reduced to their last part), and a command's
    ``ROBRANK_DATA=...`` prefix dropped. Hardware descriptions stay."""
    if isinstance(value, dict):
        return {k: None if k in LOCAL_PATH_KEYS else portable(v) for k, v in value.items() if k not in PRIVATE_KEYS}
    if isinstance(value, list):
        return [portable(v) for v in value]
    if isinstance(value, str):
        text = re.sub(r"\bROBRANK_DATA=\S+\s+", "", value)
        return _ABSOLUTE.sub(_relative, text)
    return value


def _relative(match: re.Match) -> str:
    path = match.group(0)
    if "/runs/" in path:
        return path[path.index("/runs/") + 1 :]
    if path.endswith("/robrank/__main__.py") or path.endswith("/bin/robrank"):
        return "robrank"
    return Path(path).name


# ----------------------------------------------------------------------------------- markdown


def _num(value: float | None, decimals: int = 1) -> str:
    if value is None:
        return NOT_MEASURED
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return f"{value:.{decimals}f}"


def _plain(value: float | None, decimals: int) -> str:
    """A per-attack number; "–" where the attack has no such value (e.g. the clean embedding shift)."""
    return "–" if value is None else _num(value, decimals)


def _signed(value: float) -> str:
    return f"{value:+.1f}".replace("-", "−")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return NOT_MEASURED
    minutes, sec = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else (f"{minutes} min {sec:02d} s" if minutes else f"{sec} s")


def cell(result: RowResult, metric: str) -> str:
    """``ours / published (Δ ±x.x ✓|✗)``, or the published number and why ours is missing."""
    pub = result.row.published[metric]
    ours = result.values.get(metric)
    if ours is None:
        return f"{NOT_MEASURED} / {pub:.1f}"
    mark = "✓" if result.within(metric) else "✗"
    return f"{ours:.1f} / {pub:.1f} ({_signed(result.diff(metric))} {mark})"


def verdict(result: RowResult) -> str:
    measured = [m for m in METRICS if result.values.get(m) is not None]
    if not measured:
        return NOT_MEASURED
    misses = [m for m in measured if not result.within(m)]
    pending = [m for m in METRICS if m not in measured]
    text = "yes" if not misses else "no: " + ", ".join(misses)
    if pending:
        text += f" (so far; {', '.join(pending)} {NOT_MEASURED})"
    return text


def ordering(results: list[RowResult], dataset: str) -> str:
    """The ERS ordering check none < EST < ACT for one dataset."""
    by_defense = {r.row.defense: r for r in results if r.row.dataset == dataset}
    labels = {"none": "none", "est": "EST", "act": "ACT"}
    values = {d: (by_defense[d].values.get("ERS") if d in by_defense else None) for d in labels}
    missing = [labels[d] for d, v in values.items() if v is None]
    if missing:
        return f"{NOT_MEASURED} (ERS missing for {', '.join(missing)})"
    holds = values["none"] < values["est"] < values["act"]
    shown = " < ".join(f"{labels[d]} {values[d]:.1f}" for d in labels) if holds else ", ".join(f"{labels[d]} {values[d]:.1f}" for d in labels)
    return f"holds: {shown}" if holds else f"does NOT hold: {shown}"


def _md_table(head: list[str], rows: list[list[str]]) -> list[str]:
    esc = [[c.replace("|", "\\|") for c in r] for r in [head, *rows]]
    return [f"| {' | '.join(esc[0])} |", f"| {' | '.join(['---'] * len(head))} |", *(f"| {' | '.join(r)} |" for r in esc[1:])]


def _contributions(result: RowResult) -> list[str]:
    """Each rescaled score's share of the ERS (ERS = mean of ten), for the tolerance analysis."""
    from robrank_plugins.profiles.ers import KEYS, LABELS

    s = result.summary
    if s is None:
        return []
    pub = result.row.published["ERS"]
    if s.ers is None:
        done = [k for k in KEYS if s.rescaled.get(k) is not None]
        if not done:
            return []
        so_far = sum(s.rescaled[k] for k in done)
        return [
            f"Swipe unfinished: the {len(done)} finished columns ({', '.join(LABELS[k] for k in done)}) already add "
            f"{so_far:.1f} rescaled points ({so_far / 10:.2f} ERS points) of the {10 * pub:.0f} implied by the "
            f"published ERS {pub:.1f}; the other {len(KEYS) - len(done)} columns must add {10 * pub - so_far:.1f} "
            f"(± {10 * TOLERANCE['ERS']:.0f}) for the row to land on the published ERS.",
        ]
    parts = sorted(((s.rescaled[k] / 10.0, LABELS[k], s.raw[k], s.rescaled[k]) for k in KEYS), reverse=True)
    rows = [[label, _num(raw, 3 if label in ("TMA", "ES:D") else 1), _num(scaled), f"{share:.2f}"] for share, label, raw, scaled in parts]
    return [
        f"ERS {s.ers:.1f} vs published {pub:.1f}: the ten rescaled scores sum to {10 * s.ers:.0f} against "
        f"{10 * pub:.0f} implied by the published ERS, a gap of {10 * (s.ers - pub):+.0f} rescaled points; "
        "the largest contributions first:",
        "",
        *_md_table(["attack", "raw", "rescaled", "ERS points"], rows),
    ]


def _attack_details(result: RowResult) -> list[str]:
    from robrank.swipe.report import attack_metrics, format_report

    s = result.summary
    lines = [format_report([s], "markdown").rstrip(), ""]
    rows = []
    for entry in s.payload["attacks"]:
        for m in attack_metrics(entry, registry=get_registry()):
            scale = f" / {m.scale}" if m.scale else ""
            rows.append([entry["spec"], m.name, _plain(m.orig, m.decimals), _plain(m.adv, m.decimals) + scale,
                         str(entry.get("count", "")), _duration(entry.get("seconds"))])
    lines += ["Clean vs adversarial, per attack:", "", *_md_table(["attack", "metric", "clean", "adversarial", "queries", "time"], rows)]
    return lines


def render(results: list[RowResult], *, small: bool, notes: str | None = None, out_root: Path = DEFAULT_OUT_ROOT,
           variants: list[RowResult] | None = None, figures: list[tuple[str, str, str]] | None = None) -> str:
    """The whole results page (``variants``: rows off the published settings, shown apart; ``figures``: (path, alt, caption))."""
    variants = variants or []
    lines = ["# Reproduction: MNIST and Fashion-MNIST robustness table", ""]
    if small:
        lines += [
            f"> **SMALL CONFIGURATION (plumbing check)**: every row trained {SMALL_BACKBONE} on the embedded "
            f"`{SMALL_DATASET}` data for 2 steps and attacked 4 queries per rob28 attack. These numbers are "
            "**not comparable** with the published ones.", "",
        ]
    lines += [
        "Generated by `benchmarks/reproduce.py` (rerun with `--collect-only` to refresh from the run "
        f"directories); last written {_now()}. Target: the published table (Zhou et al., TPAMI 2024). Each row is C2F2 + `ptripletN`, "
        "8 epochs of SPC-2 pairs, batch 128 pairs, Adam lr 1e-3, weight decay 1e-7, embedding 512 "
        "(EST/ACT: eps 77/255, alpha 3/255, 32 PGD steps), then the full `rob28` swipe (9 attacks, "
        "reference semantics) over all 10,000 test images.",
        "",
        "Cells: **ours / published (difference, ✓ within tolerance / ✗ outside)**, in percent; "
        "tolerance: R@1 and R@2 ±1.5, mAP and NMI ±3, ERS ±5 points.",
        "",
        "## Summary",
        "",
    ]
    head = ["row", "dataset", "defense", *METRICS, "within tolerance"]
    lines += _md_table(head, [[r.row.name, r.row.dataset_label, r.row.defense_label, *(cell(r, m) for m in METRICS), verdict(r)] for r in results])
    lines += ["", "Status per row:", ""]
    for r in results:
        if r.status.startswith(NOT_MEASURED + " (not started"):
            lines.append(f"- `{r.row.name}`: {r.status}")
        else:
            clean = "measured" if r.values.get("R@1") is not None else r.status
            lines.append(f"- `{r.row.name}`: clean metrics {clean}; ERS {r.ers_status}")
    lines.append("")

    if figures:
        lines += ["## Figures", ""]
        for path, alt, caption in figures:
            lines += [f"![{alt}]({path})", "", caption, ""]

    lines += ["## ERS ordering none < EST < ACT", ""]
    for dataset, label in (("mnist", "MNIST"), ("fashion", "Fashion")):
        shown = [r for r in results if r.row.dataset == dataset]
        lines.append(f"- {label}: " + (ordering(results, dataset) if len(shown) == 3 else f"{NOT_MEASURED} (rows not in this report)"))
    lines.append("")

    if variants:
        lines += [
            "## Variants (not the published settings)", "",
            "Run to explain a gap, never to replace a row: each departs from the published settings "
            "on purpose and is compared with the published numbers of the row it varies.", "",
        ]
        lines += _md_table(head, [[r.row.name, r.row.dataset_label, r.row.defense_label, *(cell(r, m) for m in METRICS), verdict(r)] for r in variants])
        lines += [""] + [f"- `{r.row.name}`: {r.row.variant} (`robrank run ... {shlex.join(r.row.extra)}`)" for r in variants] + [""]

    lines += ["## Where and how each row ran", ""]
    run_rows = []
    for r in [*results, *variants]:
        if r.status.startswith(NOT_MEASURED + " (not started"):
            run_rows.append([r.row.name, NOT_MEASURED, "", "", "", "", f"(not run; reproduce with `{suggested_command(r.row, out_root)}`)"])
            continue
        run_rows.append([
            r.row.name, str(r.device), r.hardware or "", f"{_duration(r.train_seconds)} ({r.epochs_done})",
            _duration(r.swipe_seconds) + (f" (includes `--redo {' '.join(r.redone)}`)" if r.redone else ""),
            str(r.seed), "<br>".join(f"`{c}`" for c in r.commands),
        ])
    lines += _md_table(["row", "device", "hardware", "training wall time", "swipe wall time", "seed", "command(s)"], run_rows)
    lines += [
        "",
        "Training wall time is the engine's own measurement (sum of `train_seconds` + `val_seconds` over "
        "metrics.jsonl, all sessions); swipe wall time is the swipe file's `timings.total_seconds`, all "
        "sessions, including attacks recomputed later with `robrank swipe --redo` (on another device, "
        "where the device column says so; each attack's own time is in the per-attack tables). The "
        "CPU rows ran on a 2-core machine shared with other jobs, so their times are not speed figures.",
        "",
        "Raw files per row (swipe JSON, config.json, metrics.jsonl, reproduce.json with the command): "
        "`docs/results/<row>/`.",
        "",
    ]

    lines += ["## Per-attack raw scores", ""]
    any_swipe = False
    for r in [*results, *variants]:
        if r.summary is None:
            continue
        any_swipe = True
        lines += [f"### {r.row.name}", "", *_attack_details(r), ""]
    if not any_swipe:
        lines += [f"No swipe file yet: {NOT_MEASURED}.", ""]

    lines += ["## Tolerance analysis", ""]
    analysed = False
    for r in [*results, *variants]:
        misses = [m for m in METRICS if r.values.get(m) is not None and not r.within(m)]
        contrib = _contributions(r)
        if not misses and not contrib:
            continue
        analysed = True
        lines += [f"### {r.row.name}", ""]
        if misses:
            lines += ["Outside tolerance: " + ", ".join(
                f"{m} {r.values[m]:.1f} vs {r.row.published[m]:.1f} ({_signed(r.diff(m))}, tolerance ±{TOLERANCE[m]:g})" for m in misses) + ".", ""]
        else:
            lines += ["Every measured column is within tolerance.", ""]
        lines += [*contrib, ""] if contrib else []
    if not analysed:
        lines += ["Nothing measured yet.", ""]
    lines += [
        "Known setup differences (possible sources of a gap, not tuned away):",
        "",
        "- The published checkpoints were trained with 2-GPU DDP: batch 128 pairs **per GPU**, i.e. an "
        "effective batch of 256 pairs and 235 steps per epoch (e.g. Fashion rc2f2d `epoch=7-step=1880`), "
        "while the published setting (and these runs) use 128 pairs on one device, 469 steps per epoch. "
        "Triplet mining is per rank in the reference, so each rank still mines within 128 pairs; the "
        "difference is the optimizer: half as many Adam steps on batches twice as large. "
        "`robrank train --devices 2` would reproduce the DDP layout; it is a variant, not run here.",
        "- Clean metrics: a query's own index is excluded from its ranking; the reference drops the nearest "
        "item instead (`robrank eval --self-exclusion reference`); they differ only on exact duplicates.",
        "- One seed (0) per row; the reference itself varies by about 3 ERS points between runs.",
        "",
    ]
    if notes:
        lines += ["## Notes", "", notes.strip(), ""]
    return "\n".join(lines)


def suggested_command(row: Row, out_root: Path = DEFAULT_OUT_ROOT) -> str:
    """The command for a row not run yet (EST/ACT on a GPU: 32 PGD steps per training step)."""
    args = row_command(row, Path(out_root) / row.name, seed=0, device="cuda" if row.defense != "none" else None,
                       data_root=None, swipe_batch_size=None, small=False, resume=False)
    return "robrank " + shlex.join(args)  # the reader's data root is theirs: no ROBRANK_DATA of this machine


ERS_FIGURE = "ers.png"
#: a `robrank show` picture and its record ({"command": ..., "caption": ...}), made by hand (see docs/figures.md)
SHOW_FIGURE = "show-example.png"
SHOW_RECORD = "show-example.json"


def ers_figure_rows(results: list[RowResult]) -> list[RowResult]:
    """The rows with a finished swipe, in table order (main rows and variants interleaved by dataset)."""
    done = [r for r in results if r.summary is not None and r.summary.ers is not None]
    order = {row.name: i for i, row in enumerate(ROWS)}
    return sorted(done, key=lambda r: (order.get(r.row.name, order.get(r.row.name.rsplit("-", 1)[0], 0)), r.row.variant is not None))


def write_figures(results: list[RowResult], results_dir: Path) -> list[tuple[str, str, str]]:
    """Draw the ERS figure of the finished rows into ``results_dir``; (file name, alt text, caption) of every figure there.

    Needs matplotlib (robrank's ``plot`` extra); without it the page keeps the figure files
    already there and says nothing new.
    """
    figures = []
    shown = ers_figure_rows(results)
    if shown:
        try:
            from robrank.plot.ers import ers_figure
            from robrank.plot.figure import save
        except ImportError:
            save = None
        if save is not None:
            from dataclasses import replace

            summaries = [replace(r.summary, label=r.row.name + (" (variant)" if r.row.variant else "")) for r in shown]
            save(ers_figure(summaries), results_dir / ERS_FIGURE)
    if (results_dir / ERS_FIGURE).is_file():
        figures.append((ERS_FIGURE, "Rescaled ERS scores per attack", "Rescaled ERS scores per attack of the rows with a finished swipe "
                        "(the figure of `robrank plot ers` on their swipe files, labelled by row); 0 = broken, 100 = robust, "
                        "ERS in the legend."))
    record = _read_json(results_dir / SHOW_RECORD)
    if (results_dir / SHOW_FIGURE).is_file() and record:
        made = " then ".join(f"`{c}`" for c in (record.get("model_command"), record.get("command")) if c)
        figures.append((SHOW_FIGURE, "robrank show: rankings before and after an attack",
                        f"{record.get('caption', '')} Made with {made} ({record.get('device', 'device not recorded')})."))
    return figures


def write_results(rows: list[Row], options: argparse.Namespace) -> list[RowResult]:
    """Collect every row (all six go in the page; unselected ones as they stand) and write."""
    from robrank.io import write_text

    out_root = Path(options.out_root)
    source = Path(options.collect_from or options.out_root)
    results = [collect_row(row, source / row.name, out_root / row.name) for row in ROWS]
    variants = [collect_row(row, source / row.name, out_root / row.name) for row in VARIANTS]
    variants = [v for v in variants if v.row in rows or v.measured or v.summary is not None]
    for r in [*results, *variants]:
        if r.row in rows or r.measured or r.summary is not None:
            copy_artifacts(r, Path(options.results_dir))
    notes_path = Path(options.notes) if options.notes else Path(options.results_dir) / "notes.md"
    notes = notes_path.read_text() if notes_path.is_file() else None
    small = options.small or any(r.small for r in results)
    results_dir, page_dir = Path(options.results_dir), Path(options.results_md).parent
    figures = [(os.path.relpath(results_dir / name, page_dir), alt, caption)
               for name, alt, caption in write_figures([*results, *variants], results_dir)]
    write_text(Path(options.results_md), render(results, small=small, notes=notes, out_root=out_root, variants=variants, figures=figures))
    return [*results, *variants]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default=None, help=f"comma-separated rows to run [all: {','.join(ROW_BY_NAME)}]")
    parser.add_argument("--out-root", default=str(DEFAULT_OUT_ROOT), help="parent of the run directories <out-root>/<row> [%(default)s]")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:N or auto, passed to robrank run [robrank's auto]")
    parser.add_argument("--seed", type=int, default=0, help="training and swipe seed [%(default)s]")
    parser.add_argument("--data-root", default=None, help="dataset root passed to robrank run [$ROBRANK_DATA]")
    parser.add_argument("--swipe-batch-size", type=int, default=None, help="queries per attack batch (speed only) [robrank's]")
    parser.add_argument("--small", action="store_true", help="plumbing check: digits + lenet, 2 steps, 4 queries per attack")
    parser.add_argument("--collect-only", action="store_true", help="run nothing; collect finished (or running) run dirs and write the results")
    parser.add_argument("--collect-from", default=None, help="read the rows from <DIR>/<row> instead of the run directories "
                        "(e.g. docs/results, which holds each row's copied files) [--out-root]")
    parser.add_argument("--results-md", default=str(DEFAULT_RESULTS_MD), help="results page [%(default)s]")
    parser.add_argument("--results-dir", default=str(DEFAULT_RESULTS_DIR), help="where each row's raw files are copied [%(default)s]")
    parser.add_argument("--notes", default=None, help="hand-written analysis included at the end [<results-dir>/notes.md]")
    return parser


def main(argv: list[str] | None = None) -> int:
    options = build_parser().parse_args(argv)
    try:
        rows = parse_rows(options.rows)
    except ReproduceError as err:
        print(f"reproduce.py: {err}", file=sys.stderr)
        return 2
    failures = 0
    write_results(rows, options)
    if not options.collect_only:
        for row in rows:
            run_dir = Path(options.out_root) / row.name
            existing = _read_json(run_dir / SWIPE_FILE)
            if existing and existing.get("finished") and (run_dir / "checkpoints" / "last.pt").is_file():
                print(f"[{row.name}] already finished ({run_dir / SWIPE_FILE}); collecting only", flush=True)
                continue
            failures += run_row(row, run_dir, options) != 0
            write_results(rows, options)
    results = write_results(rows, options)
    for r in results:
        print(f"{r.row.name:13s} " + "  ".join(f"{m} {_num(r.values.get(m))}" for m in METRICS) + f"  [{verdict(r)}]")
    print(f"wrote {options.results_md}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
