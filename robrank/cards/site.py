"""``robrank leaderboard CARDS... --output DIR``: a static, self-contained site of model cards.

One table per dataset and threat model, ranked by the worst-case score (the number that
cannot be inflated by a weak attack), with the reference score beside it for comparison
with published numbers, their gap, and whether the entry was verified, only reported, or a
draft. Every page works from the file system with no network: figures are inlined, the
sorting script is a few lines in the page, and the tables read in order without it.
Every text that comes from a card is escaped.
"""
from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from html import escape
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from ..io import write_json, write_text
from .figures import curve_summaries, retrieval_picture
from .schema import ROLE_TITLES, ROLES, label, load_card, score_value, status

if TYPE_CHECKING:
    from ..plugins import Registry
    from ..swipe.summary import FileSummary

#: what each measure is and which direction is better, stated on every page
UNITS: dict[str, str] = {
    "clean R@1": "percent of queries whose nearest neighbour has their class; higher is better",
    "ERS (reference)": "Empirical Robustness Score under the dataset's reference attacks, 0 (broken) .. 100 (robust); higher is better; comparable with published ERS",
    "ERS (worst case)": "the same score under the per-query worst case of several searches, 0 .. 100; higher is better; the ranking",
    "gap": "reference minus worst case, in score points; smaller is better (how much the reference attacks overestimate)",
}
BADGES: dict[str, str] = {
    "verified": "a sample of queries was re-attacked and the card's numbers held (robrank bench --verify)",
    "reported": "measured by robrank bench, or read from stored results, and not re-checked",
    "draft": "a partial evaluation (a query limit): not a benchmark result",
}
SORT_SCRIPT = """<script>
for (const table of document.querySelectorAll("table.board")) {
  table.querySelectorAll("th").forEach((th, col) => th.addEventListener("click", () => {
    const body = table.tBodies[0], rows = [...body.rows], down = th.dataset.dir !== "desc";
    const key = r => { const c = r.cells[col]; const v = c.dataset.value ?? c.textContent; return isNaN(parseFloat(v)) ? v : parseFloat(v); };
    rows.sort((a, b) => (key(a) > key(b) ? 1 : key(a) < key(b) ? -1 : 0) * (down ? -1 : 1));
    th.dataset.dir = down ? "desc" : "asc";
    rows.forEach(r => body.appendChild(r));
  }));
}
</script>"""
STYLE = """<style>
body{font-family:system-ui,sans-serif;max-width:70em;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{padding:.3em .6em;border-bottom:1px solid #ccc;text-align:right}
th{cursor:pointer;background:#f4f4f4}td.name,th.name,td.text{text-align:left}
.badge{font-size:.8em;padding:.1em .4em;border-radius:.3em;color:#fff}
.verified{background:#1a7f37}.reported{background:#6e7781}.draft{background:#bf8700}
dt{font-weight:bold}figure img{max-width:100%}.note{color:#555;font-size:.9em}
</style>"""


def slug(text: str, taken: set[str]) -> str:
    """A file name from an entry's name, unique among ``taken``."""
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.") or "entry"
    name, i = base, 2
    while name in taken:
        name, i = f"{base}-{i}", i + 1
    taken.add(name)
    return name


def planned(threat: dict[str, Any]) -> dict[str, Any]:
    """A card's threat block as the swipe payload robrank.threat and robrank.plot read (its specs)."""
    specs = threat.get("specs")
    if not specs:
        norm = "" if threat["norm"] == "inf" else f":norm={threat['norm']}"
        specs = [f"X:eps={eps}{norm}" for eps in (threat["eps"] if isinstance(threat["eps"], list) else [threat["eps"]])]
    return {"planned": specs}


def threat_key(card: dict[str, Any]) -> str:
    from ..threat import threat_model  # lazy: only for a card's threat model (keeps robrank --help fast)

    threat = card["threat_model"]["reference"]
    return f"{threat_model(planned(threat))} ({threat['profile']})"


def _number(value: float | None, decimals: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{decimals}f}"


