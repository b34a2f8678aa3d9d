"""How a process spends its CPU: torch's intra-op threads, and the garbage collector's work.

Both matter because fgrpo's laptop models are tiny: their tensor ops are too small to split
across threads (extra threads only spin against the other processes on the machine), and a
full garbage collection, which accelerate runs at the end of every ``Trainer.train``, walks
every object torch, transformers and Flower ever imported.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block with ``threads`` intra-op threads, then restore the previous count."""
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, int(threads)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def freeze_heap() -> None:
    """Move every object alive now out of the collector's reach (``gc.freeze``).

    Call once the long-lived state (modules, the cached model) is loaded: later collections
    then only walk what was allocated since, and a frozen object is never freed, which is
    what long-lived state wants anyway.
    """
    gc.collect()
    gc.freeze()
