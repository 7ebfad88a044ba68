//! Likelihoods of the item Bradley-Terry model with ties, on collapsed
//! counts, with their derivatives.
//!
//! For a pair with `d = θ_i − θ_j` and counts `(w_i, w_j, t)`:
//! - Bradley-Terry (Bradley & Terry 1952), used for ties `half` (a tie adds
//!   half a win to each side before fitting) and `drop`:
//!   `P(i) = σ(d)`.
//! - Davidson (1970, JASA 65, "On extending the Bradley-Terry model to
//!   accommodate ties"): `P(i) ∝ e^{d/2}`, `P(j) ∝ e^{-d/2}`, `P(tie) ∝ ν`,
//!   a three-way softmax with `λ = ln ν` as the extra parameter.
//! - Rao & Kupper (1967, JASA 62): `P(i) = σ(d − η)`, `P(j) = σ(−d − η)`,
//!   the rest a tie; an ordered logit with thresholds `±η`, `η = ln κ > 0`.
//!
//! All three negative log-likelihoods are convex in `(θ, tie parameter)`
//! jointly (log-sum-exp of linear forms; Pratt 1981 for the ordered logit).
//! The Hessian is kept as per-cell curvatures (O(cells) memory): products
//! with a vector cost one pass over the cells, and the dense `(K+1)²` matrix
//! is assembled only for a factorisation. Without a prior the Hessian is
//! singular along the shift of every block; adding `Σ_B c_B 1_B 1_Bᵀ / |B|`
//! (the gauge, `c_B` the block's mean curvature so its conditioning matches
//! the rest) fixes that without changing the step in the identified
//! directions, since the gradient sums to zero over every block, and
//! `(H + G)⁻¹ − Σ_B 1_B 1_Bᵀ / (c_B |B|)` is then the Moore-Penrose inverse
//! used for the covariance.
//!
//! Speed: the passes over the cells (evaluation, Hessian products) run in
//! fixed chunks of cells on rayon, each into its own partial sums, added in
//! chunk order (bit-identical for any thread count); within a chunk, the
//! `i` side of each run of cells with the same `i` is summed in a register
//! (cells come sorted by `i`). Bradley-Terry and Davidson evaluate through
//! per-model factors `e^{θ_u − max θ}` (see [`Scaled`]): one division and
//! one log per cell rather than one to three exps and a log; the overflow-
//! safe per-cell forms below remain for Rao-Kupper, for spreads of θ beyond
//! 600, and as the reference the tests compare against.

use rayon::prelude::*;

use super::Ties;

/// Cells per task in the passes over the cells. Fixed, so that partial sums
/// are added in the same order, and the results are bit-identical, whatever
/// the number of threads.
const CHUNK: usize = 1 << 15;

fn add(acc: &mut [f64], part: &[f64]) {
    for (a, p) in acc.iter_mut().zip(part) {
        *a += p;
    }
}

/// A pair's effective counts after the tie convention: `i` wins, `j` wins,
/// ties (zero unless the model has a tie parameter).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct EffCell {
    pub i: usize,
    pub j: usize,
    pub wi: f64,
    pub wj: f64,
    pub t: f64,
}

impl EffCell {
    pub(crate) fn total(&self) -> f64 {
        self.wi + self.wj + self.t
    }
}

/// Log-likelihood of one pair with its first derivatives (`gd`, `gt`) and
/// the second derivatives of the *negative* log-likelihood (`hdd`, `hdt`,
/// `htt`), in `d` and the tie parameter.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Terms {
    pub ll: f64,
    pub gd: f64,
    pub gt: f64,
    pub hdd: f64,
    pub hdt: f64,
    pub htt: f64,
}

fn log_sigmoid(x: f64) -> f64 {
    -((-x).max(0.0) + (-x.abs()).exp().ln_1p())
}

fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

fn bt_terms(c: &EffCell, d: f64) -> Terms {
    // One exp and one log: ln σ(±d) = −(max(∓d, 0) + ln(1 + e^{−|d|})).
    // `ln(1 + e)` rather than `ln_1p(e)` (a third faster): the value only
    // feeds the line search, and its absolute error stays below 1e-16 per
    // battle either way.
    let n = c.wi + c.wj;
    let e = (-d.abs()).exp();
    let l1p = (1.0 + e).ln();
    let p = if d >= 0.0 {
        1.0 / (1.0 + e)
    } else {
        e / (1.0 + e)
    };
    Terms {
        ll: -c.wi * ((-d).max(0.0) + l1p) - c.wj * (d.max(0.0) + l1p),
        gd: c.wi - n * p,
        hdd: n * p * (1.0 - p),
        ..Terms::default()
    }
}

