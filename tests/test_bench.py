"""``robrank bench``, its model card and ``--verify`` on the bundled digits data.

A test dataset ``digits-t`` (the first 120 test images of digits) declares a tiny reference
profile (rob28 with 2 PGD steps) whose registered worst-case variant is the same with
``opt=worst``: the bench runs the real swipe machinery on its whole split in seconds. The
full-size bench is in docs/bench.md.
"""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

import robrank
from robrank.records import DatasetRecord, ProfileRecord
from robrank.testing import registered, write_untrained_run
from robrank.plugins import get_registry


SPLIT = 120
CURVE_EPS = (0.05, 0.30196)


def _small_digits(root=None):
    from robrank.data.base import TensorImageDataset
    from robrank_plugins.datasets.digits_data import DigitsSource

    class SmallDigits(DigitsSource):
        def load_split(self, split, augment=False):
            full = super().load_split(split, augment)
            if split != "test":
                return full
            return TensorImageDataset(full.data[:SPLIT], full.labels[:SPLIT])

    return SmallDigits(root)


def _tiny(specs):
    return [s.replace("pgditer=32", "pgditer=2") for s in specs]


class BenchPlugin:
    @robrank.hookimpl
    def register_datasets(self, register):
        register(DatasetRecord(name="digits-t", factory=_small_digits, summary="digits with the tiny bench profiles", image_size=28,
                               profile="tiny28"))

    @robrank.hookimpl
    def register_profiles(self, register):
        from robrank_plugins.profiles.ers import ERS
        from robrank_plugins.profiles.reference import rob28

        register(ProfileRecord(name="tiny28", factory=lambda: _tiny(rob28()), summary="rob28, 2 steps", image_size=28, score=ERS))
        register(ProfileRecord(name="tiny28-aa", factory=lambda: [f"{s}:opt=worst" for s in _tiny(rob28())], summary="worst case, 2 steps",
                               image_size=28, score=ERS, variant_of="tiny28", worst_case=True))
        register(ProfileRecord(name="tiny28-curve", factory=lambda: [f"QA:pm=+:M=1:eps={e}:alpha=0.011764:pgditer=2" for e in CURVE_EPS],
                               summary="QA+ over two budgets, 2 steps", image_size=28))


@pytest.fixture(scope="module")
def bench_env(tmp_path_factory):
    """One untrained run of digits-t, benched once for the module (the plugin stays registered meanwhile)."""
    import torch
    from click.testing import CliRunner

    from robrank.cli import cli

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with registered(BenchPlugin()) as host:
        run_dir = write_untrained_run(tmp_path_factory.mktemp("bench") / "digits-t-lenet", dataset="digits-t")
        result = CliRunner().invoke(cli, ["bench", str(run_dir), "--no-progress"])
        assert result.exit_code == 0, result.output
        yield SimpleNamespace(host=host, run_dir=run_dir, card=run_dir / "bench" / "card.json", output=result.output)
    torch.set_num_threads(threads)


@pytest.fixture
def run_dir(bench_env):
    return bench_env.run_dir


def test_bench_writes_a_card_from_two_full_swipes_and_prints_one_screen(bench_env):
    path, out = bench_env.card, bench_env.output
    card = json.loads(path.read_text())
    from robrank.cards.schema import validate
    from robrank.swipe.schema import load_results

    validate(card)
    assert card["draft"] is False and card["evaluation"]["partial"] is None
    assert card["data"]["dataset"] == "digits-t" and card["data"]["queries"] == SPLIT and len(card["data"]["sha256"]) == 64
    ref, worst = (load_results(path.parent / card["evaluation"]["files"][r], registry=get_registry()) for r in ("reference", "worst_case"))
    assert (ref["profile"], worst["profile"]) == ("tiny28", "tiny28-aa")
    assert all(a["count"] == SPLIT for a in ref["attacks"] + worst["attacks"])
    for role, payload in (("reference", ref), ("worst_case", worst)):  # the card repeats the swipes' score, column by column
        score = card["scores"][role]
        assert score["value"] == pytest.approx(payload["ers"]["ers"])
        assert [c["rescaled"] for c in score["columns"]] == pytest.approx([payload["ers"]["rescaled"][c["key"]] for c in score["columns"]])
    # the worst case contains the reference search, so no column can be weaker
    for a, b in zip(card["scores"]["reference"]["columns"], card["scores"]["worst_case"]["columns"]):
        assert b["rescaled"] <= a["rescaled"] + 1e-9, a["label"]
    assert card["threat_model"]["reference"]["eps"] == pytest.approx(0.30196) and card["threat_model"]["reference"]["norm"] == "inf"
    assert card["threat_model"]["worst_case"]["search"] == "worst" and card["threat_model"]["reference"]["steps"] == 2
    # budget: 9 attacks x 2 gradients per query (reference), 3x that for the worst case, over SPLIT queries
    assert card["cost"]["gradients"] == SPLIT * (9 * 2 + 9 * 6)
    model = card["model"]
    assert model["kind"] == "run" and model["sha256_file"] == ref["model"]["sha256"] and len(model["sha256_tensors"]) == 64
    assert model["parameters"] > 0 and model["metric"] == "N" and model["training"]["backbone"] == "lenet"
    assert set(card["clean"]) >= {"R@1", "mAP"} and all(0 <= v <= 100 for v in card["clean"].values())
    assert "tiny28-aa" in out and "rank by this" in out and f"{card['scores']['worst_case']['value']:.1f}" in out
    assert "DRAFT" not in out and str(path) in out and len(out.splitlines()) <= 25


