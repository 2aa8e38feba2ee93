"""``robrank plot``: figures from real swipes (digits) and the stored reproduction results.

Every check reads the drawn values back (bar heights and text from the SVG file, line data
from the figure) and compares them with the JSON they came from.
"""
from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import pytest

import robrank
from robrank.records import ProfileRecord
from robrank.plugins import get_registry

pytest.importorskip("matplotlib")

REPO = Path(__file__).resolve().parents[1]
STORED = sorted((REPO / "docs" / "results").glob("*/swipe-rob28.json"))
#: a qccurve28-style profile, cut down: CA± and SPQA± (W = M = 1) at ε = 7i/255, i in CURVE_STEPS, 2 PGD
#: steps of ε/2 (so that two steps reach every budget)
CURVE_STEPS = (0, 3, 6, 11)


def _curve_specs() -> list[str]:
    budgets = [f"eps={7 * i / 255:.5f}:alpha={7 * i / 255 / 2:.5f}:pgditer=2" for i in CURVE_STEPS]
    return [f"{head}:{pgd}" for head in ("CA:pm=+:W=1", "CA:pm=-:W=1", "SPQA:pm=+:M=1", "SPQA:pm=-:M=1") for pgd in budgets]


class FigureProfiles:
    """rob28 with 2 PGD steps, and the small ε curve above (tests only)."""

    @robrank.hookimpl
    def register_profiles(self, register):
        from robrank_plugins.profiles.ers import ERS
        from robrank_plugins.profiles.reference import rob28

        register(ProfileRecord(name="fig28", factory=lambda: [s.replace("pgditer=32", "pgditer=2") for s in rob28()],
                               summary="rob28 with 2 PGD steps (tests)", image_size=28, score=ERS))
        register(ProfileRecord(name="figcurve", factory=_curve_specs, summary="eps curve (tests)", image_size=28))


@pytest.fixture(scope="module")
def swipes(tmp_path_factory, tiny_run):
    """Real swipes of the tiny digits model: a complete ERS swipe, a killed quick one, a quick ε curve.

    The killed swipe and the curve attack one batch of queries per attack (to stay fast),
    so both are partial results and must be drawn as such.
    """
    import shutil
    from dataclasses import replace

    import torch

    from robrank.swipe.runner import SwipeBackend, swipe
    from robrank.testing import registered

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("figure-swipes")
    full_run = root / "tiny-full"
    shutil.copytree(tiny_run, full_run)
    killed_run = root / "tiny-killed"
    shutil.copytree(tiny_run, killed_run)
    # the profiles stay registered while the module's tests read the files: a file's score is
    # its installed profile's
    with registered(FigureProfiles()):
        try:
            full = swipe(full_run, "fig28", batch_size=128, progress=False, registry=get_registry())
            curve = swipe(full_run, "figcurve", batch_size=96, max_batches=1, progress=False, registry=get_registry())
            real = SwipeBackend.default(get_registry())
            done: list[str] = []

            def dies_after_six(model, dataset, spec, *args, **kwargs):
                if len(done) == 6:
                    raise KeyboardInterrupt
                done.append(spec.text)
                return real.run_attack(model, dataset, spec, *args, **kwargs)

            with pytest.raises(KeyboardInterrupt):
                swipe(killed_run, "fig28", batch_size=64, max_batches=1, progress=False, backend=replace(real, run_attack=dies_after_six), registry=get_registry())
        finally:
            torch.set_num_threads(threads)
        yield {"full": Path(full), "curve": Path(curve), "killed": killed_run / "swipe-fig28.json"}


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def svg_bars(svg: str, gid: str) -> float:
    """Height (in SVG units) of the bar drawn with this gid."""
    match = re.search(rf'<g id="{re.escape(gid)}">\s*<path d="([^"]+)"', svg)
    assert match, f"no bar {gid} in the SVG"
    ys = [float(y) for y in re.findall(r"[ML] [\d.]+ ([\d.]+)", match.group(1))]
    return max(ys) - min(ys)


def unwrapped(text: str) -> str:
    """A legend label without the line breaks the figure wraps it at (so it compares with the label it came from)."""
    return re.sub(r"\s+", "", text)


def svg_texts(svg: str) -> list[str]:
    return [t for t in re.findall(r"<text[^>]*>([^<]*)</text>", svg)]