fn davidson_terms(c: &EffCell, d: f64, lam: f64) -> Terms {
    let u = 0.5 * d;
    let m = u.abs().max(lam);
    let (e1, e2, e3) = ((u - m).exp(), (-u - m).exp(), (lam - m).exp());
    let z = e1 + e2 + e3;
    let lz = m + z.ln();
    let (pi, pj, pt) = (e1 / z, e2 / z, e3 / z);
    let n = c.total();
    Terms {
        ll: c.wi * (u - lz) + c.wj * (-u - lz) + c.t * (lam - lz),
        gd: 0.5 * ((c.wi - c.wj) - n * (pi - pj)),
        gt: c.t - n * pt,
        hdd: 0.25 * n * ((pi + pj) - (pi - pj) * (pi - pj)),
        hdt: -0.5 * n * (pi - pj) * pt,
        htt: n * pt * (1.0 - pt),
    }
}

/// Largest spread of θ (and `|ln ν|`) for the scaled kernels: `e^{-600}` is
/// far from underflow, so every probability keeps full relative precision.
const SCALED_MAX_SPREAD: f64 = 600.0;

/// Per-model factors of the scaled kernels, formed once per evaluation:
/// `a_u = θ_u − max θ` and `e_u = exp(a_u)` (Bradley-Terry) or
/// `exp(a_u / 2)` (Davidson). A cell then costs one division and one log
/// instead of one to three exps and a log: `P(i) = e_i / (e_i + e_j)`, and
/// for Davidson `P(i) : P(j) : P(tie) = e_i² : e_j² : ν e_i e_j` (both sides
/// of `e^{±d/2} : ν` multiplied by `e^{(θ_i + θ_j)/2 − max θ}`).
pub(crate) struct Scaled {
    a: Vec<f64>,
    e: Vec<f64>,
    nu: f64,
    lam: f64,
}

fn bt_scaled(c: &EffCell, s: &Scaled) -> Terms {
    let (ei, ej) = (s.e[c.i], s.e[c.j]);
    let z = ei + ej;
    let r = 1.0 / z;
    let (p, q) = (ei * r, ej * r);
    let lz = z.ln();
    let n = c.wi + c.wj;
    Terms {
        ll: c.wi * (s.a[c.i] - lz) + c.wj * (s.a[c.j] - lz),
        gd: c.wi - n * p,
        hdd: n * p * q,
        ..Terms::default()
    }
}

fn davidson_scaled(c: &EffCell, s: &Scaled) -> Terms {
    let (hi, hj) = (s.e[c.i], s.e[c.j]);
    let (e1, e2, e3) = (hi * hi, hj * hj, s.nu * hi * hj);
    let z = e1 + e2 + e3;
    let r = 1.0 / z;
    let (pi, pj, pt) = (e1 * r, e2 * r, e3 * r);
    let lz = z.ln();
    let (ai, aj) = (s.a[c.i], s.a[c.j]);
    let n = c.total();
    Terms {
        ll: c.wi * (ai - lz) + c.wj * (aj - lz) + c.t * (s.lam + 0.5 * (ai + aj) - lz),
        gd: 0.5 * ((c.wi - c.wj) - n * (pi - pj)),
        gt: c.t - n * pt,
        hdd: 0.25 * n * ((pi + pj) - (pi - pj) * (pi - pj)),
        hdt: -0.5 * n * (pi - pj) * pt,
        htt: n * pt * (pi + pj),
    }
}

/// ln P(tie) of Rao-Kupper, `sinh η / (cosh d + cosh η)`, without overflow.
fn rk_log_tie(d: f64, eta: f64) -> f64 {
    let ad = d.abs();
    let m = ad.max(eta);
    let s = (ad - m).exp() + (-ad - m).exp() + (eta - m).exp() + (-eta - m).exp();
    eta + (-(-2.0 * eta).exp()).ln_1p() - m - s.ln()
}

