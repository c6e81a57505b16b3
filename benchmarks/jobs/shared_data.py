"""Benchmark objective: trials sharing one large array through a DataLoader.

``load_data`` builds a float64 array of ``MLX_BENCH_DATA_MIB`` MiB (default 1024 = 1 GiB) once,
in the driver; every trial gets it from the Ray object store and reads all of it.
"""

import os

import numpy as np

from ml_experiment import DataLoader, job


class SharedArray(DataLoader):
    @classmethod
    def load_data(cls):
        mib = int(os.environ.get("MLX_BENCH_DATA_MIB", "1024"))
        return np.ones(mib * 2**20 // 8, dtype=np.float64)


@job(data_loader=SharedArray)
def main(x: float = 0.0):
    arr = SharedArray.load_data()
    total = float(arr.sum())  # touches every page of the shared array
    return {
        "y": x**2,
        "data_mib": arr.nbytes / 2**20,
        "data_sum": total,
        # A view of the object store: read-only and not owning its memory (no copy was made).
        "zero_copy": float(not arr.flags.owndata and not arr.flags.writeable),
    }


if __name__ == "__main__":
    main()