# ---------------------------------------------------------------------------------------------- ERS


def test_ers_figure_of_the_stored_results_draws_their_rescaled_scores(tmp_path):
    from robrank.plot.ers import ers_figure, ers_series, plot_ers
    from robrank.swipe.report import load_summaries

    assert len(STORED) >= 4
    payloads = [json.loads(p.read_text()) for p in STORED]
    series = ers_series(load_summaries(STORED, registry=get_registry()))
    for s, payload in zip(series, payloads):
        assert s.columns == ("CA+", "CA-", "QA+", "QA-", "TMA", "ES:D", "ES:R", "LTM", "GTM", "GTT")
        assert list(s.values) == pytest.approx(list(payload["ers"]["rescaled"].values()))
        assert s.ers == pytest.approx(payload["ers"]["ers"]) and s.partial is None
    # the heights matplotlib was given
    fig = ers_figure(load_summaries(STORED, registry=get_registry()))
    bars = [p for p in fig.axes[0].patches if (p.get_gid() or "").startswith("ers-")]
    assert len(bars) == 10 * len(STORED)
    for i, payload in enumerate(payloads):
        drawn = [p.get_height() for p in bars if p.get_gid().startswith(f"ers-{i}-")]
        assert drawn == pytest.approx(list(payload["ers"]["rescaled"].values()))
    # and read back from the SVG file: bar heights proportional to the scores, ERS in the legend
    svg = plot_ers(STORED, tmp_path / "ers.svg", registry=get_registry()).read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    unit = None
    for i, payload in enumerate(payloads):
        for column, value in zip(series[i].columns, payload["ers"]["rescaled"].values()):
            height = svg_bars(svg, f"ers-{i}-{column}")
            if value > 5:
                unit = unit or height / value
                assert height / value == pytest.approx(unit, rel=1e-3)
        assert f"{series[i].label} (ERS {payload['ers']['ers']:.1f})" in svg_texts(svg)


def test_ers_png_size_and_deterministic_files(tmp_path):
    from robrank.plot.ers import plot_ers
    from robrank.plot.figure import DPI

    a = plot_ers(STORED[:2], tmp_path / "a.png", registry=get_registry())
    b = plot_ers(STORED[:2], tmp_path / "b.png", registry=get_registry())
    width, height = png_size(a)  # the full text width; a panel of 2 in plus the legend's measured height
    assert width == round(7.16 * DPI) and 2.1 * DPI < height < 2.6 * DPI
    assert a.read_bytes() == b.read_bytes()
    assert a.stat().st_size < 200_000
    for suffix, magic in ((".svg", b"<?xml"), (".pdf", b"%PDF")):
        one = plot_ers(STORED[:2], tmp_path / f"one{suffix}", registry=get_registry()).read_bytes()
        two = plot_ers(STORED[:2], tmp_path / f"two{suffix}", registry=get_registry()).read_bytes()
        assert one.startswith(magic) and one == two
    assert b"CreationDate" not in (tmp_path / "one.pdf").read_bytes()
    assert b"<dc:date>" not in (tmp_path / "one.svg").read_bytes()


def test_ers_figure_of_real_digits_swipes_marks_the_partial_one(swipes, tmp_path):
    from robrank.plot.ers import PARTIAL_HATCH, ers_figure, ers_series
    from robrank.swipe.report import load_summaries

    summaries = load_summaries([swipes["full"], swipes["killed"]], registry=get_registry())
    full, killed = ers_series(summaries)
    payload = json.loads(swipes["full"].read_text())
    assert full.partial is None and list(full.values) == pytest.approx(list(payload["ers"]["rescaled"].values()))
    assert killed.partial == "64 of 364 queries, 6 of 9 attacks" and killed.ers is None
    # six attacks fill seven columns (ES fills two): three are missing
    assert [c for c, v in zip(killed.columns, killed.values) if v is None] == ["LTM", "GTM", "GTT"]
    fig = ers_figure(summaries)
    hatches = {p.get_gid().split("-")[1]: p.get_hatch() for p in fig.axes[0].patches if (p.get_gid() or "").startswith("ers-")}
    assert hatches == {"0": None, "1": PARTIAL_HATCH}
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts.count("n/a") == 3
    legend = [unwrapped(t.get_text()) for t in fig.legends[0].get_texts()]
    assert legend[1] == unwrapped(f"{killed.label} (ERS n/a; partial: {killed.partial})")
    assert legend[0] == unwrapped(f"{full.label} (ERS {payload['ers']['ers']:.1f})")