fn rk_terms(c: &EffCell, d: f64, eta: f64) -> Terms {
    if eta <= 0.0 {
        return Terms {
            ll: f64::NEG_INFINITY,
            ..Terms::default()
        };
    }
    // Complements from their own sigmoids: 1 − σ(x) loses all precision
    // when σ(x) is near 1.
    let (a, b) = (sigmoid(d - eta), sigmoid(-d - eta));
    let (na, nb) = (sigmoid(eta - d), sigmoid(d + eta));
    let (ca, cb) = (a * na, b * nb);
    let mut t = Terms {
        ll: c.wi * log_sigmoid(d - eta) + c.wj * log_sigmoid(-d - eta),
        gd: c.wi * na - c.wj * nb,
        gt: -c.wi * na - c.wj * nb,
        hdd: c.wi * ca + c.wj * cb,
        hdt: -c.wi * ca + c.wj * cb,
        htt: c.wi * ca + c.wj * cb,
    };
    if c.t > 0.0 {
        let lp = rk_log_tie(d, eta);
        let p = lp.exp();
        let (pd, pe) = ((cb - ca) / p, (ca + cb) / p);
        let p2 = (2.0 * b - 1.0) * cb - (1.0 - 2.0 * a) * ca;
        let pde = (2.0 * b - 1.0) * cb + (1.0 - 2.0 * a) * ca;
        t.ll += c.t * lp;
        t.gd += c.t * pd;
        t.gt += c.t * pe;
        t.hdd -= c.t * (p2 / p - pd * pd);
        t.htt -= c.t * (p2 / p - pe * pe);
        t.hdt -= c.t * (pde / p - pd * pe);
    }
    t
}

/// The penalised negative log-likelihood over a set of cells.
pub(crate) struct Problem<'a> {
    pub k: usize,
    pub cells: &'a [EffCell],
    pub ties: Ties,
    pub alpha: f64,
    /// Blocks whose shift the data leave free (empty when `alpha > 0`).
    pub gauge: &'a [Vec<usize>],
}

/// Curvature of the negative log-likelihood, per cell (and the total in the
/// tie parameter).
#[derive(Clone, Debug, Default)]
pub(crate) struct Curvature {
    /// The cells' model pairs, compact, so a Hessian product streams 16
    /// bytes per cell rather than a whole cell.
    ij: Vec<[u32; 2]>,
    hdd: Vec<f64>,
    hdt: Vec<f64>,
    htt: f64,
    /// Diagonal of `H` (without the gauge).
    diag: Vec<f64>,
    /// Gauge scale of each block.
    pub scales: Vec<f64>,
}

