"""The benchmark harness end to end: the offline shapes task on the embedded model through lmms-eval's own
command line (a subprocess of `python -m explorer.eval.lmms_eval`), its per-sample records, the report built from
them, and the benchmark's answers against the page's engine (compare.compare) on the same inputs."""

import glob
import json
import os
import subprocess
import sys

import pytest

import models
from explorer.core import compare as engine
from explorer.media import read as media
from explorer.eval.lmms_eval import PruningExplorer, cut_at_stop, launcher_args  # needs tests/requirements-lmms.txt
from explorer.analysis.stats import rank_correlation as spearman
from explorer.analysis.report import density, load_report
from explorer.eval.report import main as report_main
from explorer.page.reports import report_figures
from explorer.core.settings import check_settings
from explorer.eval.tasks.shapes import make

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIMIT = 8  # scenes (task shapes)
CLIPS = 4  # clips as video files (task shapes_motion)
KEEP = 28
RUNS = {"none": "method=none", "clse": f"method=clse,keep={KEEP}"}


# Two processes, as `accelerate launch --num_processes 2` starts them on two GPUs: torchrun is the launcher that
# also runs on CPUs (gloo); lmms-eval shards the documents by rank and gathers the results itself.
DATA_PARALLEL = (sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2")


def lmms_eval_command(*args, launcher=DATA_PARALLEL):
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", GRADIO_ANALYTICS_ENABLED="False")
    return subprocess.run([*launcher, "-m", "explorer.eval.lmms_eval", *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=300)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shapes_task")
    yaml_paths = make.make(str(folder), LIMIT, clips=CLIPS)
    assert [os.path.basename(p) for p in yaml_paths] == ["shapes.yaml", "shapes_motion.yaml"]
    assert len(os.listdir(folder / "videos")) == CLIPS
    return folder


@pytest.fixture(scope="module")
def runs(dataset, tmp_path_factory):
    """Two runs (unpruned, CLSE at 28 tokens per image or clip) of both shapes tasks in one lmms-eval command on
    two processes, each run into its own folder (lmms-eval names its files by the second the run started)."""
    out = tmp_path_factory.mktemp("lmms_runs")
    config = out / "runs.yaml"
    entries = [{"model": "pruning_explorer", "model_args": f"{args},records_dir={out / name}", "tasks": str(dataset),
                "limit": LIMIT, "output_path": str(out / name), "log_samples": True} for name, args in RUNS.items()]
    config.write_text(json.dumps(entries))  # JSON is YAML
    result = lmms_eval_command("--config", str(config))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Error during evaluation" not in result.stdout + result.stderr, result.stdout[-3000:]
    return out


def results_of(folder):
    files = glob.glob(os.path.join(folder, "**", "*_results.json"), recursive=True)
    assert len(files) == 1, files
    with open(files[0]) as f:
        return json.load(f)


def records_of(folder):
    files = glob.glob(os.path.join(folder, "records", "*_rank*.jsonl"))
    return [json.loads(line) for path in files for line in open(path)]


def test_each_process_answers_its_share(runs):
    for name in RUNS:
        ranks = {}
        for record in records_of(runs / name):
            ranks.setdefault(record["rank"], set()).add((record["task"], record["doc_id"]))
        assert set(ranks) == {0, 1} and not ranks[0] & ranks[1]
        assert ranks[0] | ranks[1] == {("shapes", i) for i in range(LIMIT)} | {("shapes_motion", i)
                                                                               for i in range(CLIPS)}
        assert sorted(os.listdir(runs / name / "records"))[1].endswith("_rank1.jsonl")


def test_accuracy_metric_is_a_share(runs):
    for name in RUNS:
        results = results_of(runs / name)
        assert results["config"]["model"] == "pruning_explorer"
        for task, count in (("shapes", LIMIT), ("shapes_motion", CLIPS)):
            accuracy = results["results"][task]["exact_match,none"]
            assert isinstance(accuracy, float) and 0.0 <= accuracy <= 1.0
            assert results["n-samples"][task]["effective"] == count


def test_every_sample_has_a_record_with_kept_indices(runs):
    for name in RUNS:
        records = records_of(runs / name)
        for record in records:
            assert "error" not in record, record["error"]
            frames = {"shapes": 1, "shapes_motion": 4}[record["task"]]
            assert record["kind"] == ("image" if frames == 1 else "video")
            assert record["groups"][0]["grid"] == [frames, 16, 16] and record["visual_tokens"] == frames * 256
            assert record["target_grid"] == [16, 16]  # no target tokens for "is there a ... ?" answered "no"
            assert all(0 <= i < record["visual_tokens"] for i in record["target_tokens"])
            assert record["target_tokens"] or record["task"] == "shapes"  # every clip has its moving object
            kept = record["kept_indices"]
            assert kept == sorted(set(kept)) and all(0 <= i < record["visual_tokens"] for i in kept)
            if name == "none":
                assert len(kept) == record["visual_tokens"] and record["stages"] == []
            else:
                assert len(kept) == KEEP and record["stages"][0]["keep_indices"] == kept
                assert len(record["stages"][0]["scores"]) == record["visual_tokens"]
                assert record["budget"]["average_kept"] > KEEP  # layers before K see every token
        for task in ("shapes", "shapes_motion"):
            samples = [json.loads(line) for path in glob.glob(str(runs / name / "**" / f"*_samples_{task}.jsonl"),
                                                              recursive=True) for line in open(path)]
            by_doc = {r["doc_id"]: r["response"] for r in records if r["task"] == task}
            assert {s["doc_id"]: s["filtered_resps"] for s in samples} == by_doc  # what lmms-eval scored


def test_benchmark_answers_equal_the_page_engine(runs, dataset):
    """The same scene, question and settings through compare.compare (the page's call) give the same answer
    and the same kept tokens as the benchmark run."""
    model, processor, family = models.load(models.EMBEDDED_ID, device="cpu")
    pruned = {(r["task"], r["doc_id"]): r for r in records_of(runs / "clse")}
    unpruned = {(r["task"], r["doc_id"]): r for r in records_of(runs / "none")}
    settings = check_settings(methods=["clse"], keep=KEEP, max_new_tokens=8)
    inputs = [(("shapes", i), [make.scene_row(i, seed=0)["image"]], make.scene_row(i, seed=0)["question"], "image")
              for i in range(2)]
    clip = str(dataset / "videos" / "clip_1.avi")
    inputs.append((("shapes_motion", 1), media.sample_video_frames(clip, 4), pruned[("shapes_motion", 1)]["question"],
                   "video"))  # the page's own reader of an uploaded video
    for key, images, question, kind in inputs:
        page = engine.compare(model, processor, family, images, question, settings, kind=kind, diagnostics=False)
        assert page["clse"].answer == pruned[key]["answer"]
        assert page["clse"].kept_indices == pruned[key]["kept_indices"]
        assert page["none"].answer == unpruned[key]["answer"]


def test_batch_size_2_answers_equal_batch_size_1(runs, dataset, tmp_path):
    """lmms-eval's own --batch_size 2 (one process): the requests answered two at a time by the batched engine
    (explorer/core/batch.py) give the answers, kept tokens and accuracy of the batch size 1 run above."""
    result = lmms_eval_command("--model", "pruning_explorer", "--model_args", RUNS["clse"], "--tasks", str(dataset),
                               "--limit", str(LIMIT), "--batch_size", "2", "--output_path", str(tmp_path),
                               "--log_samples", launcher=(sys.executable,))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Error during evaluation" not in result.stdout + result.stderr, result.stdout[-3000:]
    batched = {(r["task"], r["doc_id"]): r for r in records_of(tmp_path)}
    alone = {(r["task"], r["doc_id"]): r for r in records_of(runs / "clse")}
    assert set(batched) == set(alone) and len(batched) == LIMIT + CLIPS
    for key, record in batched.items():
        assert "error" not in record, record["error"]
        assert record["response"] == alone[key]["response"], key
        assert record["answer_ids"] == alone[key]["answer_ids"], key
        assert record["kept_indices"] == alone[key]["kept_indices"], key
        assert any(note.startswith("run in a batch of 2") for note in record["notes"]), record["notes"]
    for task in ("shapes", "shapes_motion"):
        assert results_of(tmp_path)["results"][task] == results_of(runs / "clse")["results"][task]


def test_report_from_the_runs(runs, tmp_path, capsys):
    report = load_report([str(runs)])
    by_method = {run["method"]: run for run in report["runs"] if run["task"] == "shapes"}
    assert report["tasks"] == ["shapes", "shapes_motion"] and set(by_method) == {"none", "clse"}
    unpruned, clse = by_method["none"], by_method["clse"]
    assert unpruned["target_recall"] == 1.0 and unpruned["average_kept"] == 256
    assert 0.0 <= clse["target_recall"] < 1.0 and KEEP < clse["average_kept"] < 256
    assert clse["accuracy"] == results_of(runs / "clse")["results"]["shapes"]["exact_match,none"]
    assert -1.0 <= clse["score_position_spearman"] <= 1.0
    assert set(unpruned["recall_by_third"].values()) <= {1.0, None} and 1.0 in unpruned["recall_by_third"].values()
    assert all(v is None or 0.0 <= v <= 1.0 for v in clse["recall_by_third"].values())
    density = clse["density"]
    assert density["grid"] == [16, 16] and not density["normalized"]
    # every sample keeps exactly KEEP of 256 cells, so the mean share over the grid is KEEP / 256
    assert abs(sum(map(sum, density["share"])) / 256 - KEEP / 256) < 1e-9
    assert abs(sum(density["rows"]) / 16 - KEEP / 256) < 1e-9
    motion = next(r for r in report["runs"] if r["task"] == "shapes_motion" and r["method"] == "clse")
    assert motion["density"]["grid"] == [16, 16] and 0.0 <= motion["target_recall"] < 1.0  # per-frame cells
    figures = report_figures(report)
    assert {"accuracy:shapes", "recall:shapes", "recall_by_third:shapes", "rows:shapes", "spearman:shapes",
            "accuracy:shapes_motion",
            "density:shapes:clse keep 28"} <= set(figures)
    assert len(figures["accuracy:shapes"].data) == 2  # one curve per method
    assert report_main([str(runs), "--json", str(tmp_path / "r.json")]) == 0
    assert "| shapes | clse | 28 |" in capsys.readouterr().out
    assert json.loads((tmp_path / "r.json").read_text())["runs"]


def test_unknown_model_args_are_refused_by_name():
    with pytest.raises(ValueError, match="does not know the model_args kep; it knows pretrained, method, keep"):
        PruningExplorer(method="clse", kep=28)


def test_launcher_adds_the_task_folder_and_the_records_folder(tmp_path):
    argv = launcher_args(["--model", "pruning_explorer", "--model_args", "method=fastv", "--tasks", "shapes",
                          "--output_path", str(tmp_path)])
    assert argv[argv.index("--include_path") + 1].endswith(os.path.join("explorer", "eval", "tasks"))
    assert argv[argv.index("--model_args") + 1] == f"method=fastv,records_dir={tmp_path}"
    argv = launcher_args(["--model_args=method=fastv", "--tasks=shapes", f"--output_path={tmp_path}"])
    assert f"--model_args=method=fastv,records_dir={tmp_path}" in argv and "--include_path" in argv


def test_answers_stop_at_the_tasks_stop_strings():
    assert cut_at_stop("yes. no", ["."]) == "yes"
    assert cut_at_stop("top-left", "\n\n") == "top-left"


def test_spearman_and_density_by_hand():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([4, 3, 2, 1], [10, 20, 30, 40]) == pytest.approx(-1.0)
    assert spearman([1, 1, 2, 2], [1, 2, 3, 4]) == pytest.approx(0.8944271909999159)  # ties share their rank
    # two 2 x 2 images: the first keeps the top row, the second the top-left cell
    lines = [{"kept_indices": kept, "groups": [{"grid": [1, 2, 2], "offset": 0, "count": 4}]}
             for kept in ([0, 1], [0])]
    grid = density(lines)
    assert grid["grid"] == [2, 2] and grid["share"] == [[1.0, 0.5], [0.0, 0.0]] and grid["rows"] == [0.75, 0.0]
    # grids that differ are binned by relative position on the smallest grid: 4 x 4 cells onto 2 x 2 bins
    lines.append({"kept_indices": [15], "groups": [{"grid": [1, 4, 4], "offset": 0, "count": 16}]})
    grid = density(lines)
    assert grid["normalized"] and grid["grid"] == [2, 2]
    assert grid["share"] == [[2 / 6, 1 / 6], [0.0, 1 / 6]]  # bins of 1 + 1 + 4 cells; the last cell kept


def test_the_pages_benchmark_tab_reads_an_uploaded_report_and_the_servers_runs(runs, tmp_path, monkeypatch):
    from explorer.page import reports
    from models.base import BadInput

    assert report_main([str(runs), "--json", str(tmp_path / "report.json")]) == 0
    uploaded = reports.load_benchmark(str(tmp_path / "report.json"))
    figures = reports.benchmark_figures(uploaded)
    assert any(name.startswith("accuracy:") for name in figures) and any(n.startswith("density:") for n in figures)
    monkeypatch.setenv("EXPLORER_RUNS_DIR", str(runs))
    names = reports.benchmark_runs()
    assert names and reports.load_benchmark(None, names[:1])["runs"]
    for bad, message in [(tmp_path / "not.json", "not a report"), (tmp_path / "other.json", "not a report of")]:
        bad.write_text("{oops" if bad.name == "not.json" else '{"a": 1}')
        with pytest.raises(BadInput, match=message):
            reports.load_benchmark(str(bad))
    with pytest.raises(BadInput, match="choose runs from the list"):
        reports.load_benchmark(None, ["../.."])  # nothing outside the configured folder
