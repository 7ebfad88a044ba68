//! Style-controlled Bradley-Terry by Newton, battle by battle: no battles x
//! models matrix is ever formed.
//!
//! Model. Battle i between models a_i and b_i with style covariates z_i
//! (length p, side a relative to side b), target y_i in [0, 1] (0.5 for a
//! tie) and weight w_i >= 0 has margin
//! eta_i = theta_{a_i} - theta_{b_i} + gamma . z_i, and the objective is
//!
//!   L = sum_i w_i [log(1 + e^eta_i) - y_i eta_i] + alpha/2 sum_m theta_m^2,
//!
//! with the reference model's theta fixed at 0 (it has no coefficient) and
//! no prior on gamma. Coefficients: the K - 1 other models in index order,
//! then gamma; n = K - 1 + p of them.
//!
//! Method. The design row of a battle has 2 + p non-zeros (+1 at a, -1 at b,
//! z), so the Hessian X^T W X is a weighted graph Laplacian in the model
//! block, a K x p block of signed sums of w s z, and a p x p block. Battles
//! are ordered once by (a, b) (two stable counting sorts, then a copy of
//! z, y and w in that order), so that the sums a Newton pass
//! needs per ordered pair (S = sum w s, R = sum w (p - y), Sz = sum w s z)
//! come out of contiguous runs, and the Hessian is assembled from the pairs
//! (at most min(N, K^2)) rather than the battles. Newton's method from 0
//! with an Armijo backtracking line search (as in the logistic engine); the
//! step solved by the crate's dense Cholesky (`linalg`), with H + mu I for
//! the step only when H is not numerically positive definite. It stops when
//! max |grad| / sum w <= tol. The covariance is the inverse of the penalised
//! Hessian at the last iterate.
//!
//! Separation. When the data leave some direction v with no finite optimum
//! (the longer answer always wins, a model never loses), Newton drifts along
//! v with steps that do not shrink. The last step, the sum of the last three
//! and (without a prior) the coefficients themselves are tested as
//! certificates, as the dense engine does: v passes when every battle with
//! positive weight has margin x_i . v >= 0 if y = 1, <= 0 if y = 0 and 0 if
//! the target is soft, up to `ZERO_MARGIN` times the largest |x_i . v|. A
//! passing direction makes the fit `Separated` and names its coefficients.
//! A run that stops short of `tol` with margins above `HUGE_MARGIN` and no
//! certificate is `Separated` too (coefficients without bound, direction
//! unidentified: no coefficient named).
//!
//! Determinism. A pass splits the sorted order into fixed blocks of
//! `BLOCK` positions; each block's sums run in position order and the blocks
//! are combined in block order, so results are bit-identical for any number
//! of threads.
//!
//! Rejected: the dense design (N x (K - 1 + p) values: 1e10 cells, 80 GB,
//! at K = 1000, N = 1e7, p = 5), per-block dense Hessians (K^2 values per
//! block), atomics for the pair sums (order-dependent rounding), reading the
//! battles through the sort permutation instead of copying them (a pass
//! four times slower), and fresh per-block vectors of pair sums (zeroing
//! their new pages took a third of a pass).
//!
//! Cost at K = 1000, N = 1e7, p = 5 on 2 shared cores: 6.5 s for 6 Newton
//! steps, 640 MB beyond the inputs (the sorted copy is 560 MB of it).

use rayon::prelude::*;

use super::linalg::{cholesky, cholesky_inverse, cholesky_solve};
use crate::logistic::ridged_newton_step;
use crate::{invalid, CoreError, Result};

/// Sorted positions per block of a pass.
const BLOCK: usize = 16_384;
const ARMIJO_C: f64 = 1e-4;
const MAX_HALVINGS: usize = 60;
/// Relative resolution of the summed loss (see the logistic engine).
const LOSS_RESOLUTION: f64 = 1e-12;
/// Certificate tolerance, relative to the largest margin of the direction.
const ZERO_MARGIN: f64 = 1e-6;
/// A margin this large (P = 1 - 1e-13) on a run that did not converge is
/// taken as coefficients without bound.
const HUGE_MARGIN: f64 = 30.0;