# ---------------------------------------------------------------------------------------------- curve


def test_curve_of_a_real_eps_swipe_draws_the_json_values(swipes, tmp_path):
    from robrank.attacks.spec import parse_spec
    from robrank.plot.curve import curve_figure, curve_panels
    from robrank.swipe.report import load_summaries

    summaries = load_summaries([swipes["curve"]], registry=get_registry())
    payload = json.loads(swipes["curve"].read_text())
    panels = curve_panels(summaries)
    assert [p.title for p in panels] == ["CA+", "CA-", "SPQA+", "SPQA-"]
    by_spec = {a["spec"]: a for a in payload["attacks"]}
    for panel, head in zip(panels, ("CA:pm=+:W=1", "CA:pm=-:W=1", "SPQA:pm=+:M=1", "SPQA:pm=-:M=1")):
        assert panel.axis == "eps" and panel.metric == "PCTL" and len(panel.lines) == 1
        (line,) = panel.lines
        assert line.x == pytest.approx([7.0 * i for i in CURVE_STEPS], abs=0.01)
        specs = [parse_spec(f"{head}:eps={7 * i / 255:.5f}:alpha={7 * i / 255 / 2:.5f}:pgditer=2", registry=get_registry()).text for i in CURVE_STEPS]
        assert line.y == pytest.approx([by_spec[s]["adv"]["prank"] for s in specs])
        assert line.clean == pytest.approx(by_spec[specs[0]]["orig"]["prank"])
    # at ε = 0 the attack cannot move anything: the adversarial value is the clean one
    assert panels[0].lines[0].y[0] == pytest.approx(panels[0].lines[0].clean)
    fig = curve_figure(summaries)
    for ax, panel in zip(fig.axes, panels):
        (drawn,) = [ln for ln in ax.get_lines() if (ln.get_gid() or "").startswith("curve-")]
        assert drawn.get_xdata().tolist() == pytest.approx(panel.lines[0].x)
        assert drawn.get_ydata().tolist() == pytest.approx(panel.lines[0].y)
        levels = [ln.get_ydata()[0] for ln in ax.get_lines() if ln.get_linestyle() == ":"]
        assert levels == pytest.approx([panel.lines[0].clean])
        assert ax.get_title() == panel.heading() and ax.get_xlabel() == "ε (L∞, ×1/255)"
        assert drawn.get_linestyle() == "--"  # a partial swipe: dashed, and said in the legend
    legend = [unwrapped(t.get_text()) for t in fig.legends[0].get_texts()]
    assert legend[0] == unwrapped(f"{summaries[0].label} (partial: 96 of 364 queries)")

def test_curve_with_two_runs_one_line_each_and_w_as_axis(swipes, tmp_path, robrank_cli):
    from robrank.plot.curve import curve_panels
    from robrank.swipe.report import load_summaries

    # a second "run": the same file under another run directory name
    other = tmp_path / "other-run" / "swipe-figcurve.json"
    other.parent.mkdir()
    payload = json.loads(swipes["curve"].read_text())
    payload["model"]["run_dir"] = str(other.parent)
    other.write_text(json.dumps(payload))
    panels = curve_panels(load_summaries([swipes["curve"], other], registry=get_registry()))
    assert all(len(p.lines) == 2 and p.lines[1].label.startswith("other-run/") for p in panels)
    # W varies at a fixed ε: W becomes the axis
    ws = dict(payload, planned=[], attacks=[])
    for w in (1, 2, 5):
        entry = dict(payload["attacks"][0], spec=f"CA:pm=+:W={w}:eps=0.30196:alpha=0.011764:pgditer=2")
        entry["adv"] = {"prank": 10.0 * w}  # percent
        ws["attacks"].append(entry)
        ws["planned"].append(entry["spec"])
        entry.pop("sums", None)  # hand-made averages
    from robrank.swipe.schema import coverage

    ws["coverage"] = coverage(ws)
    path = tmp_path / "w.json"
    path.write_text(json.dumps(ws))
    (panel,) = curve_panels(load_summaries([path], registry=get_registry()))
    assert panel.axis == "W" and panel.lines[0].x == [1.0, 2.0, 5.0] and panel.lines[0].y == pytest.approx([10, 20, 50])
    result = robrank_cli("plot", "curve", str(path), "--output", str(tmp_path / "w.svg"))
    assert result.exit_code == 0, result
    assert any(t.startswith("W (L") for t in svg_texts((tmp_path / "w.svg").read_text()))


