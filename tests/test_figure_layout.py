"""Figures that hold up in a paper: the geometry of what is drawn, read back from matplotlib's renderer.

The stored reproduction swipes (docs/results) are the data; the L2 and curve variants below
are derived from them by editing specs (layout checks only: no number here is a result).
"""
from __future__ import annotations

import copy
import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from robrank.plugins import get_registry

pytest.importorskip("matplotlib")

REPO = Path(__file__).resolve().parents[1]
STORED = {p.parent.name: p for p in (REPO / "docs" / "results").glob("*/swipe-rob28.json")}
#: what a sweep names its cells: the names that used to run off the canvas
LONG = [
    "sweeps/grid/mnist-c2f2-ptripletN-none-seed0-rob28-cell-0001",
    "sweeps/grid/mnist-c2f2-ptripletN-act-pgditer32-seed0-rob28-cell-0002",
    "sweeps/grid/mnist-c2f2-ptripletN-est-exact-seed0-rob28-cell-0003",
    "a_single_run_name_without_any_place_to_break_it_that_goes_on_and_on_for_ever_and_ever_0004",
]


def _summaries(names=("mnist-none", "mnist-act", "mnist-est-exact")):
    from robrank.swipe.report import load_summaries

    return load_summaries([STORED[n] for n in names], get_registry())


def _l2(summary, label):
    """The same file as if swiped under rob28-l2 (specs rewritten to an L2 budget)."""
    from robrank.swipe.report import summarise

    payload = copy.deepcopy(summary.payload)
    fix = lambda s: s.replace("eps=0.30196:alpha=0.011764", "eps=2.0:alpha=0.15625") + ":norm=2"  # noqa: E731
    payload["profile"], payload["planned"] = "rob28-l2", [fix(s) for s in payload["planned"]]
    for entry in payload["attacks"]:
        entry["spec"] = fix(entry["spec"])
    return summarise(payload, summary.path, get_registry(), label=label)


def _curve(summary, label, l2=False):
    """A curve file: CA+-, QA+-, ES, GTT at five budgets, values between the clean and the stored adversarial ones."""
    from robrank.swipe.report import summarise

    payload = copy.deepcopy(summary.payload)
    payload.update(profile="qccurve28", ers_profile=False)
    payload.pop("ers", None)
    attacks = []
    for entry in summary.payload["attacks"]:
        if entry["type"] not in ("CA", "QA", "ES", "GTT"):
            continue
        for i in range(5):
            point = copy.deepcopy(entry)
            eps = 0.5 * i / 4 if l2 else 4 * i / 255
            point["spec"] = f"{entry['spec'].split(':eps=')[0]}:eps={eps:.5f}:alpha={eps / 8:.5f}:pgditer=8" + (":norm=2" if l2 else "")
            for key in point["adv"]:
                if key in point["orig"]:
                    point["adv"][key] = point["orig"][key] + (entry["adv"][key] - point["orig"][key]) * i / 4
                    point["sums"]["adv"][key] = point["adv"][key] * point["count"]  # the file's own consistency check
            attacks.append(point)
    payload["attacks"], payload["planned"] = attacks, [a["spec"] for a in attacks]
    return summarise(payload, summary.path, get_registry(), label=label)


def _inside(box, canvas, slack=0.5) -> bool:
    return box.x0 >= canvas.x0 - slack and box.y0 >= canvas.y0 - slack and box.x1 <= canvas.x1 + slack and box.y1 <= canvas.y1 + slack


def _check_legend(fig, labels):
    """The legend, each label and each colour swatch lie on the canvas, below every axes, with every character."""
    renderer = fig.canvas.get_renderer()
    fig.draw_without_rendering()
    (legend,) = fig.legends
    canvas = fig.bbox
    assert _inside(legend.get_window_extent(renderer), canvas), (legend.get_window_extent(renderer), canvas)
    for text in legend.get_texts():
        assert _inside(text.get_window_extent(renderer), canvas), text.get_text()
    for handle in legend.legend_handles:
        assert _inside(handle.get_window_extent(renderer), canvas)
    top = legend.get_window_extent(renderer).y1
    for ax in fig.axes:
        if ax.get_visible():
            assert ax.get_tightbbox(renderer).y0 >= top - 0.5, "the legend overlaps an axes"
    squeeze = lambda s: re.sub(r"\s+", "", s)  # noqa: E731
    assert [squeeze(t.get_text()) for t in legend.get_texts()] == [squeeze(label) for label in labels]