def entry(card: dict[str, Any], page: str) -> dict[str, Any]:
    """One leaderboard row (also what leaderboard.json holds)."""
    ref, worst = score_value(card, "reference"), score_value(card, "worst_case")
    model = card["model"]
    return {
        "name": label(card), "page": f"entries/{page}.html", "card": f"entries/{page}.json", "status": status(card),
        "dataset": card["data"]["dataset"], "threat_model": threat_key(card), "clean_r1": card["clean"].get("R@1"),
        "ers_reference": ref, "ers_worst_case": worst, "gap": None if ref is None or worst is None else ref - worst,
        "defense": model.get("defense"), "backbone": model.get("backbone"), "zoo": model.get("zoo"),
        "reference_profile": card["scores"]["reference"]["profile"],
        "worst_case_profile": card["scores"].get("worst_case", {}).get("profile"),
    }


def ranked(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Worst-case score first (highest best); entries without one after, by their reference score."""
    return sorted(rows, key=lambda r: (r["ers_worst_case"] is None, -(r["ers_worst_case"] or 0.0), -(r["ers_reference"] or 0.0), r["name"]))


def _badge(state: str) -> str:
    return f'<span class="badge {state}" title="{escape(BADGES[state])}">{state}</span>'


def _index_table(rows: list[dict[str, Any]]) -> str:
    head = ("<tr><th>#</th><th class='name'>model</th><th title='{0}'>clean R@1 (%, ↑)</th><th title='{1}'>ERS reference (↑)</th>"
            "<th title='{2}'>ERS worst case (↑)</th><th title='{3}'>gap (↓)</th><th class='name'>defense</th>"
            "<th class='name'>backbone</th><th class='name'>status</th></tr>").format(*(escape(UNITS[k]) for k in UNITS))
    body = []
    for i, r in enumerate(ranked(rows), 1):
        worst = "not measured" if r["ers_worst_case"] is None else _number(r["ers_worst_case"])
        cells = [f"<td>{i}</td>", f'<td class="name"><a href="{escape(r["page"])}">{escape(r["name"])}</a>{_zoo(r)}</td>',
                 f'<td data-value="{r["clean_r1"] if r["clean_r1"] is not None else ""}">{_number(r["clean_r1"])}</td>',
                 f"<td>{_number(r['ers_reference'])}</td>", f'<td data-value="{r["ers_worst_case"] if r["ers_worst_case"] is not None else -1}">{worst}</td>',
                 f"<td>{_number(r['gap'])}</td>", f'<td class="text">{escape(str(r["defense"] or "-"))}</td>',
                 f'<td class="text">{escape(str(r["backbone"] or "-"))}</td>', f'<td class="text">{_badge(r["status"])}</td>']
        body.append(f'<tr class="entry">{"".join(cells)}</tr>')
    return f'<table class="board"><thead>{head}</thead><tbody>{"".join(body)}</tbody></table>'


def _zoo(row: dict[str, Any]) -> str:
    """The zoo name under which the model loads (``--model zoo:NAME``), when it is a zoo entry."""
    if not row.get("zoo"):
        return ""
    return f' <code class="zoo" title="robrank ... --model zoo:{escape(str(row["zoo"]))}">zoo:{escape(str(row["zoo"]))}</code>'


def _legend() -> str:
    units = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in UNITS.items())
    badges = "".join(f"<dt>{_badge(k)}</dt><dd>{escape(v)}</dd>" for k, v in BADGES.items())
    return f"<dl>{units}{badges}</dl>"


def _page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>{STYLE}</head>'
            f"<body>{body}{SORT_SCRIPT}</body></html>\n")


def index_html(rows: list[dict[str, Any]]) -> str:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["threat_model"]), []).append(r)
    sections = [f"<h2>{escape(dataset)}, {escape(threat)}</h2>{_index_table(members)}" for (dataset, threat), members in sorted(groups.items())]
    intro = ("<h1>robrank leaderboard: adversarial robustness of deep ranking</h1><p>Ranked by the worst-case ERS "
             "(the score no weaker attack can inflate); the reference ERS compares with published numbers. "
             "Click a column to sort. <a href='leaderboard.json'>leaderboard.json</a> · <a href='leaderboard.md'>markdown</a></p>")
    return _page("robrank leaderboard", intro + "".join(sections) + _legend())


def _figure_img(fig: Any, figure_id: str, alt: str, fmt: str = "svg") -> str:
    from ..plot.figure import render  # lazy: loaded when this figure is drawn (keeps robrank --help fast)

    data = base64.b64encode(render(fig, fmt)).decode("ascii")
    mime = "image/svg+xml" if fmt == "svg" else f"image/{fmt}"
    return f'<figure id="{figure_id}"><img src="data:{mime};base64,{data}" alt="{escape(alt)}"></figure>'


NO_MATPLOTLIB = "install matplotlib (pip install robrank[plot]) and rebuild the site"


def curve_section(card: dict[str, Any], summaries: Sequence[FileSummary]) -> str:
    """The entry's robustness curve from the curve swipes of its model, or a note that none was measured."""
    head = "<h2>Robustness curve</h2>"
    if not summaries:
        return (f"{head}<p class='note'>No robustness curve was measured for this model (a swipe over several budgets, "
                "given to robrank leaderboard --curve).</p>")
    try:
        from .figures import curve_picture  # lazy: loaded when this figure is drawn (keeps robrank --help fast)

        fig = curve_picture(summaries)
    except ImportError:
        return f"{head}<p class='note'>Robustness curve: {NO_MATPLOTLIB}.</p>"
    files = ", ".join(f"<code>{escape(Path(s.path).name)}</code>" for s in summaries)
    return f"{head}{_figure_img(fig, 'fig-curve', f'robustness curve of {label(card)}')}<p class='note'>From {files}.</p>"


def show_section(picture: tuple[Any, str] | None) -> str:
    """The before/after retrieval picture (``--show``); where it was asked for but not drawn, why not."""
    if picture is None:
        return ""
    fig, why = picture
    head = "<h2>Before and after the attack</h2>"
    if fig is None:
        return f"{head}<p class='note'>No retrieval picture: {escape(why)}.</p>"
    return f"{head}{_figure_img(fig, 'fig-show', 'a ranking before and after the attack', 'png')}"


class _Summary:
    """What robrank.plot's ERS figure reads of a results file, taken from a card's score."""

    def __init__(self, card: dict[str, Any], role: str) -> None:

        block = card["scores"][role]
        keys = tuple(c["key"] for c in block["columns"])
        self.label = f"{ROLE_TITLES[role]} ({block['profile']})"
        self.score = SimpleNamespace(name=block["name"], keys=keys, labels={c["key"]: c["label"] for c in block["columns"]})
        self.rescaled = {c["key"]: c["rescaled"] for c in block["columns"]}
        self.ers = block["value"]
        self.partial = card["evaluation"].get("partial")
        self.payload = planned(card["threat_model"][role])


def ers_bars(card: dict[str, Any]) -> str:
    """The card's ERS bars (robrank.plot), inline; a note where matplotlib is not installed."""
    try:
        from ..plot.ers import ers_figure  # lazy: loaded when this figure is drawn (keeps robrank --help fast)

        fig = ers_figure([_Summary(card, role) for role in ROLES if role in card["scores"]])
    except ImportError:
        return "<p class='note'>ERS bars: install matplotlib (pip install robrank[plot]) and rebuild the site.</p>"
    return _figure_img(fig, "fig-ers", f"ERS columns of {label(card)}")


def entry_html(card: dict[str, Any], row: dict[str, Any], page: str, *, curves: Sequence[FileSummary] = (),
               picture: tuple[Any, str] | None = None) -> str:
    name = escape(label(card))
    scores = []
    for role in ROLES:
        block = card["scores"].get(role)
        if block is None:
            scores.append(f"<tr><td class='name'>{escape(ROLE_TITLES[role])}</td><td colspan='12' class='text'>not measured</td></tr>")
            continue
        cells = "".join(f"<td>{_number(c['rescaled'])}</td>" for c in block["columns"])
        scores.append(f"<tr><td class='name'>{escape(ROLE_TITLES[role])} ({escape(block['profile'])})</td>{cells}<td>{_number(block['value'])}</td></tr>")
    labels = "".join(f"<th>{escape(c['label'])}</th>" for c in card["scores"]["reference"]["columns"])
    table = (f"<table><thead><tr><th class='name'>evaluation (0 = broken .. 100 = robust, ↑)</th>{labels}<th>ERS</th></tr></thead>"
             f"<tbody>{''.join(scores)}</tbody></table>")
    threat = _threat_table(card["threat_model"])
    clean = ", ".join(f"{escape(k)} {_number(v)}" for k, v in card["clean"].items())
    draft = f"<p><strong>DRAFT</strong>: {escape(str(card['draft_reason']))}</p>" if card["draft"] else ""
    body = (f"<p><a href='../index.html'>← leaderboard</a></p><h1>{name} {_badge(row['status'])}</h1>{draft}"
            f"<p>{escape(card['data']['dataset'])}, {escape(row['threat_model'])}. Clean (percent, ↑): {clean}.</p>{table}{ers_bars(card)}"
            f"{curve_section(card, curves)}{show_section(picture)}"
            f"<h2>Threat model</h2>{threat}<p>Card: <a href='{escape(page)}.json' download>{escape(page)}.json</a> "
            f"(schema docs/bench.md).</p>{_legend()}")
    return _page(f"{label(card)}: robrank leaderboard", body)


def _threat_table(threats: dict[str, Any]) -> str:
    """Norm, radius, step, steps, search and budget of each evaluation, then its attack specs."""
    fields = (("profile", "profile"), ("norm", "norm"), ("eps", "ε (pixels in [0, 1])"), ("alpha", "step size"),
              ("steps", "steps"), ("search", "search"), ("attacks", "attacks"))
    head = "".join(f"<th>{escape(title)}</th>" for _, title in fields) + "<th>gradients / query</th>"
    rows = []
    for role, t in threats.items():
        budget = (t.get("per_query") or {}).get("gradients")
        cells = "".join(f"<td class='text'>{escape(str(t.get(key)))}</td>" for key, _ in fields)
        rows.append(f"<tr><td class='name'>{escape(ROLE_TITLES.get(role, role))}</td>{cells}<td>{_number(budget, 0)}</td></tr>")
    specs = "".join(f"<li><code>{escape(spec)}</code></li>" for t in threats.values() for spec in t.get("specs") or [])
    return (f"<table><thead><tr><th class='name'>evaluation</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
            + (f"<details><summary>attack specs</summary><ul>{specs}</ul></details>" if specs else ""))


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = []
    for (dataset, threat) in sorted({(r["dataset"], r["threat_model"]) for r in rows}):
        lines += [f"### {dataset}, {threat}", "", "| # | model | clean R@1 (%, ↑) | ERS reference (↑) | ERS worst case (↑) | gap (↓) | defense | backbone | status |",
                  "| ---: | --- | ---: | ---: | ---: | ---: | --- | --- | --- |"]
        members = ranked([r for r in rows if (r["dataset"], r["threat_model"]) == (dataset, threat)])
        for i, r in enumerate(members, 1):
            name = str(r["name"]).replace("|", "\\|")
            worst = "not measured" if r["ers_worst_case"] is None else _number(r["ers_worst_case"])
            lines.append(f"| {i} | [{name}]({r['page']}) | {_number(r['clean_r1'])} | {_number(r['ers_reference'])} | {worst} | "
                         f"{_number(r['gap'])} | {r['defense'] or '-'} | {r['backbone'] or '-'} | {r['status']} |")
        lines.append("")
    lines += [f"- **{k}**: {v}" for k, v in UNITS.items()]
    return "\n".join(lines) + "\n"


def build_site(card_paths: Sequence[str | Path], output: str | Path, *, curves: Sequence[str | Path] = (), show: bool = False,
               registry: Registry | None = None, device: str = "cpu", data_root: str | None = None) -> Path:
    """Write the site for ``card_paths`` into ``output``; return the index page.

    ``curves`` are swipe files drawn as robustness curves on the page of the card whose model
    they attacked; ``show`` draws a before/after retrieval picture where the model is at hand
    (an attack run per entry). Both need the ``registry``.
    """
    out = Path(output)
    cards = [load_card(path) for path in card_paths]
    if (curves or show) and registry is None:
        raise TypeError("build_site needs the registry to read curve files or to load models")
    summaries = curve_summaries(cards, curves, registry) if curves else [[] for _ in cards]
    taken: set[str] = set()
    rows = []
    for path, card, drawn in zip(card_paths, cards, summaries):
        page = slug(label(card), taken)
        row = entry(card, page)
        picture = retrieval_picture(card, path, registry, device=device, data_root=data_root) if show else None
        write_text(out / "entries" / f"{page}.html", entry_html(card, row, page, curves=drawn, picture=picture))
        write_json(out / "entries" / f"{page}.json", card)
        rows.append(row)
    write_json(out / "leaderboard.json", {"schema": "robrank-leaderboard", "schema_version": 1, "units": UNITS, "entries": ranked(rows)})
    write_text(out / "leaderboard.md", markdown(rows))
    index = out / "index.html"
    write_text(index, index_html(rows))
    return index


__all__ = ["build_site", "entry", "ranked", "markdown", "index_html", "UNITS", "BADGES"]
