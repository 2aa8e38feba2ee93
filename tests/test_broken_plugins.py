"""Loading robustness against real, installed-looking broken plugins.

Each directory under ``tests/fixtures/plugins`` is a ``sys.path`` entry holding one module
and its ``*.dist-info`` (``METADATA`` + ``entry_points.txt``), which is exactly what
``pip install`` leaves behind; ``importlib_metadata`` finds it through ``PYTHONPATH``. The
CLI runs in a subprocess with ``ROBRANK_LOAD_PLUGINS`` unset, so discovery goes through the
real entry-point machinery, not the in-process test host.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "plugins"
FIXTURE_DISTS = {
    "robrank-fixture-import-error",
    "robrank-fixture-register-error",
    "robrank-fixture-command-error",
    "robrank-fixture-good",
    "robrank-fixture-collide-a",
    "robrank-fixture-collide-b",
    "robrank-fixture-sys-exit",
    "robrank-fixture-bad-record",
    "robrank-fixture-collide-bundled",
}


def run_cli(*args: str, fixtures: tuple[str, ...], extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``python -m robrank ARGS`` with the named fixture directories on PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("ROBRANK_LOAD_PLUGINS", "ROBRANK_STRICT_PLUGINS", "ROBRANK_DEBUG")}
    paths = [str(FIXTURES / name) for name in fixtures]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.update(extra_env or {})
    return subprocess.run([sys.executable, "-m", "robrank", *args], env=env, capture_output=True, text=True, timeout=300)


def _fixture_failures(payload: dict) -> dict[str, dict]:
    return {f["distribution"]: f for f in payload["failures"] if f["distribution"] in FIXTURE_DISTS}


def _profiles(payload: dict) -> dict[str, dict]:
    return {c["name"]: c for c in payload["components"]["profiles"]}


BROKEN = ("import_error", "register_error", "command_error", "good")


def test_broken_plugins_are_skipped_listed_and_the_cli_keeps_working():
    listed = run_cli("list", "--json", fixtures=BROKEN)
    assert listed.returncode == 0, listed.stderr
    payload = json.loads(listed.stdout)
    failures = _fixture_failures(payload)
    assert set(failures) == {"robrank-fixture-import-error", "robrank-fixture-register-error", "robrank-fixture-command-error"}

    imp = failures["robrank-fixture-import-error"]
    assert (imp["plugin"], imp["version"], imp["stage"]) == ("import-error", "0.1", "import")
    assert imp["error"] == "ModuleNotFoundError: No module named 'robrank_dependency_that_is_not_installed'"

    reg = failures["robrank-fixture-register-error"]
    assert (reg["plugin"], reg["version"], reg["stage"]) == ("register-error", "0.2", "register")
    assert reg["error"] == "RuntimeError: fixture plugin fails while registering"

    cmd = failures["robrank-fixture-command-error"]
    assert (cmd["plugin"], cmd["stage"]) == ("command-error", "commands")
    assert "fixture plugin fails while adding commands" in cmd["error"]

    profiles = _profiles(payload)
    # the plugin that raised after registering one profile left nothing behind
    assert "half-registered" not in profiles
    # the healthy plugin is there, with its provenance, and so are the bundled profiles
    assert profiles["fixture-good"]["provider"] == {"distribution": "robrank-fixture-good", "version": "1.0", "plugin": "good"}
    assert profiles["rob28"]["provider"]["distribution"] == "robrank"
    # each skip is announced on stderr, naming the plugin and its distribution
    for plugin, dist in (("import-error", "robrank-fixture-import-error 0.1"), ("register-error", "robrank-fixture-register-error 0.2")):
        assert f"skipping plugin '{plugin}' ({dist})" in listed.stderr

    text = run_cli("list", "profiles", fixtures=BROKEN)
    assert text.returncode == 0, text.stderr
    assert "failed plugins" in text.stdout
    assert (
        "import-error (robrank-fixture-import-error 0.1) at import: "
        "ModuleNotFoundError: No module named 'robrank_dependency_that_is_not_installed'"
    ) in text.stdout
    assert "register-error (robrank-fixture-register-error 0.2) at register: RuntimeError" in text.stdout
    assert "fixture-good" in text.stdout and "(robrank-fixture-good 1.0)" in text.stdout

    # a command from the healthy plugin still runs next to the broken ones
    hello = run_cli("fixture-hello", "bob", fixtures=BROKEN)
    assert hello.returncode == 0, hello.stderr
    assert hello.stdout.strip() == "fixture says hello to bob"
    # the plugin that failed to register is skipped as a whole: its command is gone too
    half = run_cli("fixture-half", fixtures=BROKEN)
    assert half.returncode == 2 and "No such command 'fixture-half'" in half.stderr


def test_strict_mode_turns_a_broken_plugin_into_a_one_line_error():
    result = run_cli("list", fixtures=("import_error", "good"), extra_env={"ROBRANK_STRICT_PLUGINS": "1"})
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    [error] = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert "plugin 'import-error' (robrank-fixture-import-error 0.1) failed at import" in error
    assert "robrank_dependency_that_is_not_installed" in error and "ROBRANK_STRICT_PLUGINS" in error


def test_a_name_collision_fails_both_plugins_names_both_and_the_allow_list_resolves_it():
    clash = run_cli("list", "profiles", "--json", fixtures=("collide_a", "collide_b", "good"))
    assert clash.returncode == 0, clash.stderr  # robrank list (and every other command) keeps working
    payload = json.loads(clash.stdout)
    failures = _fixture_failures(payload)
    assert set(failures) == {"robrank-fixture-collide-a", "robrank-fixture-collide-b"}
    for own, other in (("a", "robrank-fixture-collide-b 2.2"), ("b", "robrank-fixture-collide-a 1.1")):
        failure = failures[f"robrank-fixture-collide-{own}"]
        assert failure["stage"] == "collision"
        assert "'fixture-dupe'" in failure["error"] and other in failure["error"] and "ROBRANK_LOAD_PLUGINS" in failure["error"]
    profiles = _profiles(payload)
    assert "fixture-dupe" not in profiles  # neither claim is trusted
    assert "fixture-good" in profiles and "rob28" in profiles
    # another command still runs
    hello = run_cli("fixture-hello", "ann", fixtures=("collide_a", "collide_b", "good"))
    assert hello.returncode == 0 and hello.stdout.strip() == "fixture says hello to ann"

    # the fix the message suggests: allow only one of them
    only_a = run_cli("list", "profiles", "--json", fixtures=("collide_a", "collide_b"), extra_env={"ROBRANK_LOAD_PLUGINS": "robrank-fixture-collide-a"})
    assert only_a.returncode == 0, only_a.stderr
    dupe = _profiles(json.loads(only_a.stdout))["fixture-dupe"]
    assert dupe["summary"] == "claimed by collide-a"
    assert dupe["provider"]["distribution"] == "robrank-fixture-collide-a"


def test_a_collision_with_a_bundled_name_keeps_the_bundled_component():
    result = run_cli("list", "profiles", "--json", fixtures=("collide_bundled",))
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    failure = _fixture_failures(payload)["robrank-fixture-collide-bundled"]
    assert failure["stage"] == "collision" and "'rob28'" in failure["error"] and "bundled one is kept" in failure["error"]
    profiles = _profiles(payload)
    assert profiles["rob28"]["provider"]["distribution"] == "robrank"
    assert profiles["rob28"]["summary"] != "an impostor"
    assert "collide-bundled-own" not in profiles  # the plugin fails as a whole

    text = run_cli("list", "profiles", fixtures=("collide_bundled",))
    assert "collide-bundled (robrank-fixture-collide-bundled 0.6) at collision" in text.stdout


def test_a_plugin_calling_sys_exit_at_import_is_skipped():
    listed = run_cli("list", "--json", fixtures=("sys_exit", "good"))
    assert listed.returncode == 0, listed.stderr
    failure = _fixture_failures(json.loads(listed.stdout))["robrank-fixture-sys-exit"]
    assert (failure["stage"], failure["error"]) == ("import", "SystemExit: the plugin called sys.exit(3)")
    hello = run_cli("fixture-hello", "sam", fixtures=("sys_exit", "good"))
    assert hello.returncode == 0 and hello.stdout.strip() == "fixture says hello to sam"
    assert "skipping plugin 'sys-exit' (robrank-fixture-sys-exit 0.4)" in hello.stderr
    strict = run_cli("list", fixtures=("sys_exit",), extra_env={"ROBRANK_STRICT_PLUGINS": "1"})
    assert strict.returncode == 2 and "Traceback" not in strict.stderr
    assert "plugin 'sys-exit' (robrank-fixture-sys-exit 0.4) failed at import: SystemExit" in strict.stderr


def test_a_hook_registering_something_that_is_not_a_record_is_skipped():
    listed = run_cli("list", "profiles", "--json", fixtures=("bad_record", "good"))
    assert listed.returncode == 0, listed.stderr
    payload = json.loads(listed.stdout)
    failure = _fixture_failures(payload)["robrank-fixture-bad-record"]
    assert failure["stage"] == "register"
    assert "registered a dict through register_profiles; expected ProfileRecord" in failure["error"]
    assert "bad-record-valid" not in _profiles(payload) and "fixture-good" in _profiles(payload)
    strict = run_cli("list", fixtures=("bad_record",), extra_env={"ROBRANK_STRICT_PLUGINS": "1"})
    assert strict.returncode == 2 and "expected ProfileRecord" in strict.stderr and "Traceback" not in strict.stderr


ALL = ("import_error", "register_error", "command_error", "good", "collide_a", "collide_b", "sys_exit", "bad_record", "collide_bundled")


@pytest.mark.parametrize(
    ("allow", "expected_profiles"),
    [
        ("good", {"fixture-good"}),  # by entry-point name
        ("robrank-fixture-good, robrank-fixture-collide-b", {"fixture-good", "fixture-dupe"}),  # by distribution
        ("", set()),  # no third-party plugin at all
    ],
)
def test_allow_list_and_no_plugins(allow, expected_profiles):
    result = run_cli("list", "--json", fixtures=ALL, extra_env={"ROBRANK_LOAD_PLUGINS": allow})
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    # plugins that are not allowed are not even imported, so their failures never happen
    assert _fixture_failures(payload) == {}
    profiles = _profiles(payload)
    third_party = {name for name, c in profiles.items() if c["provider"]["distribution"] in FIXTURE_DISTS}
    assert third_party == expected_profiles
    assert profiles["rob28"]["provider"]["distribution"] == "robrank"  # bundled ones always load
