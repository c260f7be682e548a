"""What the metrics hooks cost one chat request, in CPU microseconds, without a server.

A routed chat request passes three hooks: the HTTP counter and histogram (`server.metrics`),
one upstream attempt (`routing.metrics`) and one settled usage segment (`billing.usage`).
This times each in a loop, in-memory (one worker) and in multiprocess mode (several workers,
`PROMETHEUS_MULTIPROC_DIR`), which `bench/gateway.py` does not exercise.

    .venv/bin/python bench/metrics_hooks.py [--loops 200000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def measure(loops: int) -> dict[str, float]:
    sys.path.insert(0, str(ROOT))
    from foundation.metrics import observe_attempt, observe_usage
    from server.metrics import observe_request

    scope = {"method": "POST", "path": "/v1/chat/completions"}

    def per_call(fn: object, *args: object) -> float:
        call = fn  # type: ignore[assignment]
        started = time.process_time()
        for _ in range(loops):
            call(*args)  # type: ignore[operator]
        return (time.process_time() - started) / loops * 1e6

    return {
        "http (counter + histogram)": per_call(observe_request, scope, 200, 0.004),
        "attempt": per_call(observe_attempt, "openai", "openai-chat", "served", ""),
        "usage (2 token counters + cost)": per_call(observe_usage, "byok", "llm", 12, 20, 150),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--loops", type=int, default=200_000)
    parser.add_argument("--child", action="store_true")
    args = parser.parse_args()
    if args.child:
        for name, us in measure(args.loops).items():
            print(f"  {name:34s} {us:6.2f} us")
        return
    for mode in ("in-memory", "multiprocess"):
        env = dict(os.environ)
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        with tempfile.TemporaryDirectory() as tmp:
            if mode == "multiprocess":
                env["PROMETHEUS_MULTIPROC_DIR"] = tmp
            print(f"{mode}:")
            sys.stdout.flush()
            cmd = [sys.executable, __file__, "--child", "--loops", str(args.loops)]
            subprocess.run(cmd, env=env, check=True)


if __name__ == "__main__":
    main()
