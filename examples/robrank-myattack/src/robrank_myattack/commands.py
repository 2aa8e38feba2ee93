"""``robrank myattack-info``: what MICA will do with a given spec, before spending any compute."""
from __future__ import annotations

import click


def info_lines(spec_text: str) -> list[str]:
    """The resolved parameters of a MICA (or CA) spec, one ``key: value`` line each."""
    from robrank.plugin_api import SpecError, build_attack, get_registry, parse_spec

    spec = parse_spec(spec_text, registry=get_registry())
    if spec.type not in ("MICA", "CA"):
        raise SpecError(f"myattack-info explains MICA and CA specs; {spec.text!r} is a {spec.type} attack")
    attack = build_attack(spec, registry=get_registry())
    p = spec.params
    fgsm = attack.pgditer == 1
    step = attack.eps if fgsm else attack.alpha
    momentum = getattr(attack, "mu", None)
    lines = [
        f"spec: {spec.text}",
        f"attack: {attack!r}",
        f"direction: pm={p['pm']}: {'raise' if p['pm'] == '+' else 'lower'} the perturbed candidate in the rankings of W={p['W']} queries",
        f"budget: eps={attack.eps:g} (L-infinity, {attack.eps * 255:.1f}/255), {attack.pgditer} step(s) of {step:g}"
        + (" (FGSM: one step of size eps)" if fgsm else ""),
        f"reach: at most {min(attack.eps, step * attack.pgditer):g} per pixel",
    ]
    if momentum is None:
        lines.append("update: x <- clip(x - alpha * sign(grad))  (plain PGD)")
    else:
        lines.append(f"update: g <- {momentum:g} * g + grad / ||grad||_1;  x <- clip(x - alpha * sign(g))  (MI-FGSM)")
    lines.append(f"reports: {', '.join(attack.reports)}")
    return lines


def register(cli: click.Group) -> None:
    @cli.command(name="myattack-info")
    @click.argument("spec", default="MICA:pm=+:W=1:eps=0.30196:alpha=0.011764:pgditer=32")
    @click.option("--profiles", "show_profiles", is_flag=True, help="Also list the profiles of robrank-myattack and their specs.")
    def myattack_info(spec: str, show_profiles: bool) -> None:
        """Explain an attack SPEC of robrank-myattack (default: MICA+ at the rob28 budget)."""
        for line in info_lines(spec):
            click.echo(line)
        if show_profiles:
            from .profiles import mi28, mi224

            for name, factory in (("mi28", mi28), ("mi224", mi224)):
                click.echo(f"profile {name}:")
                for text in factory():
                    click.echo(f"  {text}")