/// Most coefficients (models + covariates) a fit takes: its dense Hessian,
/// kept in a few copies, is 3.2 GB at this size.
pub const MAX_COEF: usize = 20_000;

/// Inputs of [`fit_style`]; `z` is `n x p` row-major.
pub struct StyleData<'a> {
    pub a: &'a [u32],
    pub b: &'a [u32],
    pub z: &'a [f64],
    pub p: usize,
    pub y: &'a [f64],
    pub w: &'a [f64],
}

/// Options of [`fit_style`].
#[derive(Clone, Debug)]
pub struct StyleOptions {
    /// Number of models.
    pub k: usize,
    /// The model whose theta is fixed at 0.
    pub reference: usize,
    /// L2 prior on theta (never on gamma).
    pub alpha: f64,
    /// Stop when max |grad| / sum w <= tol.
    pub tol: f64,
    pub max_iter: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StyleStatus {
    Converged,
    MaxIter,
    LineSearchFailed,
    /// No finite optimum: see `StyleFit::separated`.
    Separated,
}

impl StyleStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Converged => "converged",
            Self::MaxIter => "max_iter",
            Self::LineSearchFailed => "line_search_failed",
            Self::Separated => "separated",
        }
    }
}

/// Result of [`fit_style`].
#[derive(Clone, Debug)]
pub struct StyleFit {
    /// K - 1 thetas (models in index order, the reference skipped), then gamma.
    pub coef: Vec<f64>,
    /// Inverse penalised Hessian, n x n row-major; None when separated.
    pub cov: Option<Vec<f64>>,
    pub iterations: usize,
    /// max |grad| / sum w at the last iterate.
    pub grad_norm: f64,
    pub status: StyleStatus,
    /// Coefficient indices along which the data are separated (may be empty
    /// when the status is `Separated` but no direction was certified).
    pub separated: Vec<usize>,
    /// Penalised objective at the last iterate.
    pub objective: f64,
    pub total_weight: f64,
    /// Steps whose system needed H + mu I.
    pub ridge_steps: usize,
}

/// The battles' covariates, targets and weights copied in (a, b) order,
/// and the runs of equal pairs. Reading them scattered through a
/// permutation instead made a pass four times slower (a cache miss per
/// value) for 8 (p + 2) bytes per battle less memory.
struct Sorted {
    z: Vec<f64>,
    y: Vec<f64>,
    w: Vec<f64>,
    /// Start of each pair's run in sorted order, plus the end.
    start: Vec<usize>,
    /// (a, b) of each pair.
    pair: Vec<(u32, u32)>,
    /// Per block of a pass, the first pair whose run starts in it, plus the
    /// number of pairs.
    owned: Vec<usize>,
}

fn sort_pairs(d: &StyleData, k: usize) -> Sorted {
    let (a, b, p) = (d.a, d.b, d.p);
    let n = a.len();
    let counting = |key: &[u32], src: &[u32], dst: &mut [u32]| {
        let mut at = vec![0usize; k + 1];
        for &i in src {
            at[key[i as usize] as usize + 1] += 1;
        }
        for m in 0..k {
            at[m + 1] += at[m];
        }
        for &i in src {
            let c = &mut at[key[i as usize] as usize];
            dst[*c] = i;
            *c += 1;
        }
    };
    let ident: Vec<u32> = (0..n as u32).collect();
    let mut by_b = vec![0u32; n];
    counting(b, &ident, &mut by_b);
    drop(ident);
    let mut perm = vec![0u32; n];
    counting(a, &by_b, &mut perm);
    drop(by_b);
    let (mut start, mut pair) = (Vec::new(), Vec::new());
    for (q, &i) in perm.iter().enumerate() {
        let ab = (a[i as usize], b[i as usize]);
        if pair.last() != Some(&ab) {
            start.push(q);
            pair.push(ab);
        }
    }
    start.push(n);
    let mut owned: Vec<usize> = (0..n.div_ceil(BLOCK))
        .map(|t| start.partition_point(|&x| x < t * BLOCK))
        .collect();
    owned.push(pair.len());
    let mut y = vec![0.0; n];
    let mut w = vec![0.0; n];
    let mut z = vec![0.0; n * p];
    y.par_chunks_mut(BLOCK)
        .zip(w.par_chunks_mut(BLOCK))
        .zip(perm.par_chunks(BLOCK))
        .for_each(|((ys, ws), idx)| {
            for ((yq, wq), &i) in ys.iter_mut().zip(ws.iter_mut()).zip(idx) {
                (*yq, *wq) = (d.y[i as usize], d.w[i as usize]);
            }
        });
    if p > 0 {
        z.par_chunks_mut(BLOCK * p)
            .zip(perm.par_chunks(BLOCK))
            .for_each(|(zs, idx)| {
                for (zq, &i) in zs.chunks_exact_mut(p).zip(idx) {
                    let i = i as usize;
                    zq.copy_from_slice(&d.z[i * p..(i + 1) * p]);
                }
            });
    }
    Sorted {
        z,
        y,
        w,
        start,
        pair,
        owned,
    }
}

