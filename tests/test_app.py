"""The page's API through gradio_client against a real server started by the test."""

import json
import pathlib

import pytest
from gradio_client import Client, handle_file

from explorer.page.panels import PANELS
from tests.conftest import random_image, write_clip
from tests.conftest import app_server

FIGURES = [p.name for p in PANELS]
FIGURE_COUNT = len(FIGURES)
ROOT_ASSETS = pathlib.Path(__file__).resolve().parent.parent / "assets"


@pytest.fixture(scope="module")
def server(page_model, tmp_path_factory):
    log = tmp_path_factory.mktemp("server") / "app.log"
    with app_server(model=page_model, log_path=str(log)) as url:
        yield url


@pytest.fixture(scope="module")
def client(server):
    return Client(server, verbose=False)


def check_outputs(outputs, methods, embedded=False):
    *plots, payload, download, _frame = outputs
    assert len(plots) == FIGURE_COUNT
    for name, plot in zip(FIGURES, plots):
        assert plot["type"] == "plotly"
        figure = json.loads(plot["plot"])
        if name == "sweep" and not embedded:  # needs the embedded model's known object positions
            assert "embedded model" in figure["layout"]["annotations"][0]["text"]
        else:
            assert figure["data"], f"figure {name} has data"
    assert list(payload["results"]) == ["none", *methods]
    for name, record in payload["results"].items():
        assert record["answer_ids"], name
        assert {"answer", "kept_indices", "timings_ms", "visual_tokens"} <= set(record)
    with open(download) as f:
        assert json.load(f)["results"].keys() == payload["results"].keys()
    assert set(payload["flip_test"]) == set(methods)
    return payload


def test_image_request_returns_three_answers_and_all_figures(client, tmp_path):
    path = tmp_path / "scene.png"
    random_image(0, size=(120, 90)).save(path)
    outputs = client.predict(handle_file(str(path)), None, "what color is the circle ?", "clse", "fastv", 9, 2,
                             api_name="/compare")
    payload = check_outputs(outputs, ["clse", "fastv"])
    n = payload["results"]["none"]["visual_tokens"]
    assert len(payload["results"]["clse"]["kept_indices"]) == 9 < n


def test_video_request_prunes_across_frames(client, tmp_path):
    clip = write_clip(tmp_path / "clip.webm")
    outputs = client.predict(None, handle_file(str(clip)), "is the circle red ?", "clse", "uniform", 0.25, 1,
                             api_name="/compare")
    payload = check_outputs(outputs, ["clse", "uniform"])
    group = payload["results"]["none"]["groups"][0]
    assert group["kind"] == "video" and group["grid"][0] == 4  # 4 frames sampled by default
    frame = outputs[-1]  # the frame slider counts from 1, as the figures do ("frame 1 of 4")
    assert (frame["minimum"], frame["maximum"], frame["value"]) == (1, 4, 1)
    assert len(payload["results"]["clse"]["kept_indices"]) == round(0.25 * group["count"])


