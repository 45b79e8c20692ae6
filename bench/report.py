"""The benchmark's outputs: a Markdown table (figures and their ratios) and a PNG plot."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any


def _n(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _ratio(value: float | None, ref: float | None) -> str:
    if not value or not ref:
        return "-"
    return f"{value / ref:.2f}x"


def _best(levels: list[dict[str, Any]]) -> dict[str, Any] | None:
    return max(levels, key=lambda x: x["ok_per_s"]) if levels else None


def _at(levels: list[dict[str, Any]], c: int) -> dict[str, Any] | None:
    return next((x for x in levels if x["concurrency"] == c), None)


def _cpu(cpu: dict[str, float]) -> str:
    parts = [f"{k} {v:.2f}" for k, v in sorted(cpu.items(), key=lambda kv: -kv[1]) if v >= 0.01]
    return ", ".join(parts) or "-"


def _cpu_ms(found: dict[str, Any] | None, part: str, rate: str = "ok_per_s") -> float | None:
    """Milliseconds of `part`'s CPU per answer: the cores it kept busy over the answers/s."""
    if not found or not found.get(rate) or part not in found.get("cpu", {}):
        return None
    return 1000 * float(found["cpu"][part]) / float(found[rate])


def _rest_ms(found: dict[str, Any] | None, rate: str) -> float | None:
    """Milliseconds of CPU per answer of every part but the service (the database, the peers,
    Redis, the load generator)."""
    if not found or not found.get(rate):
        return None
    rest = sum(float(v) for k, v in found.get("cpu", {}).items() if k != "service")
    return 1000 * rest / float(found[rate]) if rest else None


def _cost_per_answer(r: dict[str, Any]) -> list[str]:
    """The service's CPU per answer beside the bare endpoint's per request, both measured in
    this run: a ratio that moves far less with the machine's speed than throughput does. And
    what the other parts spend per answer, with the rate the machine's cores would allow if
    the service cost nothing: a goal above that is out of this machine's reach."""
    bare = r.get("bare", {})
    bare_post = _best(bare.get("post", []))
    post_ms = _cpu_ms(bare_post, "bare")
    get_ms = _cpu_ms(bare.get("get"), "bare")
    rows = [
        (
            "booking created (steady, best concurrency)",
            _best(r.get("steady", {}).get("levels", [])),
            "ok_per_s",
            post_ms,
        ),
        ("held seat rejected", r.get("held"), "rej_per_s", post_ms),
        ("read", r.get("reads"), "ok_per_s", get_ms),
    ]
    cores = r.get("machine", {}).get("cores")
    table = []
    for label, found, rate, bare_ms in rows:
        ms = _cpu_ms(found, "service", rate)
        if ms is None:
            continue
        ratio = f"{ms / bare_ms:.1f}x" if bare_ms else "-"
        bare_text = f"{bare_ms:.2f} ms" if bare_ms else "-"
        rest = _rest_ms(found, rate)
        rest_text = f"{rest:.2f} ms" if rest else "-"
        ceiling = f"{_n(1000 * float(cores) / rest)}/s" if rest and cores else "-"
        table.append(f"| {label} | {ms:.2f} ms | {bare_text} | {ratio} | {rest_text} | {ceiling} |")
    if not table:
        return []
    return [
        "## CPU per answer (same run)",
        "",
        "Service cores busy divided by answers per second, beside the bare endpoint's CPU per "
        "request (POST for bookings and rejections, GET for reads); then what every other part "
        "(the database, the peers, Redis, the load generator) spent per answer, and the rate "
        "this machine's cores would allow at that cost if the service cost nothing.",
        "",
        "| answer | service CPU per answer | bare endpoint per request | ratio "
        "| the other parts per answer | ceiling with a free service |",
        "|---|---|---|---|---|---|",
        *table,
        "",
    ]


def references(r: dict[str, Any]) -> tuple[float | None, float | None, float | None]:
    """(bare POST max/s, pgbench full booking tps, bare GET/s)."""
    bare = r.get("bare", {})
    best = _best(bare.get("post", []))
    pg = r.get("pgbench", {}).get("booking", {}).get("tps")
    get = bare.get("get", {}).get("ok_per_s")
    return (best["ok_per_s"] if best else None), pg, get


