"""A small load generator for the benchmarks: N calls at concurrency C on threads.

    result = measure("raw psycopg", client, concurrency=16, requests=2000, seconds=20)
    print_table([result, ...])
    print_ratios(results, [("gateway", "raw")])

``client`` is a zero-argument callable returning a context manager that yields the
call to time; each thread enters its own (so a connection, session or nameko proxy is
opened once per thread, never shared), makes a few untimed warm-up calls, waits for
the others at a barrier, then takes calls from a shared budget until it is spent or
the time cap passes. Latencies are measured around each call with perf_counter.

Nothing here asserts on times: a benchmark reports, it does not pass or fail on speed.
"""
from __future__ import annotations

import itertools
import statistics
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field

import requests

Client = Callable[[], AbstractContextManager[Callable[[], object]]]


@dataclass
class Result:
    label: str
    concurrency: int
    latencies: list[float] = field(default_factory=list)   # seconds, successful calls
    elapsed: float = 0.0                                   # barrier release -> last thread done
    errors: int = 0
    first_error: str = ""
    capped: bool = False                                   # stopped by the time cap
    note: str = ""

    @property
    def count(self) -> int:
        return len(self.latencies)

    def percentile(self, q: float) -> float:
        """The q-th percentile (0-100) of latencies in milliseconds (linear interpolation)."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        if len(ordered) == 1:
            return ordered[0] * 1000
        pos = (len(ordered) - 1) * q / 100
        low = int(pos)
        high = min(low + 1, len(ordered) - 1)
        return (ordered[low] + (ordered[high] - ordered[low]) * (pos - low)) * 1000

    @property
    def p50(self) -> float:
        return self.percentile(50)

    @property
    def p99(self) -> float:
        return self.percentile(99)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.latencies) * 1000 if self.latencies else float("nan")

    @property
    def rps(self) -> float:
        return self.count / self.elapsed if self.elapsed > 0 else float("nan")


def measure(label: str, client: Client, *, concurrency: int, requests: int = 2000,
            seconds: float = 20.0, warmup: int = 5, note: str = "") -> Result:
    """Run at most ``requests`` calls (and for at most ``seconds``) on ``concurrency``
    threads, each with its own ``client()``; return the latencies and the throughput."""
    result = Result(label, concurrency, note=note)
    lock = threading.Lock()
    budget = [requests]
    start_barrier = threading.Barrier(concurrency + 1)
    deadline = [float("inf")]   # set when the barrier opens
    setup_errors: list[BaseException] = []
    per_thread: list[list[float]] = [[] for _ in range(concurrency)]
    finished_at = [0.0] * concurrency

    def take() -> bool:
        with lock:
            if budget[0] <= 0:
                return False
            if time.perf_counter() >= deadline[0]:
                result.capped = True
                return False
            budget[0] -= 1
            return True

    def worker(index: int) -> None:
        try:
            cm = client()
            call = cm.__enter__()
        except BaseException as exc:  # reported after the barrier, in the caller's thread
            setup_errors.append(exc)
            start_barrier.abort()
            return
        try:
            try:
                for _ in range(warmup):
                    call()
            except BaseException as exc:
                setup_errors.append(exc)
                start_barrier.abort()
                return
            try:
                start_barrier.wait()
            except threading.BrokenBarrierError:
                return
            timings = per_thread[index]
            perf = time.perf_counter
            while take():
                began = perf()
                try:
                    call()
                except Exception as exc:  # counted, not timed; the test decides what it means
                    with lock:
                        result.errors += 1
                        if not result.first_error:
                            result.first_error = f"{type(exc).__name__}: {exc}"
                    continue
                timings.append(perf() - began)
            finished_at[index] = perf()
        finally:
            cm.__exit__(None, None, None)

    threads = [threading.Thread(target=worker, args=(i,), name=f"bench-{label}-{i}",
                                daemon=True) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    try:
        # the barrier's last party: every client is connected and warm when we pass it
        start_barrier.wait()
        began = time.perf_counter()
        with lock:
            deadline[0] = began + seconds
    except threading.BrokenBarrierError:
        for thread in threads:
            thread.join()
        raise RuntimeError(f"{label}: a client failed to start") from setup_errors[0]
    for thread in threads:
        thread.join()
    result.elapsed = max(finished_at) - began
    result.latencies = [t for timings in per_thread for t in timings]
    return result


# -- reporting --------------------------------------------------------------------

#: the cheapest authenticated request: the token resolved, one trivial RPC (issue 22's floor)
PING_PATH = "/api/v1/system/ping/auth"


def bearer_ping(base_url: str, tokens: Iterable[str]) -> Client:
    """A ``measure`` client pinging through the gateway with the benchmark's own bearer
    tokens, one per thread in turn: the floor an authenticated hot path is compared with
    in the same run (issue 22 item 4)."""
    turn = itertools.cycle(list(tokens))
    lock = threading.Lock()

    @contextmanager
    def client():
        with lock:
            token = next(turn)
        with requests.Session() as session:
            session.headers["Authorization"] = f"Bearer {token}"

            def call():
                response = session.get(base_url + PING_PATH, timeout=60)
                if response.status_code != 200:
                    raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")
            yield call
    return client


def print_floor_ratio(subject: Result, floor: Result, goal: float) -> None:
    """One line: the subject's throughput as a share of the floor's, against the goal."""
    ratio = subject.rps / floor.rps if floor.rps else float("nan")
    print(f"  {subject.label} at {subject.concurrency} clients: {subject.rps:,.1f}/s = "
          f"{ratio:.2f}x the bearer ping's {floor.rps:,.1f}/s at {floor.concurrency} "
          f"(goal >= {goal:g}x)")


def _fmt(value: float, width: int, digits: int = 2) -> str:
    return f"{value:>{width}.{digits}f}" if value == value else f"{'-':>{width}}"


def print_table(results: Sequence[Result], title: str = "") -> None:
    """One row per result: path, clients, calls, errors, p50/p99/mean ms, req/s."""
    width = max([len(r.label) for r in results] + [len("path")])
    header = (f"{'path':<{width}}  {'clients':>7}  {'calls':>6}  {'errors':>6}  "
              f"{'p50 ms':>8}  {'p99 ms':>8}  {'mean ms':>8}  {'req/s':>8}")
    rule = "-" * len(header)
    lines = ["", title, rule, header, rule] if title else ["", rule, header, rule]
    for r in results:
        flag = "  (time cap)" if r.capped else ""
        lines.append(f"{r.label:<{width}}  {r.concurrency:>7}  {r.count:>6}  {r.errors:>6}  "
                     f"{_fmt(r.p50, 8)}  {_fmt(r.p99, 8)}  {_fmt(r.mean, 8)}  "
                     f"{_fmt(r.rps, 8, 0)}{flag}")
    lines.append(rule)
    notes = [f"  {r.label}: {r.note}" for r in _unique_labels(results) if r.note]
    errors = [f"  {r.label} x{r.concurrency}: {r.errors} errors, first: {r.first_error}"
              for r in results if r.errors]
    lines += notes + errors
    print("\n".join(lines))


def _unique_labels(results: Iterable[Result]) -> list[Result]:
    seen, out = set(), []
    for r in results:
        if r.label not in seen:
            seen.add(r.label)
            out.append(r)
    return out


def print_ratios(results: Sequence[Result], pairs: Sequence[tuple[str, str]],
                 title: str = "ratios") -> None:
    """For each (a, b) label pair and each concurrency both were run at: a's p50 over
    b's (how many times slower a call is) and a's req/s over b's (share of b's rate)."""
    by_key = {(r.label, r.concurrency): r for r in results}
    levels = sorted({r.concurrency for r in results})
    width = max([len(f"{a} / {b}") for a, b in pairs] + [len("ratio")])
    header = f"{'ratio':<{width}}  {'clients':>7}  {'p50 x':>8}  {'req/s x':>8}"
    rule = "-" * len(header)
    lines = ["", title, rule, header, rule]
    for a, b in pairs:
        for level in levels:
            ra, rb = by_key.get((a, level)), by_key.get((b, level))
            if not ra or not rb:
                continue
            p50 = ra.p50 / rb.p50 if rb.p50 else float("nan")
            rps = ra.rps / rb.rps if rb.rps else float("nan")
            lines.append(f"{a + ' / ' + b:<{width}}  {level:>7}  {_fmt(p50, 8)}  "
                         f"{_fmt(rps, 8, 3)}")
    lines.append(rule)
    print("\n".join(lines))


def vacuum(db, *schemas: str) -> None:
    """VACUUM ANALYZE every table of ``schemas`` (``db`` in autocommit), after a cleanup.

    A benchmark deletes what it made; where autovacuum is off (as on the development
    machines) the dead rows stay in the tables and their indexes, and the next run walks
    them: the pull measured 117/s on vacuumed tables and 63/s after a few runs. Every run
    starts from the same clean state instead."""
    tables = db.execute("SELECT format('%%I.%%I', schemaname, tablename) FROM pg_tables "
                        "WHERE schemaname = ANY(%s)", [list(schemas)]).fetchall()
    for (table,) in tables:
        db.execute(f"VACUUM (ANALYZE) {table}")
