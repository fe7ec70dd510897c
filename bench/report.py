"""Results of a benchmark run and their rendering as bench/RESULTS.md."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

DIRECT = "direct"
PASSTHROUGH = "passthrough"
WAYPOST = "waypost"
LITELLM = "litellm"
NOISY_OTHER_CPU_PCT = 15.0

LABELS = {
    DIRECT: "(a) direct to mock upstream",
    PASSTHROUGH: "(b) bare aiohttp pass-through",
    WAYPOST: "(c) Waypost",
    LITELLM: "LiteLLM proxy",
}


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list; NaN when empty."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass(slots=True)
class Cell:
    """One server, one mode, one concurrency."""

    server: str
    stream: bool
    concurrency: int
    requests: int
    errors: int
    elapsed_s: float
    latencies_ms: list[float]
    ttfts_ms: list[float]
    server_cpu_s: float
    driver_cpu_s: float
    peak_mib: float
    upstream_cpu_s: float = math.nan
    other_cpu_s: float = math.nan
    error_samples: list[str] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return self.requests / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies_ms, 0.50)

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies_ms, 0.99)

    @property
    def p999_ms(self) -> float:
        return percentile(self.latencies_ms, 0.999)

    @property
    def ttft_p50_ms(self) -> float:
        return percentile(self.ttfts_ms, 0.50)

    @property
    def ttft_p99_ms(self) -> float:
        return percentile(self.ttfts_ms, 0.99)

    @property
    def cpu_ms_per_request(self) -> float:
        return 1000 * self.server_cpu_s / self.requests if self.requests else math.nan

    @property
    def server_cpu_pct(self) -> float:
        return self._pct(self.server_cpu_s)

    @property
    def driver_cpu_pct(self) -> float:
        return self._pct(self.driver_cpu_s)

    @property
    def upstream_cpu_pct(self) -> float:
        return self._pct(self.upstream_cpu_s)

    @property
    def other_cpu_pct(self) -> float:
        """Busy CPU on the machine that none of driver, upstream and server account for: noise."""
        return self._pct(self.other_cpu_s)

    def _pct(self, seconds: float) -> float:
        return 100 * seconds / self.elapsed_s if self.elapsed_s > 0 else math.nan


@dataclass(slots=True)
class Server:
    """One server's life: how it started, its memory, its cells, or why it was not measured."""

    name: str
    status: str = "ok"  # ok | skipped | failed
    note: str = ""
    startup_runs_s: list[float] = field(default_factory=list)
    idle_mib: float = math.nan
    peak_mib: float = math.nan
    cells: list[Cell] = field(default_factory=list)

    @property
    def startup_s(self) -> float:
        return percentile(sorted(self.startup_runs_s), 0.5)

    def cell(self, stream: bool, concurrency: int) -> Cell | None:
        for cell in self.cells:
            if cell.stream == stream and cell.concurrency == concurrency:
                return cell
        return None


@dataclass(slots=True)
class Run:
    command: str
    started_utc: str
    machine: dict[str, str]
    settings: dict[str, str]
    concurrencies: list[int]
    modes: list[bool]
    servers: list[Server] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def server(self, name: str) -> Server | None:
        for server in self.servers:
            if server.name == name and server.status == "ok":
                return server
        return None


def _num(value: float, digits: int = 2) -> str:
    return "-" if math.isnan(value) else f"{value:,.{digits}f}"


def _measured(value: float, digits: int, unit: str) -> str:
    return "-" if math.isnan(value) else f"{_num(value, digits)} {unit}"


def _table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return lines


def _mode(stream: bool) -> str:
    return "streaming (20 chunks)" if stream else "non-streaming"


def _cell_rows(run: Run, stream: bool, concurrency: int) -> list[list[str]]:
    direct = run.server(DIRECT)
    base = direct.cell(stream, concurrency) if direct else None
    rows = []
    for server in run.servers:
        cell = server.cell(stream, concurrency) if server.status == "ok" else None
        if cell is None:
            continue
        overhead50 = cell.p50_ms - base.p50_ms if base and server.name != DIRECT else math.nan
        overhead99 = cell.p99_ms - base.p99_ms if base and server.name != DIRECT else math.nan
        row = [
            LABELS[server.name],
            _num(cell.rps, 0),
            _num(cell.p50_ms),
            _num(cell.p99_ms),
            _num(cell.p999_ms),
        ]
        if stream:
            row += [_num(cell.ttft_p50_ms), _num(cell.ttft_p99_ms)]
        row += [
            _num(overhead50),
            _num(overhead99),
            _num(cell.cpu_ms_per_request, 3),
            _num(cell.server_cpu_pct, 0),
            _num(cell.driver_cpu_pct, 0),
            _num(cell.upstream_cpu_pct, 0),
            _num(cell.other_cpu_pct, 0),
            _num(cell.peak_mib, 1),
            f"{cell.requests:,}",
            str(cell.errors) if not cell.errors else f"**{cell.errors}**",
        ]
        rows.append(row)
    return rows


