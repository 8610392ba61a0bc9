"""The package (pyproject.toml): its dependencies are requirements.txt's, its lmms-eval plug-in entry point gives
lmms-eval the model `pruning_explorer`, and `pip install -e .` in a fresh virtual environment gives the `explorer`
command and the entry point to lmms-eval's registry, with no registration step."""

import importlib
import os
import subprocess
import sys
import tomllib

import pytest
from packaging.requirements import Requirement

from tests.conftest import ROOT


def pyproject():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)


def requirement_lines(path):
    lines = (line.split("#")[0].strip() for line in open(os.path.join(ROOT, path)))
    return [line for line in lines if line]


def normal(requirements):
    return sorted(str(Requirement(r)) for r in requirements)


def test_dependencies_are_requirements_txt():
    project = pyproject()["project"]
    assert normal(project["dependencies"]) == normal(requirement_lines("requirements.txt"))
    lmms = [r for r in requirement_lines("tests/requirements-lmms.txt") if Requirement(r).name == "lmms-eval"]
    assert normal(project["optional-dependencies"]["lmms"]) == normal(lmms)


@pytest.mark.slow  # imports lmms-eval
def test_console_script_and_entry_point_name_real_objects():
    project = pyproject()["project"]
    module, _, name = project["scripts"]["explorer"].partition(":")
    assert callable(getattr(importlib.import_module(module), name))
    (model_name, target), = project["entry-points"]["lmms_eval.models"].items()
    module, _, name = target.partition(":")
    manifest = getattr(importlib.import_module(module), name)()  # lmms-eval calls a callable payload
    from explorer.eval.lmms_eval import PruningExplorer
    from explorer.analysis.runs import MODEL_NAME

    assert model_name == manifest.model_id == MODEL_NAME
    module, _, name = manifest.simple_class_path.rpartition(".")
    assert getattr(importlib.import_module(module), name) is PruningExplorer
    assert PruningExplorer.is_simple  # lmms-eval refuses a simple class path to a chat model


@pytest.mark.slow  # a virtual environment, pip and lmms-eval's command line
def test_editable_install_in_a_fresh_environment(tmp_path):
    """A fresh virtual environment (seeing this machine's packages, so nothing is downloaded; without a pip and
    setuptools of its own, so this machine's build them) with the package installed editable: the `explorer`
    command answers, lmms-eval's registry knows `pruning_explorer` through the entry point alone and lmms-eval's
    own command line evaluates it (run outside the checkout, so nothing but the installed package provides it)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    install = subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "-e", ROOT],
                             capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert install.returncode == 0, install.stdout + install.stderr
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1")
    result = subprocess.run([str(venv / "bin" / "explorer"), "--help"], capture_output=True, text=True,
                            cwd=tmp_path, env=env, timeout=120)
    assert result.returncode == 0 and "usage: explorer" in result.stdout, result.stderr
    check = ("import explorer, lmms_eval.models as m; print(explorer.__file__); "
             "print(m.get_model('pruning_explorer').__module__)")
    result = subprocess.run([python, "-c", check], capture_output=True, text=True, cwd=tmp_path, env=env,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    where, module = result.stdout.split()[-2:]
    assert where == os.path.join(ROOT, "explorer", "__init__.py")
    assert module == "explorer.eval.lmms_eval"
    # lmms-eval's own command line, not our launcher: the entry point names the model, the model skips the
    # filelock patch that fails under filelock 4 (explorer.eval.lmms_eval.skip_filelock_patch)
    from explorer.eval.tasks.shapes import make

    make.make(str(tmp_path / "shapes"), 2)
    result = subprocess.run([python, "-m", "lmms_eval", "--model", "pruning_explorer", "--model_args",
                             "method=clse,keep=28", "--tasks", "shapes", "--include_path", str(tmp_path / "shapes"),
                             "--limit", "2", "--output_path", str(tmp_path / "out")], capture_output=True, text=True,
                            cwd=tmp_path, env=dict(env, OMP_NUM_THREADS="1"), timeout=600)
    assert result.returncode == 0 and "Error during evaluation" not in result.stdout + result.stderr, \
        result.stdout[-3000:] + result.stderr[-3000:]
    assert "|shapes|" in result.stdout and list((tmp_path / "out").rglob("*_results.json"))
