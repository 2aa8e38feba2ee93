"""``robrank show``: before/after retrieval pictures, checked against rankings computed independently."""
from __future__ import annotations

import struct

import pytest
import torch
from robrank.plugins import get_registry

pytest.importorskip("matplotlib")

PGD = "eps=0.30196:alpha=0.011764:pgditer=8"
QA = f"QA:pm=+:M=1:{PGD}"
CA = f"CA:pm=+:W=1:{PGD}"


@pytest.fixture(scope="module")
def loaded(tiny_run):
    from robrank.attacks.gallery import Gallery
    from robrank.data.loading import load_split
    from robrank.models.checkpoint import load_run

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    run = load_run(tiny_run, device="cpu", registry=get_registry())
    dataset = load_split(run.dataset, "test", registry=get_registry())
    gallery = Gallery.compute(run.model, dataset, device="cpu")
    yield run, dataset, gallery
    torch.set_num_threads(threads)


def _distances(model, gallery, images):
    from robrank.attacks.gallery import embed
    from robrank.distances import pairwise

    with torch.no_grad():
        model.eval()
        return pairwise(embed(model, images), gallery.embeddings, gallery.metric)


def test_query_attack_rankings_match_an_independent_computation(loaded):
    from robrank.plot.show import retrieval_examples

    run, dataset, gallery = loaded
    examples = retrieval_examples(run.model, dataset, QA, [0, 17], top=5, gallery=gallery, registry=get_registry())
    for ex in examples:
        assert ex.role == "query" and ex.label == int(dataset.labels[ex.index])
        assert torch.equal(ex.clean, dataset.images(torch.tensor([ex.index]))[0])
        assert 0.0 < ex.linf <= 0.30196 + 1e-6 and ex.adversarial.min() >= 0 and ex.adversarial.max() <= 1
        assert ex.linf == pytest.approx(float((ex.adversarial - ex.clean).abs().max()))
        for hits, image in ((ex.before, ex.clean), (ex.after, ex.adversarial)):
            dist = _distances(run.model, gallery, image[None])[0].double()
            dist[ex.index] = float("inf")  # the query itself is not a result
            expected = torch.argsort(dist, stable=True)[:5].tolist()
            assert [h.slot for h in hits] == expected
            assert [h.label for h in hits] == dataset.labels[expected].tolist()
            assert [h.distance for h in hits] == pytest.approx(dist[expected].tolist(), abs=1e-5)
    # the attack pushes the chosen candidates up: on this model it breaks the ranking of #17
    assert sum(h.label == examples[1].label for h in examples[1].after) < sum(h.label == examples[1].label for h in examples[1].before)


