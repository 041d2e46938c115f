//! Butterworth filter design as second-order sections, matching SciPy's
//! `butter(N, Wn, btype, fs=fs, output='sos')` coefficient for coefficient and section for section.
//!
//! The steps are SciPy's: analog prototype (`buttap`) -> frequency transform (`lp2lp_zpk`,
//! `lp2hp_zpk`, `lp2bp_zpk`, `lp2bs_zpk`) at pre-warped edges -> bilinear transform (`bilinear_zpk`,
//! internal `fs = 2`) -> `zpk2sos` with `pairing='nearest'`. Element order is kept as NumPy keeps
//! it, because `zpk2sos`'s pairing and section order depend on it (ties go to the lower index, as
//! NumPy's small-array sorts are stable).

use super::error::{DspError, Result, positive};
use super::sos::Sos;
use rustfft::num_complex::Complex64 as C;
use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

/// Filter type, as SciPy's `btype`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BandType {
    /// Pass below the cut-off.
    Lowpass,
    /// Pass above the cut-off.
    Highpass,
    /// Pass between two edges.
    Bandpass,
    /// Reject between two edges.
    Bandstop,
}

/// Highest Butterworth order accepted (SciPy has no limit; beyond 8 the sections of a low cut-off
/// get numerically delicate and no EEG use needs them).
pub const MAX_ORDER: usize = 8;

/// Design a digital Butterworth filter as second-order sections, as
/// `scipy.signal.butter(order, wn, btype, fs=fs, output='sos')`.
///
/// `wn` holds one edge (low/high-pass) or two (band-pass/stop), in Hz.
///
/// # Errors
/// [`DspError::InvalidParameter`] when `order` is outside `1..=8`, `fs` is not positive, an edge is
/// not strictly between 0 and Nyquist, the edge count does not fit `btype`, or band edges are not
/// increasing.
pub fn butter(order: usize, wn: &[f64], btype: BandType, fs: f64) -> Result<Sos> {
    if !(1..=MAX_ORDER).contains(&order) {
        return Err(DspError::InvalidParameter {
            field: "order",
            reason: format!("must be in 1..={MAX_ORDER}, got {order}"),
        });
    }
    let fs = positive("fs", fs)?;
    let nyq = fs / 2.0;
    let want = match btype {
        BandType::Lowpass | BandType::Highpass => 1,
        BandType::Bandpass | BandType::Bandstop => 2,
    };
    if wn.len() != want {
        return Err(DspError::InvalidParameter {
            field: "wn",
            reason: format!("{btype:?} needs {want} edge(s), got {}", wn.len()),
        });
    }
    for &w in wn {
        if !(w.is_finite() && w > 0.0 && w < nyq) {
            return Err(DspError::InvalidParameter {
                field: "wn",
                reason: format!("cut-off {w} Hz must be strictly between 0 and Nyquist ({nyq} Hz)"),
            });
        }
    }
    if want == 2 && wn[0] >= wn[1] {
        return Err(DspError::InvalidParameter {
            field: "wn",
            reason: format!("band edges must increase, got {} >= {}", wn[0], wn[1]),
        });
    }
    // Normalise to Nyquist, then pre-warp with SciPy's internal fs = 2.
    let warped: Vec<f64> = wn
        .iter()
        .map(|w| 4.0 * (PI * (w / nyq) / 2.0).tan())
        .collect();
    let (z, p, k) = buttap(order);
    let (z, p, k) = match btype {
        BandType::Lowpass => lp2lp(&z, &p, k, warped[0]),
        BandType::Highpass => lp2hp(&z, &p, k, warped[0]),
        BandType::Bandpass => {
            let bw = warped[1] - warped[0];
            lp2bp(&z, &p, k, (warped[0] * warped[1]).sqrt(), bw)
        }
        BandType::Bandstop => {
            let bw = warped[1] - warped[0];
            lp2bs(&z, &p, k, (warped[0] * warped[1]).sqrt(), bw)
        }
    };
    let (z, p, k) = bilinear(&z, &p, k, 2.0);
    Sos::try_new(zpk2sos(z, p, k))
}

type Zpk = (Vec<C>, Vec<C>, f64);

fn buttap(n: usize) -> Zpk {
    let p = (0..n)
        .map(|i| {
            let m = -(n as f64) + 1.0 + 2.0 * i as f64;
            let th = PI * m / (2.0 * n as f64);
            -C::new(th.cos(), th.sin())
        })
        .collect();
    (Vec::new(), p, 1.0)
}