@pytest.mark.parametrize("width", ["page", "column"])
def test_ers_legend_of_long_run_names_fits_the_canvas(width):
    from robrank.plot.ers import ers_figure, ers_series
    from robrank.plot.figure import COLUMN_WIDTH, PAGE_WIDTH

    summaries = [replace(s, label=name + "/rob28") for s, name in zip(_summaries(("mnist-none", "mnist-act", "mnist-est-exact", "mnist-none")), LONG)]
    inches = PAGE_WIDTH if width == "page" else COLUMN_WIDTH
    fig = ers_figure(summaries, width=inches)
    assert fig.get_size_inches()[0] == pytest.approx(inches)
    _check_legend(fig, [s.legend for s in ers_series(summaries)])
    # the panel keeps its height: the legend adds to the figure instead of squeezing the bars
    assert fig.get_size_inches()[1] > 2.0 + 0.3


def test_ers_runs_of_different_threat_models_are_separate_labelled_panels():
    from robrank.plot.ers import ers_figure

    linf = _summaries(("mnist-none", "mnist-act"))
    l2 = [_l2(s, s.label.replace("rob28", "rob28-l2")) for s in linf]
    fig = ers_figure([linf[0], l2[0], linf[1], l2[1]])
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title(loc="left") for ax in axes] == ["threat model: L∞, ε = 77/255", "threat model: L2, ε = 2"]
    # each panel holds the bars of its own threat model's runs only (run index 0, 2 = L-inf; 1, 3 = L2)
    runs = [{int(p.get_gid().split("-")[1]) for p in ax.patches if (p.get_gid() or "").startswith("ers-")} for ax in axes]
    assert runs == [{0, 2}, {1, 3}]
    assert axes[0].get_ylim() == axes[1].get_ylim()
    renderer = fig.canvas.get_renderer()
    fig.draw_without_rendering()
    assert axes[0].get_window_extent(renderer).y0 > axes[1].get_window_extent(renderer).y1  # one above the other


def test_a_zero_score_draws_a_mark_and_a_missing_one_says_n_a():
    from robrank.plot.ers import ers_figure

    none, act = _summaries(("mnist-none", "mnist-act"))
    assert none.rescaled["gtt"] == 0.0  # the stored undefended model's GTT: a real zero
    missing = replace(act, rescaled={**act.rescaled, "gtt": None})
    fig = ers_figure([none, missing])
    (ax,) = fig.axes
    renderer = fig.canvas.get_renderer()
    fig.draw_without_rendering()
    (mark,) = [line for line in ax.get_lines() if line.get_gid() == "ers-zero-0-GTT"]
    assert list(mark.get_ydata()) == [0.0] and mark.get_visible() and mark.get_markersize() >= 3
    box = mark.get_window_extent(renderer)
    assert box.width >= 3 and box.height >= 1 and _inside(box, ax.get_window_extent(renderer).expanded(1.0, 1.2))
    (bar,) = [p for p in ax.patches if p.get_gid() == "ers-0-GTT"]
    assert abs(bar.get_x() + bar.get_width() / 2 - mark.get_xdata()[0]) < 1e-9
    assert not [line for line in ax.get_lines() if line.get_gid() == "ers-zero-1-GTT"]  # missing is not zero
    assert [t.get_text() for t in ax.texts].count("n/a") == 1


