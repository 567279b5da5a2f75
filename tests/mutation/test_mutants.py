"""The mutation tier: every one-line bug listed in ``tools/mutants.py`` must make its tests fail."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[2] / "tools" / "mutants.py"


def load_tool():
    spec = importlib.util.spec_from_file_location("mutants", TOOL)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # NamedTuple classes look their module up while the file executes
    spec.loader.exec_module(module)
    return module


def test_the_mutant_list_matches_the_code():
    # Fast, and run even where the tier is deselected: a snippet that moved is reported here by name.
    tool = load_tool()
    assert tool.check_list(tool.MUTANTS) == []


@pytest.mark.mutation
def test_every_mutant_is_killed():
    tool = load_tool()
    if os.environ.get(tool.RUNNING_ENV):
        pytest.skip("inside a mutant's test run")
    proc = subprocess.run([sys.executable, str(TOOL)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"mutation tier failed (exit status {proc.returncode}):\n{proc.stdout}{proc.stderr}"
