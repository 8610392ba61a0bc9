"""lmms-eval tasks of the explorer (explorer/eval/lmms_eval.py passes this folder as --include_path)."""
