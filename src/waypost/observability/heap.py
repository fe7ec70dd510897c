"""The garbage collector of a long-running server (docs/operations.md#event-loop-lag).

A full collection walks every container object the process holds. Most of them are made at
start-up (modules, settings, the model registry, SQLAlchemy's and pydantic's machinery) and live
until the process ends, yet each full collection walked them all again: about 60 ms with the event
loop stopped, every second or two under load. ``settle_heap`` collects once after start-up and
moves what survives to the collector's permanent generation (``gc.freeze``), which collections
skip: a full collection then walks only what was made since, a few milliseconds.

The young generation's threshold is raised from Python's 700 to ``YOUNG_THRESHOLD``. The count it
is compared with is container objects made less those freed, so a request path that leaves no
reference cycles (``api/asgi_io.DisconnectWatch``, the audit rows of ``pipeline/metering.py``)
barely moves it: at 700 a one-worker gateway under load still collected some 500 times a second
(about 25 µs of CPU per request, from the objects in flight); at 10,000 about twice a second, each
young collection under 3 ms (bench/RESULTS.md, "Garbage collection").
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000  # net new container objects between young collections (Python: 700)


def settle_heap() -> None:
    """Collect, then exempt every object alive now from later collections. Call once start-up is
    done (and again after a large one-off load, such as the control plane's first import)."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
