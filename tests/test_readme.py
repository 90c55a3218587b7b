"""The README says what the code does: its command table lists every command and option of
`spinnq --help`, and its measured figures are the ones benchmarks/readme_numbers.py renders
from the committed benchmark JSON."""

import re
from pathlib import Path

import pytest
import typer

from spinnq.cli import app
from spinnq.cli.run import RUNNERS
from tests.conftest import benchmark

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _rows() -> dict[str, str]:
    """README command-table rows by command name."""
    out = {}
    for line in README.splitlines():
        m = re.match(r"\| `spinnq ([\w-]+)", line)
        if m:
            out[m.group(1)] = line
    return out


@pytest.mark.parametrize("cmd", sorted(typer.main.get_command(app).commands))
def test_readme_command_table_lists_every_option_of_help(cmd):
    command = typer.main.get_command(app).commands[cmd]
    row = _rows().get(cmd)
    assert row is not None, f"README has no row for spinnq {cmd}"
    longs = [o for p in command.params for o in (*p.opts, *p.secondary_opts)
             if o.startswith("--") and o != "--help"]
    missing = [o for o in longs if o not in row]
    assert not missing, f"README's spinnq {cmd} row lacks {missing}"


def test_readme_lists_every_task():
    row = _rows()["run"]
    assert all(t in row for t in RUNNERS), row


def test_readme_numbers_are_what_the_benchmark_json_gives():
    mod = benchmark("readme_numbers")
    assert mod.render(README) == README, "run: python benchmarks/readme_numbers.py readme"
    assert "<!-- readme:cartpole -->" in README and "500.0 / 499.6" not in README