def test_bench_resumes_and_a_draft_is_marked_everywhere(run_dir, robrank_cli, monkeypatch):
    from robrank.swipe import runner

    real = runner.SwipeBackend.default(get_registry())
    calls = []

    def crashing(model, dataset, spec, **kwargs):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(spec.text)
        return real.run_attack(model, dataset, spec, **kwargs)

    from dataclasses import replace

    monkeypatch.setattr(runner.SwipeBackend, "default", classmethod(lambda cls, *args, **kwargs: replace(real, run_attack=crashing)))
    first = robrank_cli("bench", str(run_dir), "--max-queries", "16", "--no-progress")
    assert first.exit_code == 130 and not (run_dir / "bench-draft" / "card.json").exists()
    monkeypatch.setattr(runner.SwipeBackend, "default", classmethod(lambda cls, *args, **kwargs: real))
    again = robrank_cli("bench", str(run_dir), "--max-queries", "16", "--no-progress")
    assert again.exit_code == 0, again
    card = json.loads((run_dir / "bench-draft" / "card.json").read_text())
    assert card["draft"] is True and f"16 of {SPLIT} queries" in card["draft_reason"]
    assert again.output.startswith("DRAFT") and "(draft)" in again.output


def test_python_bench_equals_the_command(bench_env, run_dir):
    path = bench_env.card
    card = robrank.bench(str(run_dir), output=str(run_dir / "bench"))  # the same folder: every swipe is already there
    stored = json.loads(path.read_text())
    assert card["scores"] == stored["scores"] and card["data"] == stored["data"] and card["_path"] == str(path)


# ---- --verify ---------------------------------------------------------------------------


def _copy_card(bench_env, tmp_path, name="card.json"):
    card = json.loads(bench_env.card.read_text())
    path = tmp_path / name
    path.write_text(json.dumps(card))
    return path, card


def test_verify_passes_on_the_honest_card_and_records_it(bench_env, robrank_cli, tmp_path):
    path, _ = _copy_card(bench_env, tmp_path)
    result = robrank_cli("bench", "--verify", str(path), "--sample", "48", "--no-progress")
    assert result.exit_code == 0, result
    first = result.output.splitlines()[0]
    assert first.startswith("VERIFIED") and "48 of 120 queries" in first
    assert "tiny28-aa GTT" in result.output and "clean R@1" in result.output
    recorded = json.loads(path.read_text())["verification"]
    assert recorded["passed"] is True and recorded["sample"] == 48
    from robrank.cards.schema import status

    assert status(json.loads(path.read_text())) == "verified" and status(json.loads(bench_env.card.read_text())) == "reported"


def test_verify_fails_naming_the_edited_columns(bench_env, robrank_cli, tmp_path):
    path, card = _copy_card(bench_env, tmp_path)
    # a consistent edit (raw, rescaled and score together): only the re-attacked sample can refute it
    worst = card["scores"]["worst_case"]
    gtt = next(c for c in worst["columns"] if c["label"] == "GTT")
    gtt["raw"] = gtt["rescaled"] = min(100.0, gtt["rescaled"] + 60.0)
    worst["value"] = sum(c["rescaled"] for c in worst["columns"]) / len(worst["columns"])
    # an inconsistent edit: a rescaled value that does not follow from its raw one
    ref = card["scores"]["reference"]
    next(c for c in ref["columns"] if c["label"] == "CA-")["rescaled"] += 5.0
    path.write_text(json.dumps(card))
    result = robrank_cli("bench", "--verify", str(path), "--sample", "48", "--no-progress")
    assert result.exit_code == 1, result
    verdict = result.output.splitlines()[0]
    assert verdict.startswith("FAILED") and "tiny28-aa GTT" in verdict and "tiny28 CA-" in verdict and "inconsistent" in verdict
    assert "tiny28-aa CA+" not in verdict  # the columns left alone hold
    assert json.loads(path.read_text())["verification"]["passed"] is False


