"""Peers for `theta-bench page`: the standard page computed from the same EDF file, in the same run.

For each page start (seconds, from --starts, the same seeded offsets Theta reads), each peer reads
the page plus the same real-data padding Theta's FilterPlan uses (--padding samples each side) from
the EDF, forms the 18 ACNS double-banana derivations by subtraction, runs
scipy.signal.sosfiltfilt (Butterworth high-pass 0.5 Hz + low-pass 70 Hz order 4 + iirnotch 50 Hz
Q 30, the same cascade) along the rows, crops to the 20 s page and takes min/max per pixel column
(1920 columns, the same column boundaries). The file stays open between pages, as a viewer's
would, and sits in the OS page cache (Theta's warm figure has its chunks decoded in memory).

  - pyedflib + SciPy: pyedflib.EdfReader.readSignal(ch, start, n) per channel used.
  - MNE + SciPy: mne.io.read_raw_edf(preload=False) once, raw.get_data(picks, start, stop).

    benches/peers/.venv/bin/python benches/peers/page_peers.py --edf FILE --padding 5453 \
        --starts 100.0,2000.5,... --json
"""
import argparse
import json
import time

import numpy as np
from scipy import signal

BANANA = [("Fp1", "F7"), ("F7", "T7"), ("T7", "P7"), ("P7", "O1"), ("Fp1", "F3"), ("F3", "C3"),
          ("C3", "P3"), ("P3", "O1"), ("Fz", "Cz"), ("Cz", "Pz"), ("Fp2", "F4"), ("F4", "C4"),
          ("C4", "P4"), ("P4", "O2"), ("Fp2", "F8"), ("F8", "T8"), ("T8", "P8"), ("P8", "O2")]


def canon(label):
    s = label.strip()
    if s.upper().startswith("EEG "):
        s = s[4:].strip()
    s = s.split("-")[0].strip()
    return {"T3": "T7", "T4": "T8", "T5": "P7", "T6": "P8"}.get(s, s)


def pct(times, q):
    times = sorted(times)
    k = max(1, min(len(times), int(np.ceil(len(times) * q))))
    return times[k - 1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--edf", required=True)
    ap.add_argument("--padding", type=int, required=True)
    ap.add_argument("--starts", required=True, help="comma-separated page starts, seconds")
    ap.add_argument("--page-seconds", type=float, default=20.0)
    ap.add_argument("--px", type=int, default=1920)
    ap.add_argument("--rounds", type=int, default=1, help="passes over the starts")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    starts = [float(s) for s in a.starts.split(",") if s]

    import pyedflib
    import mne
    mne.set_log_level("ERROR")

    f = pyedflib.EdfReader(a.edf)
    labels = [canon(l) for l in f.getSignalLabels()]
    fs = f.getSampleFrequency(0)
    n_total = f.getNSamples()[0]
    used = sorted({labels.index(x) for pair in BANANA for x in pair})
    pos = {ch: i for i, ch in enumerate(used)}
    ia = [pos[labels.index(p)] for p, _ in BANANA]
    ib = [pos[labels.index(q)] for _, q in BANANA]
    sos = np.vstack([signal.butter(4, 0.5, "highpass", fs=fs, output="sos"),
                     signal.butter(4, 70.0, "lowpass", fs=fs, output="sos"),
                     signal.tf2sos(*signal.iirnotch(50.0, 30.0, fs=fs))])
    page = int(round(a.page_seconds * fs))
    j = np.arange(a.px + 1)
    bounds = (j * page) // a.px

    def finish(block, lo, p0):
        d = block[ia] - block[ib]
        y = signal.sosfiltfilt(sos, d, axis=1)[:, p0 - lo:p0 - lo + page]
        return (np.minimum.reduceat(y, bounds[:-1], axis=1),
                np.maximum.reduceat(y, bounds[:-1], axis=1))

    def span(start):
        p0 = int(round(start * fs))
        lo = max(0, p0 - a.padding)
        hi = min(n_total, p0 + page + a.padding)
        return p0, lo, hi

    def pyedflib_page(start):
        p0, lo, hi = span(start)
        block = np.vstack([f.readSignal(ch, lo, hi - lo) for ch in used])
        return finish(block, lo, p0)

    raw = mne.io.read_raw_edf(a.edf, preload=False, verbose="ERROR")

    def mne_page(start):
        p0, lo, hi = span(start)
        block = raw.get_data(picks=used, start=lo, stop=hi) * 1e6  # MNE returns volts
        return finish(block, lo, p0)

    out = {"starts": len(starts), "padding": a.padding, "px": a.px,
           "scipy": __import__("scipy").__version__, "mne": mne.__version__,
           "pyedflib": pyedflib.__version__}
    for name, fn in [("pyedflib_scipy", pyedflib_page), ("mne_scipy", mne_page)]:
        for s in starts[:3]:
            fn(s)  # imports, caches, first-call costs
        times = []
        for _ in range(a.rounds):
            for s in starts:
                t0 = time.perf_counter()
                fn(s)
                times.append((time.perf_counter() - t0) * 1e3)
        out[name] = {"p50_ms": pct(times, 0.5), "p99_ms": pct(times, 0.99), "n": len(times)}
    f.close()
    print(json.dumps(out) if a.json else out)


if __name__ == "__main__":
    main()
