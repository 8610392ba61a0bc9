"""Records -> numbers: one comparison's analysis (comparison.py) and the statistics it shares with the benchmark
report (stats.py)."""