@pytest.mark.parametrize("make_inputs, message", [
    (lambda tmp: (None, None, "what ?", "clse", "fastv", 9, 2), "upload an image or a video"),
    (lambda tmp: (str(random_png(tmp)), None, "", "clse", "fastv", 9, 2), "question is empty"),
    (lambda tmp: (str(random_png(tmp)), None, "why " * 200, "clse", "fastv", 9, 2), "limit is 500"),
    (lambda tmp: (str(random_png(tmp)), None, "what ?", "clse", "fastv", 0, 2), "keep must be"),
    (lambda tmp: (str(random_png(tmp)), None, "what ?", "clse", "fastv", 100000, 2), "more than the"),
    (lambda tmp: (str(random_png(tmp)), None, "what ?", "clse", "fastv", 9, 99), "prune layer must be between"),
    (lambda tmp: (str(random_png(tmp)), None, "what ?", "clse", "magic", 9, 2), "unknown method 'magic'"),
    (lambda tmp: (str(junk(tmp, "fake.png", b"this is not an image at all")), None, "what ?", "clse", "fastv", 9, 2),
     "not a readable image"),
    (lambda tmp: (None, str(junk(tmp, "fake.webm", b"\x1a\x45\xdf\xa3 garbage that is not a video")), "what ?",
                  "clse", "fastv", 9, 2), "not a readable video|no decodable"),
    (lambda tmp: (None, str(junk(tmp, "empty.mp4", b"")), "what ?", "clse", "fastv", 9, 2),
     "not a readable video|no decodable"),
])
def test_bad_inputs_get_clear_errors_and_the_server_keeps_serving(client, tmp_path, make_inputs, message):
    from gradio_client.exceptions import AppError

    image, video, *rest = make_inputs(tmp_path)
    with pytest.raises(AppError, match=message):
        client.predict(handle_file(image) if image else None, handle_file(video) if video else None, *rest,
                       api_name="/compare")
    good = random_png(tmp_path, name="good.png")
    outputs = client.predict(handle_file(str(good)), None, "what color is the circle ?", "random", "fastv", 9, 2,
                             api_name="/compare")
    assert outputs[FIGURE_COUNT]["results"]["random"]["answer_ids"]


def random_png(tmp, name="img.png"):
    path = tmp / name
    random_image(1).save(path)
    return path


def junk(tmp, name, data):
    """A file named like media that holds something else (or nothing)."""
    path = tmp / name
    path.write_bytes(data)
    return path


def test_compare_event_works_with_a_qwen2_vl_model(tmp_path):
    """The page with a Qwen2-VL checkpoint (tiny, saved in the hub layout): image and native video."""
    from tests.conftest import TinyQwen

    directory = tmp_path / "qwen"
    qwen = TinyQwen("2")
    qwen.model.save_pretrained(directory)
    qwen.processor.save_pretrained(directory)
    image = tmp_path / "wide.png"
    random_image(5, size=(300, 200)).save(image)
    clip = write_clip(tmp_path / "clip.webm", frames=8, size=112)
    with app_server(model=str(directory)) as url:
        client = Client(url, verbose=False)
        payload = check_outputs(client.predict(handle_file(str(image)), None, "what color is the circle ?", "clse",
                                               "fastv", 0.5, 2, api_name="/compare"), ["clse", "fastv"])
        t, h, w = payload["results"]["none"]["groups"][0]["grid"]
        assert t == 1 and h != w  # Qwen's dynamic, non-square grid
        payload = check_outputs(client.predict(None, handle_file(str(clip)), "is the circle red ?", "clse",
                                               "uniform", 0.5, 2, api_name="/compare"), ["clse", "uniform"])
        group = payload["results"]["none"]["groups"][0]
        assert group["kind"] == "video" and group["grid"][0] == 2  # 4 frames -> 2 temporal patches
        assert len(payload["results"]["clse"]["kept_indices"]) == round(0.5 * group["count"])


def test_embedded_model_page_includes_the_object_sweep(tmp_path):
    """No model given: the page runs the embedded model, and the object sweep (known object tokens) is drawn."""
    with app_server() as url:
        client = Client(url, verbose=False)
        example = str(ROOT_ASSETS / "scene_205.png")
        outputs = client.predict(handle_file(example), None, "where is the red circle ?", "clse", "fastv",
                                 64 / 576, 2, api_name="/compare")
        payload = check_outputs(outputs, ["clse", "fastv"], embedded=True)
        assert payload["model"] == "shapes-llava"
        assert payload["results"]["none"]["visual_tokens"] == 256
        sweep = payload["positional_sweep"]
        assert len(sweep["positions"]) == len(sweep["recall"]["clse"]) == len(sweep["recall"]["fastv"]) >= 5
        assert all(0.0 <= share <= 1.0 for shares in sweep["recall"].values() for share in shares)
        # a generated example: its right answer beside the model's; the unpruned row has no budget
        assert payload["ground_truth"]["answer"] == "bottom-right"
        table = json.loads(outputs[0]["plot"])
        assert "the right answer: <b>bottom-right</b>" in table["layout"]["title"]["text"]
        header = [h.replace("<b>", "").replace("</b>", "") for h in table["data"][0]["header"]["values"]]
        assert table["data"][0]["cells"]["values"][header.index("nominal budget")][0] == "-"


