"""`python -m isthmus.apps.loadgen`: wires options, runner and report; the one place exit codes come from."""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType

from isthmus.apps.container import log
from isthmus.apps.loadgen.options import parse_options
from isthmus.apps.loadgen.report import render_text, summarize
from isthmus.apps.loadgen.runner import run

APP = "loadgen"


def main(argv: list[str] | None = None) -> int:
    options = parse_options(argv)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()  # stop scheduling and report what was done so far

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log(
        APP,
        f"sending {options.planned} requests at {options.rate:g}/s for up to {options.duration_s:g} s "
        f"to {len(options.targets)} URL(s) over at most {options.connections} connections",
    )
    result = run(options, stop)
    report = summarize(
        result.tallies,
        urls=[t.url for t in options.targets],
        target_rate=options.rate,
        duration_s=options.duration_s,
        elapsed_s=result.elapsed_s,
        interrupted=result.interrupted,
    )
    print(report.to_json() if options.json else render_text(report), flush=True)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
