"""Benchmark objective: a CPU-bound trial burning ``cpu_s`` seconds of CPU in pure Python."""

import time

from ml_experiment import job


@job
def main(x: float = 0.0, cpu_s: float = 1.0):
    start = time.process_time()
    while time.process_time() - start < cpu_s:
        pass
    return {"y": x**2}


if __name__ == "__main__":
    main()
