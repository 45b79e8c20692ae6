"""Summarise a py-spy raw (collapsed stacks) profile: where the service's CPU time goes.

`python -m bench.profile bench/results/profile/steady.txt [--top 25] [--focus NAME ...]`
prints the share of samples by package of the innermost frame (self time), the functions with
the most self time, and the inclusive share of the frames named by --focus (substring match on
"function (file)")."""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]*)(?::\d+)?\)$")


def _package(file: str) -> str:
    # py-spy names files by module path (`httpx/_models.py`, `booking/adapters/sql/uow.py`).
    for marker in ("site-packages/", "/src/", "/lib/python3.11/"):
        if marker in file:
            file = file.split(marker, 1)[1]
    parts = file.split("/")
    if parts[0] == "booking" and len(parts) > 2:
        return "booking." + parts[1]
    return parts[0].removesuffix(".py") or "?"


def _short(frame: str) -> str:
    found = _FRAME.match(frame)
    if not found:
        return frame
    file = found["file"]
    for marker in ("site-packages/", "/src/", "/lib/python3.11/"):
        if marker in file:
            file = file.split(marker, 1)[1]
    return f"{found['func']} ({file})"


_PROCESS = re.compile(r'^(process \d+:"[^"]*";?)+')
# Threads that only wait: uvicorn's health-check answerer and the multiprocessing machinery
# (py-spy sometimes counts their blocking reads as running).
_BACKGROUND = ("always_pong", "resource_tracker", "Multiprocess.run", "_monitor (")


def load(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = _PROCESS.sub("", line).rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [f for f in stack.split(";") if f]
        if any(marker in frame for frame in frames for marker in _BACKGROUND):
            continue
        stacks.append((frames, int(count)))
    return stacks


def summarise(path: Path, top: int, focus: list[str]) -> str:
    stacks = load(path)
    total = sum(n for _, n in stacks) or 1
    by_package: Counter[str] = Counter()
    by_function: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for frames, n in stacks:
        if not frames:
            continue
        leaf = frames[-1]
        match = _FRAME.match(leaf)
        by_package[_package(match["file"] if match else leaf)] += n
        by_function[_short(leaf)] += n
        seen = set()
        for name in focus:
            if name in seen:
                continue
            if any(name in frame for frame in frames):
                inclusive[name] += n
                seen.add(name)
    # SQLAlchemy runs its synchronous core in greenlets: py-spy shows those samples as stacks
    # of their own, not under the coroutine that awaits them.
    detached = sum(
        n for frames, n in stacks if frames and not any("Runner.run" in f for f in frames)
    )
    lines = [
        f"{path.name}: {total} samples; {detached / total:.1%} in stacks outside the event loop "
        "(SQLAlchemy's greenlets: statement compile/execute, not attributed to a caller)",
        "",
        "self time by package:",
    ]
    lines += [f"  {n / total:6.1%}  {name}" for name, n in by_package.most_common(top)]
    lines += ["", "self time by function:"]
    lines += [f"  {n / total:6.1%}  {name}" for name, n in by_function.most_common(top)]
    if focus:
        lines += ["", "inclusive time of:"]
        lines += [f"  {inclusive[name] / total:6.1%}  {name}" for name in focus]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("profile", type=Path, nargs="+")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--focus", nargs="*", default=[])
    args = parser.parse_args()
    for path in args.profile:
        print(summarise(path, args.top, args.focus))
        print()


if __name__ == "__main__":
    main()
