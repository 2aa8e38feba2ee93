"""``robrank report``: published column order, rescaled scores, ERS, formats and bad files."""
from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner

from robrank.cli import cli
from robrank.errors import RobrankError
from robrank_plugins.profiles.ers import ers_block
from robrank.swipe.report import attack_metrics, format_report, load_summaries, report
from robrank.plugins import get_registry
from robrank.swipe.schema import upgrade

PGD = "eps=0.30196:alpha=0.011764:pgditer=32"
ROB28 = [f"CA:pm=+:W=1:{PGD}", f"CA:pm=-:W=1:{PGD}", f"QA:pm=+:M=1:{PGD}", f"QA:pm=-:M=1:{PGD}", f"TMA:{PGD}", f"ES:{PGD}", f"LTM:{PGD}", f"GTM:{PGD}", f"GTT:{PGD}"]


def rob_adv(cap, cam, qap, qam, tma, esd, esr, ltm, gtm, gtt):
    """Adversarial summaries (in the attacks' own units) that give these raw scores."""
    return [
        {"prank": cap / 100},
        {"prank": cam / 100},
        {"prank": qap / 100},
        {"prank": qam / 100},
        {"Cosine-SIM": tma},
        {"r@1": esr, "r@10": 50.0, "r@100": 90.0, "loss": -esd, "embshift": esd},
        {"r@1": ltm / 100},
        {"r@1": gtm / 100},
        {"ID-Retain@1": 0.0, "retain@4": gtt / 100},
    ]


def payload(run, profile, planned, advs, *, semantics="reference", ers_profile=True, orig=None):
    attacks = [
        {"spec": s, "type": s.split(":")[0], "orig": dict(orig or {"prank": 0.5, "r@1": 0.99}), "adv": a, "count": 10000, "seconds": 1.5}
        for s, a in zip(planned, advs)
    ]
    done = len(attacks) == len(planned)
    p = {
        "schema": "robrank-swipe",
        "schema_version": 1,
        "profile": profile,
        "ers_profile": ers_profile,
        "planned": planned,
        "semantics": semantics,
        "seed": 0,
        "max_batches": None,
        "batch_size": None,
        "model": {"checkpoint": f"/runs/{run}/checkpoints/last.pt", "sha256": "ab" * 32, "run_dir": f"/runs/{run}", "config": {}, "epoch": 8, "step": 3752},
        "dataset": "mnist",
        "queries": 10000,
        "device": "cpu",
        "versions": {"python": "3.12", "torch": "2.14", "robrank": "0.1.0"},
        "started": "2024-01-01T00:00:00+00:00",
        "finished": "2024-01-01T01:00:00+00:00" if done else None,
        "timings": {"gallery_seconds": 1.0, "total_seconds": 60.0},
        "attacks": attacks,
    }
    if done and ers_profile:  # a hand-made version-1 file: its fractions become percent when read
        p["ers"] = ers_block(upgrade(p, registry=get_registry())["attacks"])
    return p


@pytest.fixture
def files(tmp_path):
    def write(name, data):
        path = tmp_path / name
        path.write_text(json.dumps(data))
        return path

    hand = write("a.json", payload("mnist-act", "rob28", ROB28, rob_adv(10, 20, 30, 40, 0.5, 1.0, 7.0, 8.0, 9.0, 10.0)))
    cub = write("b.json", payload("cub-none", "rob28", ROB28, rob_adv(0.0, 100.0, 0.0, 99.9, 0.883, 1.762, 0.0, 0.0, 14.1, 0.0)))
    partial = write("c.json", payload("mnist-est", "rob28", ROB28, rob_adv(10, 20, 30, 40, 0.5, 1.0, 7.0, 8.0, 9.0, 10.0)[:6]))
    spqa = ["CA:pm=+:W=1:eps=0.01:alpha=0.003922:pgditer=10", "SPQA:pm=-:M=5:eps=0.3:alpha=0.01:pgditer=30"]
    eccv = write("d.json", payload("mnist-none", "eccv28", spqa, [{"prank": 0.123}, {"prank": 0.9876, "GTprank": 0.25}], ers_profile=False, orig={"prank": 0.5, "GTprank": 0.01}))
    return {"hand": hand, "cub": cub, "partial": partial, "eccv": eccv}