def test_verify_refuses_another_model_and_a_draft(bench_env, robrank_cli, tmp_path):
    path, card = _copy_card(bench_env, tmp_path)
    other = write_untrained_run(tmp_path / "other", dataset="digits-t", seed=1)
    result = robrank_cli("bench", "--verify", str(path), str(other), "--no-progress")
    assert result.exit_code == 1 and "model's tensors differ" in result.output.splitlines()[0]
    card["draft"], card["draft_reason"] = True, "evaluated with a query limit"
    path.write_text(json.dumps(card))
    result = robrank_cli("bench", "--verify", str(path), "--no-progress")
    assert result.exit_code == 2 and "draft card" in result.output


# ---- robrank leaderboard ----------------------------------------------------------------


def test_leaderboard_site_ranks_by_worst_case_and_renders_in_chromium(bench_env, robrank_cli, tmp_path):
    from test_report_formats import render_in_chromium

    strong, weak = json.loads(bench_env.card.read_text()), json.loads(bench_env.card.read_text())
    strong["name"] = "strong <b>model</b>"  # card text is escaped, never markup
    weak["name"] = "weak"
    for card, shift in ((strong, 5.0), (weak, -5.0)):  # the weak one has the higher reference score: rank by worst case
        card["scores"]["worst_case"]["value"] += shift
        card["scores"]["reference"]["value"] -= shift
    paths = []
    for card in (weak, strong):
        paths.append(tmp_path / f"{card['name'][:4]}.json")
        paths[-1].write_text(json.dumps(card))
    out = tmp_path / "site"
    result = robrank_cli("leaderboard", *map(str, paths), "--output", str(out))
    assert result.exit_code == 0, result
    index = (out / "index.html").read_text()
    assert "<b>model</b>" not in index and "strong &lt;b&gt;model&lt;/b&gt;" in index
    assert "http://" not in index and "https://" not in index
    board = json.loads((out / "leaderboard.json").read_text())
    assert [e["name"] for e in board["entries"]] == ["strong <b>model</b>", "weak"]
    assert "| 1 | [strong <b>model</b>]" in (out / "leaderboard.md").read_text()
    check = """<script>window.addEventListener("load", () => {
      const rows = [...document.querySelectorAll("table.board tbody tr")].map(r => r.cells[1].textContent);
      const links = [...document.querySelectorAll("table.board a")].map(a => a.getAttribute("href"));
      const out = document.createElement("pre"); out.id = "robrank-check";
      out.textContent = JSON.stringify({figures: [], rows: {board: rows}, links}); document.body.appendChild(out);
    });</script>"""
    page = out / "index-check.html"
    page.write_text(index.replace("</body>", check + "</body>"))
    import test_report_formats

    seen = render_in_chromium_raw(page, test_report_formats)
    assert seen["rows"]["board"] == ["strong <b>model</b>", "weak"]
    for link in seen["links"]:
        assert (out / link).is_file(), link
        entry = render_in_chromium(out / link)  # each entry page: its ERS bars load and have a size
        assert [f["id"] for f in entry["figures"]] == ["fig-ers"] and entry["figures"][0]["complete"] and entry["figures"][0]["width"] > 0
        assert (out / link).with_suffix(".json").is_file()


def _embedded(page, figure_id, mime):
    import base64
    import re

    match = re.search(rf'<figure id="{figure_id}"><img src="data:{re.escape(mime)};base64,([^"]+)"', page)
    return None if match is None else base64.b64decode(match.group(1))


