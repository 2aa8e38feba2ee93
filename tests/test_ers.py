"""ERS (the reference): the published rows, a hand-computed case, and results -> raw scores."""
from __future__ import annotations

import pytest

from robrank.errors import RobrankError
from robrank_plugins.profiles.ers import KEYS, IncompleteScoresError, ers, ers_block, missing, raw_scores, rescale
from robrank.plugins import get_registry

CUB_NONE = (0.0, 100.0, 0.0, 99.9, 0.883, 1.762, 0.0, 0.0, 14.1, 0.0)
CUB_ACT32 = (15.5, 37.7, 15.1, 32.2, 0.472, 0.821, 11.1, 9.4, 14.9, 1.0)


def test_published_cub_rows():
    assert ers(CUB_NONE) == pytest.approx(3.78, abs=1e-9)  # robdml table: 3.8
    assert ers(CUB_ACT32) == pytest.approx(33.945, abs=1e-9)  # robdml table: 33.9
    assert f"{ers(CUB_NONE):.1f}" == "3.8"


def test_hand_computed_rescaling():
    raw = dict(zip(KEYS, (10.0, 20.0, 30.0, 40.0, 0.5, 1.0, 7.0, 8.0, 9.0, 10.0)))
    # 2*10, 100-20, 2*30, 100-40, 100*(1-0.5), 100*(2-1)/2, 7, 8, 9, 10
    assert rescale(raw) == {"cap": 20.0, "cam": 80.0, "qap": 60.0, "qam": 60.0, "tma": 50.0, "esd": 50.0, "esr": 7.0, "ltm": 8.0, "gtm": 9.0, "gtt": 10.0}
    assert ers(raw) == pytest.approx(35.4)


def test_clean_like_model_scores_near_100_and_broken_near_0():
    robust = (50.0, 0.0, 50.0, 0.0, 0.0, 0.0, 100.0, 100.0, 100.0, 100.0)
    assert ers(robust) == pytest.approx(100.0)
    broken = (0.0, 100.0, 0.0, 100.0, 1.0, 2.0, 0.0, 0.0, 0.0, 0.0)
    assert ers(broken) == pytest.approx(0.0)


def _entry(spec, adv, type_=None):
    entry = {"spec": spec, "adv": adv, "orig": {}, "count": 8, "seconds": 0.1}
    if type_:
        entry["type"] = type_
    return entry


def rob_entries(prefixed=False):
    """Adversarial summaries (percent, schema version 3) whose raw scores are the hand-computed case above."""
    def k(label, key):
        return f"{label}:{key}" if prefixed else key

    pgd = "eps=0.30196:alpha=0.011764:pgditer=32"
    return [
        _entry(f"CA:pm=+:W=1:{pgd}", {k("CA+", "prank"): 10.0}),
        _entry(f"CA:pm=-:W=1:{pgd}", {k("CA-", "prank"): 20.0}),
        _entry(f"QA:pm=+:M=1:{pgd}", {k("QA+", "prank"): 30.0}),
        _entry(f"QA:pm=-:M=1:{pgd}", {k("QA-", "prank"): 40.0}),
        _entry(f"TMA:{pgd}", {"Cosine-SIM": 0.5}),
        _entry(f"ES:{pgd}", {"r@1": 7.0, "r@10": 30.0, "r@100": 60.0, "loss": -1.0, "embshift": 1.0}),
        _entry(f"LTM:{pgd}", {"r@1": 8.0}),
        _entry(f"GTM:{pgd}", {"r@1": 9.0}),
        _entry(f"GTT:{pgd}", {"ID-Retain@1": 2.0, "retain@4": 10.0}),
    ]


