"""The simulator with an rpm limit over any window (the CLI's `--rpm` counts per 60 s), in its
own process: `python bench/sim_window.py RPM WINDOW_S LATENCY_S JITTER_S`. Prints the
OPENAI_BASE_URL line as `python -m auto_label.sim serve` does, then serves until SIGTERM."""

from __future__ import annotations

import signal
import sys
import threading

from auto_label.sim import SimConfig, Simulator


def main() -> None:
    rpm, window, latency, jitter = int(sys.argv[1]), *map(float, sys.argv[2:5])
    config = SimConfig(rpm=rpm, rpm_window=window, latency_mean=latency, latency_jitter=jitter)
    sim = Simulator(config).start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    print(f"OPENAI_BASE_URL={sim.openai_base_url}", flush=True)
    done.wait()
    sim.stop()


if __name__ == "__main__":
    main()
