"""What a deployment serves and bounds: allowed models (access.py), the queue and per-visitor limits
(limits.py), files (files.py), ZeroGPU (zerogpu.py), starting the page in a subprocess (launch.py)."""