@pytest.mark.parametrize("prefixed", [False, True])
def test_raw_scores_from_adversarial_summaries(prefixed):
    raw = raw_scores(rob_entries(prefixed))
    assert raw == pytest.approx({"cap": 10.0, "cam": 20.0, "qap": 30.0, "qam": 40.0, "tma": 0.5, "esd": 1.0, "esr": 7.0, "ltm": 8.0, "gtm": 9.0, "gtt": 10.0})
    assert ers(raw) == pytest.approx(35.4)


def test_raw_scores_ignore_clean_summaries_and_extra_attacks():
    entries = rob_entries()
    for e in entries:
        e["orig"] = {"prank": 0.5, "r@1": 0.99, "Cosine-SIM": 0.1, "retain@4": 1.0}
    entries.append(_entry("SPQA:pm=+:M=1", {"prank": 0.9, "GTprank": 0.1}, "SPQA"))
    block = ers_block({"attacks": entries})
    assert block["ers"] == pytest.approx(35.4)
    assert block["rescaled"]["cap"] == pytest.approx(20.0)


def test_missing_attack_is_not_a_zero():
    entries = [e for e in rob_entries() if not e["spec"].startswith(("GTT", "ES"))]
    raw = raw_scores(entries)
    assert raw["gtt"] is None and raw["esd"] is None and raw["esr"] is None
    assert missing(raw) == ["ES:D", "ES:R", "GTT"]
    assert rescale(raw)["gtt"] is None and rescale(raw)["cap"] == pytest.approx(20.0)
    with pytest.raises(IncompleteScoresError, match="missing ES:D, ES:R, GTT"):
        ers(raw)


def test_a_column_filled_twice_is_an_error():
    entries = rob_entries() + [_entry("CA:pm=+:W=1:eps=0.1:alpha=0.01:pgditer=8", {"prank": 0.3})]
    with pytest.raises(RobrankError, match="CA\\+"):
        raw_scores(entries)


def test_wrong_number_of_raw_scores():
    with pytest.raises(RobrankError, match="10 raw scores"):
        ers(CUB_NONE[:9])


def test_euclidean_shift_above_two_goes_negative_as_in_the_reference():
    raw = list(CUB_NONE)
    raw[5] = 3.0
    assert rescale(raw)["esd"] == pytest.approx(-50.0)


# ---- the stored results: the profile-owned ERS gives the numbers the core computed before ----------

RESULTS = __import__("pathlib").Path(__file__).resolve().parent.parent / "docs" / "results"
STORED = sorted(RESULTS.glob("**/swipe-*.json"))


def _pjswipe(raw):
    """pjswipe's ``ersnormalize`` and mean, transcribed independently of the ERS columns."""
    cap, cam, qap, qam, tma, esd, esr, ltm, gtm, gtt = (raw[k] for k in KEYS)
    scaled = [2.0 * cap, 100.0 - cam, 2.0 * qap, 100.0 - qam, 100.0 * (1.0 - tma), 100.0 * (2.0 - esd) / 2.0, esr, ltm, gtm, gtt]
    return sum(scaled) / len(scaled)


def test_there_are_stored_results_to_check():
    assert len(STORED) >= 7


@pytest.mark.parametrize("path", STORED, ids=lambda p: str(p.relative_to(RESULTS)))
def test_stored_results_keep_their_ers_to_the_bit(path):
    from robrank.plugins import get_registry
    from robrank.swipe.schema import load_results

    payload = load_results(path, registry=get_registry())
    score = get_registry().get("profiles", payload["profile"]).score
    assert score is not None and score.name == "ERS"
    raw = score.raw_scores(payload)
    if "ers" in payload:  # written by the core's ERS before it moved into the profile
        stored = payload["ers"]
        assert raw == stored["raw"] and score.rescale(raw) == stored["rescaled"]
        # one stored file's score was summed in another order (last bit differs; the core's
        # formula before the move gave the value computed here, bit for bit)
        assert score.value(raw) == pytest.approx(stored["ers"], rel=1e-14, abs=0)
    if not missing(raw):
        assert score.value(raw) == _pjswipe(raw)
