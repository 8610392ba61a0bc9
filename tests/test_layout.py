"""The house: no import cycle among explorer/ and models/ (imports at module level and inside functions alike),
models/ a leaf, the top of explorer/ holding entry points only, every family fulfilling the contract, a method
being one function and one line, and the page's API arguments defined once."""

import ast
import glob
import inspect
import os
import re

import pytest

import explorer
import models
from explorer.methods import registry
from explorer.page import api, events, service
from models import base
from tests.conftest import ROOT, Tiny, TinyQwen, random_image


def module_name(path):
    relative = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
    return relative.removesuffix(".__init__")


def imported_modules(path, name):
    """Every project module this file imports, at any depth of its code (functions included)."""
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base_name = node.module or ""
            if node.level:
                base_name = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + (
                    [node.module] if node.module else []))
            found.add(base_name)
            found.update(f"{base_name}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return found


def project_graph():
    files = {}
    for top in ("explorer", "models"):
        for folder, _, names in os.walk(os.path.join(ROOT, top)):
            files.update({module_name(os.path.join(folder, n)): os.path.join(folder, n)
                          for n in names if n.endswith(".py")})
    return {name: {m for m in imported_modules(path, name) if m in files and m != name}
            for name, path in files.items()}


def find_cycle(graph):
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycle_and_models_is_a_leaf():
    graph = project_graph()
    assert len(graph) > 40  # the walk found the project
    # packages import nothing from their own modules here, so a package's __init__ is not an edge to itself
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))
    assert not [(a, b) for a, targets in graph.items() for b in targets
                if a.startswith("models") and b.startswith("explorer")]


def folder(module):
    """The folder of explorer.IMPORTS a module belongs to: models, an explorer/ subpackage, or "" (the top)."""
    parts = module.split(".")
    return "models" if parts[0] == "models" else parts[1] if len(parts) > 2 or (
        len(parts) == 2 and parts[1] in explorer.IMPORTS) else ""


def imports_against_the_statement(graph, allowed):
    return sorted((a, b) for a, targets in graph.items() for b in targets
                  if folder(a) != folder(b) and folder(b) not in allowed[folder(a)])


def test_every_import_follows_the_one_statement_of_the_folders():
    """explorer.IMPORTS says which folder may import which; every import (functions included) keeps to it, and
    no README or docs page states the folders' dependencies otherwise (an arrow between two folders)."""
    graph = project_graph()
    folders = {n for n in os.listdir(os.path.join(ROOT, "explorer")) if os.path.isdir(os.path.join(ROOT, "explorer", n))
               and not n.startswith("__")}
    assert set(explorer.IMPORTS) == folders | {"models", ""}
    assert imports_against_the_statement(graph, explorer.IMPORTS) == []
    names = "|".join(folders | {"models"})
    arrow = re.compile(rf"`?\b({names})/?`?\s*(<-|->|←|→)\s*`?({names})\b")
    docs = [os.path.join(ROOT, "README.md")] + glob.glob(os.path.join(ROOT, "docs", "*.md"))
    for path in docs:
        assert not arrow.search(open(path).read()), f"{path} states the folders' dependencies: see explorer.IMPORTS"


def test_the_statement_check_can_fail():
    graph = {"explorer.core.engine": {"explorer.page.ui"}, "explorer.page.ui": {"explorer.core.engine"}}
    assert imports_against_the_statement(graph, explorer.IMPORTS) == [("explorer.core.engine", "explorer.page.ui")]


def test_the_cycle_check_can_fail():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_top_of_explorer_holds_entry_points_only():
    top = sorted(n for n in os.listdir(os.path.join(ROOT, "explorer")) if n.endswith(".py"))
    assert top == ["__init__.py", "__main__.py", "cli.py", "notebook.py"]  # the command line, the Python API
    folders = sorted(n for n in os.listdir(os.path.join(ROOT, "explorer"))
                     if os.path.isdir(os.path.join(ROOT, "explorer", n)) and not n.startswith("__"))
    assert folders == ["analysis", "bench", "core", "eval", "media", "methods", "page", "serve"]


# ------------------------------------------------------------------------------------------ the contract