fn lp2lp(z: &[C], p: &[C], k: f64, wo: f64) -> Zpk {
    let degree = p.len() - z.len();
    (
        z.iter().map(|v| v * wo).collect(),
        p.iter().map(|v| v * wo).collect(),
        k * wo.powi(degree as i32),
    )
}

fn lp2hp(z: &[C], p: &[C], k: f64, wo: f64) -> Zpk {
    let degree = p.len() - z.len();
    let mut zh: Vec<C> = z.iter().map(|v| div(C::new(wo, 0.0), *v)).collect();
    let ph = p.iter().map(|v| div(C::new(wo, 0.0), *v)).collect();
    zh.extend(std::iter::repeat_n(C::new(0.0, 0.0), degree));
    let k = k * div(prod(z.iter().map(|v| -v)), prod(p.iter().map(|v| -v))).re;
    (zh, ph, k)
}

fn lp2bp(z: &[C], p: &[C], k: f64, wo: f64, bw: f64) -> Zpk {
    let degree = p.len() - z.len();
    let half = |v: &[C]| -> Vec<C> { v.iter().map(|x| x * (bw / 2.0)).collect() };
    let split = |v: Vec<C>| -> Vec<C> {
        let w2 = C::new(wo * wo, 0.0);
        let plus = v.iter().map(|x| x + csqrt(x * x - w2));
        let minus = v.iter().map(|x| x - csqrt(x * x - w2));
        plus.chain(minus).collect()
    };
    let mut zb = split(half(z));
    let pb = split(half(p));
    zb.extend(std::iter::repeat_n(C::new(0.0, 0.0), degree));
    (zb, pb, k * bw.powi(degree as i32))
}

fn lp2bs(z: &[C], p: &[C], k: f64, wo: f64, bw: f64) -> Zpk {
    let degree = p.len() - z.len();
    let inv = |v: &[C]| -> Vec<C> { v.iter().map(|x| div(C::new(bw / 2.0, 0.0), *x)).collect() };
    let split = |v: Vec<C>| -> Vec<C> {
        let w2 = C::new(wo * wo, 0.0);
        let plus = v.iter().map(|x| x + csqrt(x * x - w2));
        let minus = v.iter().map(|x| x - csqrt(x * x - w2));
        plus.chain(minus).collect()
    };
    let mut zb = split(inv(z));
    let pb = split(inv(p));
    zb.extend(std::iter::repeat_n(C::new(0.0, wo), degree));
    zb.extend(std::iter::repeat_n(C::new(0.0, -wo), degree));
    let k = k * div(prod(z.iter().map(|v| -v)), prod(p.iter().map(|v| -v))).re;
    (zb, pb, k)
}

fn bilinear(z: &[C], p: &[C], k: f64, fs: f64) -> Zpk {
    let degree = p.len() - z.len();
    let fs2 = C::new(2.0 * fs, 0.0);
    let mut zz: Vec<C> = z.iter().map(|v| div(fs2 + v, fs2 - v)).collect();
    let pz = p.iter().map(|v| div(fs2 + v, fs2 - v)).collect();
    zz.extend(std::iter::repeat_n(C::new(-1.0, 0.0), degree));
    let k = k * div(
        prod(z.iter().map(|v| fs2 - v)),
        prod(p.iter().map(|v| fs2 - v)),
    )
    .re;
    (zz, pz, k)
}

fn prod(it: impl Iterator<Item = C>) -> C {
    it.fold(C::new(1.0, 0.0), |a, b| a * b)
}

/// Complex division with Smith's scaling, as NumPy does it (naive division loses the last bits).
fn div(a: C, b: C) -> C {
    if b.re.abs() >= b.im.abs() {
        let rat = b.im / b.re;
        let scl = 1.0 / (b.re + b.im * rat);
        C::new((a.re + a.im * rat) * scl, (a.im - a.re * rat) * scl)
    } else {
        let rat = b.re / b.im;
        let scl = 1.0 / (b.im + b.re * rat);
        C::new((a.re * rat + a.im) * scl, (a.im * rat - a.re) * scl)
    }
}

