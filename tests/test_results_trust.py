"""A results file is checked against itself, and a --force'd swipe is marked in every output."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from robrank.swipe.report import OFF_SCALE_MARK, load_summaries, report
from robrank.swipe.schema import SwipeFileError, coverage, load_results, validate
from robrank.plugins import get_registry

REPO = Path(__file__).resolve().parents[1]
STORED = REPO / "docs" / "results" / "mnist-none" / "swipe-rob28.json"
FORCED = {"profile_image_size": 224, "data_image_size": 28}


def _partial(queries: int = 8) -> dict:
    """A consistent partial version-2 file: every attack saw ``queries`` queries, sums agree."""
    payload = json.loads(STORED.read_text())
    for attack in payload["attacks"]:
        attack["count"] = queries
        attack["sums"] = {side: {k: v * queries for k, v in attack[side].items()} for side in ("orig", "adv")}
    payload.update(schema_version=2, max_batches=1, batch_size=queries)
    payload["coverage"] = coverage(payload)
    payload["ers"]["partial"] = payload["coverage"]["partial"]
    return payload


def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def test_the_consistent_partial_file_is_valid():
    payload = _partial()
    validate(payload, registry=get_registry())
    assert payload["coverage"]["partial"] == "8 of 10000 queries"


def test_coverage_edited_to_claim_every_query_is_refused(tmp_path):
    payload = _partial()
    payload["coverage"].update(queries=10000, partial=None)
    with pytest.raises(SwipeFileError) as exc:
        validate(payload, registry=get_registry())
    assert "coverage.queries is 10000 but the attacks in the file give 8" in _one_line(exc)


def test_counts_and_coverage_edited_to_claim_every_query_are_refused_by_the_sums(tmp_path, robrank_cli):
    # the case: counts and coverage say 10000 queries, the per-attack sums still add up to 8
    payload = _partial()
    for attack in payload["attacks"]:
        attack["count"] = 10000
    payload["coverage"] = coverage(payload)
    payload["ers"]["partial"] = None
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(payload))
    with pytest.raises(SwipeFileError) as exc:
        load_results(path, registry=get_registry())
    assert "attacks[0]: orig.loss" in _one_line(exc) and "/ 10000" in str(exc.value)
    for command in (["report", str(path)], ["plot", "ers", str(path), "--output", str(tmp_path / "e.png")]):
        result = robrank_cli(*command)
        assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
        assert "attacks[0]: orig.loss" in result.output
    import robrank

    with pytest.raises(SwipeFileError, match="attacks\\[0\\]: orig.loss"):
        robrank.load_results(path)


def test_an_edited_score_is_refused():
    payload = json.loads(STORED.read_text())
    payload["ers"]["raw"]["cap"] = 50.0
    with pytest.raises(SwipeFileError) as exc:
        validate(payload, registry=get_registry())
    assert "ers.raw.cap is 50 but the attacks in the file give 2.45" in _one_line(exc)
    payload = json.loads(STORED.read_text())
    payload["ers"]["ers"] = 99.0
    with pytest.raises(SwipeFileError, match="ers.ers is 99 but the mean of ers.rescaled is 10.74"):
        validate(payload, registry=get_registry())
    payload = _partial()
    payload["ers"]["partial"] = None
    with pytest.raises(SwipeFileError, match="ers.partial is None but the attacks in the file give '8 of 10000 queries'"):
        validate(payload, registry=get_registry())


def _forced_file(tmp_path: Path) -> Path:
    payload = json.loads(STORED.read_text())
    payload["forced"] = FORCED
    # a budget made for other images: CA+ above half the ranking, off the 0-100 scale
    payload["attacks"][0]["adv"]["prank"] = 0.669  # a version-1 fraction: 66.9 percent
    payload["attacks"][0].pop("sums")
    payload.pop("ers")
    path = tmp_path / "forced" / "swipe-rob28.json"
    path.parent.mkdir()
    path.write_text(json.dumps(payload))
    return path


def test_a_forced_swipe_is_marked_in_every_output(tmp_path):
    path = _forced_file(tmp_path)
    (summary,) = load_summaries([path], get_registry())
    assert "forced" in summary.partial and "224x224" in summary.partial
    text = report([path], registry=get_registry())
    row = next(line for line in text.splitlines() if line.startswith(summary.label))
    assert summary.label + "*" in row
    assert "133.8" + OFF_SCALE_MARK in text and f"{OFF_SCALE_MARK} {summary.label}: rescaled CA+ outside the 0-100 scale" in text
    assert "forced: profile made for 224x224 images run on 28x28" in text
    assert "133.8" + OFF_SCALE_MARK in report([path], "markdown", registry=get_registry())
    (row_json,) = json.loads(report([path], "json", registry=get_registry()))
    assert "forced" in row_json["partial"] and row_json["off_scale"] == ["CA+"]
    assert "forced" in report([path], "csv", registry=get_registry()).splitlines()[1]
    latex = report([path], "latex", registry=get_registry())
    assert "forced" in latex and "133.8" + OFF_SCALE_MARK in latex
    html = report([path], "html", registry=get_registry())
    assert 'class="run partial"' in html and "forced" in html
    import robrank

    results = robrank.load_results(path)
    assert "forced" in results.partial and "partial=" in repr(results)


def test_a_forced_swipe_records_the_override(tiny_run, tmp_path, robrank_cli):
    out = tmp_path / "rob224.json"
    result = robrank_cli("swipe", str(tiny_run), "-p", "rob224", "-m", "1", "-b", "2", "--output", str(out), "-D", "cpu",
                         "--no-progress", "--force")
    assert result.exit_code == 0, result.output
    payload = load_results(out, registry=get_registry())
    assert payload["forced"] == FORCED
    assert "forced: profile made for 224x224 images run on 28x28" in result.output
    normal = tmp_path / "rob28.json"
    assert robrank_cli("swipe", str(tiny_run), "-p", "rob28", "-m", "1", "-b", "2", "--output", str(normal), "-D", "cpu",
                       "--no-progress").exit_code == 0
    assert load_results(normal, registry=get_registry())["forced"] is None


# ---- one unit per measure: schema version 3 stores every rate in percent ------------------------


def test_older_files_are_read_in_percent_and_their_score_is_unchanged():
    from robrank.swipe.schema import SCHEMA_VERSION, UNITS, upgrade

    raw = json.loads(STORED.read_text())
    assert raw["schema_version"] == 1 and SCHEMA_VERSION == 3
    loaded = load_results(STORED, registry=get_registry())
    assert loaded["units"] == UNITS
    by_type = {(a["type"], a["spec"]): (r, a) for r, a in zip(raw["attacks"], loaded["attacks"])}
    for (kind, _), (before, after) in by_type.items():
        for side in ("orig", "adv"):
            for key, value in before[side].items():
                converted = kind in ("CA", "QA", "LTM", "GTM", "GTT") and key in ("prank", "r@1", "ID-Retain@1", "retain@4")
                assert after[side][key] == (100.0 * value if converted else value), (kind, side, key)
    ca = loaded["attacks"][0]
    assert ca["sums"]["adv"]["prank"] == 100.0 * raw["attacks"][0]["sums"]["adv"]["prank"]
    assert upgrade(loaded, registry=get_registry()) == loaded  # reading twice never multiplies twice
    # the score is computed from the converted values and equals the stored one to the last bit
    from robrank_plugins.profiles.ers import ERS

    assert ERS.block(loaded["attacks"])["ers"] == raw["ers"]["ers"]
    assert ERS.block(loaded["attacks"])["raw"] == raw["ers"]["raw"]


def test_a_hand_made_version_2_file_with_an_uninstalled_attack(tmp_path):
    payload = _partial()
    payload["attacks"][0]["orig"]["prank"] = 0.5
    payload["attacks"][0]["sums"]["orig"]["prank"] = 4.0
    payload["planned"].append("MYATK:eps=0.1")
    payload["attacks"].append({"spec": "MYATK:eps=0.1", "type": "MYATK", "orig": {"score": 0.25}, "adv": {"score": 0.5},
                               "count": 8, "seconds": 1.0})
    payload["finished"] = None
    payload.pop("ers")
    payload["coverage"] = coverage(payload)
    path = tmp_path / "v2.json"
    path.write_text(json.dumps(payload))
    loaded = load_results(path, registry=get_registry())
    assert loaded["attacks"][0]["orig"]["prank"] == 50.0 and loaded["attacks"][0]["sums"]["orig"]["prank"] == 400.0
    assert loaded["attacks"][-1]["orig"] == {"score": 0.25} and loaded["units_unknown"] == ["MYATK"]
    text = report([path], registry=get_registry())
    assert "PCTL" in text or "CA+" in text


def test_attacks_report_percent_with_directions(tiny_run, robrank_cli):
    out = robrank_cli("attack", str(tiny_run), "-A", "GTT:eps=0.1:alpha=0.05:pgditer=2", "-m", "1", "-b", "8", "-D", "cpu", "--json")
    assert out.exit_code == 0, out.output
    payload = json.loads(out.output[out.output.index("{"):])
    assert payload["orig"]["retain@4"] in (0.0, 12.5, 25.0, 37.5, 50.0, 62.5, 75.0, 87.5, 100.0)
    listed = robrank_cli("list", "attacks")
    assert "PCTL % ↑pm=+/↓pm=-" in listed.output and "COS ↓" in listed.output