def cells(line):
    return line.split()


def test_table_has_published_columns_and_one_row_per_file(files):
    text = report([files["hand"], files["cub"]], registry=get_registry())
    lines = text.splitlines()
    # the title says which direction of each raw column is more robust
    assert lines[0] == "Raw scores (more robust: \u2191 higher CA+ QA+ ES:R LTM GTM GTT; \u2193 lower CA- QA- TMA ES:D)"
    assert cells(lines[1]) == ["run", "CA+", "CA-", "QA+", "QA-", "TMA", "ES:D", "ES:R", "LTM", "GTM", "GTT", "ERS"]
    assert cells(lines[3]) == ["mnist-act/rob28", "10.0", "20.0", "30.0", "40.0", "0.500", "1.000", "7.0", "8.0", "9.0", "10.0", "35.4"]
    assert cells(lines[4]) == ["cub-none/rob28", "0.0", "100.0", "0.0", "99.9", "0.883", "1.762", "0.0", "0.0", "14.1", "0.0", "3.8"]
    scaled = lines.index("Rescaled scores (0 = broken, 100 = robust: higher = more robust)")
    assert cells(lines[scaled + 3]) == ["mnist-act/rob28", "20.0", "80.0", "60.0", "60.0", "50.0", "50.0", "7.0", "8.0", "9.0", "10.0", "35.4"]
    assert cells(lines[scaled + 4])[1:6] == ["0.0", "0.0", "0.0", "0.1", "11.7"]
    assert "note" not in text


def test_missing_attacks_show_na_and_a_note(files):
    text = report([files["hand"], files["partial"]], registry=get_registry())
    row = next(l for l in text.splitlines() if l.startswith("mnist-est/rob28"))
    assert cells(row)[-5:] == ["7.0", "n/a", "n/a", "n/a", "n/a"]
    assert "note: mnist-est/rob28: 6/9 attacks done (missing LTM, GTM, GTT); ERS n/a" in text


def test_markdown(files):
    text = report([files["hand"], files["cub"]], "markdown", registry=get_registry())
    lines = text.splitlines()
    assert lines[0].startswith("**Raw scores (more robust:")
    assert lines[2] == "| run | CA+ | CA- | QA+ | QA- | TMA | ES:D | ES:R | LTM | GTM | GTT | ERS |"
    assert lines[3].startswith("| --- | ---: |")
    assert lines[4] == "| mnist-act/rob28 | 10.0 | 20.0 | 30.0 | 40.0 | 0.500 | 1.000 | 7.0 | 8.0 | 9.0 | 10.0 | 35.4 |"


def test_json(files):
    data = json.loads(report([files["cub"], files["partial"]], "json", registry=get_registry()))
    assert [d["label"] for d in data] == ["cub-none/rob28", "mnist-est/rob28"]
    assert data[0]["ers"] == pytest.approx(3.78)
    assert data[0]["raw"]["ES:D"] == pytest.approx(1.762) and data[0]["rescaled"]["TMA"] == pytest.approx(11.7)
    assert data[1]["ers"] is None and data[1]["missing"] == ["LTM", "GTM", "GTT"]
    assert data[1]["attacks_done"] == 6 and data[1]["attacks_planned"] == 9


def test_csv_one_row_per_file_for_ers_profiles(files):
    rows = list(csv.DictReader(io.StringIO(report([files["hand"], files["partial"]], "csv", registry=get_registry()))))
    assert [r["label"] for r in rows] == ["mnist-act/rob28", "mnist-est/rob28"]
    assert float(rows[0]["ERS"]) == pytest.approx(35.4) and float(rows[0]["QA+ rescaled"]) == pytest.approx(60.0)
    assert rows[1]["ERS"] == "" and rows[1]["GTT"] == "" and float(rows[1]["ES:R"]) == pytest.approx(7.0)


