"""Shared helpers of the benchmark suite: sizes, the data cache, peer imports.

Sizes. Every class lists its full set of sizes; with ``RLHF_DIAG_BENCH_QUICK=1``
in the environment the largest ones (the 1 GB text set, 1e7 rows, 1e8
tokens, 1000 bootstrap rounds) are left out, so that CI's quick pass stays
within minutes. asv reads the parameters at discovery and at run time from
the same environment, so a run is always consistent.

Data. Inputs come from the package's seeded simulators and are written once
to ``benches/.cache`` (or ``RLHF_DIAG_BENCH_CACHE``) under a key that includes
a hash of the simulator's source, so a changed simulator never meets stale
data. Benchmarks read them back in ``setup``: the timed bodies and the peak
memory figures then see only the input, not the simulator's temporaries.
"""

from __future__ import annotations

import gc
import hashlib
import importlib
import inspect
import os
import shutil
from pathlib import Path

QUICK = os.environ.get("RLHF_DIAG_BENCH_QUICK", "") not in ("", "0")
CACHE = Path(
    os.environ.get(
        "RLHF_DIAG_BENCH_CACHE", Path(__file__).resolve().parent.parent / ".cache"
    )
)


def sizes(quick: list, full_only: list = ()) -> list:
    """Parameter values: ``quick`` always, ``full_only`` unless in quick mode;
    numbers in increasing order."""
    values = list(quick) if QUICK else [*quick, *full_only]
    return sorted(values) if all(isinstance(v, int) for v in values) else values


def source_key(*objects) -> str:
    """A short hash of the source of the given modules or functions."""
    h = hashlib.sha1()
    for obj in objects:
        h.update(inspect.getsource(obj).encode())
    return h.hexdigest()[:12]


def cached(name: str, key: str, build) -> Path:
    """A cached input folder, filled by ``build(folder)`` when missing.

    The folder is filled under a temporary name and renamed, so a run killed
    mid-write leaves no half input behind; folders of the same name made
    under another key (an older simulator) are removed first.
    """
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"{name}-{key}"
    if not path.is_dir():
        for stale in CACHE.glob(f"{name}-*"):  # made by an older simulator
            if stale.name.removeprefix(f"{name}-").isalnum():
                shutil.rmtree(stale, ignore_errors=True)
        tmp = CACHE / f".{name}-{key}.tmp{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        build(tmp)
        try:
            tmp.rename(path)
        except OSError:  # another process finished first
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def peer(module: str):
    """Import a peer library, or skip the benchmark (asv and the test) without it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise NotImplementedError(f"peer {module!r} is not installed ({exc})") from None


class Big:
    """Timing settings for inputs that take seconds: one call per sample, a
    few samples, no warm-up, one process, a long timeout."""

    number = 1
    repeat = (1, 3, 30.0)
    warmup_time = 0.0
    rounds = 1
    timeout = 1200


def reset_peak() -> None:
    """Restart the kernel's peak-RSS count at the current RSS (Linux).

    asv's ``peakmem_`` figure is the process's peak RSS, setup included;
    calling this at the end of ``setup`` makes it the input plus what the
    benchmark body allocates, not the setup's temporaries. Elsewhere a no-op.
    """
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
