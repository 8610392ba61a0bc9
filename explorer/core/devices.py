"""Where a module runs and an honest clock: every tensor the engine makes names its device (the model's for
anything that meets the model, the CPU for bookkeeping), and a time is read only after the devices finished
their queued work."""

import time

import torch


def device_of(module):
    return next(module.parameters()).device


def clock(device):
    """Seconds, read only after the device has finished its queued work."""
    if device.type == "cuda":
        for index in range(torch.cuda.device_count()):  # a device_map may spread the layers over several GPUs
            torch.cuda.synchronize(index)
    elif device.type == "mps":
        torch.mps.synchronize()
    return time.perf_counter()
