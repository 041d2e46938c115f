"""SciPy peer for the DSP part of the standard page (benches/benches/dsp.rs), same machine, same work.

The block is the page plus the real-data padding Theta's FilterPlan asks for (pass it with
--padding, printed by the Rust bench), 32 channels at 256 Hz: double banana by numpy subtraction,
then scipy.signal.sosfiltfilt (high-pass 0.5 Hz + low-pass 70 Hz order 4 + iirnotch 50 Hz Q 30)
along the rows, crop to the page, min/max per pixel column with the same column boundaries.

    benches/peers/.venv/bin/python benches/peers/dsp_page.py --padding 5453 --json
"""
import argparse, json, time
import numpy as np
import scipy
from scipy import signal

FS = 256.0
LABELS = ["Fp1", "Fp2", "F7", "F3", "Fz", "F4", "F8", "T7", "C3", "Cz", "C4", "T8", "P7", "P3", "Pz", "P4",
          "P8", "O1", "O2", "A1", "A2", "Fpz", "Oz", "FC1", "FC2", "CP1", "CP2", "FC5", "FC6", "CP5", "CP6", "ECG"]
BANANA = [("Fp1", "F7"), ("F7", "T7"), ("T7", "P7"), ("P7", "O1"), ("Fp1", "F3"), ("F3", "C3"), ("C3", "P3"),
          ("P3", "O1"), ("Fz", "Cz"), ("Cz", "Pz"), ("Fp2", "F4"), ("F4", "C4"), ("C4", "P4"), ("P4", "O2"),
          ("Fp2", "F8"), ("F8", "T8"), ("T8", "P8"), ("P8", "O2")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--padding", type=int, default=5453)
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--px", type=int, default=1920)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    page = int(20 * FS)
    n = page + 2 * a.padding
    rng = np.random.default_rng(7)
    t = np.arange(n) / FS
    c = np.arange(len(LABELS))[:, None]
    data = (200.0 * c + 80 * np.sin(2 * np.pi * 0.03 * t + c) + 30 * np.sin(2 * np.pi * (9 + 0.1 * c) * t)
            + 10 * np.sin(2 * np.pi * 50 * t) + rng.uniform(-10, 10, (len(LABELS), n)))
    sos = np.vstack([signal.butter(4, 0.5, "highpass", fs=FS, output="sos"),
                     signal.butter(4, 70.0, "lowpass", fs=FS, output="sos"),
                     signal.tf2sos(*signal.iirnotch(50.0, 30.0, fs=FS))])
    ia = [LABELS.index(p) for p, _ in BANANA]
    ib = [LABELS.index(q) for _, q in BANANA]
    j = np.arange(a.px + 1)
    bounds = (j * page) // a.px

    def run():
        d = data[ia] - data[ib]
        y = signal.sosfiltfilt(sos, d, axis=1)[:, a.padding:a.padding + page]
        # Equal-width columns here (5120 is not a multiple of 1920): reduceat over the same boundaries.
        return np.minimum.reduceat(y, bounds[:-1], axis=1), np.maximum.reduceat(y, bounds[:-1], axis=1)

    for _ in range(10):
        run()
    times = []
    for _ in range(a.iterations):
        t0 = time.perf_counter()
        run()
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    res = {"peer": "scipy", "scipy_version": scipy.__version__,
           "p50_ms": times[len(times) // 2], "p99_ms": times[int(len(times) * 0.99) - 1],
           "block_samples": n, "iterations": a.iterations}
    print(json.dumps(res) if a.json else res)


if __name__ == "__main__":
    main()
