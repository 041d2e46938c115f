#!/usr/bin/env python3
"""Peer of `theta-bench read`: pyedflib (EDFlib) reads every sample of every signal of an EDF
file in digital units, `runs` times. Prints one JSON object: per-run seconds, the bytes of
sample data, peak RSS, and each signal's digital sum (to cross-check the Rust reader)."""
import json
import resource
import sys
import time

import numpy as np
import pyedflib


def main() -> None:
    path = sys.argv[1]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    seconds = []
    sums = []
    samples = 0
    for _ in range(runs):
        t0 = time.perf_counter()
        f = pyedflib.EdfReader(path)
        sums = []
        samples = 0
        for i in range(f.signals_in_file):
            x = f.readSignal(i, digital=True)
            samples += len(x)
            sums.append(int(x.sum(dtype=np.int64)))
        f.close()
        seconds.append(time.perf_counter() - t0)
    print(json.dumps({
        "reader": f"pyedflib {pyedflib.__version__}",
        "seconds": seconds,
        "samples": samples,
        "digital_sums": sums,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }))


if __name__ == "__main__":
    main()