def _cell_header(stream: bool) -> list[str]:
    header = ["server", "req/s", "p50 ms", "p99 ms", "p99.9 ms"]
    if stream:
        header += ["TTFT p50 ms", "TTFT p99 ms"]
    return [
        *header,
        "overhead p50 ms",
        "overhead p99 ms",
        "CPU ms/req",
        "server CPU %",
        "driver CPU %",
        "upstream CPU %",
        "other CPU %",
        "peak MiB",
        "requests",
        "errors",
    ]


@dataclass(slots=True)
class Goal:
    """One number from the issue the gateway must meet."""

    label: str
    limit: str
    measure: Callable[[Run, Server], float]
    passes: Callable[[float], bool]
    unit: str
    digits: int = 2


def _saturated(run: Run, server: Server, stream: bool) -> Cell | None:
    """The cell at the highest concurrency: the server's per-request cost once it is busy."""
    return server.cell(stream, max(run.concurrencies)) if run.concurrencies else None


def _cpu_when_saturated(stream: bool) -> Callable[[Run, Server], float]:
    def measure(run: Run, server: Server) -> float:
        cell = _saturated(run, server, stream)
        return cell.cpu_ms_per_request if cell else math.nan

    return measure


def _throughput_ratio(run: Run, server: Server) -> float:
    """Throughput relative to the pass-through at the highest concurrency, the worse of the two modes."""
    reference = run.server(PASSTHROUGH)
    if reference is None:
        return math.nan
    ratios = []
    for stream in run.modes:
        cell, other = _saturated(run, server, stream), _saturated(run, reference, stream)
        if cell is not None and other is not None and other.rps > 0:
            ratios.append(cell.rps / other.rps)
    return min(ratios) if ratios else math.nan


TAIL_CONCURRENCY = 16


def _p99_overhead(run: Run, server: Server) -> float:
    """The p99 overhead (p99 minus the direct leg's p99), non-streaming at concurrency 16."""
    direct = run.server(DIRECT)
    base = direct.cell(False, TAIL_CONCURRENCY) if direct else None
    cell = server.cell(False, TAIL_CONCURRENCY)
    return cell.p99_ms - base.p99_ms if cell and base else math.nan


def _p99_overhead_ratio(run: Run, server: Server) -> float:
    """The p99 overhead (``_p99_overhead``) over the pass-through's p99 latency in the same cell:
    the issue's "p99 overhead within 2x the pass-through's p99"."""
    reference = run.server(PASSTHROUGH)
    other = reference.cell(False, TAIL_CONCURRENCY) if reference else None
    if other is None or not other.p99_ms > 0:
        return math.nan
    return _p99_overhead(run, server) / other.p99_ms


def _added_p50(run: Run, server: Server) -> float:
    direct = run.server(DIRECT)
    base = direct.cell(False, 1) if direct else None
    cell = server.cell(False, 1)
    return cell.p50_ms - base.p50_ms if cell and base else math.nan


GOALS = [
    Goal(
        "throughput vs pass-through, highest concurrency (worse mode)",
        ">= 0.5x",
        _throughput_ratio,
        lambda v: v >= 0.5,
        "x",
    ),
    Goal(
        "CPU per non-streamed request, highest concurrency",
        "<= 0.6 ms",
        _cpu_when_saturated(stream=False),
        lambda v: v <= 0.6,
        "ms",
        3,
    ),
    Goal(
        "CPU per 20-chunk stream, highest concurrency",
        "<= 3 ms",
        _cpu_when_saturated(stream=True),
        lambda v: v <= 3.0,
        "ms",
        3,
    ),
    Goal("added p50 latency, non-streaming, concurrency 1", "< 1 ms", _added_p50, lambda v: v < 1.0, "ms", 3),
    Goal(
        f"p99 overhead / pass-through's p99, non-streaming, concurrency {TAIL_CONCURRENCY}",
        "<= 2x",
        _p99_overhead_ratio,
        lambda v: v <= 2.0,
        "x",
    ),
    Goal(
        "idle memory (VmRSS after start)", "< 80 MiB", lambda run, s: s.idle_mib, lambda v: v < 80, "MiB", 1
    ),
    Goal("start-up (spawn to healthy, median)", "< 2 s", lambda run, s: s.startup_s, lambda v: v < 2.0, "s"),
]