def test_answers_come_first_then_every_panel(client, tmp_path):
    """The event is a generator: its first output set holds the answers alone (the other panels emptied), the
    last one everything, and that last one is what predict returns."""
    path = random_png(tmp_path)
    job = client.submit(handle_file(str(path)), None, "what color is the circle ?", "clse", "fastv", 9, 2,
                        api_name="/compare")
    final = job.result()
    first, *_, last = job.outputs()
    assert json.loads(first[0]["plot"])["data"][0]["type"] == "table"  # the answers panel
    assert all(plot is None for plot in first[1:FIGURE_COUNT])
    assert last == final
    check_outputs(final, ["clse", "fastv"])


def test_the_paper_settings_and_the_new_controls_reach_the_records(client, page_model, tmp_path):
    """'auto' layers take the family's official single-stage setting (LLaVA images: L=0, K=1); early_kv,
    invert and repeats reach every pruned record, and repeats give the cost panel a spread."""
    path = random_png(tmp_path)
    outputs = client.predict(handle_file(str(path)), None, "what color is the circle ?", "clse_spectral", "fastv",
                             9, "auto", "auto", "single", page_model, 4, "keep", True, "chat", 2, api_name="/compare")
    payload = check_outputs(outputs, ["clse_spectral", "fastv"])
    for name in ("clse_spectral", "fastv"):
        record = payload["results"][name]
        assert (record["prune_layer"], record["ref_layer"]) == (1, 0)
        assert record["early_kv"] == "keep" and record["invert"] is True
        assert record["timings_spread_ms"]["total"][0] <= record["timings_ms"]["total"]
    cost = json.loads(outputs[FIGURES.index("cost")]["plot"])
    assert cost["data"][-1]["error_x"]["array"]  # whiskers drawn from the spread


def test_an_old_method_name_is_renamed_with_a_note(client, tmp_path):
    outputs = client.predict(handle_file(str(random_png(tmp_path))), None, "what color is the circle ?", "clse_hybrid",
                             "fastv", 9, 2, api_name="/compare")
    payload = check_outputs(outputs, ["clse", "fastv"])
    assert any("'clse_hybrid' is now called 'clse'" in note for note in payload["results"]["clse"]["notes"])
    answers = json.loads(outputs[0]["plot"])
    assert "now called" in answers["layout"]["title"]["text"]


def test_a_conversation_through_the_api(client, page_model, tmp_path):
    """Follow-up questions through the compare API (one per line): every record's turns, and the answers
    table one row per turn and method."""
    from explorer.page.api import compare_arguments

    path = tmp_path / "scene.png"
    random_image(3, size=(120, 90)).save(path)
    outputs = client.predict(*compare_arguments(image=handle_file(str(path)), question="what color is the circle ?",
                                                keep=9, prune_layer=2, model_id=page_model,
                                                follow_ups="what color is the square ?\nis there a circle ?",
                                                follow_up_mode="reprune"), api_name="/compare")
    payload = check_outputs(outputs, ["clse", "fastv"])
    for name, record in payload["results"].items():
        assert [t["question"] for t in record["turns"]] == ["what color is the circle ?", "what color is the "
                                                            "square ?", "is there a circle ?"], name
        assert record["settings"]["follow_up_mode"] == "reprune"
    table = json.loads(outputs[0]["plot"])["data"][0]["cells"]["values"]
    assert len(table[0]) == 3 * 3 and table[-1][-1].startswith("3: is there a circle")
    with pytest.raises(Exception, match="5 follow-up questions; the limit is 4"):
        client.predict(*compare_arguments(image=handle_file(str(path)), question="what color is the circle ?",
                                          model_id=page_model, follow_ups="a ?\nb ?\nc ?\nd ?\ne ?"),
                       api_name="/compare")
