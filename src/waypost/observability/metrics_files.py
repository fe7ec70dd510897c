"""The directory where the workers of a multi-worker server keep their metric files
(prometheus_client's multiprocess mode; ``observability/metrics.py``)."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

from waypost.settings import Settings

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_metrics_directory(settings: Settings) -> str | None:
    """Before the workers start: with several workers and metrics on, an empty directory named in
    ``PROMETHEUS_MULTIPROC_DIR``, which the workers inherit (prometheus_client reads it when a
    worker first imports it). ``metrics.multiprocess_dir`` is emptied of an earlier run's files
    (they would count again); without it a temporary directory is made and removed at exit."""
    if not settings.metrics.enabled or settings.server.workers <= 1:
        return None
    configured = settings.metrics.multiprocess_dir
    if configured:
        path = Path(configured)
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        for old in path.glob("*.db"):
            old.unlink(missing_ok=True)
    else:
        path = Path(tempfile.mkdtemp(prefix="waypost-metrics-"))
        atexit.register(shutil.rmtree, path, True)
    os.environ[MULTIPROC_ENV] = str(path)
    return str(path)
