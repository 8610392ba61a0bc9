import json
import os
import subprocess
import sys

import pytest

from tests.conftest import random_image, write_clip

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def saved_model(tiny, tmp_path_factory):
    """The tiny model written in the hub layout, so the CLI loads it exactly as it would a hub checkpoint."""
    directory = tmp_path_factory.mktemp("tiny_llava")
    tiny.model.save_pretrained(directory)
    tiny.processor.save_pretrained(directory)
    return str(directory)


def cli(*args):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "explorer", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=300)


def test_json_output_has_every_method_and_matches_in_process(tiny, saved_model, tmp_path):
    path = tmp_path / "a.png"
    random_image(0).save(path)
    result = cli("--model", saved_model, "--image", str(path), "--question", "what color is the circle ?",
                 "--methods", "clse,fastv,random", "--keep", "9", "--prune-layer", "2", "--json",
                 "--max-new-tokens", "4")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["model"] == saved_model
    assert list(out["results"]) == ["none", "clse", "fastv", "random"]
    for name, record in out["results"].items():
        assert {"answer", "kept_indices", "timings_ms", "visual_tokens"} <= set(record)
        assert record["visual_tokens"] == 36
        assert len(record["kept_indices"]) == (36 if name == "none" else 9)
    from explorer.core.compare import compare
    expected = compare(tiny.model, tiny.processor, tiny.family, [random_image(0)], "what color is the circle ?",
                       methods=["clse"], keep=9, prune_layer=2, max_new_tokens=4)
    assert out["results"]["clse"]["kept_indices"] == expected["clse"].kept_indices
    assert out["results"]["clse"]["answer"] == expected["clse"].answer


def test_plain_output_and_video_frames(saved_model, tmp_path):
    paths = []
    for i in range(2):
        paths += ["--image", str(tmp_path / f"f{i}.png")]
        random_image(i).save(tmp_path / f"f{i}.png")
    result = cli("--model", saved_model, *paths, "--video", "--question", "is the square red ?", "--keep", "0.5")
    assert result.returncode == 0, result.stderr
    assert "kept    36/72" in result.stdout  # one budget for the 2-frame clip: half of 2 x 36


def test_video_file_is_sampled_into_frames(saved_model, tmp_path):
    clip = write_clip(tmp_path / "clip.webm")
    result = cli("--model", saved_model, "--video-file", str(clip), "--frames", "2", "--question",
                 "where does the circle move ?", "--keep", "0.5", "--methods", "fastv")
    assert result.returncode == 0, result.stderr
    assert "kept    36/72" in result.stdout  # 2 frames sampled, one budget: half of 2 x 36


@pytest.mark.parametrize("args, message", [
    (["--video-file", "CLIP", "--image", "IMAGE"], "not both"),
    ([], "give an image (--image PATH) or a video file"),
    (["--video-file", "CLIP", "--frames", "abc"], "frame count must be a whole number from 1 to 16"),
    (["--video-file", "CLIP", "--frames", "17"], "frame count must be a whole number from 1 to 16"),
    (["--video-file", "/nonexistent.webm"], "video file not found"),
])
def test_bad_video_file_input_exits_non_zero_with_one_line(saved_model, tmp_path, args, message):
    random_image(0).save(tmp_path / "a.png")
    files = {"CLIP": str(write_clip(tmp_path / "clip.webm")), "IMAGE": str(tmp_path / "a.png")}
    result = cli("--model", saved_model, "--question", "what ?", *[files.get(a, a) for a in args])
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and message in lines[-1]
    assert result.stdout == ""


@pytest.mark.parametrize("args, message", [
    (["--keep", "0"], "keep must be"),
    (["--keep", "999"], "more than the 36"),
    (["--prune-layer", "9"], "prune layer must be between 1 and 3"),
    (["--methods", "clse,magic"], "unknown method 'magic'"),
    (["--question", ""], "question is empty"),
    (["--image", "/nonexistent.png"], "image file not found"),
])
def test_bad_input_exits_non_zero_with_one_line(saved_model, tmp_path, args, message):
    path = tmp_path / "a.png"
    random_image(0).save(path)
    options = {"--image": str(path), "--question": "what color ?", "--model": saved_model, "--keep": "9"}
    options.update(zip(args[::2], args[1::2]))
    result = cli(*[x for pair in options.items() for x in pair])
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and message in lines[-1]
    assert result.stdout == ""


def test_unreadable_image_and_missing_hub_model(tmp_path, saved_model):
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    result = cli("--model", saved_model, "--image", str(bad), "--question", "what ?")
    assert result.returncode == 2 and "bad.png is not a readable image" in result.stderr
    good = tmp_path / "a.png"
    random_image(0).save(good)
    result = cli("--model", "llava-hf/llava-1.5-7b-hf", "--image", str(good), "--question", "what ?")
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert "llava-hf/llava-1.5-7b-hf" in last and "local directory" in last