def _target_rows(run: Run) -> tuple[list[str], list[list[str]]]:
    gateway = run.server(WAYPOST)
    references = [s for s in (run.server(PASSTHROUGH), run.server(LITELLM)) if s is not None]
    header = ["target", "limit", "Waypost", "verdict", *(LABELS[s.name] + " (reference)" for s in references)]
    rows = []
    for target in GOALS:
        value = target.measure(run, gateway) if gateway else math.nan
        verdict = "not measured" if math.isnan(value) else ("PASS" if target.passes(value) else "**FAIL**")
        row = [target.label, target.limit, _measured(value, target.digits, target.unit), verdict]
        for reference in references:
            row.append(_measured(target.measure(run, reference), target.digits, target.unit))
        rows.append(row)
    return header, rows


def render(run: Run) -> str:
    out = ["# Waypost benchmark results", ""]
    out += [f"Generated {run.started_utc} with:", "", "```", run.command, "```", ""]
    out += ["## Machine", ""]
    out += _table(["", ""], ([k, v] for k, v in run.machine.items()))
    out += ["", "## Settings", ""]
    out += _table(["", ""], ([k, v] for k, v in run.settings.items()))
    out += ["", "## Targets (from the issue)", ""]
    header, rows = _target_rows(run)
    out += _table(header, rows)
    out += [
        "",
        "Throughput and CPU are judged at the highest concurrency, where the server is saturated; at",
        "concurrency 1 every request also pays for waking an idle event loop (see the tables below).",
    ]
    out += ["", "## Servers", ""]
    server_rows = []
    for server in run.servers:
        if server.status != "ok":
            server_rows.append([LABELS[server.name], server.status, "-", "-", "-", "-"])
            continue
        runs = ", ".join(f"{s:.2f}" for s in server.startup_runs_s)
        server_rows.append(
            [
                LABELS[server.name],
                "ok",
                _num(server.startup_s),
                runs,
                _num(server.idle_mib, 1),
                _num(server.peak_mib, 1),
            ]
        )
    out += _table(
        ["server", "status", "start-up s (median)", "start-up runs s", "idle MiB", "peak MiB"], server_rows
    )
    for stream in run.modes:
        for concurrency in run.concurrencies:
            rows = _cell_rows(run, stream, concurrency)
            if not rows:
                continue
            out += ["", f"## {_mode(stream).capitalize()}, concurrency {concurrency}", ""]
            out += _table(_cell_header(stream), rows)
    notes = list(run.notes)
    cells = [c for s in run.servers for c in s.cells]
    noisy = [c for c in cells if c.other_cpu_pct > NOISY_OTHER_CPU_PCT]
    if noisy:
        worst = max(c.other_cpu_pct for c in noisy)
        notes.append(
            f"Other processes kept the CPUs busy during {len(noisy)} of {len(cells)} cells (up to {worst:.0f}% "
            "of a core, column 'other CPU %'): throughput and latency there are pessimistic and noisy. "
            "CPU ms/req is read per process and is the column least affected; rerun on a quiet machine."
        )
    for server in run.servers:
        if server.status != "ok":
            notes.append(f"{LABELS[server.name]}: {server.status}. {server.note}")
        for cell in server.cells:
            if cell.errors:
                samples = "; ".join(cell.error_samples)
                notes.append(
                    f"{LABELS[server.name]}, {_mode(cell.stream)}, concurrency {cell.concurrency}: "
                    f"{cell.errors} errors, e.g. {samples}"
                )
    if notes:
        out += ["", "## Notes", ""]
        for note in notes:
            first, _, rest = note.partition("\n")
            out.append(f"- {first}")
            if rest:
                out += ["", "  ```", *("  " + line for line in rest.splitlines()), "  ```"]
    out += ["", "Column meanings and caveats: see [README.md](README.md).", ""]
    return "\n".join(out)