def markdown(r: dict[str, Any]) -> str:
    o = r["options"]
    m = r["machine"]
    bare_max, pg_tps, bare_get = references(r)
    floor = min(x for x in (bare_max, pg_tps) if x) if (bare_max or pg_tps) else None
    lines = [
        "# Booking service benchmark",
        "",
        f"Run {m.get('started') or time.strftime('%Y-%m-%d %H:%M')} on {m.get('cores')} "
        f"cores, Python "
        f"{m.get('python')}, {m.get('wrk', 'wrk')}; load average before "
        f"{' '.join(m.get('load_before', []))}, after {' '.join(m.get('load_after', []))}. "
        f"{o['workers']} uvicorn workers for the bare app and "
        f"{o.get('workers_effective', o['workers'])} for the service"
        + (
            " (**it did not start with more: uvicorn's 5 s worker health check on a loaded "
            "machine**)"
            if o.get("workers_effective", o["workers"]) != o["workers"]
            else ""
        )
        + ", database pool "
        f"{o['pool_size']} per worker, access log "
        f"{'on' if o.get('access_log') else 'off'}, {o['duration_s']:.0f} s per measurement"
        + (" (**--quick smoke run: figures are indicative only**)" if o.get("quick") else "")
        + f". Whole run {r.get('elapsed_s', 0):.0f} s.",
        "",
        "Everything runs on this one machine: the load generator (wrk, one connection per "
        "thread), the service, its peers, PostgreSQL, Redis and the broker share the cores, so "
        "every figure is the machine's, not the service's alone (see the CPU column: cores "
        "busy per part during the measurement).",
        "",
    ]

    # Goals -------------------------------------------------------------------------------------
    held = r.get("held")
    steady = r.get("steady", {})
    best = _best(steady.get("levels", []))
    open_loop = steady.get("open_loop")
    onsales = [(k, r[k]) for k in ("onsale", "onsale_holds_off") if k in r]
    lines += ["## Goals (issue 7)", "", "| goal | measured | target | met |", "|---|---|---|---|"]
    if held and bare_max:
        value = held["rej_per_s"]
        lines.append(
            f"| rejections of held seats/s ≥ 0.7x bare endpoint | {_n(value)}/s "
            f"({_ratio(value, bare_max)}) | {_n(0.7 * bare_max)}/s | "
            f"{'yes' if value >= 0.7 * bare_max else 'no'} |"
        )
    if best and floor:
        value = best["ok_per_s"]
        lines.append(
            f"| bookings/s ≥ 0.35x min(bare, pgbench) | {_n(value)}/s "
            f"({_ratio(value, floor)}) | {_n(0.35 * floor)}/s | "
            f"{'yes' if value >= 0.35 * floor else 'no'} |"
        )
    if open_loop:
        p99 = open_loop["ok_p99_ms"]
        lines.append(
            f"| p99 < 50 ms at 80% of that throughput ({_n(open_loop['target_rate'])}/s, open "
            f"loop) | {_ms(p99)} ms | 50 ms | {'yes' if p99 is not None and p99 < 50 else 'no'} |"
        )
    for key, found in onsales:
        oversold = found["check"]["oversold"]
        lines.append(
            f"| zero oversold seats ({key}) | {oversold} | 0 | {'yes' if oversold == 0 else 'NO'} |"
        )
    lines.append("")
    lines += _cost_per_answer(r)

    # References --------------------------------------------------------------------------------
    lines += [
        "## References (same run, same machine)",
        "",
        "| reference | throughput | p50 ms | p99 ms | CPU (cores) |",
        "|---|---|---|---|---|",
    ]
    for level in r.get("bare", {}).get("post", []):
        lines.append(
            f"| bare Litestar POST, {level['concurrency']} connections | "
            f"{_n(level['ok_per_s'])}/s | {_ms(level['ok_p50_ms'])} | {_ms(level['ok_p99_ms'])} "
            f"| {_cpu(level['cpu'])} |"
        )
    bare_open = r.get("bare", {}).get("open_loop")
    if bare_open:
        lines.append(
            f"| bare Litestar POST, open loop at {_n(bare_open['target_rate'])}/s "
            f"({bare_open['concurrency']} connections): the generator's own floor | "
            f"{_n(bare_open['ok_per_s'])}/s | {_ms(bare_open['ok_p50_ms'])} | "
            f"{_ms(bare_open['ok_p99_ms'])} | {_cpu(bare_open['cpu'])} |"
        )
    if bare_get:
        level = r["bare"]["get"]
        lines.append(
            f"| bare Litestar GET, {level['concurrency']} connections | {_n(bare_get)}/s | "
            f"{_ms(level['ok_p50_ms'])} | {_ms(level['ok_p99_ms'])} | {_cpu(level['cpu'])} |"
        )
    for script, found in r.get("pgbench", {}).items():
        what = "full booking (2 statements)" if script == "booking" else "create statement"
        lines.append(
            f"| pgbench, {what}, {found['clients']} clients | {_n(found['tps'])} tx/s | "
            f"{_ms(found['p50_ms'])} | {_ms(found['p99_ms'])} | {_cpu(found['cpu'])} |"
        )
    labels = {
        "benchmark_p1": "redis-benchmark EVALSHA hold script, 50 clients, no pipelining",
        "benchmark_p16": "redis-benchmark EVALSHA hold script, 50 clients, pipeline 16",
        "redis_py": "RedisSeatLock.acquire (redis-py, one asyncio process, 64 tasks)",
    }
    for name, found in r.get("redis", {}).items():
        lines.append(
            f"| {labels.get(name, name)} | {_n(found['calls_per_s'])} calls/s | "
            f"{_ms(found['p50_ms'])} | {_ms(found['p99_ms'])} | {_cpu(found['cpu'])} |"
        )
    lines.append("")

    # The service -------------------------------------------------------------------------------
    lines += [
        "## The service",
        "",
        "Ratios: bookings/s to min(bare POST max, pgbench full booking); rejections/s and "
        "reads/s to the bare endpoint (POST max, GET).",
        "",
    ]
    for key, found in onsales:
        check = found["check"]
        title = "On-sale, Redis holds" if key == "onsale" else "On-sale, holds off (database only)"
        lines += [
            f"### {title}",
            "",
            f"{found['clients']} clients, 1-4 random seats each, a hall of {o['hall']} seats: "
            f"sold {check['live_seats']} seats in {found['window_s']:.1f} s "
            f"({found['ok_n']} bookings, {found['rej_n']} rejections, {found['err_n']} "
            f"other answers). Oversold: {check['oversold']} (seats in two live bookings: "
            f"{check['double_claimed_seats']}; live seats the Theater would still sell: "
            f"{check['live_seats_theater_would_sell']}; Theater locks without a live booking: "
            f"{check['theater_locked_without_live_booking']}; seats in 201 answers "
            f"{check['seats_in_201_answers']}, live in the database {check['live_seats']}).",
            "",
            "| answer | per second | ratio | p50 ms | p95 ms | p99 ms |",
            "|---|---|---|---|---|---|",
            f"| 201 booked | {_n(found['ok_per_s'])} | {_ratio(found['ok_per_s'], floor)} | "
            f"{_ms(found['ok_p50_ms'])} | {_ms(found['ok_p95_ms'])} | {_ms(found['ok_p99_ms'])} |",
            f"| 409 rejected | {_n(found['rej_per_s'])} | {_ratio(found['rej_per_s'], bare_max)} "
            f"| {_ms(found['rej_p50_ms'])} | {_ms(found['rej_p95_ms'])} | "
            f"{_ms(found['rej_p99_ms'])} |",
        ]
        after = found.get("after_sold_out")
        if after and after.get("rej_n"):
            lines.append(
                f"| 409 after sold out | {_n(after['rej_per_s'])} | "
                f"{_ratio(after['rej_per_s'], bare_max)} | {_ms(after['rej_p50_ms'])} | "
                f"{_ms(after['rej_p95_ms'])} | {_ms(after['rej_p99_ms'])} |"
            )
        lines += ["", f"CPU (cores): {_cpu(found['cpu'])}.", ""]
    if "onsale" in r and "onsale_holds_off" in r:
        on, off = r["onsale"], r["onsale_holds_off"]
        lines += [
            f"What the holds buy under contention: {_ratio(on['rej_per_s'], off['rej_per_s'])} "
            f"the rejections/s, {_ratio(on['ok_per_s'], off['ok_per_s'])} the bookings/s, "
            f"rejection p99 {_ms(on['rej_p99_ms'])} ms against {_ms(off['rej_p99_ms'])} ms.",
            "",
        ]
    if held:
        lines += [
            "### Rejections of held seats",
            "",
            f"Every seat held in Redis by another booking, {held['concurrency']} connections: "
            f"{_n(held['rej_per_s'])} rejections/s ({_ratio(held['rej_per_s'], bare_max)} the "
            f"bare POST), p50 {_ms(held['rej_p50_ms'])} ms, p99 {_ms(held['rej_p99_ms'])} ms, "
            f"{held['ok_n']} booked (must be 0). CPU (cores): {_cpu(held['cpu'])}.",
            "",
        ]
    if steady.get("levels"):
        bare_levels = r.get("bare", {}).get("post", [])
        lines += [
            "### Steady booking (distinct seats), closed loop",
            "",
            "| connections | booked/s | vs bare at same c | vs floor | p50 ms | p99 ms | "
            "errors | CPU (cores) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for level in steady["levels"]:
            bare_level = _at(bare_levels, level["concurrency"])
            lines.append(
                f"| {level['concurrency']} | {_n(level['ok_per_s'])} | "
                f"{_ratio(level['ok_per_s'], bare_level['ok_per_s'] if bare_level else None)} | "
                f"{_ratio(level['ok_per_s'], floor)} | {_ms(level['ok_p50_ms'])} | "
                f"{_ms(level['ok_p99_ms'])} | {level['err_n']} | {_cpu(level['cpu'])} |"
            )
        lines.append("")
        curve = steady.get("open_loop_curve") or ([open_loop] if open_loop else [])
        if curve:
            lines += [
                "Open loop (constant arrival rate over "
                f"{curve[0]['concurrency']} connections, latency from the intended send time), "
                "at shares of the best closed-loop rate:",
                "",
                "| arrival rate | share | booked/s | p50 ms | p95 ms | p99 ms | errors | CPU "
                "(cores) |",
                "|---|---|---|---|---|---|---|---|",
            ]
            for point in curve:
                share = point.get("share")
                lines.append(
                    f"| {_n(point['target_rate'])}/s | "
                    f"{'-' if share is None else f'{share:.0%}'} | {_n(point['ok_per_s'])} | "
                    f"{_ms(point['ok_p50_ms'])} | {_ms(point['ok_p95_ms'])} | "
                    f"{_ms(point['ok_p99_ms'])} | {point['err_n']} | {_cpu(point['cpu'])} |"
                )
            under = [p for p in curve if p.get("ok_p99_ms") is not None and p["ok_p99_ms"] < 50]
            fastest = max(under, key=lambda p: p["target_rate"]) if under else None
            lines += [
                "",
                "Highest arrival rate measured with p99 under 50 ms: "
                + (f"{_n(fastest['target_rate'])}/s." if fastest else "none of these."),
                "",
            ]
    reads = r.get("reads")
    if reads:
        lines += [
            "### Reads (GET /api/v1/bookings/{id})",
            "",
            f"{reads['concurrency']} connections: {_n(reads['ok_per_s'])}/s "
            f"({_ratio(reads['ok_per_s'], bare_get)} the bare GET), p50 "
            f"{_ms(reads['ok_p50_ms'])} ms, p99 {_ms(reads['ok_p99_ms'])} ms, "
            f"{reads['err_n']} errors. CPU (cores): {_cpu(reads['cpu'])}.",
            "",
        ]
    lines += [
        "The load generator is not the bottleneck: its CPU share is listed as `wrk` beside the "
        "servers' (well under one core while the service's workers use the rest).",
        "",
    ]
    return "\n".join(lines)


def plot(r: dict[str, Any], path: Path) -> None:
    """Throughput and p99 against concurrency: bare POST and the service's steady booking."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = []
    if r.get("bare", {}).get("post"):
        series.append(("bare Litestar POST", r["bare"]["post"], "tab:gray"))
    if r.get("steady", {}).get("levels"):
        series.append(("service: steady booking", r["steady"]["levels"], "tab:blue"))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 7), sharex=True)
    for label, levels, color in series:
        xs = [x["concurrency"] for x in levels]
        top.plot(xs, [x["ok_per_s"] for x in levels], "o-", label=label, color=color)
        bottom.plot(
            [x for x, y in zip(xs, levels, strict=True) if y["ok_p99_ms"]],
            [y["ok_p99_ms"] for y in levels if y["ok_p99_ms"]],
            "o-",
            label=label,
            color=color,
        )
    pg = r.get("pgbench", {}).get("booking", {}).get("tps")
    if pg:
        top.axhline(pg, linestyle="--", color="tab:green", label="pgbench full booking (tx/s)")
    held = r.get("held")
    if held:
        top.plot(
            [held["concurrency"]], [held["rej_per_s"]], "s", color="tab:red",
            label="service: rejections of held seats",
        )  # fmt: skip
    open_loop = r.get("steady", {}).get("open_loop")
    if open_loop and open_loop.get("ok_p99_ms") is not None:
        bottom.plot(
            [open_loop["concurrency"]], [open_loop["ok_p99_ms"]], "D", color="tab:purple",
            label=f"open loop at {open_loop['target_rate']:.0f}/s",
        )  # fmt: skip
    bottom.axhline(50, linestyle=":", color="tab:red", label="50 ms goal")
    top.set_ylabel("answers per second (log)")
    bottom.set_ylabel("p99 latency, ms (log)")
    bottom.set_xlabel("concurrent connections")
    levels = sorted({x["concurrency"] for _, found, _ in series for x in found})
    for axis in (top, bottom):
        # Log scales: the service and its references differ by orders of magnitude.
        axis.set_xscale("log", base=2)
        axis.set_yscale("log")
        axis.set_xticks(levels, [str(c) for c in levels])
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8)
    top.set_title("Booking service against its references (same machine, same run)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    """`python -m bench.report DIR`: write DIR/RESULTS.md and the plot again from
    DIR/results.json (after a change to this report, without running the benchmark)."""
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python -m bench.report", description=main.__doc__)
    parser.add_argument("directory", type=Path, help="a results directory (results.json)")
    args = parser.parse_args()
    results = json.loads((args.directory / "results.json").read_text())
    (args.directory / "RESULTS.md").write_text(markdown(results))
    plot(results, args.directory / "throughput_p99.png")


if __name__ == "__main__":
    main()
