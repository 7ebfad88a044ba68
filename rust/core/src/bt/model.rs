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

use super::Ties;

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
    // One exp and one log1p: ln σ(±d) = −(max(∓d, 0) + ln(1 + e^{−|d|})).
    let n = c.wi + c.wj;
    let e = (-d.abs()).exp();
    let l1p = e.ln_1p();
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
        let k = self.k;
        g.fill(0.0);
        if curv.ij.len() != self.cells.len() {
            curv.ij = self
                .cells
                .iter()
                .map(|c| [c.i as u32, c.j as u32])
                .collect();
        }
        curv.hdd.clear();
        curv.hdt.clear();
        curv.htt = 0.0;
        let mut ll = 0.0;
        for c in self.cells {
            let t = self.terms(c, x);
            ll += t.ll;
            g[c.i] -= t.gd;
            g[c.j] += t.gd;
            curv.hdd.push(t.hdd);
            if self.has_tie_param() {
                g[k] -= t.gt;
                curv.hdt.push(t.hdt);
                curv.htt += t.htt;
            }
        }
        for u in 0..k {
            g[u] += self.alpha * x[u];
        }
        curv.scales.clear();
        if !self.gauge.is_empty() {
            curv.scales = self.gauge_scales(&self.diagonal(curv, false));
        }
        self.finish(ll, x)
    }

    /// Diagonal of `H` (with the gauge when `gauge`).
    pub(crate) fn diagonal(&self, curv: &Curvature, gauge: bool) -> Vec<f64> {
        let mut d = vec![self.alpha; self.dim()];
        for (&[i, j], h) in curv.ij.iter().zip(&curv.hdd) {
            d[i as usize] += h;
            d[j as usize] += h;
        }
        if self.has_tie_param() {
            d[self.k] = curv.htt;
        }
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
        let k = self.k;
        for (o, x) in out.iter_mut().zip(v) {
            *o = self.alpha * x;
        }
        if self.has_tie_param() {
            for ((&[i, j], h), t) in curv.ij.iter().zip(&curv.hdd).zip(&curv.hdt) {
                let (i, j) = (i as usize, j as usize);
                let diff = v[i] - v[j];
                out[i] += h * diff + t * v[k];
                out[j] -= h * diff + t * v[k];
                out[k] += t * diff;
            }
        } else {
            for (&[i, j], h) in curv.ij.iter().zip(&curv.hdd) {
                let (i, j) = (i as usize, j as usize);
                let dv = h * (v[i] - v[j]);
                out[i] += dv;
                out[j] -= dv;
            }
        }
        if self.has_tie_param() {
            out[k] += curv.htt * v[k];
        } else if self.dim() > k {
            out[k] = 0.0;
        }
        for (b, s) in self.gauge.iter().zip(&curv.scales) {
            let sum: f64 = b.iter().map(|&u| v[u]).sum::<f64>() * s / b.len() as f64;
            for &u in b {
                out[u] += sum;
            }
        }
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
        self.add_gauge(h, &curv.scales, false);
    }

    /// Add `c_B 1_B 1_Bᵀ / |B|` for every block, or (`inverse`) subtract
    /// `1_B 1_Bᵀ / (c_B |B|)`, which turns `(H + G)⁻¹` into `H⁺`.
    pub(crate) fn add_gauge(&self, h: &mut [f64], scales: &[f64], inverse: bool) {
        let n = self.dim();
        for (b, c) in self.gauge.iter().zip(scales) {
            let v = if inverse {
                -1.0 / (c * b.len() as f64)
            } else {
                c / b.len() as f64
            };
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
