"""The Python API (explorer/notebook.py): `import explorer` stays light; `compare` on the embedded model gives the
command line's records and the page's figures; `load` is reused; docs/notebook.ipynb runs from top to bottom."""

import ast
import json
import os
import subprocess
import sys

import plotly.graph_objects as go
import pytest

import explorer
from explorer import notebook
from explorer.core.compare import compare as run_all
from explorer.core.options import Settings
from explorer.core.settings import check_settings
from models.base import BadInput
from tests.conftest import ROOT, random_image, write_clip

QUESTION = "what color is the square ?"
SCENE = os.path.join(ROOT, "assets", "scene_101.png")


def test_import_explorer_imports_no_torch():
    code = ("import sys, explorer; from explorer import compare, load, Result, Model; "
            "print(sorted(m for m in ('torch', 'transformers', 'plotly', 'gradio') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    assert set(explorer.API) <= set(dir(explorer))
    with pytest.raises(AttributeError):
        explorer.no_such_name


def test_defaults_are_the_settings_defaults():
    assert notebook.DEFAULT_METHODS == Settings().methods and notebook.DEFAULT_KEEP == Settings().keep


@pytest.fixture(scope="module")
def model():
    return explorer.load()


@pytest.fixture(scope="module")
def result(model):
    return explorer.compare(SCENE, QUESTION, methods=("clse", "fastv"), keep=32, model=model)


def test_compare_gives_the_command_lines_records(model, result):
    from explorer.media import read as media

    expected = run_all(model.model, model.processor, model.family, [media.load_image(SCENE)], QUESTION,
                       check_settings(methods=["clse", "fastv"], keep=32))
    assert list(result.answers) == ["none", "clse", "fastv"]
    assert result.answers == {name: r.answer for name, r in expected.items()}
    for name, record in expected.items():
        assert result.records[name]["kept_indices"] == record.to_json()["kept_indices"]
        assert set(result.records[name]) == set(record.to_json())
    assert len(result.records["clse"]["kept_indices"]) == 32
    assert result.model == "shapes-llava" and result.pair == ("clse", "fastv")


def test_every_panel_is_a_plotly_figure_and_the_json_is_plain_data(result):
    assert "importance" in result.panels and "sweep" in result.panels
    for name in result.panels:
        assert isinstance(result.figure(name), go.Figure), name
    assert result.figure("importance", pair=("fastv", "clse")) is not None
    with pytest.raises(ValueError, match="no panel 'nope'"):
        result.figure("nope")
    with pytest.raises(ValueError, match="turn 2 does not exist"):
        result.figure("importance", turn=2)
    data = json.loads(json.dumps(result.to_json()))
    assert {"model", "results", "flipped_kept_indices", "positional_sweep", "flip_test", "positional_bias"} <= set(data)
    assert data["results"] == result.records
    assert set(data["flip_test"]) == {"clse", "fastv"}


def test_video_files_frame_lists_follow_ups_and_no_diagnostics(model, tmp_path):
    clip = write_clip(tmp_path / "clip.webm")
    video = explorer.compare(clip, "which way does the circle move ?", methods=["fastv"], keep=0.5, frames=2,
                             model=model)
    assert video.records["none"]["groups"][0]["grid"][0] == 2 and len(video.images) == 2
    assert video.figure("frame_counts", frame=1) is not None
    frames = explorer.compare([random_image(1), random_image(2)], QUESTION, methods=["random"], keep=0.5,
                              video=True, model=model, diagnostics=False, follow_ups=["is it red ?"])
    assert len(frames.records["none"]["groups"]) == 1  # one clip, one budget
    assert [t["question"] for t in frames.records["random"]["turns"]] == [QUESTION, "is it red ?"]
    assert "flip_test" not in frames.to_json()
    with pytest.raises(ValueError, match="diagnostics=True"):
        frames.figure("importance")


def test_bad_settings_and_models_raise_the_page_sentence(model, monkeypatch):
    with pytest.raises(BadInput, match="unknown method 'magic'"):
        explorer.compare(SCENE, QUESTION, methods=["magic"], model=model)
    with pytest.raises(BadInput, match="unknown setting"):
        explorer.compare(SCENE, QUESTION, kep=3, model=model)
    with pytest.raises(BadInput, match="image file not found"):
        explorer.compare("/nonexistent.png", QUESTION, model=model)
    with pytest.raises(TypeError, match="model must be"):
        explorer.compare(SCENE, QUESTION, model=3)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BadInput, match="offline mode is on"):
        explorer.load("nobody/no-such-model")


def test_a_model_named_by_id_is_loaded_once(monkeypatch, model):
    loads = []
    monkeypatch.setattr(notebook, "load", lambda name=None: loads.append(name) or model)
    monkeypatch.setattr(notebook, "_kept", {})
    for _ in range(2):
        explorer.compare(SCENE, QUESTION, methods=["fastv"], keep=8, diagnostics=False, max_new_tokens=2)
    assert loads == [None]


@pytest.mark.slow  # a Jupyter kernel runs the notebook
def test_the_example_notebook_runs(monkeypatch):
    """docs/notebook.ipynb executed by nbclient in a fresh kernel (the checkout on its path, as an installed
    package puts it), offline, on the embedded model."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("PYTHONPATH", ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    docs = os.path.join(ROOT, "docs")
    book = nbformat.read(os.path.join(docs, "notebook.ipynb"), as_version=4)
    assert not any(cell.get("outputs") for cell in book.cells)  # kept without outputs
    nbclient.NotebookClient(book, timeout=600, kernel_name="python3", resources={"metadata": {"path": docs}}).execute()
    outputs = {i: cell.outputs for i, cell in enumerate(book.cells) if cell.cell_type == "code"}
    text = json.dumps(outputs)
    assert "application/vnd.plotly.v1+json" in text  # the figures were drawn
    answers = next(o for cell in book.cells if "result.answers" in cell.source for o in cell.outputs
                   if o.output_type == "execute_result")
    assert set(ast.literal_eval(answers["data"]["text/plain"])) == {"none", "clse", "fastv"}
