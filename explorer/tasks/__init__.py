"""lmms-eval tasks of the explorer (explorer/lmms_eval.py passes this folder as --include_path)."""
