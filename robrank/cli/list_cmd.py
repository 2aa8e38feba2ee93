"""``robrank list``: every registered component, where it comes from, and failed plugins."""
from __future__ import annotations

import json

import click

from ..plugins import get_host
from ..records import KINDS
from ..summaries import MetricDisplay
from .options import SuggestingChoice, json_option


@click.command("list")
@click.argument("kind", required=False, type=SuggestingChoice(KINDS))
@json_option
def list_command(kind: str | None, as_json: bool) -> None:
    """Show registered components by KIND (default: all), then plugins that failed to load."""
    host = get_host()
    host.commands()  # build plugin commands now, so a crashing register_commands is listed too
    kinds = [kind.lower()] if kind else list(KINDS)
    if as_json:
        payload = {
            "components": {k: [c.as_dict() for c in host.registry.components(k)] for k in kinds},
            "failures": [f.as_dict() for f in host.failures],
        }
        click.echo(json.dumps(payload, indent=2, default=str))
        return
    for k in kinds:
        components = host.registry.components(k)
        click.secho(f"{k} ({len(components)})", bold=True)
        if not components:
            click.echo("  (none)")
        width = max((len(c.name) for c in components), default=0)
        for c in components:
            extra = _extra(k, c.record.details())
            line = f"  {c.name:<{width}}  {c.record.summary}"
            if extra:
                line += f"  [{extra}]"
            click.echo(f"{line}  ({c.provider.label})")
            if c.record.aliases:
                shown = ", ".join(c.record.aliases[:12])
                more = f", ... (+{len(c.record.aliases) - 12})" if len(c.record.aliases) > 12 else ""
                click.echo(f"  {'':<{width}}  also: {shown}{more}")
    if host.failures:
        click.secho(f"failed plugins ({len(host.failures)})", bold=True, fg="red")
        for f in host.failures:
            click.echo(f"  {f.plugin} ({f.distribution} {f.version}) at {f.stage}: {f.error}")


def _extra(kind: str, details: dict) -> str:
    if kind == "datasets":
        return f"{details['image_size']}px, k={details['num_test_classes'] or 'from data'}, {details['profile']}"
    if kind == "backbones":
        return f"{details['input_size']}px, d={details['default_embedding_dim']}"
    if kind == "losses":
        return f"metrics {''.join(details['metrics'])}, {details['batch']}"
    if kind == "defenses":
        parts = [details.get("constraints", "")]
        if details.get("suffixes"):
            parts.append("-C suffix " + "/".join(details["suffixes"]))
        if details.get("plain"):
            parts.append("the default")
        if details.get("params"):
            parts.append("options " + ",".join(p["name"] for p in details["params"]))
        return "; ".join(p for p in parts if p)
    if kind == "attacks":
        units = {key: "%" for key, (low, high) in details["bounds"].items() if (low, high) == (0.0, 100.0)}
        shown = [f"{d['label']}{' ' + units[d['key']] if d['key'] in units else ''} {MetricDisplay(**d).arrow()}".rstrip()
                 for d in details["display"]]
        required = ",".join(details["required"])
        return "; ".join(p for p in (required, " ".join(shown) and f"{', '.join(shown)} ({'↑/↓'} = more robust)") if p)
    if kind == "profiles":
        return f"{details['image_size'] or 'any'}px" + (f", {details['score']['name']}" if details["score"] else "")
    if kind == "models":
        parts = [f"{details['dataset']}, metric {details['metric']}", f"weights {details['weights']}", f"sha256 {details['sha256'][:12]}"]
        parts += [f"{key} {details[key]}" for key in ("paper", "licence") if details.get(key)]
        return "; ".join(parts)
    return ""
