"""robrank.plugin_api: the one module plugin authors import from.

What is checked: every name in its ``__all__`` resolves (a renamed internal would break
plugins silently otherwise), ``dir()`` lists exactly the promised names, and importing the
module does not import torch, so a plugin's registration module stays light.
"""
from __future__ import annotations

import subprocess
import sys

import robrank.plugin_api as api


def test_every_public_name_resolves_and_dir_lists_them():
    missing = [name for name in api.__all__ if not hasattr(api, name)]
    assert missing == []
    assert len(set(api.__all__)) == len(api.__all__)
    assert dir(api) == sorted(api.__all__)


def test_an_unknown_name_is_an_attribute_error():
    try:
        api.not_a_name  # noqa: B018
    except AttributeError as exc:
        assert "not_a_name" in str(exc)
    else:  # pragma: no cover - the assertion is the test
        raise AssertionError("robrank.plugin_api.not_a_name resolved")


def test_importing_the_module_and_the_records_does_not_import_torch():
    code = (
        "import sys\n"
        "from robrank.plugin_api import AttackRecord, DefenseRecord, Param, hookimpl, ConfigError, Score\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "from robrank.plugin_api import Attack\n"
        "assert 'torch' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