/// Principal square root as C99 `csqrt` (NumPy's), rather than num-complex's polar form.
fn csqrt(z: C) -> C {
    let (x, y) = (z.re, z.im);
    if y == 0.0 {
        return if x < 0.0 {
            C::new(0.0, (-x).sqrt().copysign(y))
        } else {
            C::new(x.sqrt(), y)
        };
    }
    if x == 0.0 {
        let r = (0.5 * y.abs()).sqrt();
        return C::new(r, r.copysign(y));
    }
    let d = x.hypot(y);
    if x > 0.0 {
        let r = (0.5 * (d + x)).sqrt();
        C::new(r, (0.5 * (y / r)).copysign(y))
    } else {
        let s = (0.5 * (d - x)).sqrt();
        C::new((0.5 * (y / s)).abs(), s.copysign(y))
    }
}

/// `scipy.signal._filter_design._cplxreal`: complex roots (one of each conjugate pair, positive
/// imaginary part, averaged with its partner) followed by the real roots.
fn cplxreal(v: &[C]) -> Vec<C> {
    if v.is_empty() {
        return Vec::new();
    }
    let tol = 100.0 * f64::EPSILON;
    let mut z = v.to_vec();
    // lexsort((|imag|, real)): by real part, then |imag|; stable.
    z.sort_by(|a, b| {
        a.re.total_cmp(&b.re)
            .then(a.im.abs().total_cmp(&b.im.abs()))
    });
    let is_real = |c: &C| c.im.abs() <= tol * c.norm();
    let reals: Vec<C> = z
        .iter()
        .filter(|c| is_real(c))
        .map(|c| C::new(c.re, 0.0))
        .collect();
    let cplx: Vec<C> = z.iter().filter(|c| !is_real(c)).copied().collect();
    let mut zp: Vec<C> = cplx.iter().filter(|c| c.im > 0.0).copied().collect();
    let mut zn: Vec<C> = cplx.iter().filter(|c| c.im < 0.0).copied().collect();
    assert_eq!(
        zp.len(),
        zn.len(),
        "Butterworth roots come in conjugate pairs"
    );
    // Within runs of (nearly) equal real part, order by |imag|.
    let mut start = 0;
    while start < zp.len() {
        let mut stop = start + 1;
        while stop < zp.len() && zp[stop].re - zp[stop - 1].re <= tol * zp[stop - 1].norm() {
            stop += 1;
        }
        if stop - start > 1 {
            zp[start..stop].sort_by(|a, b| a.im.abs().total_cmp(&b.im.abs()));
            zn[start..stop].sort_by(|a, b| a.im.abs().total_cmp(&b.im.abs()));
        }
        start = stop;
    }
    let mut out: Vec<C> = zp
        .iter()
        .zip(&zn)
        .map(|(a, b)| (a + b.conj()) / 2.0)
        .collect();
    out.extend(reals);
    out
}

fn is_real(c: &C) -> bool {
    c.im == 0.0
}

/// `np.argmin(np.abs(1 - np.abs(p)))`: the pole nearest the unit circle (first on ties).
fn idx_worst(p: &[C]) -> usize {
    let mut best = 0;
    for (i, v) in p.iter().enumerate() {
        if (1.0 - v.norm()).abs() < (1.0 - p[best].norm()).abs() {
            best = i;
        }
    }
    best
}

#[derive(Clone, Copy, PartialEq)]
enum Which {
    Real,
    Complex,
    Any,
}

/// `_nearest_real_complex_idx`: the element of `fro` nearest `to`, restricted to real or complex ones.
fn nearest(fro: &[C], to: C, which: Which) -> usize {
    let mut order: Vec<usize> = (0..fro.len()).collect();
    order.sort_by(|&a, &b| (fro[a] - to).norm().total_cmp(&(fro[b] - to).norm()));
    *order
        .iter()
        .find(|&&i| match which {
            Which::Any => true,
            Which::Real => is_real(&fro[i]),
            Which::Complex => !is_real(&fro[i]),
        })
        .expect("zpk2sos always has a zero of the kind it asks for")
}

/// `zpk2tf` of up to two zeros and poles into one section row.
fn single_section(z: &[C], p: &[C]) -> [f64; 6] {
    let poly = |r: &[C]| -> Vec<f64> {
        let mut a = vec![C::new(1.0, 0.0)];
        for &root in r {
            let mut next = vec![C::new(0.0, 0.0); a.len() + 1];
            for (i, &c) in a.iter().enumerate() {
                next[i] += c;
                next[i + 1] -= c * root;
            }
            a = next;
        }
        a.iter().map(|c| c.re).collect()
    };
    let (b, a) = (poly(z), poly(p));
    let mut row = [0.0; 6];
    row[3 - b.len()..3].copy_from_slice(&b);
    row[6 - a.len()..6].copy_from_slice(&a);
    row
}

