"""lmms-eval's plug-in entry point for the model `pruning_explorer` (pyproject.toml,
[project.entry-points."lmms_eval.models"]). lmms-eval 0.7.3 builds its model registry while `lmms_eval.models`
is being imported: it loads every entry point of the group `lmms_eval.models` and calls a callable one for its
ModelManifest. So once the package is installed (`pip install -e .`), `--model pruning_explorer` resolves in
lmms-eval's own command line and in any process, with no registration step.

This module is imported in the middle of that import, so it touches nothing of `lmms_eval.models` but the
manifest class (registry_v2 is a module of its own, already loaded) and names the model class by its path:
explorer/eval/lmms_eval.py, which imports `lmms_eval.models`, is imported only when a run asks for the model.
"""

MODEL_CLASS = "explorer.eval.lmms_eval.PruningExplorer"


def manifest():
    """The ModelManifest of `pruning_explorer` (explorer.analysis.runs.MODEL_NAME)."""
    from lmms_eval.models.registry_v2 import ModelManifest

    from explorer.analysis.runs import MODEL_NAME

    return ModelManifest(model_id=MODEL_NAME, simple_class_path=MODEL_CLASS)
