"""Settings is the one source: every field's spec (explorer/core/options.py) gives the command line's flags,
the raw values' checks, the lmms-eval model arguments, docs/settings.md, and the page's components and /compare
API (whose names and order are a public interface, held here literally)."""

import dataclasses
import os

import pytest

from explorer import cli
from explorer.core import options
from explorer.core.options import Settings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_setting_has_its_spec():
    for field in dataclasses.fields(Settings):
        assert field.metadata.get("help"), field.name
        assert set(field.metadata) <= set(options.SPEC), (field.name, set(field.metadata) - set(options.SPEC))
        spec = options.specs()[field.name][1]
        if field.type in (int, float) and "kind" not in spec:
            assert "low" in spec and "high" in spec, field.name  # a number has its bounds


def test_the_settings_table_in_docs_is_the_generated_one():
    with open(os.path.join(ROOT, "docs", "settings.md")) as f:
        assert f.read() == options.markdown(), "run: python -m explorer.core.options --markdown > docs/settings.md"


def test_the_command_line_has_a_flag_for_every_setting_with_its_default():
    parser = cli.build_parser()
    flags = {action.dest: action for action in parser._actions}
    for name, (default, spec) in options.specs().items():
        if options.flag(name) is None:
            continue
        assert options.flag(name) in flags[name].option_strings
        assert f"(default: {options.shown_default(name)})" in flags[name].help
        assert flags[name].choices == spec.get("choices")
    args = cli.parse_args(["--question", "q", "--keep", "9", "--follow-up", "a", "--follow-up", "b", "--invert"])
    raw = options.raw_from(args)
    assert raw["keep"] == "9" and raw["follow_ups"] == ["a", "b"] and raw["invert"] is True
    assert options.check_values(**raw)["follow_ups"] == ("a", "b")
    assert options.check_values(**options.raw_from(cli.parse_args(["--question", "q"]))) == options.check_values()


def test_the_checks_follow_the_spec():
    checked = options.check_values()
    assert checked == {f.name: f.default for f in dataclasses.fields(Settings) if f.name not in ("methods", "notes")}
    for name, (default, spec) in options.specs().items():
        if "high" in spec and "kind" not in spec:
            with pytest.raises(options.InvalidSetting, match=f"^{options.said(name)} must be .* from "):
                options.check_values(**{name: spec["high"] * 2 + 1})
        if "choices" in spec:
            with pytest.raises(options.InvalidSetting, match=f"^{options.said(name)} must be "):
                options.check_values(**{name: "nothing"})
        if spec.get("optional"):
            assert options.check_values(**{name: "auto"})[name] is None


def test_the_lmms_eval_model_arguments_are_the_specs_run_settings():
    from explorer.analysis.runs import RUN_DEFAULTS, RUN_SETTINGS

    assert set(RUN_SETTINGS) == {name for name, (_, spec) in options.specs().items() if spec.get("run")}
    assert all(RUN_DEFAULTS[name] == getattr(Settings(), name) for name in RUN_SETTINGS)


def test_a_run_tag_stays_when_a_run_setting_is_added(monkeypatch):
    from explorer.analysis import runs

    assert runs.run_tag({}) == "clse-bc30de6de8c5"  # the tags of the runs made so far (records are found by them)
    assert runs.run_tag({"method": "fastv", "keep": 28}) == "fastv-fd87b25e0828"
    monkeypatch.setitem(runs.RUN_DEFAULTS, "a_new_setting", 0)
    assert runs.run_tag({}) == "clse-bc30de6de8c5" and runs.run_tag({"a_new_setting": 1}) != "clse-bc30de6de8c5"


# --------------------------------------------------------------------------------- the page and its public API

PUBLIC_API = [  # /compare's parameters, by position and by name, with the page's defaults: do not change
    ("image", None), ("video", None), ("question", ""), ("method_a", "clse"), ("method_b", "fastv"),
    ("keep", 0.1111), ("prune_layer", "auto"), ("ref_layer", "auto"), ("schedule", "single"), ("model_id", None),
    ("num_frames", 4), ("early_kv", "auto"), ("invert", False), ("prompt", "chat"), ("repeats", 1),
    ("budget_per", "image"), ("follow_ups", ""), ("follow_up_mode", "both"),
]


def test_the_compare_api_keeps_its_names_order_and_defaults():
    from explorer.page import api

    assert list(api.COMPARE_ARGUMENTS.items())[:len(PUBLIC_API)] == PUBLIC_API  # a new setting comes after
    shown = {name for name, (_, spec) in options.specs().items() if spec.get("page")}
    assert {setting for _, setting, _ in api.page_settings()} == shown
    raw = api.raw_settings(api.complete({"method_b": "random", "num_frames": 8}))
    assert raw["methods"] == ["clse", "random"] and raw["frames"] == 8


def test_the_page_serves_the_api_and_builds_a_component_per_setting():
    import gradio as gr

    from explorer.page import api, ui

    demo = ui.build_app()
    parameters = demo.get_api_info()["named_endpoints"]["/compare"]["parameters"]
    assert [p["parameter_name"] for p in parameters] == list(api.COMPARE_ARGUMENTS)
    defaults = {p["parameter_name"]: p["parameter_default"] for p in parameters if p["parameter_has_default"]}
    assert all(defaults[name] == value for name, value in PUBLIC_API if name not in ("image", "video", "question",
                                                                                      "model_id"))
    by_label = {getattr(b, "label", None): b for b in demo.blocks.values() if isinstance(b, gr.components.Component)}
    for argument, name, default in api.page_settings():
        label = options.specs()[name][1].get("label")
        if label:
            assert by_label[label].value == default, argument
            assert options.specs()[name][1]["help"] in (by_label[label].info or ""), argument
