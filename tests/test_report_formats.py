"""``robrank report -f latex|html|csv``: booktabs tables, a self-contained page checked in a real browser, spec-field columns."""
from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from robrank.swipe.report import load_summaries, report
from robrank.plugins import get_registry

REPO = Path(__file__).resolve().parents[1]
STORED = sorted((REPO / "docs" / "results").glob("*/swipe-rob28.json"))
PGD = "eps=0.30196:alpha=0.011764:pgditer=32"
#: Chromium's Debian and upstream names
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome", "headless_shell")
BROWSER_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--virtual-time-budget=10000",
)


@pytest.fixture
def partial_file(tmp_path):
    """A stored swipe cut to its first five attacks (a killed swipe), as a second run."""
    payload = json.loads(STORED[0].read_text())
    payload["attacks"] = payload["attacks"][:5]
    payload["finished"] = None
    payload.pop("ers", None)
    payload["model"]["run_dir"] = "runs/killed_run"
    path = tmp_path / "killed.json"
    path.write_text(json.dumps(payload))
    return path


@pytest.fixture
def curve_file(tmp_path):
    """A small ε curve (CA+ at three budgets) built from a stored swipe's CA+ entry."""
    payload = json.loads(STORED[0].read_text())
    base = payload["attacks"][0]
    attacks = []
    for i, eps in enumerate(("0.0", "0.1", "0.30196")):
        entry = dict(base, spec=f"CA:pm=+:W=1:eps={eps}:alpha=0.011764:pgditer=32")
        entry["adv"] = dict(base["adv"], prank=0.5 - 0.2 * i)
        entry.pop("sums", None)  # hand-made averages: no per-sample sums to agree with
        attacks.append(entry)
    payload.update(profile="mycurve", ers_profile=False, attacks=attacks, planned=[a["spec"] for a in attacks])
    payload.pop("ers", None)
    path = tmp_path / "curve.json"
    path.write_text(json.dumps(payload))
    return path


# ---------------------------------------------------------------------------------------------- LaTeX


def test_latex_is_booktabs_in_published_order_with_partial_marked(partial_file):
    text = report([*STORED, partial_file], "latex", registry=get_registry())
    assert text.count(r"\begin{tabular}{lrrrrrrrrrrr}") == 2 and text.count(r"\toprule") == 2 and text.count(r"\bottomrule") == 2
    head = [line for line in text.splitlines() if line.startswith("run &")][0]
    assert head == r"run & CA+ & CA$-$ & QA+ & QA$-$ & TMA & ES:D & ES:R & LTM & GTM & GTT & ERS \\"
    payload = json.loads(STORED[-1].read_text())
    label = load_summaries([STORED[-1]], registry=get_registry())[0].label
    row = next(line for line in text.splitlines() if line.startswith(label.replace("_", r"\_") + " &"))
    cells = row.rstrip(r" \\").split(" & ")
    raw = payload["ers"]["raw"]
    assert cells[1:5] == [f"{raw[k]:.1f}" for k in ("cap", "cam", "qap", "qam")]
    assert cells[5] == f"{raw['tma']:.3f}" and cells[-1] == f"{payload['ers']['ers']:.1f}"
    # the killed swipe: dagger, missing cells as --, ERS --, and a footnote saying why
    killed = next(line for line in text.splitlines() if line.startswith(r"killed\_run/rob28$^\dagger$"))
    assert killed.rstrip(r" \\").split(" & ")[-5:] == ["--"] * 5
    assert r"$^\dagger$ killed\_run/rob28: partial (5 of 9 attacks)" in text


def test_latex_escapes_specials():
    from robrank.swipe.latex import escape

    assert escape("a_b & 50% #1 {x} $y ~ ^") == r"a\_b \& 50\% \#1 \{x\} \$y \textasciitilde{} \textasciicircum{}"
    assert escape("QA-") == "QA$-$" and escape("pm=-1") == "pm=-1"


# ---------------------------------------------------------------------------------------------- CSV


def test_csv_has_each_spec_field_in_its_own_column(curve_file, partial_file):
    rows = list(csv.DictReader(io.StringIO(report([curve_file], "csv", registry=get_registry()))))
    assert [r["eps"] for r in rows] == ["0.0", "0.1", "0.30196"]
    assert {(r["type"], r["pm"], r["W"], r["alpha"], r["pgditer"], r["semantics"]) for r in rows} == {("CA", "+", "1", "0.011764", "32", "reference")}
    assert [float(r["adversarial"]) for r in rows] == pytest.approx([50.0, 30.0, 10.0])
    assert "M" not in rows[0]  # no attack of the file takes M
    ers_rows = list(csv.DictReader(io.StringIO(report([STORED[0], partial_file], "csv", registry=get_registry()))))
    assert [(r["eps"], r["alpha"], r["pgditer"]) for r in ers_rows] == [("0.30196", "0.011764", "32")] * 2
    assert [r["partial"] for r in ers_rows] == ["", "5 of 9 attacks"]


