"""Stale references fail here: every `python -m explorer...` command that the README, docs/ or a help text (the
code of explorer/, app.py, the Dockerfile) names is a module that imports and runs as a command, and every
explorer/... file path they name exists. A renamed or moved module then fails this test, not a reader."""

import glob
import importlib
import importlib.util
import inspect
import os
import re

import pytest

from tests.conftest import ROOT

COMMAND = re.compile(r"python3? -m (explorer(?:\.\w+)*)")
PATH = re.compile(r"\bexplorer(?:/\w+)+\.py\b")


def texts():
    """{file relative to the root: its text} of the docs, the help texts and the code that writes them."""
    names = ["README.md", "app.py", "Dockerfile", *glob.glob("docs/*.md", root_dir=ROOT)]
    for folder, _, files in os.walk(os.path.join(ROOT, "explorer")):
        names += [os.path.relpath(os.path.join(folder, n), ROOT) for n in files if n.endswith(".py")]
    return {name: open(os.path.join(ROOT, name), encoding="utf-8").read()
            for name in names if os.path.exists(os.path.join(ROOT, name))}


def named(pattern):
    """{what the pattern found: [the files naming it]}."""
    found = {}
    for name, text in texts().items():
        for match in pattern.finditer(text):
            found.setdefault(match.group(match.lastindex or 0), []).append(name)
    return found


COMMANDS = named(COMMAND)


def test_the_docs_and_help_texts_name_commands():
    assert {"explorer", "explorer.bench", "explorer.eval.report"} <= set(COMMANDS)  # the search finds them


@pytest.mark.parametrize("module", sorted(COMMANDS))
def test_every_command_named_is_a_module_that_runs(module):
    """A package runs through its __main__ (found, not imported: importing it would run it); a module imports
    and has a main guard."""
    where = ", ".join(sorted(set(COMMANDS[module])))
    spec = importlib.util.find_spec(module)
    assert spec is not None, f"`python -m {module}` (named in {where}) is no module"
    if spec.submodule_search_locations is not None:
        assert importlib.util.find_spec(f"{module}.__main__") is not None, f"{module} (in {where}) has no __main__"
    else:
        source = inspect.getsource(importlib.import_module(module))
        assert '__name__ == "__main__"' in source, f"{module} (named in {where}) does not run as a command"


def test_every_file_path_named_exists():
    missing = {path: files for path, files in named(PATH).items() if not os.path.exists(os.path.join(ROOT, path))}
    assert not missing, missing


def test_the_check_can_fail():
    assert COMMAND.findall("run `python -m explorer.report RUNS`") == ["explorer.report"]
    assert importlib.util.find_spec("explorer.report") is None  # renamed: explorer.eval.report
