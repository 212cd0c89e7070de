"""A process's own peak memory, for the records that say which stage grew it (export.json, benches)."""
from __future__ import annotations

import resource


def peak_rss_mb() -> float:
    """This process's own peak resident set size in MB: Linux's VmHWM. Not getrusage's ru_maxrss alone, which a
    process started by fork + exec inherits from its parent: an export launched by a bench that held 1M users in
    memory reported the bench's 1.4 GB as its own."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):  # not Linux: ru_maxrss (an upper bound, see above; KiB on Linux, bytes on macOS)
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