/// One block's loss, first pair, the sums of that pair when its run began
/// in an earlier block (else empty), sum w r z and sum w s z z^T.
type BlockSums = (f64, usize, Vec<f64>, Vec<f64>, Vec<f64>);

/// Sums of one pass.
struct PassSums {
    nll: f64,
    /// sum w r z (p) and sum w s z z^T (p x p, upper triangle).
    rz: Vec<f64>,
    szz: Vec<f64>,
}

struct Problem<'a> {
    d: &'a StyleData<'a>,
    o: &'a StyleOptions,
    s: Sorted,
    /// Coefficient of each model (None for the reference).
    col: Vec<Option<usize>>,
    n: usize,
    /// The pair sums' buffer, kept between passes.
    buf: std::sync::Mutex<Vec<f64>>,
}

/// Loss, p(1 - p) and p of one battle at margin `eta` (stable in the tails).
#[inline]
fn row_terms(eta: f64, y: f64) -> (f64, f64, f64) {
    let e = (-eta.abs()).exp();
    let q = 1.0 / (1.0 + e);
    let l = e.ln_1p();
    let prob = if eta >= 0.0 { q } else { e * q };
    let loss_pos = eta.max(0.0) + l; // log(1 + e^eta)
    let loss_neg = (-eta).max(0.0) + l; // log(1 + e^-eta)
    let mut loss = 0.0;
    if y < 1.0 {
        loss += (1.0 - y) * loss_pos;
    }
    if y > 0.0 {
        loss += y * loss_neg;
    }
    (loss, e * q * q, prob)
}

