"""The garbage collector of a long-running server (docs/operations.md#event-loop-lag).

A full collection walks every container object the process holds. Most of them are made at
start-up (modules, settings, the model registry, SQLAlchemy's and pydantic's machinery) and live
until the process ends, yet each full collection walked them all again: about 60 ms with the event
loop stopped, every second or two under load. ``settle_heap`` collects once after start-up and
moves what survives to the collector's permanent generation (``gc.freeze``), which collections
skip: a full collection then walks only what was made since, a few milliseconds. The thresholds
stay Python's: raising them made the young collections rarer but longer and did not lower the tail.
"""

from __future__ import annotations

import gc


def settle_heap() -> None:
    """Collect, then exempt every object alive now from later collections. Call once start-up is
    done (and again after a large one-off load, such as the control plane's first import)."""
    gc.collect()
    gc.freeze()
