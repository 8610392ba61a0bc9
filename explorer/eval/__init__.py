"""Evaluation: the embedded model's ground truth (python -m explorer.eval.embedded, its object sweep in sweep.py)
and the lmms-eval harness (lmms_eval.py, the offline tasks in tasks/, the report in report.py, the records' schema
in runs.py)."""