def test_csv_of_an_attack_no_plugin_provides_keeps_its_row(tmp_path):
    payload = json.loads(STORED[0].read_text())
    payload["attacks"] = [dict(payload["attacks"][0], spec="NOSUCH:eps=0.1", type="NOSUCH", adv={"score": 0.5})]
    payload.update(planned=["NOSUCH:eps=0.1"], ers_profile=False, profile="mine")
    payload.pop("ers")
    path = tmp_path / "third.json"
    path.write_text(json.dumps(payload))
    (row,) = csv.DictReader(io.StringIO(report([path], "csv", registry=get_registry())))
    assert row["attack"] == "NOSUCH:eps=0.1" and row["type"] == "NOSUCH" and row["metric"] == "score"


# ---------------------------------------------------------------------------------------------- HTML


def test_html_is_self_contained_with_one_row_per_run(curve_file, partial_file):
    page = report([*STORED, partial_file, curve_file], "html", registry=get_registry())
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)=["'](?!data:)""", page), "the page must not load anything"
    assert "<script" not in page and "@import" not in page and "url(http" not in page
    for table in ("ers-raw", "ers-rescaled"):
        body = page.split(f'<table id="{table}">')[1].split("</table>")[0]
        assert body.count('<tr class="run') == len(STORED) + 1
        assert body.count('<tr class="run partial">') == 1 and "partial: 5 of 9 attacks" in body
    assert 'id="fig-ers"' in page and 'id="fig-curve"' in page
    assert page.count('src="data:image/svg+xml;base64,') == 2


def _browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no headless Chromium on this machine (Debian: apt-get install chromium; .ci/run installs it)")


#: appended to a copy of the page: report each figure's decoded size and the row count into the DOM
CHECK_SCRIPT = """<script>
window.addEventListener("load", () => {
  const figures = [...document.querySelectorAll("figure")].map(f => {
    const img = f.querySelector("img");
    return {id: f.id, complete: !!img && img.complete, width: img ? img.naturalWidth : 0, height: img ? img.naturalHeight : 0};
  });
  const rows = {};
  for (const t of document.querySelectorAll("table")) rows[t.id] = t.querySelectorAll("tbody tr.run").length;
  const out = document.createElement("pre");
  out.id = "robrank-check";
  out.textContent = JSON.stringify({figures, rows});
  document.body.appendChild(out);
});
</script>"""


def render_in_chromium(page: Path) -> dict:
    """Load the page in headless Chromium and return what CHECK_SCRIPT measured."""
    browser = _browser()
    checked = page.with_name(page.stem + "-check.html")
    checked.write_text(page.read_text().replace("</body>", CHECK_SCRIPT + "\n</body>"))
    with tempfile.TemporaryDirectory(prefix="robrank-chromium-") as profile:
        done = subprocess.run(
            [browser, *BROWSER_FLAGS, f"--user-data-dir={profile}", "--dump-dom", checked.as_uri()],
            capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": profile},
        )
    match = re.search(r'<pre id="robrank-check">(.*?)</pre>', done.stdout, re.S)
    assert match, f"Chromium did not run the check (exit {done.returncode}): {done.stderr[-1000:]}"
    import html

    return json.loads(html.unescape(match.group(1)))


def test_html_report_renders_in_headless_chromium(tmp_path, partial_file, curve_file, robrank_cli):
    page = tmp_path / "report.html"
    result = robrank_cli("report", *map(str, STORED), str(partial_file), str(curve_file), "-f", "html")
    assert result.exit_code == 0, result
    page.write_text(result.stdout)
    seen = render_in_chromium(page)
    assert [f["id"] for f in seen["figures"]] == ["fig-ers", "fig-curve"]
    for figure in seen["figures"]:
        assert figure["complete"] and figure["width"] > 300 and figure["height"] > 100, figure
    assert seen["rows"]["ers-raw"] == seen["rows"]["ers-rescaled"] == len(STORED) + 1


def test_html_states_each_attacks_budget_direction_and_clean_vs_adversarial():
    """A scored file's page lists every attack with its norm, eps, steps and step size as its spec states them."""
    stored = sorted((Path(__file__).resolve().parents[1] / "docs" / "results" / "mnist-none").glob("swipe-*.json"))[0]
    payload = json.loads(stored.read_text())
    page = report([str(stored)], "html", registry=get_registry())
    section = page[page.index("Per attack, clean vs adversarial"):]
    table = section[:section.index("</table>")]
    rows = re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td></tr>", table)
    assert {r[0] for r in rows} == {a["spec"] for a in payload["attacks"]}
    ca_plus = next(r for r in rows if r[0].startswith("CA:pm=+"))
    assert ca_plus[1] == "L∞ ε=0.30196, 32 steps of α=0.011764" and ca_plus[2] == "PCTL ↑"
    assert float(ca_plus[3]) == pytest.approx(100 * payload["attacks"][0]["orig"]["prank"], abs=0.05)
    assert "L∞, ε = 77/255" in section.split("</h2>")[0]