def test_curve_panels_of_one_unit_share_their_y_axis_and_say_which_way_is_robust():
    from robrank.plot.curve import curve_figure, curve_panels

    none, act = _summaries(("mnist-none", "mnist-act"))
    curves = [_curve(none, "none/curve"), _curve(act, "act/curve")]
    panels = curve_panels(curves)
    assert [p.title for p in panels] == ["CA+", "CA-", "QA+", "QA-", "ES", "GTT"]
    # the profile's score declares CA+/QA+ percentiles higher = robust, CA-/QA- lower, ES's shift lower;
    # GTT's first metric is in no score: the lines move it down from the clean level, so higher is robust
    assert [p.better for p in panels] == ["higher", "lower", "higher", "lower", "lower", "higher"]
    fig = curve_figure(curves)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == [p.heading() for p in panels]
    assert axes[0].get_title() == "CA+ (↑ more robust)" and axes[1].get_title() == "CA- (↓ more robust)"
    percent = [ax for ax, p in zip(axes, panels) if p.scale == "100.0"]
    assert len(percent) == 5 and len({ax.get_ylim() for ax in percent}) == 1
    (es,) = [ax for ax, p in zip(axes, panels) if p.title == "ES"]
    assert es.get_ylim() != percent[0].get_ylim()
    low, high = percent[0].get_ylim()
    every = [y for p in panels if p.scale == "100.0" for line in p.lines for y in (*line.y, line.clean)]
    assert low <= min(every) and high >= max(every)
    _check_legend(fig, [line.label for line in panels[0].lines] + ["clean (no attack)"])
    independent = [ax for ax in curve_figure(curves, shared_y=False).axes if ax.get_visible()]
    assert len({ax.get_ylim() for ax, p in zip(independent, panels) if p.scale == "100.0"}) > 1


def test_curves_of_two_threat_models_are_separate_rows_labelled_by_norm(tmp_path, robrank_cli):
    from robrank.plot.curve import curve_figure, curve_panels

    (none,) = _summaries(("mnist-none",))
    curves = [_curve(none, "linf/curve"), _curve(none, "l2/curve", l2=True)]
    panels = curve_panels(curves)
    assert [p.norm for p in panels] == ["inf"] * 6 + ["2"] * 6
    assert all(len(p.lines) == 1 for p in panels)  # never an L2 line on an L-inf panel
    assert panels[0].lines[0].label == "linf/curve" and panels[6].lines[0].label == "l2/curve"
    assert panels[6].lines[0].x == pytest.approx([0.0, 0.125, 0.25, 0.375, 0.5])  # L2 radii as they are, not x255
    fig = curve_figure(curves)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_xlabel() for ax in axes] == ["ε (L∞, ×1/255)"] * 6 + ["ε (L2)"] * 6
    assert axes[0].get_title() == "CA+, L∞ (↑ more robust)" and axes[6].get_title() == "CA+, L2 (↑ more robust)"
    renderer = fig.canvas.get_renderer()
    fig.draw_without_rendering()
    lowest_linf = min(ax.get_window_extent(renderer).y0 for ax in axes[:6])
    assert all(ax.get_window_extent(renderer).y1 < lowest_linf for ax in axes[6:])  # L2 starts its own row
    _check_legend(fig, ["linf/curve", "l2/curve", "clean (no attack)"])
    # the CLI's switch
    path = tmp_path / "curve.json"
    path.write_text(json.dumps(curves[0].payload))
    for flag in ("--shared-y", "--independent-y"):
        result = robrank_cli("plot", "curve", str(path), flag, "--output", str(tmp_path / f"c{flag}.png"))
        assert result.exit_code == 0, result
    assert (tmp_path / "c--shared-y.png").read_bytes() != (tmp_path / "c--independent-y.png").read_bytes()


def test_report_tables_group_and_label_threat_models():
    from robrank.swipe.report import format_report

    none, act = _summaries(("mnist-none", "mnist-act"))
    l2 = _l2(none, "none-l2/rob28-l2")
    given = [none, l2, act]
    text = format_report(given, "markdown")
    rows = [line for line in text.splitlines() if line.startswith("| ") and "/rob28" in line]
    first_table = rows[:3]
    assert [r.split(" | ")[0].lstrip("| ").strip() for r in first_table] == [
        f"{none.label} [Linf, eps = 77/255]", f"{act.label} [Linf, eps = 77/255]", "none-l2/rob28-l2 [L2, eps = 2]"]
    assert [s.label for s in given] == [none.label, "none-l2/rob28-l2", act.label]  # the caller's summaries untouched
    one = format_report([none, act], "markdown")
    assert "[Linf" not in one and none.label in one  # a single threat model: labels as they were


def test_training_legend_of_long_run_names_fits_the_canvas():
    from robrank.plot.training import PANELS, TrainingRun, training_figure

    runs = []
    for i, name in enumerate(LONG):
        run = TrainingRun(label=name)
        run.series = {key: ([1, 2, 3], [50.0 + i, 60.0 + i, 70.0 + i]) for key, _title, _factor in PANELS}
        runs.append(run)
    fig = training_figure(runs)
    _check_legend(fig, LONG)
