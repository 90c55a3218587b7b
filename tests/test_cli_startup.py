"""`spinnq --help` and usage errors start fast: the command modules import torch, matplotlib,
numba and ray only inside the commands that use them. Checked on what a fresh interpreter has
loaded (no timing: the shared test machines' timings say little)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "matplotlib", "numba", "ray", "scipy")
MODULES = ("spinnq.cli", "spinnq.cli.graph", "spinnq.cli.s2", "spinnq.cli.energy",
           "spinnq.cli.quant", "spinnq.cli.run", "spinnq.cli.sweep")


def _loaded(code: str) -> list[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys, json\nprint(json.dumps("
                          f"[m for m in {HEAVY!r} if m in sys.modules]))"],
                         env=env, capture_output=True, text=True, check=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("module", MODULES)
def test_importing_the_cli_loads_no_heavy_package(module):
    assert _loaded(f"import {module}") == []


def test_help_and_a_usage_error_load_no_heavy_package():
    code = ("import sys\nfrom spinnq.cli import main\n"
            "for argv in (['spinnq', '--help'], ['spinnq', 'deploy', '--nope']):\n"
            "    sys.argv = argv\n"
            "    try:\n        main()\n    except SystemExit:\n        pass\n")
    assert _loaded(code) == []


def test_the_typer_app_still_resolves_every_command_signature():
    """Annotations are strings (future import): typer must still resolve them all."""
    import typer

    from spinnq.cli import COMMANDS, app

    cmds = typer.main.get_command(app).commands
    assert sorted(cmds) == sorted(name for name, _ in COMMANDS)
    assert all(c.params for c in cmds.values())
