"""Measurements, not tests: python -m explorer.bench (the engine), python -m explorer.bench.page (the page in
a browser), python -m explorer.bench.stress (load and faults)."""