def test_leaderboard_curve_and_retrieval_picture_go_only_where_they_belong(bench_env, robrank_cli, tmp_path):
    curve = tmp_path / "curve.json"
    swiped = robrank_cli("swipe", str(bench_env.run_dir), "-p", "tiny28-curve", "--output", str(curve), "--no-progress")
    assert swiped.exit_code == 0, swiped
    other = json.loads(bench_env.card.read_text())  # another model's card, away from its swipes and run
    other["name"], other["model"]["sha256_file"], other["model"]["sha256_tensors"] = "elsewhere", "0" * 64, "1" * 64
    other_path = tmp_path / "other.json"
    other_path.write_text(json.dumps(other))
    out = tmp_path / "site"
    result = robrank_cli("leaderboard", str(bench_env.card), str(other_path), "--output", str(out), "--curve", str(curve), "--show")
    assert result.exit_code == 0, result
    board = {e["name"]: (out / e["page"]).read_text() for e in json.loads((out / "leaderboard.json").read_text())["entries"]}
    mine, theirs = board[json.loads(bench_env.card.read_text())["name"]], board["elsewhere"]
    svg = _embedded(mine, "fig-curve", "image/svg+xml").decode()
    assert svg.startswith("<?xml") and "curve.json" in mine and "QA" in svg
    assert _embedded(theirs, "fig-curve", "image/svg+xml") is None and "No robustness curve was measured" in theirs
    from robrank.plot.curve import curve_panels
    from robrank.swipe.summary import load_summaries

    (panel,) = curve_panels(load_summaries([curve], get_registry()))  # what the figure draws: QA+ at both budgets
    assert panel.axis == "eps" and [len(line.x) for line in panel.lines] == [len(CURVE_EPS)]
    # the picture is robrank show's own figure for query 0 under the reference profile's first attack (CA+ here)
    picture = _embedded(mine, "fig-show", "image/png")
    spec = json.loads(bench_env.card.read_text())["threat_model"]["reference"]["specs"][0]
    assert spec.startswith("CA:pm=+")
    shown = robrank_cli("show", str(bench_env.run_dir), "-A", spec, "--queries", "0", "--output", str(tmp_path / "show.png"))
    assert shown.exit_code == 0, shown
    assert picture is not None and picture == (tmp_path / "show.png").read_bytes()
    assert _embedded(theirs, "fig-show", "image/png") is None and "No retrieval picture: the card's swipe file" in __import__("html").unescape(theirs)
    # without --show there is no picture section; a curve of no carded model is refused in one line
    plain = robrank_cli("leaderboard", str(other_path), "--output", str(tmp_path / "plain"))
    assert plain.exit_code == 0 and "Before and after" not in next((tmp_path / "plain" / "entries").glob("*.html")).read_text()
    refused = robrank_cli("leaderboard", str(other_path), "--output", str(tmp_path / "bad"), "--curve", str(curve))
    assert refused.exit_code == 2 and "no card names" in refused.output and "Traceback" not in refused.output


def render_in_chromium_raw(page, module):
    """Chromium on a page that already carries its own check script."""
    import re
    import subprocess
    import tempfile
    from html import unescape

    browser = module._browser()
    with tempfile.TemporaryDirectory(prefix="robrank-chromium-") as profile:
        done = subprocess.run([browser, *module.BROWSER_FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
                              capture_output=True, text=True, timeout=120, env={**__import__("os").environ, "HOME": profile})
    match = re.search(r'<pre id="robrank-check">(.*?)</pre>', done.stdout, re.S)
    assert match, done.stderr[-1000:]
    return json.loads(unescape(match.group(1)))


# ---- the reproduction cards and the refusals ---------------------------------------------

REPO = __import__("pathlib").Path(__file__).resolve().parent.parent


def test_docs_leaderboard_cards_are_what_the_stored_results_hold():
    from robrank.cards.schema import load_card, status
    from robrank.cards.stored import stored_card
    from robrank.swipe.schema import load_results

    stored = sorted((REPO / "docs" / "leaderboard" / "cards").glob("*.json"))
    rows = sorted(p.parent.name for p in (REPO / "docs" / "results").glob("*/swipe-rob28.json"))
    assert [p.stem for p in stored] == rows  # make leaderboard was rerun after docs/results changed
    for path in stored:
        card, fresh = load_card(path), stored_card(REPO / "docs" / "results" / path.stem, registry=get_registry())
        assert card["scores"] == json.loads(json.dumps(fresh["scores"])) and card["clean"] == pytest.approx(fresh["clean"])
        swipe = load_results(REPO / "docs" / "results" / path.stem / "swipe-rob28.json", registry=get_registry())
        assert card["scores"]["reference"]["value"] == pytest.approx(swipe["ers"]["ers"])
        assert "worst_case" not in card["scores"] and status(card) == "reported"  # never measured, never filled in
    board = json.loads((REPO / "docs" / "leaderboard" / "leaderboard.json").read_text())
    assert all(e["ers_worst_case"] is None for e in board["entries"]) and len(board["entries"]) == len(rows)


def test_a_card_is_refused_from_a_partial_or_forced_swipe():
    from robrank.cards.bench import BenchError, _check_complete

    full = {"profile": "p", "attacks": [{"spec": "CA:pm=+", "count": 10}], "planned": ["CA:pm=+"], "queries": 10}
    partial = {**full, "attacks": [{"spec": "CA:pm=+", "count": 4}]}
    forced = {**full, "forced": {"profile_image_size": 224, "data_image_size": 28}}
    assert _check_complete({"reference": full}, draft=False) is None
    with pytest.raises(BenchError, match="partial result"):
        _check_complete({"reference": partial}, draft=False)
    assert "4 of 10 queries" in _check_complete({"reference": partial}, draft=True)
    for draft in (False, True):
        with pytest.raises(BenchError, match="forced"):
            _check_complete({"reference": forced}, draft=draft)
