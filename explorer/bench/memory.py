"""A process's memory as the kernel counts it (Linux): the resident set now, its peak, and resetting the peak so
that the next one is one phase's own."""

import contextlib


def memory_mb(pid, field):
    """VmRSS (now) or VmHWM (peak since start or the last reset_peak) of a process, in MB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak(pid):
    """Reset the kernel's peak-RSS mark (VmHWM) of a process, so the next peak is one phase's own."""
    with contextlib.suppress(OSError), open(f"/proc/{pid}/clear_refs", "w") as refs:
        refs.write("5")