impl Problem<'_> {
    pub(crate) fn has_tie_param(&self) -> bool {
        matches!(self.ties, Ties::Davidson | Ties::RaoKupper)
    }

    pub(crate) fn dim(&self) -> usize {
        self.k + usize::from(self.has_tie_param())
    }

    /// The scaled kernels' factors at `x`, or None where they do not apply
    /// (Rao-Kupper, a non-finite value, or a spread beyond
    /// [`SCALED_MAX_SPREAD`]); the stable kernels of [`Self::terms`] then run.
    pub(crate) fn scaled(&self, x: &[f64]) -> Option<Scaled> {
        let th = &x[..self.k];
        let lam = if self.has_tie_param() { x[self.k] } else { 0.0 };
        if self.ties == Ties::RaoKupper || !th.iter().all(|v| v.is_finite()) {
            return None;
        }
        let (lo, hi) = th
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
                (l.min(*v), h.max(*v))
            });
        if !(hi - lo <= SCALED_MAX_SPREAD && lam.abs() <= SCALED_MAX_SPREAD) {
            return None;
        }
        let half = if self.ties == Ties::Davidson {
            0.5
        } else {
            1.0
        };
        let a: Vec<f64> = th.iter().map(|v| v - hi).collect();
        let e = a.iter().map(|v| (half * v).exp()).collect();
        Some(Scaled {
            a,
            e,
            nu: lam.exp(),
            lam,
        })
    }

    /// [`Self::terms`] by the scaled kernels when `sc` is given.
    pub(crate) fn terms_with(&self, c: &EffCell, x: &[f64], sc: Option<&Scaled>) -> Terms {
        match (sc, self.ties) {
            (Some(s), Ties::Half | Ties::Drop) => bt_scaled(c, s),
            (Some(s), Ties::Davidson) => davidson_scaled(c, s),
            _ => self.terms(c, x),
        }
    }

    pub(crate) fn terms(&self, c: &EffCell, x: &[f64]) -> Terms {
        let d = x[c.i] - x[c.j];
        match self.ties {
            Ties::Half | Ties::Drop => bt_terms(c, d),
            Ties::Davidson => davidson_terms(c, d, x[self.k]),
            Ties::RaoKupper => rk_terms(c, d, x[self.k]),
        }
    }

    fn finish(&self, ll: f64, x: &[f64]) -> f64 {
        let pen: f64 = x[..self.k].iter().map(|v| v * v).sum::<f64>() * 0.5 * self.alpha;
        let f = pen - ll;
        if f.is_nan() {
            f64::INFINITY
        } else {
            f
        }
    }

    /// Negative log-likelihood plus `α/2 ‖θ‖²` (`+inf` outside the domain),
    /// its gradient into `g` and its curvature into `curv`, in one pass.
    pub(crate) fn eval(&self, x: &[f64], g: &mut [f64], curv: &mut Curvature) -> f64 {
        let (k, n, m) = (self.k, self.dim(), self.cells.len());
        if curv.ij.len() != m {
            curv.ij = self
                .cells
                .iter()
                .map(|c| [c.i as u32, c.j as u32])
                .collect();
        }
        let tie = self.has_tie_param();
        let scaled = self.scaled(x);
        let sc = scaled.as_ref();
        curv.hdd.resize(m, 0.0);
        curv.hdt.resize(if tie { m } else { 0 }, 0.0);
        g.fill(0.0);
        curv.diag.clear();
        curv.diag.resize(n, 0.0);
        let (ll, htt) = if m <= CHUNK {
            let hdt = tie.then_some(&mut curv.hdt[..]);
            self.eval_chunk(self.cells, x, sc, &mut curv.hdd, hdt, g, &mut curv.diag)
        } else {
            let mut hdt_parts: Vec<Option<&mut [f64]>> = if tie {
                curv.hdt.chunks_mut(CHUNK).map(Some).collect()
            } else {
                (0..m.div_ceil(CHUNK)).map(|_| None).collect()
            };
            let tasks: Vec<_> = self
                .cells
                .chunks(CHUNK)
                .zip(curv.hdd.chunks_mut(CHUNK))
                .zip(hdt_parts.drain(..))
                .collect();
            let parts: Vec<(f64, f64, Vec<f64>, Vec<f64>)> = tasks
                .into_par_iter()
                .map(|((cells, hdd), hdt)| {
                    let (mut pg, mut pd) = (vec![0.0; n], vec![0.0; n]);
                    let (ll, htt) = self.eval_chunk(cells, x, sc, hdd, hdt, &mut pg, &mut pd);
                    (ll, htt, pg, pd)
                })
                .collect();
            // Partial sums added in chunk order: the same for any thread count.
            let (mut ll, mut htt) = (0.0, 0.0);
            for (pl, ph, pg, pd) in &parts {
                ll += pl;
                htt += ph;
                add(g, pg);
                add(&mut curv.diag, pd);
            }
            (ll, htt)
        };
        for u in 0..k {
            g[u] += self.alpha * x[u];
            curv.diag[u] += self.alpha;
        }
        curv.htt = htt;
        if tie {
            curv.diag[k] = htt;
        }
        curv.scales.clear();
        if !self.gauge.is_empty() {
            curv.scales = self.gauge_scales(&curv.diag);
        }
        self.finish(ll, x)
    }

    /// One chunk of [`Self::eval`]: returns the log-likelihood and the
    /// curvature in the tie parameter, adds into `g` and `diag` (the `i`
    /// side summed over each run of equal `i`, as in `hess_vec_chunk`).
    #[allow(clippy::too_many_arguments)]
    fn eval_chunk(
        &self,
        cells: &[EffCell],
        x: &[f64],
        sc: Option<&Scaled>,
        hdd: &mut [f64],
        mut hdt: Option<&mut [f64]>,
        g: &mut [f64],
        diag: &mut [f64],
    ) -> (f64, f64) {
        let k = self.k;
        let (mut ll, mut htt, mut gk) = (0.0, 0.0, 0.0);
        let Some(first) = cells.first() else {
            return (0.0, 0.0);
        };
        let (mut cur, mut acc_g, mut acc_d) = (first.i, 0.0, 0.0);
        for (m, c) in cells.iter().enumerate() {
            if c.i != cur {
                g[cur] -= acc_g;
                diag[cur] += acc_d;
                (cur, acc_g, acc_d) = (c.i, 0.0, 0.0);
            }
            let t = self.terms_with(c, x, sc);
            ll += t.ll;
            acc_g += t.gd;
            g[c.j] += t.gd;
            hdd[m] = t.hdd;
            acc_d += t.hdd;
            diag[c.j] += t.hdd;
            if let Some(hdt) = hdt.as_deref_mut() {
                gk -= t.gt;
                hdt[m] = t.hdt;
                htt += t.htt;
            }
        }
        g[cur] -= acc_g;
        diag[cur] += acc_d;
        if hdt.is_some() {
            g[k] += gk;
        }
        (ll, htt)
    }

    /// Diagonal of `H` (with the gauge when `gauge`).
    pub(crate) fn diagonal(&self, curv: &Curvature, gauge: bool) -> Vec<f64> {
        let mut d = curv.diag.clone();
        if gauge {
            for (b, s) in self.gauge.iter().zip(&curv.scales) {
                for &u in b {
                    d[u] += s / b.len() as f64;
                }
            }
        }
        d
    }

    fn gauge_scales(&self, diag: &[f64]) -> Vec<f64> {
        self.gauge
            .iter()
            .map(|b| {
                let m = b.iter().map(|&u| diag[u]).sum::<f64>() / b.len() as f64;
                if m > 0.0 && m.is_finite() {
                    m
                } else {
                    1.0
                }
            })
            .collect()
    }

    /// `out = (H + G) v`, one pass over the cells.
    pub(crate) fn hess_vec(&self, curv: &Curvature, v: &[f64], out: &mut [f64]) {
        let (k, m) = (self.k, curv.ij.len());
        out.fill(0.0);
        let hdt = |r: std::ops::Range<usize>| (!curv.hdt.is_empty()).then(|| &curv.hdt[r]);
        if m <= CHUNK {
            self.hess_vec_chunk(&curv.ij, &curv.hdd, hdt(0..m), v, out);
        } else {
            let parts: Vec<Vec<f64>> = (0..m.div_ceil(CHUNK))
                .into_par_iter()
                .map(|c| {
                    let r = c * CHUNK..((c + 1) * CHUNK).min(m);
                    let mut part = vec![0.0; out.len()];
                    self.hess_vec_chunk(
                        &curv.ij[r.clone()],
                        &curv.hdd[r.clone()],
                        hdt(r),
                        v,
                        &mut part,
                    );
                    part
                })
                .collect();
            for part in &parts {
                add(out, part);
            }
        }
        for (o, x) in out.iter_mut().zip(v).take(k) {
            *o += self.alpha * x;
        }
        if self.has_tie_param() {
            out[k] += curv.htt * v[k];
        }
        for (b, s) in self.gauge.iter().zip(&curv.scales) {
            let sum: f64 = b.iter().map(|&u| v[u]).sum::<f64>() * s / b.len() as f64;
            for &u in b {
                out[u] += sum;
            }
        }
    }

    /// One chunk of [`Self::hess_vec`], added into `out`. Cells come sorted
    /// by `i`, so the `i` side is summed in a register over each run: the
    /// chain of read-modify-writes through memory was the bottleneck.
    fn hess_vec_chunk(
        &self,
        ij: &[[u32; 2]],
        hdd: &[f64],
        hdt: Option<&[f64]>,
        v: &[f64],
        out: &mut [f64],
    ) {
        let k = self.k;
        let Some(&[first, _]) = ij.first() else {
            return;
        };
        let (mut cur, mut acc) = (first as usize, 0.0);
        if let Some(hdt) = hdt {
            let (vk, mut acc_k) = (v[k], 0.0);
            for ((&[i, j], h), t) in ij.iter().zip(hdd).zip(hdt) {
                let (i, j) = (i as usize, j as usize);
                if i != cur {
                    out[cur] += acc;
                    (cur, acc) = (i, 0.0);
                }
                let diff = v[i] - v[j];
                acc += h * diff + t * vk;
                out[j] -= h * diff + t * vk;
                acc_k += t * diff;
            }
            out[k] += acc_k;
        } else {
            for (&[i, j], h) in ij.iter().zip(hdd) {
                let (i, j) = (i as usize, j as usize);
                if i != cur {
                    out[cur] += acc;
                    (cur, acc) = (i, 0.0);
                }
                let dv = h * (v[i] - v[j]);
                acc += dv;
                out[j] -= dv;
            }
        }
        out[cur] += acc;
    }

    /// The dense `(H + G)`, row-major, both triangles.
    pub(crate) fn dense(&self, curv: &Curvature, h: &mut [f64]) {
        let (k, n) = (self.k, self.dim());
        h.fill(0.0);
        for u in 0..k {
            h[u * n + u] = self.alpha;
        }
        for (m, c) in self.cells.iter().enumerate() {
            let t = curv.hdd[m];
            h[c.i * n + c.i] += t;
            h[c.j * n + c.j] += t;
            h[c.i * n + c.j] -= t;
            h[c.j * n + c.i] -= t;
            if self.has_tie_param() {
                let t = curv.hdt[m];
                h[c.i * n + k] += t;
                h[k * n + c.i] += t;
                h[c.j * n + k] -= t;
                h[k * n + c.j] -= t;
            }
        }
        if self.has_tie_param() {
            h[k * n + k] += curv.htt;
        }
        self.add_gauge(h, &curv.scales);
    }

    /// Add the gauge `c_B 1_B 1_Bᵀ / |B|` for every block (the covariance
    /// removes it again by the constraint's projection; see `covariance`).
    fn add_gauge(&self, h: &mut [f64], scales: &[f64]) {
        let n = self.dim();
        for (b, c) in self.gauge.iter().zip(scales) {
            let v = c / b.len() as f64;
            for &p in b {
                for &q in b {
                    h[p * n + q] += v;
                }
            }
        }
    }

    /// Total weight of the cells (the gradient tolerance's scale).
    pub(crate) fn scale(&self) -> f64 {
        self.cells.iter().map(EffCell::total).sum::<f64>().max(1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_derivatives(ties: Ties, c: EffCell, d: f64, tau: f64) {
        let p = Problem {
            k: 2,
            cells: std::slice::from_ref(&c),
            ties,
            alpha: 0.0,
            gauge: &[],
        };
        let x = [d, 0.0, tau];
        let t = p.terms(&c, &x);
        let h = 1e-5;
        let ll = |dd: f64, tt: f64| p.terms(&c, &[dd, 0.0, tt]).ll;
        let gd = |dd: f64, tt: f64| p.terms(&c, &[dd, 0.0, tt]).gd;
        let gt = |dd: f64, tt: f64| p.terms(&c, &[dd, 0.0, tt]).gt;
        let close = |a: f64, b: f64| (a - b).abs() < 1e-6 * (1.0 + a.abs());
        assert!(
            close(t.gd, (ll(d + h, tau) - ll(d - h, tau)) / (2.0 * h)),
            "{ties:?} gd"
        );
        assert!(
            close(t.hdd, -(gd(d + h, tau) - gd(d - h, tau)) / (2.0 * h)),
            "{ties:?} hdd"
        );
        if p.has_tie_param() {
            assert!(
                close(t.gt, (ll(d, tau + h) - ll(d, tau - h)) / (2.0 * h)),
                "{ties:?} gt"
            );
            assert!(
                close(t.htt, -(gt(d, tau + h) - gt(d, tau - h)) / (2.0 * h)),
                "{ties:?} htt"
            );
            assert!(
                close(t.hdt, -(gd(d, tau + h) - gd(d, tau - h)) / (2.0 * h)),
                "{ties:?} hdt"
            );
        }
    }

    #[test]
    fn derivatives_match_finite_differences() {
        let c = EffCell {
            i: 0,
            j: 1,
            wi: 3.0,
            wj: 1.5,
            t: 4.0,
        };
        for &(d, tau) in &[
            (0.3, 0.7),
            (-1.2, -0.4),
            (2.5, 1.3),
            (0.0, 0.05),
            (-30.0, 0.2),
        ] {
            check_derivatives(Ties::Half, EffCell { t: 0.0, ..c }, d, tau);
            check_derivatives(Ties::Davidson, c, d, tau);
            if tau > 0.0 {
                check_derivatives(Ties::RaoKupper, c, d, tau);
            }
        }
    }

    #[test]
    fn scaled_kernels_match_the_stable_ones() {
        let c = EffCell {
            i: 0,
            j: 1,
            wi: 3.0,
            wj: 1.5,
            t: 4.0,
        };
        let points = [
            (0.3, -0.2, 0.7),
            (-1.2, 2.0, -0.4),
            (40.0, -30.0, 1.3),
            (-250.0, 300.0, 5.0),
            (0.0, 0.0, -20.0),
        ];
        for (ties, cell) in [(Ties::Half, EffCell { t: 0.0, ..c }), (Ties::Davidson, c)] {
            let p = Problem {
                k: 2,
                cells: std::slice::from_ref(&cell),
                ties,
                alpha: 0.0,
                gauge: &[],
            };
            for &(ti, tj, lam) in &points {
                let x = [ti, tj, lam];
                let sc = p.scaled(&x).expect("within the spread");
                let (a, b) = (p.terms(&cell, &x), p.terms_with(&cell, &x, Some(&sc)));
                let pairs = [
                    (a.ll, b.ll),
                    (a.gd, b.gd),
                    (a.gt, b.gt),
                    (a.hdd, b.hdd),
                    (a.hdt, b.hdt),
                    (a.htt, b.htt),
                ];
                for (u, v) in pairs {
                    assert!(
                        (u - v).abs() <= 1e-12 * (1.0 + u.abs()),
                        "{ties:?} at {x:?}: {a:?} vs {b:?}"
                    );
                }
            }
            assert!(p.scaled(&[0.0, 700.0, 0.0]).is_none(), "spread too wide");
            assert!(p.scaled(&[0.0, f64::NAN, 0.0]).is_none());
        }
    }

    #[test]
    fn rao_kupper_probabilities_sum_to_one() {
        for &(d, eta) in &[(0.0, 0.5), (3.0, 0.2), (-40.0, 2.0), (800.0, 1.0)] {
            let pt = rk_log_tie(d, eta).exp();
            let total = sigmoid(d - eta) + sigmoid(-d - eta) + pt;
            assert!((total - 1.0).abs() < 1e-12, "d={d} eta={eta}: {total}");
        }
    }

    #[test]
    fn hessian_vector_product_matches_dense() {
        let cells = [
            EffCell {
                i: 0,
                j: 1,
                wi: 3.0,
                wj: 1.0,
                t: 2.0,
            },
            EffCell {
                i: 1,
                j: 2,
                wi: 1.0,
                wj: 4.0,
                t: 1.0,
            },
            EffCell {
                i: 0,
                j: 2,
                wi: 2.0,
                wj: 2.0,
                t: 0.0,
            },
        ];
        let gauge = vec![vec![0, 1, 2]];
        for ties in [Ties::Half, Ties::Davidson, Ties::RaoKupper] {
            let p = Problem {
                k: 3,
                cells: &cells,
                ties,
                alpha: 0.0,
                gauge: &gauge,
            };
            let n = p.dim();
            let x = [0.2, -0.1, 0.4, 0.3];
            let (mut g, mut curv) = (vec![0.0; n], Curvature::default());
            p.eval(&x[..n], &mut g, &mut curv);
            let mut h = vec![0.0; n * n];
            p.dense(&curv, &mut h);
            let v = [0.5, -1.0, 2.0, 0.7];
            let mut out = vec![0.0; n];
            p.hess_vec(&curv, &v[..n], &mut out);
            for i in 0..n {
                let want: f64 = (0..n).map(|j| h[i * n + j] * v[j]).sum();
                assert!((out[i] - want).abs() < 1e-12, "{ties:?} row {i}");
            }
            let diag = p.diagonal(&curv, true);
            for i in 0..n {
                assert!((diag[i] - h[i * n + i]).abs() < 1e-12);
            }
        }
    }
}