def test_curve_of_a_profile_without_a_varying_budget_is_a_one_line_error(robrank_cli, tmp_path):
    result = robrank_cli("plot", "curve", str(STORED[0]), "--output", str(tmp_path / "c.png"))
    assert result.exit_code == 2 and "varies eps, W or M" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "c.png").exists()


# ---------------------------------------------------------------------------------------------- training


def test_training_figure_draws_metrics_jsonl(tmp_path, robrank_cli):
    from robrank.plot.training import load_training, training_figure

    runs = [REPO / "docs" / "results" / "mnist-none", REPO / "docs" / "results" / "fashion-act"]
    loaded = [load_training(r) for r in runs]
    fig = training_figure(loaded)
    assert [ax.get_title() for ax in fig.axes] == ["R@1 (%)", "mAP (%)", "NMI (%)", "training loss"]
    for i, run in enumerate(runs):
        records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        for ax, (key, factor) in zip(fig.axes, (("R@1", 100), ("mAP", 100), ("NMI", 100), ("train_loss", 1))):
            (line,) = [ln for ln in ax.get_lines() if ln.get_gid() == f"training-{key}-{i}"]
            assert line.get_xdata().tolist() == [r["epoch"] for r in records]
            assert line.get_ydata().tolist() == pytest.approx([factor * r[key] for r in records])
    out = tmp_path / "t.png"
    result = robrank_cli("plot", "training", *map(str, runs), "--output", str(out), "--label", "no defense")
    assert result.exit_code == 0, result
    width, height = png_size(out)  # the full text width; panels of 1.9 in plus the legend's measured height
    assert width == 1432 and 2.0 * 200 < height < 2.5 * 200
    svg = tmp_path / "t.svg"
    assert robrank_cli("plot", "training", *map(str, runs), "--output", str(svg), "--label", "no defense").exit_code == 0
    assert {"no defense", "fashion-act"} <= set(svg_texts(svg.read_text()))


def test_training_of_a_resumed_run_keeps_the_last_line_per_epoch(tmp_path):
    from robrank.plot.training import load_training

    run = tmp_path / "run"
    run.mkdir()
    lines = [{"epoch": 1, "R@1": 0.5, "train_loss": 0.2}, {"epoch": 2, "R@1": 0.6, "train_loss": 0.1},
             {"epoch": 2, "R@1": 0.7, "train_loss": 0.1, "NMI": 0.3}, {"epoch": 3, "R@1": float("nan")}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    loaded = load_training(run)
    assert loaded.series["R@1"] == ([1, 2], pytest.approx([50.0, 70.0]))
    assert loaded.series["NMI"] == ([2], pytest.approx([30.0]))


def test_plot_errors_are_one_line(robrank_cli, tmp_path):
    cases = [
        (("plot", "ers", str(STORED[0]), "--output", str(tmp_path / "x.jpg")), "end the file name in .png, .svg, .pdf"),
        (("plot", "training", str(tmp_path), "--output", str(tmp_path / "t.png")), "has no metrics.jsonl"),
        (("plot", "ers", str(tmp_path / "missing.json")), "missing.json"),
    ]
    for args, message in cases:
        result = robrank_cli(*args)
        assert result.exit_code == 2 and message in result.output, result
        assert len(result.output.strip().splitlines()) == 1


def test_import_robrank_does_not_import_matplotlib():
    import subprocess
    import sys

    code = ("import sys, robrank, robrank.plot, robrank.cli.plot, robrank.cli.show, robrank.swipe.report; "
            "assert 'matplotlib' not in sys.modules, 'matplotlib imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_plot_ers_refuses_a_profile_without_ers(swipes, robrank_cli, tmp_path):
    result = robrank_cli("plot", "ers", str(swipes["curve"]), "--output", str(tmp_path / "e.png"))
    assert result.exit_code == 2 and "ERS profile" in result.output