/// `scipy.signal.zpk2sos(z, p, k, pairing='nearest')` for a digital filter.
fn zpk2sos(z: Vec<C>, p: Vec<C>, k: f64) -> Vec<[f64; 6]> {
    let zero = C::new(0.0, 0.0);
    let (mut z, mut p) = (z, p);
    if z.is_empty() && p.is_empty() {
        return vec![[k, 0.0, 0.0, 1.0, 0.0, 0.0]];
    }
    let n = z.len().max(p.len());
    p.resize(n, zero);
    z.resize(n, zero);
    let n_sections = n.div_ceil(2);
    if n % 2 == 1 {
        p.push(zero);
        z.push(zero);
    }
    let mut z = cplxreal(&z);
    let mut p = cplxreal(&p);
    let mut sos = vec![[0.0; 6]; n_sections];
    for si in (0..n_sections).rev() {
        let p1 = p.remove(idx_worst(&p));
        let n_real_p = p.iter().filter(|c| is_real(c)).count();
        if is_real(&p1) && n_real_p == 0 {
            // Last remaining real pole: pair it with the nearest real zero.
            let z1 = z.remove(nearest(&z, p1, Which::Real));
            sos[si] = single_section(&[z1, zero], &[p1, zero]);
        } else if p.len() + 1 == z.len()
            && !is_real(&p1)
            && n_real_p == 1
            && z.iter().filter(|c| is_real(c)).count() == 1
        {
            // One real pole and one real zero left: this complex pole must take a complex zero.
            let z1 = z.remove(nearest(&z, p1, Which::Complex));
            sos[si] = single_section(&[z1, z1.conj()], &[p1, p1.conj()]);
        } else {
            let p2 = if is_real(&p1) {
                let reals: Vec<usize> = (0..p.len()).filter(|&i| is_real(&p[i])).collect();
                let sub: Vec<C> = reals.iter().map(|&i| p[i]).collect();
                p.remove(reals[idx_worst(&sub)])
            } else {
                p1.conj()
            };
            if z.is_empty() {
                sos[si] = single_section(&[], &[p1, p2]);
            } else {
                let z1 = z.remove(nearest(&z, p1, Which::Any));
                if !is_real(&z1) {
                    sos[si] = single_section(&[z1, z1.conj()], &[p1, p2]);
                } else if !z.is_empty() {
                    let z2 = z.remove(nearest(&z, p1, Which::Real));
                    sos[si] = single_section(&[z1, z2], &[p1, p2]);
                } else {
                    sos[si] = single_section(&[z1], &[p1, p2]);
                }
            }
        }
    }
    for c in &mut sos[0][..3] {
        *c *= k;
    }
    sos
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowpass_gain_is_one_at_dc_and_half_power_at_cutoff() {
        for order in 1..=8 {
            let sos = butter(order, &[30.0], BandType::Lowpass, 256.0).unwrap();
            assert_eq!(sos.n_sections(), order.div_ceil(2));
            assert!((sos.gain_at(0.0, 256.0) - 1.0).abs() < 1e-12);
            assert!((sos.gain_at(30.0, 256.0) - std::f64::consts::FRAC_1_SQRT_2).abs() < 1e-9);
            assert!(sos.max_pole_radius() < 1.0);
        }
    }

    #[test]
    fn bandstop_rejects_centre() {
        let sos = butter(2, &[45.0, 55.0], BandType::Bandstop, 256.0).unwrap();
        assert!(sos.gain_at(50.0, 256.0) < 1e-2);
        assert!((sos.gain_at(10.0, 256.0) - 1.0).abs() < 1e-2);
    }

    #[test]
    fn refuses_bad_designs() {
        assert!(butter(0, &[1.0], BandType::Lowpass, 256.0).is_err());
        assert!(butter(9, &[1.0], BandType::Lowpass, 256.0).is_err());
        assert!(butter(4, &[128.0], BandType::Lowpass, 256.0).is_err());
        assert!(butter(4, &[0.0], BandType::Highpass, 256.0).is_err());
        assert!(butter(4, &[10.0, 5.0], BandType::Bandpass, 256.0).is_err());
        assert!(butter(4, &[10.0], BandType::Bandpass, 256.0).is_err());
        assert!(butter(4, &[10.0], BandType::Lowpass, f64::NAN).is_err());
    }
}
