"""Media -> PIL images, with bounded work (read.py)."""
