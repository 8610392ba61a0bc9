"""Evaluation: the embedded model's ground truth (python -m explorer.eval.embedded; the object sweep it shares
with the page is explorer/analysis/sweep.py) and the lmms-eval harness (lmms_eval.py, the offline tasks in tasks/,
the report's command in report.py; the records' schema is explorer/analysis/runs.py)."""
