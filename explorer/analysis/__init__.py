"""Records -> numbers: one comparison's analysis (comparison.py), the embedded model's object sweep (sweep.py:
it runs the engine on known scenes), the benchmark runs' records (runs.py) and report (report.py), and the
statistics they share (stats.py)."""
