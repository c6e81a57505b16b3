"""Benchmark objective: a trivial trial (no work), so a group's time is all framework overhead."""

from ml_experiment import job


@job
def main(x: float = 0.0):
    return {"y": x**2}


if __name__ == "__main__":
    main()
