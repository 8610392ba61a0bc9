"""Pruning methods: the registry (one line per method) and the pure tensor maths it calls (CLSE in scoring.py,
the baselines in baselines.py, attention rows in attention.py)."""