impl Problem<'_> {
    fn theta(&self, beta: &[f64], m: u32) -> f64 {
        self.col[m as usize].map_or(0.0, |c| beta[c])
    }

    /// One pass at `beta`: the loss, and with `pair` (length pairs x
    /// (2 + p), overwritten) the pair sums and the style sums.
    ///
    /// Block `t` owns the pairs whose run starts among its positions and
    /// writes their sums straight into its own slice of `pair`; a run that
    /// began in an earlier block comes back as a carry, added afterwards
    /// in block order. (Collecting every block's pair sums into fresh
    /// vectors cost a third of a pass in zeroing new pages.)
    fn pass(&self, beta: &[f64], pair: Option<&mut [f64]>) -> PassSums {
        let (p, d, s) = (self.d.p, self.d, &self.s);
        let n = d.a.len();
        let gamma = &beta[self.n - p..];
        let width = 2 + p;
        let hess = pair.is_some();
        let owned = &s.owned;
        let blocks = owned.len() - 1;
        let mut slices: Vec<&mut [f64]> = Vec::with_capacity(blocks);
        let mut out_pair = pair;
        if let Some(buf) = out_pair.as_deref_mut() {
            let mut rest = buf;
            for t in 0..blocks {
                let (mine, tail) = rest.split_at_mut((owned[t + 1] - owned[t]) * width);
                slices.push(mine);
                rest = tail;
            }
        } else {
            slices.resize_with(blocks, || &mut []);
        }
        let parts: Vec<BlockSums> = slices
            .into_par_iter()
            .enumerate()
            .map(|(t, mine)| {
                mine.fill(0.0);
                let (lo, hi) = (t * BLOCK, ((t + 1) * BLOCK).min(n));
                // First pair overlapping this block.
                let first = s.start.partition_point(|&x| x <= lo) - 1;
                let mut nll = 0.0;
                let mut carry = vec![0.0; if hess && first < owned[t] { width } else { 0 }];
                let mut rz = vec![0.0; if hess { p } else { 0 }];
                let mut szz = vec![0.0; if hess { p * p } else { 0 }];
                let mut g = first;
                let mut q = lo;
                while q < hi {
                    let end = s.start[g + 1].min(hi);
                    let (ma, mb) = s.pair[g];
                    let base = self.theta(beta, ma) - self.theta(beta, mb);
                    let acc: &mut [f64] = if !hess {
                        &mut []
                    } else if g < owned[t] {
                        &mut carry
                    } else {
                        let at = (g - owned[t]) * width;
                        &mut mine[at..at + width]
                    };
                    for i in q..end {
                        let w = s.w[i];
                        if w <= 0.0 {
                            continue;
                        }
                        let zi = &s.z[i * p..(i + 1) * p];
                        let mut eta = base;
                        for (gj, zj) in gamma.iter().zip(zi) {
                            eta += gj * zj;
                        }
                        let (loss, var, prob) = row_terms(eta, s.y[i]);
                        nll += w * loss;
                        if hess {
                            let (ws, wr) = (w * var, w * (prob - s.y[i]));
                            acc[0] += ws;
                            acc[1] += wr;
                            for j in 0..p {
                                acc[2 + j] += ws * zi[j];
                                rz[j] += wr * zi[j];
                                let wz = ws * zi[j];
                                for l in j..p {
                                    szz[j * p + l] += wz * zi[l];
                                }
                            }
                        }
                    }
                    q = end;
                    g += 1;
                }
                (nll, first, carry, rz, szz)
            })
            .collect();
        let mut out = PassSums {
            nll: 0.0,
            rz: vec![0.0; if hess { p } else { 0 }],
            szz: vec![0.0; if hess { p * p } else { 0 }],
        };
        for (nll, first, carry, rz, szz) in parts {
            out.nll += nll;
            if let Some(buf) = out_pair.as_deref_mut() {
                let dst = &mut buf[first * width..first * width + carry.len()];
                for (u, v) in dst.iter_mut().zip(&carry) {
                    *u += v;
                }
                for (u, v) in out.rz.iter_mut().zip(&rz) {
                    *u += v;
                }
                for (u, v) in out.szz.iter_mut().zip(&szz) {
                    *u += v;
                }
            }
        }
        out
    }

    fn ridge(&self, beta: &[f64]) -> f64 {
        if self.o.alpha == 0.0 {
            return 0.0;
        }
        let t: f64 = beta[..self.n - self.d.p].iter().map(|v| v * v).sum();
        0.5 * self.o.alpha * t
    }

    /// Penalised objective, gradient and full Hessian (row-major) at `beta`.
    fn evaluate(&self, beta: &[f64]) -> Eval {
        let (p, n) = (self.d.p, self.n);
        let width = 2 + p;
        let mut pair_sums = self
            .buf
            .lock()
            .map(|mut b| std::mem::take(&mut *b))
            .unwrap_or_default();
        pair_sums.resize(self.s.pair.len() * width, 0.0);
        let sums = self.pass(beta, Some(&mut pair_sums));
        let kt = n - p;
        let mut g = vec![0.0; n];
        let mut h = vec![0.0; n * n];
        for (pr, acc) in self.s.pair.iter().zip(pair_sums.chunks_exact(width)) {
            let (ca, cb) = (self.col[pr.0 as usize], self.col[pr.1 as usize]);
            let (sv, rv, sz) = (acc[0], acc[1], &acc[2..]);
            if let Some(a) = ca {
                g[a] += rv;
                h[a * n + a] += sv;
                for j in 0..p {
                    h[a * n + kt + j] += sz[j];
                }
            }
            if let Some(b) = cb {
                g[b] -= rv;
                h[b * n + b] += sv;
                for j in 0..p {
                    h[b * n + kt + j] -= sz[j];
                }
            }
            if let (Some(a), Some(b)) = (ca, cb) {
                h[a * n + b] -= sv;
                h[b * n + a] -= sv;
            }
        }
        for j in 0..p {
            g[kt + j] = sums.rz[j];
            for l in j..p {
                h[(kt + j) * n + kt + l] = sums.szz[j * p + l];
                h[(kt + l) * n + kt + j] = sums.szz[j * p + l];
            }
        }
        // The model x style block is filled above the diagonal; mirror it.
        for m in 0..kt {
            for j in 0..p {
                h[(kt + j) * n + m] = h[m * n + kt + j];
            }
        }
        if self.o.alpha > 0.0 {
            for m in 0..kt {
                g[m] += self.o.alpha * beta[m];
                h[m * n + m] += self.o.alpha;
            }
        }
        if let Ok(mut b) = self.buf.lock() {
            *b = pair_sums;
        }
        let obj = sums.nll + self.ridge(beta);
        Eval { obj, g, h }
    }

    fn objective(&self, beta: &[f64]) -> f64 {
        self.pass(beta, None).nll + self.ridge(beta)
    }

    /// Largest |x_i . v| over battles with positive weight, and the largest
    /// violation of the separation conditions by v.
    fn margins(&self, v: &[f64]) -> (f64, f64) {
        let (d, p) = (self.d, self.d.p);
        let kt = self.n - p;
        let gamma = &v[kt..];
        let n = d.a.len();
        (0..n.div_ceil(BLOCK))
            .into_par_iter()
            .map(|t| {
                let (mut big, mut bad) = (0.0f64, 0.0f64);
                for i in t * BLOCK..((t + 1) * BLOCK).min(n) {
                    if d.w[i] <= 0.0 {
                        continue;
                    }
                    let mut m = self.theta(v, d.a[i]) - self.theta(v, d.b[i]);
                    for (gj, zj) in gamma.iter().zip(&d.z[i * p..(i + 1) * p]) {
                        m += gj * zj;
                    }
                    big = big.max(m.abs());
                    let y = d.y[i];
                    let viol = if y >= 1.0 {
                        (-m).max(0.0)
                    } else if y <= 0.0 {
                        m.max(0.0)
                    } else {
                        m.abs()
                    };
                    bad = bad.max(viol);
                }
                (big, bad)
            })
            .reduce(|| (0.0, 0.0), |x, y| (x.0.max(y.0), x.1.max(y.1)))
    }
}

