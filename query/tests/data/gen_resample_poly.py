"""Regenerate resample_poly_scipy.json: SciPy's resample_poly on a deterministic signal.

    benches/peers/.venv/bin/python query/tests/data/gen_resample_poly.py

x[i] = sin(0.05 i) * 40 + cos(0.31 i) * 15 + (i % 7) - 3 + 100, i = 0..300 (the Rust test rebuilds it).
"""
import json, pathlib
import numpy as np
import scipy
from scipy.signal import resample_poly

i = np.arange(300, dtype=float)
x = np.sin(0.05 * i) * 40 + np.cos(0.31 * i) * 15 + (i % 7) - 3 + 100
cases = [(1, 2), (3, 2), (2, 1), (125, 128), (256, 250), (1, 4)]
out = {
    "scipy_version": scipy.__version__,
    "call": "resample_poly(x, up, down)  # window=('kaiser', 5.0), padtype='constant'",
    "cases": [{"up": u, "down": d, "y": resample_poly(x, u, d).tolist()} for u, d in cases],
}
path = pathlib.Path(__file__).with_name("resample_poly_scipy.json")
path.write_text(json.dumps(out))