@pytest.mark.parametrize("family", models.FAMILIES, ids=lambda f: f.__name__)
def test_every_family_fulfils_the_contract(family):
    assert isinstance(family, base.Family)  # every name of the Protocol is there
    for name, member in vars(base.Family).items():
        if inspect.isfunction(member) and not name.startswith("_"):
            ours = list(inspect.signature(getattr(family, name)).parameters)
            theirs = [p for p in inspect.signature(member).parameters if p != "self"]
            assert ours[:len(theirs)] == theirs, (family.__name__, name, ours)
    assert set(family.DEFAULTS) == {"image", "video"}
    assert all(set(d) == {"ref_layer", "prune_layer", "early_kv"} for d in family.DEFAULTS.values())
    assert family.NAME and family.MODEL_CLASSES and isinstance(family.HUB_IDS, tuple)


def test_the_contract_check_can_fail():
    class Missing:  # a family without model_view
        NAME, MODEL_CLASSES, HUB_IDS, DEFAULTS, PAPER_SCHEDULE = "x", (), (), {}, {}
        build_inputs = visual_groups = text_model = layer_parts = decoder_positions = vision_attention = print

    assert not isinstance(Missing, base.Family)


@pytest.mark.parametrize("make", [Tiny, lambda: TinyQwen("2")], ids=["llava", "qwen2_vl"])
def test_every_family_gives_what_the_engine_reads(make):
    t = make()
    lm = t.family.text_model(t.model)
    assert isinstance(lm, base.TextModel)
    for index in range(len(lm.layers)):
        parts = t.family.layer_parts(t.model, index)
        assert isinstance(parts, base.LayerParts)
        hidden = t.model.config.get_text_config().hidden_size
        assert parts.q_proj.in_features == parts.k_proj.in_features == hidden
        assert parts.q_proj.out_features % parts.head_dim == 0 and parts.k_proj.out_features % parts.head_dim == 0
        assert parts.scaling == pytest.approx(parts.head_dim ** -0.5)
    inputs = t.family.build_inputs(t.processor, [random_image(3, (120, 90))], "what color is the circle ?")
    groups = t.family.visual_groups(t.model, inputs)
    assert groups and all(isinstance(g, base.VisualGroup) and g.count == g.grid[0] * g.grid[1] * g.grid[2]
                          for g in groups)
    views = t.family.model_view(t.processor, [random_image(3, (120, 90))])
    assert len(views) == 1 and views[0].mode == "RGB"


# ------------------------------------------------------------------------------------------ one line each


def test_a_method_is_one_function_and_one_line(tiny, monkeypatch):
    """A throwaway method added by one registry line shows in the menus, the figures and the JSON."""
    from explorer.core.compare import compare
    from explorer.page import figures, panels, ui

    monkeypatch.setitem(registry.METHODS, "reverse_raster", registry.Method(
        lambda inputs: inputs.alive.double(), group="positional", label="reverse raster", color="#123456",
        description="the last tokens of the grid first"))
    assert ("positional: reverse_raster", "reverse_raster") in ui.method_choices()
    assert "`reverse_raster`: the last tokens of the grid first" in panels.method_guide()
    assert figures.method_color("reverse_raster") == "#123456"
    records = compare(tiny.model, tiny.processor, tiny.family, [random_image(5)], "what color is the circle ?",
                      methods=["reverse_raster"], keep=4, max_new_tokens=2)
    record = records["reverse_raster"].to_json()
    n = tiny.side ** 2
    assert record["method"] == "reverse_raster" and record["kept_indices"] == list(range(n - 4, n))
    assert "reverse_raster" in records["none"].reference_scores  # scored in the diagnostics too


def test_the_page_api_is_defined_once():
    """The Compare handler and service.prepare take the API's arguments as one mapping (api.py's names)."""
    names = list(api.COMPARE_ARGUMENTS)
    last = list(inspect.signature(events.compare_click).parameters.values())[-1]
    assert last.kind == inspect.Parameter.VAR_KEYWORD
    assert list(inspect.signature(service.prepare).parameters) == ["arguments"]
    assert api.compare_arguments(question="q", keep=3)[names.index("keep")] == 3
    with pytest.raises(TypeError, match="no argument"):
        api.compare_arguments(frames=4)