struct Eval {
    obj: f64,
    g: Vec<f64>,
    h: Vec<f64>,
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0, |m, x| m.max(x.abs()))
}

/// Solve H step = -g by the blocked Cholesky of [`super::linalg`], with the
/// logistic engine's safeguard (H + mu I when H is not numerically positive
/// definite).
fn newton_step(h: &[f64], g: &[f64], n: usize) -> Option<(Vec<f64>, bool)> {
    ridged_newton_step(h, g, n, |a, b| {
        let ok = cholesky(a, n);
        if ok {
            cholesky_solve(a, n, b);
        }
        ok
    })
}

fn validate(d: &StyleData, o: &StyleOptions) -> Result<()> {
    let n = d.a.len();
    if o.k < 2 {
        return Err(invalid!(
            "k = {}: style control needs at least 2 models",
            o.k
        ));
    }
    if o.reference >= o.k {
        return Err(invalid!(
            "reference model {} out of range (k = {})",
            o.reference,
            o.k
        ));
    }
    if !(o.alpha.is_finite() && o.alpha >= 0.0) {
        return Err(invalid!(
            "alpha = {}; expected a finite value >= 0",
            o.alpha
        ));
    }
    if !(o.tol.is_finite() && o.tol > 0.0) {
        return Err(invalid!("tol = {}; expected a finite value > 0", o.tol));
    }
    if n > u32::MAX as usize {
        return Err(invalid!("{n} battles: at most {} are supported", u32::MAX));
    }
    for (name, len) in [("b", d.b.len()), ("y", d.y.len()), ("w", d.w.len())] {
        if len != n {
            return Err(invalid!("length of {name} is {len}; a has {n} battles"));
        }
    }
    if o.k.saturating_add(d.p) > MAX_COEF {
        return Err(invalid!(
            "{} models and {} style covariates: at most {MAX_COEF} coefficients \
             (the dense Hessian has their square)",
            o.k,
            d.p
        ));
    }
    if n.checked_mul(d.p) != Some(d.z.len()) {
        return Err(invalid!(
            "z has {} values; expected battles x p = {n} x {}",
            d.z.len(),
            d.p
        ));
    }
    for i in 0..n {
        let (a, b) = (d.a[i], d.b[i]);
        if a as usize >= o.k || b as usize >= o.k {
            return Err(invalid!(
                "battle {i}: model index {} out of range (k = {})",
                a.max(b),
                o.k
            ));
        }
        if a == b {
            return Err(invalid!("battle {i}: model {a} against itself"));
        }
        let (y, w) = (d.y[i], d.w[i]);
        if !(y.is_finite() && (0.0..=1.0).contains(&y)) {
            return Err(invalid!(
                "battle {i}: target y = {y}; expected a value in [0, 1]"
            ));
        }
        if !(w.is_finite() && w >= 0.0) {
            return Err(invalid!(
                "battle {i}: weight {w}; expected a finite value >= 0"
            ));
        }
        if let Some(j) = d.z[i * d.p..(i + 1) * d.p]
            .iter()
            .position(|v| !v.is_finite())
        {
            return Err(invalid!("battle {i}: style covariate {j} is not finite"));
        }
    }
    Ok(())
}

