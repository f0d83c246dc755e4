"""Resource monitor: a snapshot of CPU, memory and disk, and a refusal to start work without headroom."""

from __future__ import annotations

import shutil
from pathlib import Path

import psutil

from evorag.errors import ExternalError


class ResourceError(ExternalError):
    """The machine lacks the memory or disk to run this safely."""


def snapshot(path: Path) -> dict:
    disk = shutil.disk_usage(path if path.exists() else Path("/"))
    memory = psutil.virtual_memory()
    return {
        "cpu_percent": psutil.cpu_percent(interval=None),
        "load_1m": psutil.getloadavg()[0],
        "memory_available_mb": memory.available // 2**20,
        "disk_free_mb": disk.free // 2**20,
    }


def check_resources(path: Path, *, min_memory_mb: int = 256, min_disk_mb: int = 200) -> dict:
    state = snapshot(path)
    if state["memory_available_mb"] < min_memory_mb:
        raise ResourceError(f"only {state['memory_available_mb']} MB of memory available",
                            hint=f"free memory: an evolution needs at least {min_memory_mb} MB")
    if state["disk_free_mb"] < min_disk_mb:
        raise ResourceError(f"only {state['disk_free_mb']} MB of disk free under {path}",
                            hint=f"free disk space: at least {min_disk_mb} MB is needed")
    return state