def test_non_ers_profile_lists_attacks_pjswipe_style(files):
    text = report([files["eccv"]], registry=get_registry())
    assert text.splitlines()[0] == "mnist-none/eccv28: mnist, semantics reference, 2/2 attacks"
    ca = next(l for l in text.splitlines() if l.startswith("CA:pm=+"))
    assert cells(ca)[1:] == ["PCTL", "\u2191", "50.0", "12.3", "/", "100.0"]  # CA+: a higher percentile is more robust
    gt = next(l for l in text.splitlines() if "GT PCTL" in l)
    assert cells(gt)[-4:] == ["1.0", "25.0", "/", "100.0"]
    assert "Raw scores" not in text and "ERS" not in text
    rows = list(csv.DictReader(io.StringIO(report([files["eccv"], files["hand"]], "csv", registry=get_registry()))))
    # two threat models (eccv28's eps 0.3, rob28's 77/255) in one table: each label carries its threat model
    assert {r["metric"] for r in rows if r["label"].startswith("mnist-none/eccv28 [")} == {"PCTL", "GT PCTL"}
    assert len(rows) == (1 + 2) + (9 + 2)  # eccv: CA, SPQA x2; rob28: 9 attacks, ES and GTT two lines each


def test_attack_metrics_scales():
    es = attack_metrics({"type": "ES", "orig": {"r@1": 99.0, "loss": 0.0}, "adv": {"r@1": 3.5, "embshift": 1.25}}, registry=get_registry())
    assert [(m.name, m.orig, m.adv, m.scale) for m in es] == [("ES", None, 1.25, "2.000"), ("R1", 99.0, 3.5, "100.0")]
    gtm = attack_metrics({"type": "GTM", "orig": {"r@1": 99.0}, "adv": {"r@1": 25.0}}, registry=get_registry())  # percent (schema version 3)
    assert gtm[0].adv == pytest.approx(25.0) and gtm[0].orig == pytest.approx(99.0)
    third_party = attack_metrics({"type": "MYATK", "orig": {"score": 1.0}, "adv": {"score": 0.2}}, registry=get_registry())
    assert [(m.name, m.orig, m.adv) for m in third_party] == [("score", 1.0, 0.2)]


def test_labels_made_unique_and_semantics_shown(files, tmp_path):
    fixed = tmp_path / "e.json"
    fixed.write_text(json.dumps(payload("mnist-act", "rob28", ROB28, rob_adv(10, 20, 30, 40, 0.5, 1.0, 7.0, 8.0, 9.0, 10.0), semantics="fixed")))
    copy = tmp_path / "copy.json"
    copy.write_text(files["hand"].read_text())
    labels = [s.label for s in load_summaries([files["hand"], copy, fixed, files["hand"]], registry=get_registry())]
    assert labels[0] == f"mnist-act/rob28 [{files['hand']}]" and labels[1] == f"mnist-act/rob28 [{copy}]"
    assert labels[2] == "mnist-act/rob28 (fixed)"
    assert labels[3] == f"mnist-act/rob28 [{files['hand']}] #2"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        ("{not json", "is not valid JSON"),
        ('{"CA:pm=+:W=1": [{}, {}]}', "not a robrank swipe results file"),
        ("[1, 2]", "top level must be a JSON object"),
    ],
)
def test_bad_file_is_one_line_error(tmp_path, content, message):
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(RobrankError, match=message) as info:
        report([path], registry=get_registry())
    assert "\n" not in str(info.value)


def test_unknown_format(files):
    with pytest.raises(RobrankError, match="unknown report format 'docx'"):
        format_report(load_summaries([files["hand"]], registry=get_registry()), "docx")


def test_cli_report(files, tmp_path):
    result = CliRunner().invoke(cli, ["report", str(files["hand"]), str(files["cub"]), "--format", "markdown"])
    assert result.exit_code == 0, result.output
    assert "| mnist-act/rob28 |" in result.output and "| 3.8 |" in result.output
    bad = CliRunner().invoke(cli, ["report", str(tmp_path / "missing.json")])
    assert bad.exit_code == 2
    assert [l for l in bad.output.splitlines() if l.strip()] == [f"Error: results file {tmp_path / 'missing.json'} does not exist; pass a JSON file written by robrank swipe"]