/// Fit style-controlled Bradley-Terry (see the module notes).
pub fn fit_style(d: &StyleData, o: &StyleOptions) -> Result<StyleFit> {
    validate(d, o)?;
    let w_total: f64 = d.w.iter().sum();
    if !(w_total > 0.0 && w_total.is_finite()) {
        return Err(invalid!(
            "total weight {w_total}: no battle with positive weight to fit"
        ));
    }
    let kt = o.k - 1;
    let n = kt + d.p;
    let col: Vec<Option<usize>> = (0..o.k)
        .map(|m| match m.cmp(&o.reference) {
            std::cmp::Ordering::Less => Some(m),
            std::cmp::Ordering::Equal => None,
            std::cmp::Ordering::Greater => Some(m - 1),
        })
        .collect();
    let pr = Problem {
        d,
        o,
        s: sort_pairs(d, o.k),
        col,
        n,
        buf: std::sync::Mutex::new(Vec::new()),
    };
    let mut beta = vec![0.0; n];
    let mut e = pr.evaluate(&beta);
    let mut grad_norm = max_abs(&e.g) / w_total;
    let (mut iterations, mut ridge_steps) = (0, 0);
    let mut steps: Vec<Vec<f64>> = Vec::new();
    let status = loop {
        if !grad_norm.is_finite() {
            return Err(CoreError::Fit(format!(
                "style control: the gradient is not finite after {iterations} Newton steps"
            )));
        }
        if grad_norm <= o.tol {
            break StyleStatus::Converged;
        }
        if iterations >= o.max_iter {
            break StyleStatus::MaxIter;
        }
        let Some((step, ridged)) = newton_step(&e.h, &e.g, n) else {
            break StyleStatus::LineSearchFailed;
        };
        let slope: f64 = e.g.iter().zip(&step).map(|(a, b)| a * b).sum();
        if slope.is_nan() || slope >= 0.0 {
            break StyleStatus::LineSearchFailed;
        }
        let resolution = LOSS_RESOLUTION * e.obj.abs().max(f64::MIN_POSITIVE);
        let mut t = 1.0;
        let mut found = None;
        for _ in 0..MAX_HALVINGS {
            let cand: Vec<f64> = beta.iter().zip(&step).map(|(b, s)| b + t * s).collect();
            let (obj, full) = if t == 1.0 {
                let ev = pr.evaluate(&cand);
                (ev.obj, Some(ev))
            } else {
                (pr.objective(&cand), None)
            };
            let small = t == 1.0 && -slope <= resolution && obj <= e.obj + resolution;
            if obj <= e.obj + ARMIJO_C * t * slope || small {
                let ev = full.unwrap_or_else(|| pr.evaluate(&cand));
                found = Some((cand, ev));
                break;
            }
            t *= 0.5;
        }
        let Some((cand, ev)) = found else {
            break StyleStatus::LineSearchFailed;
        };
        steps.push(cand.iter().zip(&beta).map(|(a, b)| a - b).collect());
        if steps.len() > 3 {
            steps.remove(0);
        }
        beta = cand;
        e = ev;
        grad_norm = max_abs(&e.g) / w_total;
        iterations += 1;
        ridge_steps += usize::from(ridged);
    };
    let separated = separation(&pr, &beta, &steps, status);
    let (status, cov, separated) = match separated {
        Some(involved) => (StyleStatus::Separated, None, involved),
        None => {
            let mut l = e.h.clone();
            if !cholesky(&mut l, n) {
                return Err(singular(&e.h, n, kt, o.reference));
            }
            (status, Some(cholesky_inverse(&l, n)), Vec::new())
        }
    };
    Ok(StyleFit {
        coef: beta,
        cov,
        iterations,
        grad_norm,
        status,
        separated,
        objective: e.obj,
        total_weight: w_total,
        ridge_steps,
    })
}

