"""Several training processes (``torchrun`` / ``accelerate launch``): who is the main
process, waiting for each other, sharing a value.

In a single process every function here is a no-op that imports nothing. Under a launcher
(``WORLD_SIZE`` > 1) the process group is initialised once through accelerate (gloo on CPU,
NCCL on CUDA; the Trainer then reuses it), and our own small messages go through a gloo
group. Re-exported by :mod:`doctagger.training`.
"""
from __future__ import annotations

import atexit
import os
from typing import Any

__all__ = ["world_size", "is_main_process", "barrier", "broadcast_object"]

_gloo_group = None


def world_size() -> int:
    """How many training processes run together (``WORLD_SIZE``; 1 when not launched by
    torchrun or accelerate)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def is_main_process() -> bool:
    """True in the one process that writes files and registers versions: global rank 0
    (``RANK``; ``LOCAL_RANK`` when only that is set), or the only process."""
    if world_size() <= 1:
        return True
    rank = os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0"))
    return int(rank or 0) == 0


def _group():
    """Initialise torch.distributed once (through accelerate, which picks gloo on CPU and
    NCCL on CUDA; the Trainer then reuses the process group) and return a gloo group for
    our own small CPU messages."""
    global _gloo_group
    import torch.distributed as dist

    if not dist.is_initialized():
        from accelerate import PartialState

        from doctagger.training import choose_device

        PartialState(cpu=choose_device() == "cpu")
    if _gloo_group is None:
        _gloo_group = dist.new_group(backend="gloo")
        # gloo aborts the interpreter at exit ("terminate called without an active
        # exception") when its groups are still alive: close them first
        atexit.register(_close_process_groups)
    return _gloo_group


def _close_process_groups() -> None:
    global _gloo_group
    import torch.distributed as dist

    _gloo_group = None
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait until every process gets here (no-op in a single process)."""
    if world_size() <= 1:
        return
    import torch.distributed as dist

    dist.barrier(group=_group())


def broadcast_object(obj: Any = None) -> Any:
    """The main process's ``obj``, in every process (no-op in a single process). Must be
    called by every process at the same point."""
    if world_size() <= 1:
        return obj
    import torch.distributed as dist

    box = [obj if is_main_process() else None]
    dist.broadcast_object_list(box, src=0, group=_group())
    return box[0]