def test_candidate_attack_shows_the_candidate_rank_before_and_after(loaded):
    from robrank.attacks import run_attack
    from robrank.attacks.gallery import embed
    from robrank.distances import pairwise
    from robrank.plot.show import retrieval_examples

    run, dataset, gallery = loaded
    (ex,) = retrieval_examples(run.model, dataset, CA, [172], top=5, gallery=gallery, registry=get_registry())
    assert ex.role == "candidate" and ex.query is not None and ex.query != 172
    q = gallery.embeddings[ex.query : ex.query + 1]
    with torch.no_grad():
        d_clean = pairwise(q, gallery.embeddings, gallery.metric)[0]
        d_adv = pairwise(q, embed(run.model, ex.adversarial[None]), gallery.metric)[0, 0]
    others = torch.ones_like(d_clean, dtype=torch.bool)
    others[[ex.query, 172]] = False
    assert ex.rank_before == int((d_clean[others] < d_clean[172]).sum()) + 1
    assert ex.rank_after == int((d_clean[others] < d_adv).sum()) + 1
    assert ex.rank_after < ex.rank_before  # CA+ moves the candidate up the query's list
    # the same selection as a swipe: the attack's own percentile counts the same items (plus the query itself)
    result = run_attack(run.model, dataset, CA, indices=[172], progress=False, gallery=gallery, registry=get_registry())
    assert result.adv["prank"] / 100 * len(dataset) == pytest.approx(ex.rank_after, abs=1e-3)
    assert result.orig["prank"] / 100 * len(dataset) == pytest.approx(ex.rank_before, abs=1e-3)
    in_top = [h for h in ex.after if h.candidate]
    assert bool(in_top) == (ex.rank_after <= 5)


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_show_figure_frames_and_files(loaded, tiny_run, tmp_path, robrank_cli):
    from robrank.plot.show import RIGHT, WRONG, retrieval_examples, show_figure

    run, dataset, gallery = loaded
    examples = retrieval_examples(run.model, dataset, QA, [0, 17], top=4, gallery=gallery, registry=get_registry())
    fig = show_figure(examples, QA)
    framed = {ax.get_gid(): ax for sub in fig.subfigs for ax in sub.axes if (ax.get_gid() or "").startswith("show-")}
    assert len(framed) == 2 * 2 * 4
    import matplotlib.colors as mcolors

    for ex in examples:
        for when, hits in (("before", ex.before), ("after", ex.after)):
            for j, hit in enumerate(hits):
                ax = framed[f"show-{ex.index}-{when}-{j}"]
                expected = RIGHT if hit.label == ex.label else WRONG
                assert mcolors.to_hex(ax.spines["left"].get_edgecolor()) == expected
                assert ax.get_title() == f"#{j + 1}: {hit.label}"
                assert ax.get_images()[0].get_array().shape == (28, 28)

    out = tmp_path / "show.png"
    args = ("show", str(tiny_run), "-A", QA, "--queries", "0,17", "-k", "4")
    result = robrank_cli(*args, "--output", str(out))
    assert result.exit_code == 0, result
    assert "query #17" in result.output
    width, height = png_size(out.read_bytes())
    assert width == 1432 and height > 600
    again = tmp_path / "again.png"
    assert robrank_cli(*args, "--output", str(again)).exit_code == 0
    assert again.read_bytes() == out.read_bytes()
    per_query = robrank_cli("show", str(tiny_run), "-A", CA, "--random", "2", "--seed", "3", "--output", str(tmp_path / "ca-{query}.svg"))
    assert per_query.exit_code == 0, per_query
    files = sorted(tmp_path.glob("ca-*.svg"))
    assert len(files) == 2 and all(f.read_text().lstrip().startswith("<?xml") for f in files)
    assert "cand. rank" in files[0].read_text()


@pytest.mark.parametrize(("rank_after", "reached"), [(3, True), (5, True), (6, False), (22, False)])
def test_the_adversarial_candidate_is_framed_blue_only_when_it_reached_the_top_k(rank_after, reached):
    """docs/figures.md: blue means it reached the top-k; a candidate left at rank 22 is not drawn as a success."""
    import matplotlib.colors as mcolors

    from robrank.plot.show import CANDIDATE, Example, Hit, show_figure

    image = torch.full((1, 28, 28), 0.5)
    hits = [Hit(slot=10 + j, label=j % 2, distance=float(j)) for j in range(5)]
    after = [Hit(slot=7, label=1, distance=0.0, candidate=True), *hits[:4]] if reached else hits
    example = Example(index=7, label=1, role="candidate", clean=image, adversarial=image, linf=0.1, before=hits, after=after,
                      query=3, query_label=0, query_image=image, rank_before=40, rank_after=rank_after,
                      pictures={h.slot: image for h in hits + after})
    fig = show_figure([example], CA)
    (ax,) = [a for sub in fig.subfigs for a in sub.axes if a.get_gid() == "adversarial-7"]
    spine = ax.spines["left"]
    assert spine.get_visible() == reached
    if reached:
        assert mcolors.to_hex(spine.get_edgecolor()) == CANDIDATE and ax.get_title() == "adversarial\ncandidate"
    else:
        assert f"rank {rank_after}\n(not in top-5)" in ax.get_title()
    blue = [a for sub in fig.subfigs for a in sub.axes if a.spines["left"].get_visible()
            and mcolors.to_hex(a.spines["left"].get_edgecolor()) == CANDIDATE]
    assert len(blue) == (2 if reached else 0)  # the adversarial image and the candidate's place in the top-k after


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--queries", "1", "--random", "2"), "either --queries"),
        ((), "either --queries"),
        (("--queries", "1,x"), "separated by commas"),
        (("--queries", "100000"), "outside the test split"),
        (("--queries", "1", "--output", "x.gif"), "end the file name in"),
    ],
)
def test_show_errors_are_one_line(tiny_run, robrank_cli, tmp_path, extra, message):
    result = robrank_cli("show", str(tiny_run), "-A", QA, *extra)
    assert result.exit_code == 2 and message in result.output, result
    assert len(result.output.strip().splitlines()) == 1