/// The coefficients of a certified separating direction, Some(empty) for
/// unbounded coefficients without a certificate, or None.
fn separation(
    pr: &Problem,
    beta: &[f64],
    steps: &[Vec<f64>],
    status: StyleStatus,
) -> Option<Vec<usize>> {
    let mut cands: Vec<Vec<f64>> = Vec::new();
    if let Some(last) = steps.last() {
        cands.push(last.clone());
    }
    if steps.len() > 1 {
        let mut sum = vec![0.0; beta.len()];
        for s in steps {
            sum.iter_mut().zip(s).for_each(|(u, v)| *u += v);
        }
        cands.push(sum);
    }
    if pr.o.alpha == 0.0 {
        cands.push(beta.to_vec());
    }
    for v in &cands {
        if max_abs(v) == 0.0 {
            continue;
        }
        let (big, bad) = pr.margins(v);
        if big > 0.0 && bad <= ZERO_MARGIN * big {
            let top = max_abs(v);
            // Coefficients that carry the direction (1e-3 of its largest).
            let involved = (0..v.len()).filter(|&j| v[j].abs() > 1e-3 * top).collect();
            return Some(involved);
        }
    }
    if status != StyleStatus::Converged && pr.margins(beta).0 > HUGE_MARGIN {
        return Some(Vec::new());
    }
    None
}

/// The error for a Hessian without a Cholesky factor at the optimum.
/// Models are named `model #m` (their index) and covariates `style
/// covariate #j`, so that a caller can put names in.
fn singular(h: &[f64], n: usize, kt: usize, reference: usize) -> CoreError {
    let name = |j: usize| {
        if j < kt {
            format!("model #{}", if j < reference { j } else { j + 1 })
        } else {
            format!("style covariate #{}", j - kt)
        }
    };
    let zero: Vec<String> = (0..n).filter(|&j| h[j * n + j] <= 0.0).map(name).collect();
    let why = if zero.is_empty() {
        "collinear style covariates, or models whose battles do not tie them to the rest"
            .to_string()
    } else {
        format!("no information on {}", zero.join(", "))
    };
    CoreError::Fit(format!(
        "style control: the Hessian is singular at the optimum ({why}); set alpha > 0 \
         or drop the offending covariates"
    ))
}

#[cfg(test)]
#[path = "style_tests.rs"]
mod tests;
