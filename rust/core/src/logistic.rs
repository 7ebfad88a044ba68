//! Logistic / Bradley-Terry regression on feature differences, by Newton.
//!
//! Model. Row i has features x_i (for Bradley-Terry: standardised features of
//! the chosen response minus those of the rejected one), a target
//! y_i in [0, 1] (fractional targets are soft labels; 0.5 encodes a tie) and a
//! weight w_i >= 0. With margin eta_i = x_i . beta the objective is
//!
//!   L(beta) = sum_i w_i [log(1 + e^eta_i) - y_i eta_i] + l2/2 sum_{j pen} beta_j^2,
//!
//! the weighted Bernoulli (cross-entropy) negative log-likelihood plus an
//! optional ridge on the coefficients not marked unpenalised. There is no
//! implicit intercept: a caller who wants one adds a column of ones.
//!
//! Method. Newton's method from beta = 0 with an Armijo backtracking line
//! search on L (Nocedal & Wright, *Numerical Optimization*, 2nd ed., 2006,
//! algorithm 3.1 and section 3.4). The step system is solved by a dense
//! Cholesky factorisation; when the Hessian is not clearly positive definite
//! the step (only the step) uses H + mu I with a growing mu, and the count of
//! such steps is reported. The fit stops when ||grad L||_inf / sum_i w_i <= tol:
//! dividing by the total weight makes `tol` a per-observation gradient, so
//! the same tolerance means the same thing for 100 rows and for 10^7 rows.
//! Standard errors are the square roots of the diagonal of the inverse
//! Hessian of the *penalised* objective at the optimum (for l2 > 0 this is
//! the Gaussian-prior posterior covariance, not a sandwich estimate).
//!
//! Separation. The unpenalised maximum-likelihood estimate is infinite when
//! some direction v with Xv != 0 never raises the loss: rows with x_i.v > 0
//! all have y = 1, rows with x_i.v < 0 all have y = 0, and soft-target rows
//! have x_i.v = 0 (Albert & Anderson, Biometrika 71, 1984). Newton then
//! drifts along v and stops wherever its budget runs out. It is detected by
//! (1) an exact check of every single feature column, and (2) a certificate
//! test of the directions Newton drifted along (its last steps and beta
//! itself): a direction passes when it separates the rows with a margin
//! above `ZERO_MARGIN` times the largest margin. So that the verdict does
//! not depend on the caller's `tol` or `max_iter`, a run that stopped short
//! of a strict gradient tolerance is continued privately (`probe`) before
//! the test; its iterate is never returned. A direction inside the
//! unpenalised coefficients makes the fit `Separated` (its coefficients must
//! not be used); one the ridge bounds is reported as information only.
//! The certificate is sound (a passing direction does separate the rows, up
//! to `ZERO_MARGIN`) but not proven complete; during development it agreed
//! with an exact LP verdict on 1,200 random small designs (continuous,
//! discrete and soft targets).
//!
//! Passes. Each iteration reads the rows once (see `pass.rs` for the
//! kernels): a trial point's loss, gradient and Hessian come from one pass,
//! so an accepted full Newton step needs no second pass, and only shorter
//! trials of the line search cost a loss-only pass each. The first pass of a
//! fit also collects each column's sign ranges for the single-feature
//! separation check, and the certificate test settles most candidates on
//! the first few thousand rows, so on data that are not separated the
//! checks cost no full pass.
//!
//! Determinism. Every sum over rows runs over fixed blocks of `CHUNK` rows
//! combined by a binary tree whose shape depends only on the row count, so
//! results are bit-identical whatever the number of rayon threads.
//!
//! Rejected alternatives: IRLS without a line search (can diverge from a poor
//! start); fixed-step gradient descent (its answer on separated data depends
//! on the step budget); the exact linear-programming separation check of
//! Konis (2007), which also finds every combination but needs an LP solver;
//! reusing a Hessian over several steps, and starting the cross-validation
//! folds from the full fit (both change the iterates, so fold results would
//! depend on them at the level of `tol`, and the drift the separation check
//! reads with them). L-BFGS and OWL-QN for many features (`lbfgs.rs`) reuse
//! `Data`, the passes and the separation report, swapping only `newton`.

use rayon::prelude::*;

use crate::error::{CoreError, Result};
use crate::invalid;

mod lbfgs;
mod pass;
mod two_way;
use pass::{padded, Block, Sums, Want};
pub use two_way::{fit_two_way, TwoWayData, TwoWayFit};

/// Element types the feature matrix may have; it is read in place.
pub trait Real: Copy + Send + Sync + std::fmt::Display + 'static {
    fn to_f64(self) -> f64;

    /// Convert `src` into `dst` (same length).
    #[inline]
    fn widen(src: &[Self], dst: &mut [f64]) {
        for (d, v) in dst.iter_mut().zip(src) {
            *d = v.to_f64();
        }
    }

    /// Whether every value is finite; no early exit, so it vectorises.
    #[inline]
    fn all_finite(v: &[Self]) -> bool {
        v.iter().fold(true, |ok, x| ok & x.to_f64().is_finite())
    }
}

impl Real for f64 {
    #[inline]
    fn to_f64(self) -> f64 {
        self
    }

    /// In pieces of four and a hand-unrolled tail: a row is short, and a
    /// copy of unknown length becomes a call to `memcpy` that costs more
    /// than the copy.
    #[inline]
    fn widen(src: &[Self], dst: &mut [f64]) {
        let (mut d, mut s) = (dst.chunks_exact_mut(4), src.chunks_exact(4));
        for (dc, sc) in (&mut d).zip(&mut s) {
            dc[..4].copy_from_slice(&sc[..4]);
        }
        match (d.into_remainder(), s.remainder()) {
            ([a], [u]) => *a = *u,
            ([a, b], [u, v]) => (*a, *b) = (*u, *v),
            ([a, b, c], [u, v, w]) => (*a, *b, *c) = (*u, *v, *w),
            _ => {}
        }
    }
}

impl Real for f32 {
    #[inline]
    fn to_f64(self) -> f64 {
        f64::from(self)
    }

    #[inline]
    fn widen(src: &[Self], dst: &mut [f64]) {
        pass::widen_f32(src, dst);
    }
}

/// Which optimiser fits the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Solver {
    /// Newton when `l1 == 0` and `p <= NEWTON_MAX_P`, else L-BFGS.
    Auto,
    Newton,
    /// L-BFGS, or OWL-QN when `l1 > 0` (see `lbfgs.rs`).
    Lbfgs,
}

impl Solver {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Newton => "newton",
            Self::Lbfgs => "lbfgs",
        }
    }

    /// Parse "auto", "newton" or "lbfgs".
    ///
    /// # Errors
    ///
    /// `InvalidInput` naming the unknown value.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(Self::Auto),
            "newton" => Ok(Self::Newton),
            "lbfgs" => Ok(Self::Lbfgs),
            _ => Err(invalid!(
                "solver = {s:?}; expected \"auto\", \"newton\" or \"lbfgs\""
            )),
        }
    }
}

/// Above this many features `Solver::Auto` picks L-BFGS: a Newton pass costs
/// O(n p^2) against O(n p), and Newton's ~8 passes stop paying for
/// L-BFGS's ~50-100 near p = 32.
pub const NEWTON_MAX_P: usize = 32;

/// Options of [`fit`] and [`kfold`].
#[derive(Debug, Clone, PartialEq)]
pub struct FitOptions {
    /// Ridge strength lambda >= 0 on the penalised coefficients.
    pub l2: f64,
    /// Lasso strength >= 0 on the penalised coefficients (L-BFGS only).
    pub l1: f64,
    /// `true` for coefficients the penalties leave alone (an intercept, say).
    pub unpenalized: Option<Vec<bool>>,
    /// Stop when max_j |dL/dbeta_j| / sum_i w_i <= tol.
    pub tol: f64,
    /// At most this many Newton or L-BFGS steps (>= 1).
    pub max_iter: usize,
    pub solver: Solver,
    /// Quasi-Newton pairs kept by L-BFGS (>= 1).
    pub history: usize,
    /// Compute the inverse Hessian (one O(n p^2) pass after L-BFGS; free
    /// after Newton). Never with `l1 > 0`.
    pub covariance: bool,
}

impl Default for FitOptions {
    fn default() -> Self {
        Self {
            l2: 0.0,
            l1: 0.0,
            unpenalized: None,
            tol: 1e-8,
            max_iter: 100,
            solver: Solver::Auto,
            history: 10,
            covariance: true,
        }
    }
}

/// How a fit ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FitStatus {
    /// The gradient tolerance was met.
    Converged,
    /// `max_iter` steps were taken before the tolerance was met.
    MaxIter,
    /// No step along the Newton direction lowered the objective.
    LineSearchFailed,
    /// The optimum is infinite along a direction the ridge does not bound:
    /// coefficients and standard errors must not be used.
    Separated,
}

impl FitStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Converged => "converged",
            Self::MaxIter => "max_iter",
            Self::LineSearchFailed => "line_search_failed",
            Self::Separated => "separated",
        }
    }
}

/// Result of [`fit`].
#[derive(Debug, Clone, PartialEq)]
pub struct LogisticFit {
    /// Coefficients at the last iterate (meaningless when `Separated`).
    pub coef: Vec<f64>,
    /// Inverse penalised Hessian at the last iterate, p x p row-major;
    /// `None` when separated.
    pub cov: Option<Vec<f64>>,
    /// Square roots of the diagonal of `cov`.
    pub se: Option<Vec<f64>>,
    /// Newton steps taken.
    pub n_iter: usize,
    /// max_j |dL/dbeta_j| / sum_i w_i at the last iterate (compared to tol).
    pub grad_norm: f64,
    /// Whether the gradient tolerance was met.
    pub converged: bool,
    pub status: FitStatus,
    /// Data term of the objective (weighted negative log-likelihood).
    pub nll: f64,
    /// Ridge term l2/2 sum_{j pen} beta_j^2.
    pub penalty: f64,
    /// Features involved in a separation, fatal or not (sorted).
    pub separated_features: Vec<usize>,
    /// A certified separating direction (max |v_j| = 1), when one was found.
    pub separating_direction: Option<Vec<f64>>,
    /// Newton steps whose system needed the ridge safeguard.
    pub ridge_steps: usize,
    /// The solver that ran (never `Auto`).
    pub solver: Solver,
    /// Rows with positive weight.
    pub n_obs: usize,
    /// Sum of the weights.
    pub total_weight: f64,
}

/// Rows rebuilt per leaf of the reduction tree; fixed so that the tree, and
/// hence every rounding, is the same whatever the thread count.
const CHUNK: usize = 1024;
/// A Cholesky pivot at or below this fraction of its diagonal entry counts
/// as zero (the column is numerically a combination of earlier ones).
const PIVOT_REL: f64 = 1e-12;
/// Sufficient-decrease constant of the Armijo test.
const ARMIJO_C: f64 = 1e-4;
/// Step halvings before the line search gives up.
const MAX_HALVINGS: usize = 60;
/// Relative resolution of a sum of many loss terms in f64.
const LOSS_RESOLUTION: f64 = 1e-12;
/// Margins below this fraction of the largest count as zero in the
/// separation certificate.
const ZERO_MARGIN: f64 = 1e-6;
/// A separating direction's components contributing less than this fraction
/// of the largest are dropped when naming the features involved.
const CLEAN_REL: f64 = 1e-3;
/// Leaves of rows the quick refutation of a separating direction looks at.
const REFUTE_LEAVES: usize = 8;
/// Gradient tolerance and extra step budget of the separation probe.
const PROBE_TOL: f64 = 1e-10;
const PROBE_ITER: usize = 50;

/// The rows a fit sees: the whole matrix, or a list of row indices into it
/// (cross-validation folds), never a copy.
struct Data<'a, T> {
    x: &'a [T],
    p: usize,
    y: &'a [f64],
    w: Option<&'a [f64]>,
    rows: Option<&'a [usize]>,
    n: usize,
}

impl<T: Real> Data<'_, T> {
    fn len(&self) -> usize {
        self.rows.map_or(self.n, <[usize]>::len)
    }

    fn row(&self, k: usize) -> usize {
        self.rows.map_or(k, |r| r[k])
    }

    fn weight(&self, i: usize) -> f64 {
        self.w.map_or(1.0, |w| w[i])
    }

    fn load(&self, i: usize, buf: &mut [f64]) {
        T::widen(&self.x[i * self.p..(i + 1) * self.p], buf);
    }

    /// Fold `f` over the blocks (see `pass.rs`) of the rows with positive
    /// weight, leaf by leaf, merging the leaves by `merge` in the fixed tree
    /// of [`reduce`].
    fn fold_blocks<A, I, F, M>(&self, init: I, f: F, merge: M) -> A
    where
        A: Send,
        I: Fn() -> A + Sync,
        F: Fn(&mut A, &mut Block) + Sync,
        M: Fn(A, A) -> A + Sync,
    {
        let leaf = |a: usize, b: usize| {
            let (mut blk, mut acc) = (Block::take(self.p), init());
            self.blocks(a, b, &mut blk, |blk| f(&mut acc, blk));
            blk.give_back();
            acc
        };
        reduce(self.len(), &leaf, &merge)
    }
}

/// Sum (in the sense of `merge`) `leaf` over fixed blocks of `CHUNK`
/// positions of `0..len`, combined by a binary tree split at fixed block
/// boundaries: the result does not depend on how rayon schedules it.
fn reduce<A, F, M>(len: usize, leaf: &F, merge: &M) -> A
where
    A: Send,
    F: Fn(usize, usize) -> A + Sync,
    M: Fn(A, A) -> A + Sync,
{
    fn tree<A: Send, F, M>(c0: usize, c1: usize, len: usize, leaf: &F, merge: &M) -> A
    where
        F: Fn(usize, usize) -> A + Sync,
        M: Fn(A, A) -> A + Sync,
    {
        if c1 - c0 <= 1 {
            return leaf((c0 * CHUNK).min(len), (c1 * CHUNK).min(len));
        }
        let mid = c0 + (c1 - c0) / 2;
        let (a, b) = rayon::join(
            || tree(c0, mid, len, leaf, merge),
            || tree(mid, c1, len, leaf, merge),
        );
        merge(a, b)
    }
    tree(0, len.div_ceil(CHUNK).max(1), len, leaf, merge)
}

/// Dot product with four accumulators (vectorisable; fixed order).
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f64 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(u, v)| u * v)
        .sum();
    for (u, v) in ca.zip(cb) {
        for l in 0..4 {
            acc[l] += u[l] * v[l];
        }
    }
    ((acc[0] + acc[1]) + (acc[2] + acc[3])) + tail
}

fn add_into(acc: &mut [f64], other: &[f64]) {
    for (a, b) in acc.iter_mut().zip(other) {
        *a += b;
    }
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0, |m, x| m.max(x.abs()))
}

/// log(1 + e^t) without overflow.
fn softplus(t: f64) -> f64 {
    t.max(0.0) + (-t.abs()).exp().ln_1p()
}

/// log(1 + e^eta) - y eta written as (1 - y) softplus(eta) + y softplus(-eta),
/// each term skipped when its weight is zero: exact in both tails, and an
/// infinite margin gives +inf, never NaN.
fn row_loss(eta: f64, y: f64) -> f64 {
    let mut loss = 0.0;
    if y < 1.0 {
        loss += (1.0 - y) * softplus(eta);
    }
    if y > 0.0 {
        loss += y * softplus(-eta);
    }
    loss
}

fn sigmoid(t: f64) -> f64 {
    if t >= 0.0 {
        1.0 / (1.0 + (-t).exp())
    } else {
        let e = t.exp();
        e / (1.0 + e)
    }
}

/// sigma(t) (1 - sigma(t)) = e^-|t| / (1 + e^-|t|)^2, accurate in the tails.
fn sigmoid_var(t: f64) -> f64 {
    let e = (-t.abs()).exp();
    e / ((1.0 + e) * (1.0 + e))
}

/// Negative log-likelihood, gradient and Hessian (p x p row-major, upper
/// triangle only) or its diagonal, of the data term.
struct Eval {
    nll: f64,
    grad: Vec<f64>,
    hess: Vec<f64>,
    diag: Vec<f64>,
}

/// One pass over the rows at `beta`: the loss, and the gradient and the
/// Hessian when `want` asks for them (see `pass.rs`).
fn evaluate<T: Real>(d: &Data<T>, beta: &[f64], want: Want) -> Eval {
    evaluate_with(d, beta, want, false).0
}

/// [`evaluate`], also collecting the sign ranges of the columns when
/// `signs` (the first pass of a fit does, so that the single-feature
/// separation check costs no pass of its own).
fn evaluate_with<T: Real>(
    d: &Data<T>,
    beta: &[f64],
    want: Want,
    signs: bool,
) -> (Eval, Option<SignRanges>) {
    let (p, s) = (d.p, padded(d.p));
    let bp = pad(beta, s);
    let (sums, ranges) = d.fold_blocks(
        || (Sums::new(s, want), signs.then(|| SignRanges::new(s))),
        |(acc, rg), blk| {
            pass::accumulate(blk, &bp, want, acc);
            if let Some(rg) = rg {
                rg.add(blk);
            }
        },
        |(a, ra), (b, rb)| (a.merge(b), ra.zip(rb).map(|(x, y)| x.merge(y))),
    );
    let (mut grad, mut diag) = (sums.grad, sums.diag);
    grad.truncate(p);
    diag.truncate(p);
    let hess = if want == Want::Hess {
        sums.hess
            .chunks_exact(s)
            .take(p)
            .flat_map(|r| &r[..p])
            .copied()
            .collect()
    } else {
        Vec::new()
    };
    let e = Eval {
        nll: sums.nll,
        grad,
        hess,
        diag,
    };
    (e, ranges)
}

/// The ridge: which coefficients it touches, and how hard.
struct Ridge<'a> {
    l2: f64,
    free: &'a [bool],
}

impl Ridge<'_> {
    fn value(&self, beta: &[f64]) -> f64 {
        if self.l2 == 0.0 {
            return 0.0;
        }
        let s: f64 = beta
            .iter()
            .zip(self.free)
            .filter(|(_, f)| !**f)
            .map(|(b, _)| b * b)
            .sum();
        0.5 * self.l2 * s
    }

    /// Add the ridge's gradient and Hessian to a data-term evaluation and
    /// return the Hessian as a full row-major matrix.
    fn complete(&self, e: &mut Eval, beta: &[f64]) -> Vec<f64> {
        let p = beta.len();
        let mut h = vec![0.0; p * p];
        for j in 0..p {
            for k in j..p {
                h[j * p + k] = e.hess[j * p + k];
                h[k * p + j] = e.hess[j * p + k];
            }
            if !self.free[j] {
                e.grad[j] += self.l2 * beta[j];
                h[j * p + j] += self.l2;
            }
        }
        h
    }
}

/// Dense Cholesky factor L (row-major, lower) of a symmetric matrix, or the
/// first column whose pivot is not clearly positive.
fn cholesky(a: &[f64], p: usize) -> std::result::Result<Vec<f64>, usize> {
    let mut l = vec![0.0; p * p];
    for j in 0..p {
        let s = a[j * p + j] - dot(&l[j * p..j * p + j], &l[j * p..j * p + j]);
        let clear = s.is_finite() && s > PIVOT_REL * a[j * p + j].abs();
        if !clear {
            return Err(j);
        }
        let djj = s.sqrt();
        l[j * p + j] = djj;
        for i in j + 1..p {
            let s = a[i * p + j] - dot(&l[i * p..i * p + j], &l[j * p..j * p + j]);
            l[i * p + j] = s / djj;
        }
    }
    Ok(l)
}

/// Solve L L^T x = b in place.
fn chol_solve(l: &[f64], p: usize, b: &mut [f64]) {
    for i in 0..p {
        let s = b[i] - dot(&l[i * p..i * p + i], &b[..i]);
        b[i] = s / l[i * p + i];
    }
    for i in (0..p).rev() {
        let s: f64 = (i + 1..p).map(|k| l[k * p + i] * b[k]).sum();
        b[i] = (b[i] - s) / l[i * p + i];
    }
}

fn chol_inverse(l: &[f64], p: usize) -> Vec<f64> {
    let mut inv = vec![0.0; p * p];
    let mut col = vec![0.0; p];
    for j in 0..p {
        col.iter_mut()
            .enumerate()
            .for_each(|(i, c)| *c = f64::from(u8::from(i == j)));
        chol_solve(l, p, &mut col);
        for i in 0..p {
            inv[i * p + j] = col[i];
        }
    }
    // Symmetrise: the two triangles differ only by rounding.
    for i in 0..p {
        for j in i + 1..p {
            let m = 0.5 * (inv[i * p + j] + inv[j * p + i]);
            inv[i * p + j] = m;
            inv[j * p + i] = m;
        }
    }
    inv
}

/// Newton direction solving H step = -g. When H is not clearly positive
/// definite the system (never the objective) gets H + mu I, mu growing from
/// 1e-10 times the largest diagonal entry. Returns the step and whether the
/// safeguard was needed.
fn newton_step(h: &[f64], g: &[f64], p: usize) -> Option<(Vec<f64>, bool)> {
    ridged_newton_step(h, g, p, |a, b| match cholesky(a, p) {
        Ok(l) => {
            chol_solve(&l, p, b);
            true
        }
        Err(_) => false,
    })
}

/// The safeguard of [`newton_step`] over any factorisation: `solve(a, b)`
/// factors the scratch matrix `a` (which it may overwrite) and solves
/// `a x = b` in place, returning false when `a` is not clearly positive
/// definite. Tries `H`, then `H + mu I` with mu growing from 1e-10 times
/// the largest diagonal entry by factors of 100, 16 times at most. Used
/// also by the item Bradley-Terry style fit, over its blocked Cholesky.
pub(crate) fn ridged_newton_step(
    h: &[f64],
    g: &[f64],
    p: usize,
    mut solve: impl FnMut(&mut [f64], &mut [f64]) -> bool,
) -> Option<(Vec<f64>, bool)> {
    let diag_max = (0..p).map(|j| h[j * p + j]).fold(0.0, f64::max);
    let scale = if diag_max > 0.0 && diag_max.is_finite() {
        diag_max
    } else {
        1.0
    };
    let mut mu = 0.0;
    for _ in 0..16 {
        let mut a = h.to_vec();
        (0..p).for_each(|j| a[j * p + j] += mu);
        let mut step: Vec<f64> = g.iter().map(|v| -v).collect();
        if solve(&mut a, &mut step) && step.iter().all(|v| v.is_finite()) {
            return Some((step, mu > 0.0));
        }
        mu = if mu == 0.0 { 1e-10 * scale } else { mu * 100.0 };
    }
    None
}

/// Backtracking (halving) line search with the Armijo test. A full step
/// whose predicted decrease is below the resolution of the summed loss is
/// accepted if it does not raise the objective beyond that resolution: the
/// Armijo test cannot judge such steps, and near the optimum they are the
/// quadratically convergent Newton steps.
///
/// The full step is evaluated with its gradient and Hessian in the same
/// pass, since near the optimum it is almost always accepted and they are
/// the next iteration's; shorter trials compute the loss alone, and the
/// accepted one gets a full pass. Returns the new point and its evaluation.
fn line_search<T: Real>(
    d: &Data<T>,
    ridge: &Ridge,
    beta: &[f64],
    step: &[f64],
    obj0: f64,
    slope: f64,
) -> Option<(Vec<f64>, Eval)> {
    if slope.is_nan() || slope >= 0.0 {
        return None;
    }
    let resolution = LOSS_RESOLUTION * obj0.abs().max(f64::MIN_POSITIVE);
    let mut t = 1.0;
    for _ in 0..MAX_HALVINGS {
        let cand: Vec<f64> = beta.iter().zip(step).map(|(b, s)| b + t * s).collect();
        let want = if t == 1.0 { Want::Hess } else { Want::Loss };
        let e = evaluate(d, &cand, want);
        let obj = e.nll + ridge.value(&cand);
        let small = t == 1.0 && -slope <= resolution && obj <= obj0 + resolution;
        if obj <= obj0 + ARMIJO_C * t * slope || small {
            let e = if want == Want::Hess {
                e
            } else {
                evaluate(d, &cand, Want::Hess)
            };
            return Some((cand, e));
        }
        t *= 0.5;
    }
    None
}

/// State of the Newton iterations, resumable: the gradient and Hessian at
/// `beta` (ridge included) are kept, so a continuation starts stepping at
/// once.
#[derive(Clone)]
struct NewtonRun {
    beta: Vec<f64>,
    nll: f64,
    grad_norm: f64,
    /// Gradient of the penalised objective at `beta`; empty until evaluated.
    grad: Vec<f64>,
    hess: Vec<f64>,
    status: FitStatus,
    n_iter: usize,
    ridge_steps: usize,
    /// The last (up to 3) displacements, newest last.
    steps: Vec<Vec<f64>>,
}

impl NewtonRun {
    fn start(p: usize) -> Self {
        Self {
            beta: vec![0.0; p],
            nll: 0.0,
            grad_norm: f64::INFINITY,
            grad: Vec::new(),
            hess: Vec::new(),
            status: FitStatus::MaxIter,
            n_iter: 0,
            ridge_steps: 0,
            steps: Vec::new(),
        }
    }

    /// Take the evaluation `e` of the data term at `self.beta`.
    fn set_eval(&mut self, mut e: Eval, ridge: &Ridge, w_total: f64) {
        self.hess = ridge.complete(&mut e, &self.beta);
        (self.nll, self.grad_norm) = (e.nll, max_abs(&e.grad) / w_total);
        self.grad = e.grad;
    }
}

/// Newton iterations from `run`'s iterate until the scaled gradient is at
/// most `tol` or `run.n_iter` reaches `limit`.
fn newton<T: Real>(
    d: &Data<T>,
    ridge: &Ridge,
    tol: f64,
    w_total: f64,
    mut run: NewtonRun,
    limit: usize,
) -> NewtonRun {
    if run.grad.is_empty() {
        run.set_eval(evaluate(d, &run.beta, Want::Hess), ridge, w_total);
    }
    loop {
        if run.grad_norm <= tol {
            run.status = FitStatus::Converged;
            return run;
        }
        if run.n_iter >= limit {
            run.status = FitStatus::MaxIter;
            return run;
        }
        let obj0 = run.nll + ridge.value(&run.beta);
        let next = newton_step(&run.hess, &run.grad, d.p).and_then(|(step, ridged)| {
            let slope = dot(&run.grad, &step);
            let found = line_search(d, ridge, &run.beta, &step, obj0, slope);
            found.map(|(b, e)| (b, e, ridged))
        });
        let Some((new_beta, e, ridged)) = next else {
            run.status = FitStatus::LineSearchFailed;
            return run;
        };
        run.steps
            .push(new_beta.iter().zip(&run.beta).map(|(a, b)| a - b).collect());
        if run.steps.len() > 3 {
            run.steps.remove(0);
        }
        run.beta = new_beta;
        run.set_eval(e, ridge, w_total);
        run.n_iter += 1;
        run.ridge_steps += usize::from(ridged);
    }
}

/// The separation verdict must not depend on the caller's budget: when the
/// run stopped short of `PROBE_TOL`, a private continuation of up to
/// `PROBE_ITER` more steps decides it (its iterate is never returned). It
/// resumes from the run's stored gradient and Hessian, so a run that
/// converged costs one more pass, not three.
fn probe<T: Real>(d: &Data<T>, ridge: &Ridge, w_total: f64, run: &NewtonRun) -> Option<NewtonRun> {
    let done = run.grad_norm <= PROBE_TOL || run.status == FitStatus::LineSearchFailed;
    (!done).then(|| {
        newton(
            d,
            ridge,
            PROBE_TOL,
            w_total,
            run.clone(),
            run.n_iter + PROBE_ITER,
        )
    })
}

/// Per column, over rows with positive weight: the range of x among rows
/// with y = 1, the same among rows with y = 0, and the largest |x| among
/// rows with a soft target (ranges start at 0: only signs and sizes count).
#[derive(Clone)]
struct SignRanges {
    lo1: Vec<f64>,
    hi1: Vec<f64>,
    lo0: Vec<f64>,
    hi0: Vec<f64>,
    soft: Vec<f64>,
}

impl SignRanges {
    fn new(s: usize) -> Self {
        let zero = vec![0.0; s];
        Self {
            lo1: zero.clone(),
            hi1: zero.clone(),
            lo0: zero.clone(),
            hi0: zero.clone(),
            soft: zero,
        }
    }

    fn add(&mut self, blk: &Block) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the running CPU supports AVX2, checked just above.
            return unsafe { self.add_avx2(blk) };
        }
        self.add_body(blk);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn add_avx2(&mut self, blk: &Block) {
        self.add_body(blk);
    }

    /// Eight columns at a time, the ranges held in registers over the
    /// block's rows (the inputs are finite, so plain comparisons do).
    #[inline(always)]
    fn add_body(&mut self, blk: &Block) {
        const L: usize = pass::LANES;
        let s = blk.stride;
        for g in (0..s).step_by(L) {
            let load = |v: &[f64]| -> [f64; L] { std::array::from_fn(|l| v[g + l]) };
            let (mut lo1, mut hi1, mut lo0, mut hi0, mut soft) = (
                load(&self.lo1),
                load(&self.hi1),
                load(&self.lo0),
                load(&self.hi0),
                load(&self.soft),
            );
            for r in 0..blk.len {
                let x = &blk.x[r * s + g..r * s + g + L];
                let y = blk.y[r];
                if y == 1.0 {
                    widen_range(&mut lo1, &mut hi1, x);
                } else if y == 0.0 {
                    widen_range(&mut lo0, &mut hi0, x);
                } else {
                    for l in 0..L {
                        soft[l] = if x[l].abs() > soft[l] {
                            x[l].abs()
                        } else {
                            soft[l]
                        };
                    }
                }
            }
            self.lo1[g..g + L].copy_from_slice(&lo1);
            self.hi1[g..g + L].copy_from_slice(&hi1);
            self.lo0[g..g + L].copy_from_slice(&lo0);
            self.hi0[g..g + L].copy_from_slice(&hi0);
            self.soft[g..g + L].copy_from_slice(&soft);
        }
    }

    fn merge(mut self, o: Self) -> Self {
        let lows = [(&mut self.lo1, &o.lo1), (&mut self.lo0, &o.lo0)];
        for (a, b) in lows {
            a.iter_mut().zip(b).for_each(|(u, &v)| *u = u.min(v));
        }
        let highs = [
            (&mut self.hi1, &o.hi1),
            (&mut self.hi0, &o.hi0),
            (&mut self.soft, &o.soft),
        ];
        for (a, b) in highs {
            a.iter_mut().zip(b).for_each(|(u, &v)| *u = u.max(v));
        }
        self
    }

    /// Features that separate the rows on their own: x_ij > 0 only where
    /// y = 1 and x_ij < 0 only where y = 0 (or the mirror image), with some
    /// x_ij != 0. A soft target with x_ij != 0 breaks both directions.
    fn single_features(&self, p: usize) -> Vec<usize> {
        (0..p)
            .filter(|&j| {
                let soft = self.soft[j] > 0.0;
                let (lo1, hi1, lo0, hi0) = (self.lo1[j], self.hi1[j], self.lo0[j], self.hi0[j]);
                let nonzero = soft || lo1 < 0.0 || hi1 > 0.0 || lo0 < 0.0 || hi0 > 0.0;
                let plus_broken = soft || lo1 < 0.0 || hi0 > 0.0;
                let minus_broken = soft || hi1 > 0.0 || lo0 < 0.0;
                nonzero && (!plus_broken || !minus_broken)
            })
            .collect()
    }

    /// Largest |x_ij| per column.
    fn column_scale(&self, p: usize) -> Vec<f64> {
        (0..p)
            .map(|j| {
                let m = (-self.lo1[j])
                    .max(self.hi1[j])
                    .max(-self.lo0[j])
                    .max(self.hi0[j]);
                m.max(self.soft[j])
            })
            .collect()
    }
}

#[inline(always)]
fn widen_range(lo: &mut [f64; pass::LANES], hi: &mut [f64; pass::LANES], x: &[f64]) {
    for l in 0..pass::LANES {
        lo[l] = if x[l] < lo[l] { x[l] } else { lo[l] };
        hi[l] = if x[l] > hi[l] { x[l] } else { hi[l] };
    }
}

/// The sign ranges of every column, in a pass of their own.
fn sign_ranges<T: Real>(d: &Data<T>) -> SignRanges {
    let s = padded(d.p);
    d.fold_blocks(
        || SignRanges::new(s),
        |m, blk| m.add(blk),
        SignRanges::merge,
    )
}

#[cfg(test)]
fn single_feature_separation<T: Real>(d: &Data<T>) -> Vec<usize> {
    sign_ranges(d).single_features(d.p)
}

fn pad(v: &[f64], s: usize) -> Vec<f64> {
    let mut out = v.to_vec();
    out.resize(s, 0.0);
    out
}

/// The largest amount by which a row's margin m = x_i.v has the wrong
/// sign for its target: m where y != 1, -m where y != 0 (-inf if none).
#[inline]
fn wrong_side(m: f64, y: f64) -> f64 {
    let pos = if y == 1.0 { f64::NEG_INFINITY } else { m };
    let neg = if y == 0.0 { f64::NEG_INFINITY } else { -m };
    pos.max(neg)
}

/// Certificate test of each candidate: does `v` separate the rows? Xv must
/// be clearly nonzero (its largest entry above 1e-8 of the largest sum
/// |x_ij v_j|, so that cancellation noise never passes) and every row with
/// |x_i.v| above `ZERO_MARGIN` times the largest has the target its sign
/// asks for.
///
/// `scale` (the largest |x_ij| per column) bounds every margin by
/// B = sum_j |v_j| scale_j, so a row on the wrong side by more than
/// `ZERO_MARGIN` B refutes `v` whatever the largest margin is: a look at the
/// first few thousand rows settles almost every candidate on data that are
/// not separated. The candidates left get one parallel pass that finds, for
/// each, the largest margin, the largest sum |x_ij v_j| and the largest
/// wrong-side margin, from which the verdict follows exactly. (The check
/// was two full passes and a scan per candidate.)
fn separating<T: Real>(d: &Data<T>, candidates: &[Vec<f64>], scale: &[f64]) -> Vec<bool> {
    let padded_c: Vec<Vec<f64>> = candidates.iter().map(|v| pad(v, padded(d.p))).collect();
    let alive: Vec<usize> = (0..candidates.len())
        .filter(|&c| {
            let bound: f64 = candidates[c]
                .iter()
                .zip(scale)
                .map(|(v, s)| (v * s).abs())
                .sum();
            // Rounding can push a computed margin a few ulps past the bound.
            !refuted(d, &padded_c[c], ZERO_MARGIN * bound * (1.0 + 1e-9))
        })
        .collect();
    let mut verdict = vec![false; candidates.len()];
    if alive.is_empty() {
        return verdict;
    }
    let nc = alive.len();
    let m = d.fold_blocks(
        || vec![(0.0_f64, 0.0_f64, f64::NEG_INFINITY); nc],
        |m, blk| {
            for r in 0..blk.len {
                let xr = blk.xr(r);
                for (mc, &c) in m.iter_mut().zip(&alive) {
                    let eta = pass::dot_lanes(xr, &padded_c[c]);
                    mc.0 = mc.0.max(eta.abs());
                    mc.1 = mc.1.max(pass::abs_dot_lanes(xr, &padded_c[c]));
                    mc.2 = mc.2.max(wrong_side(eta, blk.y[r]));
                }
            }
        },
        |mut a: Vec<(f64, f64, f64)>, b: Vec<(f64, f64, f64)>| {
            for (x, y) in a.iter_mut().zip(&b) {
                *x = (x.0.max(y.0), x.1.max(y.1), x.2.max(y.2));
            }
            a
        },
    );
    for (&c, (amax, mmax, worst)) in alive.iter().zip(m) {
        let clear = amax.is_finite() && amax > 1e-8 * mmax;
        verdict[c] = clear && worst <= ZERO_MARGIN * amax;
    }
    verdict
}

/// Whether one of the first `REFUTE_LEAVES` leaves of rows holds a row on
/// the wrong side of `v` (padded) by more than `cut`: a sequential scan
/// that stops at the first leaf holding one. It looks no further, so that
/// a candidate that survives costs one parallel pass, not a sequential one.
fn refuted<T: Real>(d: &Data<T>, v: &[f64], cut: f64) -> bool {
    let mut blk = Block::take(d.p);
    let end = d.len().min(REFUTE_LEAVES * CHUNK);
    let (mut found, mut a) = (false, 0);
    while !found && a < end {
        let b = (a + CHUNK).min(end);
        d.blocks(a, b, &mut blk, |blk| {
            found = found
                || (0..blk.len).any(|r| wrong_side(pass::dot_lanes(blk.xr(r), v), blk.y[r]) > cut);
        });
        a = b;
    }
    blk.give_back();
    found
}

/// The first candidate direction that passes the certificate, with the
/// components contributing less than `CLEAN_REL` of the largest dropped when
/// the cleaned direction still passes; scaled to max |v_j| = 1.
fn certified_direction<T: Real>(
    d: &Data<T>,
    candidates: &[Vec<f64>],
    scale: &[f64],
) -> Option<Vec<f64>> {
    let verdict = separating(d, candidates, scale);
    let v = &candidates[verdict.iter().position(|&ok| ok)?];
    let contrib: Vec<f64> = v.iter().zip(scale).map(|(c, s)| (c * s).abs()).collect();
    let top = max_abs(&contrib);
    let cleaned: Vec<f64> = v
        .iter()
        .zip(&contrib)
        .map(|(&c, &k)| if k >= CLEAN_REL * top { c } else { 0.0 })
        .collect();
    let mut dir = if separating(d, std::slice::from_ref(&cleaned), scale)[0] {
        cleaned
    } else {
        v.clone()
    };
    let m = max_abs(&dir);
    dir.iter_mut().for_each(|c| *c /= m);
    Some(dir)
}

/// What the separation checks found.
struct SeparationReport {
    features: Vec<usize>,
    direction: Option<Vec<f64>>,
    fatal: bool,
}

/// The separation report of a run; `signs` are the data's sign ranges.
fn separation_report<T: Real>(
    d: &Data<T>,
    run: &NewtonRun,
    free: &[bool],
    signs: &SignRanges,
) -> SeparationReport {
    let single = signs.single_features(d.p);
    let mut candidates: Vec<Vec<f64>> = Vec::new();
    if let Some(last) = run.steps.last() {
        candidates.push(last.clone());
    }
    if run.steps.len() > 1 {
        let mut drift = vec![0.0; d.p];
        run.steps.iter().for_each(|s| add_into(&mut drift, s));
        candidates.push(drift);
    }
    candidates.push(run.beta.clone());
    let direction = certified_direction(d, &candidates, &signs.column_scale(d.p));
    let support: Vec<usize> = direction
        .as_ref()
        .map(|v| (0..d.p).filter(|&j| v[j] != 0.0).collect())
        .unwrap_or_default();
    let fatal = single.iter().any(|&j| free[j])
        || (!support.is_empty() && support.iter().all(|&j| free[j]));
    let mut features: Vec<usize> = single.into_iter().chain(support).collect();
    features.sort_unstable();
    features.dedup();
    SeparationReport {
        features,
        direction,
        fatal,
    }
}

/// Position of the first non-finite value: chunks are tested in parallel
/// by a vectorised reduction, and only a failing chunk is scanned.
fn first_non_finite<T: Real>(x: &[T]) -> Option<usize> {
    const SPAN: usize = 1 << 14;
    let c = x.par_chunks(SPAN).position_first(|c| !T::all_finite(c))?;
    let chunk = &x[c * SPAN..(c * SPAN + SPAN).min(x.len())];
    chunk
        .iter()
        .position(|v| !v.to_f64().is_finite())
        .map(|k| c * SPAN + k)
}

fn validate_inputs<T: Real>(
    x: &[T],
    n: usize,
    p: usize,
    y: &[f64],
    w: Option<&[f64]>,
) -> Result<()> {
    if n == 0 || p == 0 {
        return Err(invalid!(
            "x has shape ({n}, {p}); expected at least one row and one feature"
        ));
    }
    if n.checked_mul(p) != Some(x.len()) {
        return Err(invalid!(
            "x has {} values; expected n x p = {n} x {p}",
            x.len()
        ));
    }
    if y.len() != n {
        return Err(invalid!(
            "y has {} values; expected one per row of x ({n})",
            y.len()
        ));
    }
    if let Some(pos) = first_non_finite(x) {
        let (row, col) = (pos / p, pos % p);
        return Err(invalid!(
            "x[row {row}, column {col}] = {}; expected a finite number",
            x[pos]
        ));
    }
    if let Some(i) = y.iter().position(|v| !(0.0..=1.0).contains(v)) {
        return Err(invalid!(
            "y[row {i}] = {}; expected a target in [0, 1]",
            y[i]
        ));
    }
    if let Some(w) = w {
        if w.len() != n {
            return Err(invalid!(
                "w has {} values; expected one per row of x ({n})",
                w.len()
            ));
        }
        if let Some(i) = w.iter().position(|v| !(v.is_finite() && *v >= 0.0)) {
            return Err(invalid!(
                "w[row {i}] = {}; expected a finite weight >= 0",
                w[i]
            ));
        }
    }
    Ok(())
}

fn validate_options(opts: &FitOptions, p: usize) -> Result<()> {
    if !(opts.l2.is_finite() && opts.l2 >= 0.0) {
        return Err(invalid!("l2 = {}; expected a finite value >= 0", opts.l2));
    }
    if !(opts.tol.is_finite() && opts.tol > 0.0) {
        return Err(invalid!("tol = {}; expected a finite value > 0", opts.tol));
    }
    if opts.max_iter == 0 {
        return Err(invalid!("max_iter = 0; expected at least 1"));
    }
    if !(opts.l1.is_finite() && opts.l1 >= 0.0) {
        return Err(invalid!("l1 = {}; expected a finite value >= 0", opts.l1));
    }
    if opts.l1 > 0.0 && opts.solver == Solver::Newton {
        return Err(invalid!(
            "l1 > 0 needs the L-BFGS solver (OWL-QN), not Newton"
        ));
    }
    if opts.history == 0 {
        return Err(invalid!("history = 0; expected at least 1"));
    }
    if let Some(m) = &opts.unpenalized {
        if m.len() != p {
            return Err(invalid!(
                "unpenalized has {} entries; expected one per feature ({p})",
                m.len()
            ));
        }
    }
    Ok(())
}

/// Fit the logistic model to `n` rows of `p` features (`x` row-major, read
/// in place), targets `y` in [0, 1] and optional weights `w` (default 1).
///
/// # Errors
///
/// `InvalidInput` naming the offending row, column or option; `Fit` when
/// the Hessian at the end is singular without separation (a zero or
/// collinear feature with nothing penalising it). Separation and
/// non-convergence are statuses, not errors.
pub fn fit<T: Real>(
    x: &[T],
    n: usize,
    p: usize,
    y: &[f64],
    w: Option<&[f64]>,
    opts: &FitOptions,
) -> Result<LogisticFit> {
    validate_inputs(x, n, p, y, w)?;
    validate_options(opts, p)?;
    fit_data(
        &Data {
            x,
            p,
            y,
            w,
            rows: None,
            n,
        },
        opts,
    )
}

/// Rows with positive weight and their total; reads the weights only.
fn weight_totals<T: Real>(d: &Data<T>) -> (usize, f64) {
    if d.w.is_none() {
        // A sum of ones is exact in any order.
        return (d.len(), d.len() as f64);
    }
    let leaf = |a: usize, b: usize| {
        let (mut c, mut s) = (0_usize, 0.0);
        for k in a..b {
            let w = d.weight(d.row(k));
            if w > 0.0 {
                c += 1;
                s += w;
            }
        }
        (c, s)
    };
    reduce(d.len(), &leaf, &|a: (usize, f64), b: (usize, f64)| {
        (a.0 + b.0, a.1 + b.1)
    })
}

fn fit_data<T: Real>(d: &Data<T>, opts: &FitOptions) -> Result<LogisticFit> {
    fit_from(d, opts, None)
}

/// [`fit_data`] from `init` (zero when `None`).
fn fit_from<T: Real>(d: &Data<T>, opts: &FitOptions, init: Option<&[f64]>) -> Result<LogisticFit> {
    let p = d.p;
    let free: Vec<bool> = match &opts.unpenalized {
        _ if opts.l2 == 0.0 && opts.l1 == 0.0 => vec![true; p],
        Some(m) => m.clone(),
        None => vec![false; p],
    };
    let (n_obs, total_weight) = weight_totals(d);
    if !(total_weight > 0.0 && total_weight.is_finite()) {
        return Err(invalid!(
            "the weights sum to {total_weight}; expected a finite positive total"
        ));
    }
    let ridge = Ridge {
        l2: opts.l2,
        free: &free,
    };
    let solver = match opts.solver {
        Solver::Auto if opts.l1 > 0.0 || p > NEWTON_MAX_P => Solver::Lbfgs,
        Solver::Auto => Solver::Newton,
        s => s,
    };
    let (mut run, sep) = solve(d, opts, solver, &ridge, init, total_weight);
    let status = if sep.fatal {
        FitStatus::Separated
    } else {
        run.status
    };
    let want_cov = status != FitStatus::Separated && opts.covariance && opts.l1 == 0.0;
    if want_cov && run.hess.is_empty() {
        let mut e = evaluate(d, &run.beta, Want::Hess);
        run.hess = ridge.complete(&mut e, &run.beta);
    }
    let cov = if want_cov {
        let l = cholesky(&run.hess, p).map_err(|j| singular_error(j, opts.l2))?;
        Some(chol_inverse(&l, p))
    } else {
        None
    };
    let se = cov
        .as_ref()
        .map(|c| (0..p).map(|j| c[j * p + j].sqrt()).collect());
    let l1_term: f64 = opts.l1
        * run
            .beta
            .iter()
            .zip(&free)
            .filter(|(_, f)| !**f)
            .map(|(b, _)| b.abs())
            .sum::<f64>();
    Ok(LogisticFit {
        penalty: ridge.value(&run.beta) + l1_term,
        coef: run.beta,
        cov,
        se,
        n_iter: run.n_iter,
        grad_norm: run.grad_norm,
        converged: run.status == FitStatus::Converged,
        status,
        nll: run.nll,
        separated_features: sep.features,
        separating_direction: sep.direction,
        ridge_steps: run.ridge_steps,
        solver,
        n_obs,
        total_weight,
    })
}

/// The solver's run from `start` (zero when `None`), and the separation
/// report. The first pass also collects the sign ranges that the report
/// needs.
fn solve<T: Real>(
    d: &Data<T>,
    opts: &FitOptions,
    solver: Solver,
    ridge: &Ridge,
    start: Option<&[f64]>,
    w_total: f64,
) -> (NewtonRun, SeparationReport) {
    let beta0 = start.map_or_else(|| vec![0.0; d.p], <[f64]>::to_vec);
    let want = if solver == Solver::Newton {
        Want::Hess
    } else {
        Want::GradDiag
    };
    let (e0, signs) = evaluate_with(d, &beta0, want, true);
    let signs = signs.unwrap_or_else(|| sign_ranges(d));
    if solver == Solver::Newton {
        let mut run = NewtonRun::start(d.p);
        run.beta = beta0;
        run.set_eval(e0, ridge, w_total);
        let run = newton(d, ridge, opts.tol, w_total, run, opts.max_iter);
        let probed = probe(d, ridge, w_total, &run);
        let sep = separation_report(d, probed.as_ref().unwrap_or(&run), ridge.free, &signs);
        (run, sep)
    } else {
        let pen = lbfgs::Penalty {
            l2: opts.l2,
            l1: opts.l1,
            free: ridge.free,
        };
        let limits = (opts.max_iter, opts.history);
        let at_start = (beta0, e0.nll, e0.grad, e0.diag);
        let run = lbfgs::lbfgs(d, &pen, at_start, opts.tol, w_total, limits);
        let sep = separation_report(d, &run, ridge.free, &signs);
        (run, sep)
    }
}

/// Fit one model per group of rows, in parallel: group `g` is the rows
/// `indices[offsets[g]..offsets[g + 1]]` of `x` (a row may serve several
/// groups, as shared anchor rows do). Each fit is exactly [`fit`] on those
/// rows; `x` is never copied.
///
/// # Errors
///
/// As [`fit`], plus `InvalidInput` for offsets that do not rise from 0 to
/// `indices.len()` or an index outside `0..n`; a group's error is prefixed
/// with its number.
#[allow(clippy::too_many_arguments)]
pub fn fit_groups<T: Real>(
    x: &[T],
    n: usize,
    p: usize,
    y: &[f64],
    w: Option<&[f64]>,
    offsets: &[usize],
    indices: &[usize],
    opts: &FitOptions,
) -> Result<Vec<LogisticFit>> {
    validate_inputs(x, n, p, y, w)?;
    validate_options(opts, p)?;
    let rising = offsets.windows(2).all(|v| v[0] <= v[1]);
    if offsets.first() != Some(&0) || offsets.last() != Some(&indices.len()) || !rising {
        return Err(invalid!(
            "offsets must rise from 0 to the number of indices ({})",
            indices.len()
        ));
    }
    if let Some(k) = indices.iter().position(|&i| i >= n) {
        return Err(invalid!(
            "indices[{k}] = {}; expected a row < {n}",
            indices[k]
        ));
    }
    (0..offsets.len() - 1)
        .into_par_iter()
        .map(|g| {
            let d = Data {
                x,
                p,
                y,
                w,
                rows: Some(&indices[offsets[g]..offsets[g + 1]]),
                n,
            };
            fit_data(&d, opts).map_err(|e| in_group(g, e))
        })
        .collect()
}

fn in_group(g: usize, e: CoreError) -> CoreError {
    match e {
        CoreError::InvalidInput(m) => CoreError::InvalidInput(format!("group {g}: {m}")),
        CoreError::Fit(m) => CoreError::Fit(format!("group {g}: {m}")),
    }
}

fn singular_error(j: usize, l2: f64) -> CoreError {
    let fix = if l2 > 0.0 {
        "drop it or penalise it"
    } else {
        "drop it or set l2 > 0"
    };
    CoreError::Fit(format!(
        "the Hessian is singular at column {j}: over the rows with positive weight, \
         feature {j} is zero, a linear combination of earlier features, or fitted with \
         probabilities all 0 or 1; {fix}"
    ))
}

/// Result of [`kfold`]. Rows with zero weight are assigned a fold but count
/// nowhere. A fold whose fit is `Separated` has no metrics (its coefficients
/// depend on the iteration budget), and then neither do the pooled ones.
#[derive(Debug, Clone, PartialEq)]
pub struct KFoldResult {
    /// Fold of each row, in 0..k.
    pub fold_of_row: Vec<usize>,
    /// Held-out accuracy pooled over all rows (weighted).
    pub accuracy: Option<f64>,
    /// Held-out mean log-loss pooled over all rows (weighted).
    pub log_loss: Option<f64>,
    pub fold_accuracy: Vec<Option<f64>>,
    pub fold_log_loss: Vec<Option<f64>>,
    /// Held-out rows with positive weight, and their total weight.
    pub fold_n: Vec<usize>,
    pub fold_weight: Vec<f64>,
    pub fold_status: Vec<FitStatus>,
    pub fold_separated: Vec<Vec<usize>>,
    /// sigma(x_i . beta) of each row under the fit that held it out; `None`
    /// when some fold has no usable fit.
    pub held_out_prob: Option<Vec<f64>>,
}

/// SplitMix64 (Steele, Lea & Flood, OOPSLA 2014): a 64-bit state advanced by
/// a Weyl increment and finalised by a variant of MurmurHash3's mixer.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in 0..bound by the multiply-high map (Lemire, 2019), whose
    /// bias of at most bound / 2^64 is immaterial here.
    fn below(&mut self, bound: usize) -> usize {
        ((u128::from(self.next_u64()) * bound as u128) >> 64) as usize
    }
}

/// Fold of each of `n` rows: a Fisher-Yates permutation of 0..n drawn from
/// SplitMix64 seeded with `seed`; the row at position q of the permutation
/// goes to fold q mod k, so fold sizes differ by at most one.
pub fn fold_assignment(n: usize, k: usize, seed: u64) -> Vec<usize> {
    let mut rng = SplitMix64(seed);
    let mut perm: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        perm.swap(i, rng.below(i + 1));
    }
    let mut fold = vec![0; n];
    for (q, &row) in perm.iter().enumerate() {
        fold[row] = q % k;
    }
    fold
}

/// Weighted held-out sums: (weight, accuracy credit, log-loss, rows).
fn score<T: Real>(d: &Data<T>, beta: &[f64]) -> (f64, f64, f64, usize) {
    let bp = pad(beta, padded(d.p));
    let add = |s: &mut (f64, f64, f64, usize), blk: &mut Block| {
        for r in 0..blk.len {
            let (eta, y, w) = (pass::dot_lanes(blk.xr(r), &bp), blk.y[r], blk.w[r]);
            let credit = if eta == 0.0 || y == 0.5 {
                0.5
            } else {
                f64::from(u8::from((eta > 0.0) == (y > 0.5)))
            };
            *s = (
                s.0 + w,
                s.1 + w * credit,
                s.2 + w * row_loss(eta, y),
                s.3 + 1,
            );
        }
    };
    let merge = |a: (f64, f64, f64, usize), b: (f64, f64, f64, usize)| {
        (a.0 + b.0, a.1 + b.1, a.2 + b.2, a.3 + b.3)
    };
    d.fold_blocks(|| (0.0, 0.0, 0.0, 0_usize), add, merge)
}

/// k-fold cross-validation of [`fit`]: fold `f` is predicted by the fit on
/// the other folds. A prediction counts as right when sigma(x.beta) > 1/2
/// and y > 1/2 or both are below; a margin of exactly zero or a target of
/// exactly 1/2 earns half. Log-loss is the cross-entropy
/// log(1 + e^eta) - y eta. Fold and pooled values are weighted means. The
/// folds index the data; X is never copied.
///
/// Each fold's fit starts from the coefficients of the previous fold's when
/// that fit converged: two training sets share all but two folds of rows,
/// so their optima are close, and Newton needs a few steps from there
/// where it needed up to a dozen from zero on nearly separated data. The
/// result agrees with a fit from zero to the tolerance `tol`; a fold whose
/// data are separated still drifts from there and is reported `Separated`.
///
/// # Errors
///
/// As [`fit`], plus `InvalidInput` unless 2 <= k <= n; a fold's error is
/// prefixed with its number.
#[allow(clippy::too_many_arguments)]
pub fn kfold<T: Real>(
    x: &[T],
    n: usize,
    p: usize,
    y: &[f64],
    w: Option<&[f64]>,
    k: usize,
    seed: u64,
    opts: &FitOptions,
) -> Result<KFoldResult> {
    validate_inputs(x, n, p, y, w)?;
    validate_options(opts, p)?;
    if k < 2 || k > n {
        return Err(invalid!("k = {k}; expected 2 <= k <= n = {n}"));
    }
    let fold_of_row = fold_assignment(n, k, seed);
    let mut out = KFoldResult {
        fold_of_row: Vec::new(),
        accuracy: None,
        log_loss: None,
        fold_accuracy: Vec::with_capacity(k),
        fold_log_loss: Vec::with_capacity(k),
        fold_n: Vec::with_capacity(k),
        fold_weight: Vec::with_capacity(k),
        fold_status: Vec::with_capacity(k),
        fold_separated: Vec::with_capacity(k),
        held_out_prob: None,
    };
    let mut prob = vec![0.0; n];
    let mut pooled = Some((0.0, 0.0, 0.0));
    let mut warm: Option<Vec<f64>> = None;
    for f in 0..k {
        let (test, train): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| fold_of_row[i] == f);
        let train_d = Data {
            x,
            p,
            y,
            w,
            rows: Some(&train),
            n,
        };
        let fitted = fit_from(&train_d, opts, warm.as_deref()).map_err(|e| in_fold(f, e))?;
        warm = (fitted.status == FitStatus::Converged).then(|| fitted.coef.clone());
        let test_d = Data {
            rows: Some(&test),
            ..train_d
        };
        let (ws, acc, loss, rows) = score(&test_d, &fitted.coef);
        predict_into(&test_d, &fitted.coef, &mut prob);
        let usable = fitted.status != FitStatus::Separated;
        let mean = |s: f64| (usable && ws > 0.0).then(|| s / ws);
        out.fold_accuracy.push(mean(acc));
        out.fold_log_loss.push(mean(loss));
        out.fold_n.push(rows);
        out.fold_weight.push(ws);
        out.fold_status.push(fitted.status);
        out.fold_separated.push(fitted.separated_features);
        pooled = pooled
            .filter(|_| usable)
            .map(|t| (t.0 + ws, t.1 + acc, t.2 + loss));
    }
    if let Some((ws, acc, loss)) = pooled.filter(|t| t.0 > 0.0) {
        (out.accuracy, out.log_loss) = (Some(acc / ws), Some(loss / ws));
        out.held_out_prob = Some(prob);
    }
    out.fold_of_row = fold_of_row;
    Ok(out)
}

/// sigma(x_i . beta) for every row of `d` (zero weights included).
fn predict_into<T: Real>(d: &Data<T>, beta: &[f64], out: &mut [f64]) {
    let mut buf = vec![0.0; d.p];
    for k in 0..d.len() {
        let i = d.row(k);
        d.load(i, &mut buf);
        out[i] = sigmoid(dot(&buf, beta));
    }
}

fn in_fold(f: usize, e: CoreError) -> CoreError {
    match e {
        CoreError::InvalidInput(m) => CoreError::InvalidInput(format!("fold {f}: {m}")),
        CoreError::Fit(m) => CoreError::Fit(format!("fold {f}: {m}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Standard normal draws from SplitMix64 by Box-Muller (tests only).
    fn normals(rng: &mut SplitMix64, n: usize) -> Vec<f64> {
        let mut unit = || ((rng.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        (0..n)
            .map(|_| {
                let (u, v) = (unit(), unit());
                (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
            })
            .collect()
    }

    /// Rows [1, z_1 .. z_{p-1}] and Bernoulli targets under `beta`.
    fn simulate(n: usize, beta: &[f64], seed: u64) -> (Vec<f64>, Vec<f64>) {
        let p = beta.len();
        let mut rng = SplitMix64(seed);
        let z = normals(&mut rng, n * (p - 1));
        let mut x = Vec::with_capacity(n * p);
        let mut y = Vec::with_capacity(n);
        for i in 0..n {
            x.push(1.0);
            x.extend_from_slice(&z[i * (p - 1)..(i + 1) * (p - 1)]);
            let eta = dot(&x[i * p..(i + 1) * p], beta);
            let u = ((rng.next_u64() >> 11) as f64) / (1u64 << 53) as f64;
            y.push(f64::from(u8::from(u < sigmoid(eta))));
        }
        (x, y)
    }

    /// The 20 battles of the closed-form case: d = +1 wins 8 of 10,
    /// d = -1 wins 4 of 10; columns [1, d].
    fn battles(wins_plus: usize, wins_minus: usize) -> (Vec<f64>, Vec<f64>) {
        let mut x = Vec::new();
        let mut y = Vec::new();
        for (d, wins) in [(1.0, wins_plus), (-1.0, wins_minus)] {
            for k in 0..10 {
                x.extend_from_slice(&[1.0, d]);
                y.push(f64::from(u8::from(k < wins)));
            }
        }
        (x, y)
    }

    fn logit(p: f64) -> f64 {
        (p / (1.0 - p)).ln()
    }

    #[test]
    fn closed_form_two_groups() {
        let (x, y) = battles(8, 4);
        let f = fit(&x, 20, 2, &y, None, &FitOptions::default()).unwrap();
        assert_eq!(f.status, FitStatus::Converged);
        let theta = 0.5 * (logit(0.8) + logit(0.4));
        let gamma = 0.5 * (logit(0.8) - logit(0.4));
        assert!((theta - 0.490_415).abs() < 1e-6 && (gamma - 0.895_880).abs() < 1e-6);
        assert!((f.coef[0] - theta).abs() < 1e-7, "{:?}", f.coef);
        assert!((f.coef[1] - gamma).abs() < 1e-7, "{:?}", f.coef);
        let tight = FitOptions {
            tol: 1e-14,
            ..FitOptions::default()
        };
        let t = fit(&x, 20, 2, &y, None, &tight).unwrap();
        assert!((t.coef[0] - theta).abs() < 1e-13 && (t.coef[1] - gamma).abs() < 1e-13);
        // Saturated model: var(theta +- gamma) = 1 / (n p (1 - p)) per group.
        let (va, vb): (f64, f64) = (1.0 / (10.0 * 0.8 * 0.2), 1.0 / (10.0 * 0.4 * 0.6));
        let se = f.se.unwrap();
        assert!((se[0] - (0.25 * (va + vb)).sqrt()).abs() < 1e-9);
        assert!((se[1] - (0.25 * (va + vb)).sqrt()).abs() < 1e-9);
        assert!((f.cov.unwrap()[1] - 0.25 * (va - vb)).abs() < 1e-9);
        let nll = -10.0 * (0.8 * 0.8_f64.ln() + 0.2 * 0.2_f64.ln())
            - 10.0 * (0.4 * 0.4_f64.ln() + 0.6 * 0.6_f64.ln());
        assert!((f.nll - nll).abs() < 1e-10 && f.penalty == 0.0);
        assert!(f.separated_features.is_empty() && f.grad_norm <= 1e-8);
    }

    #[test]
    fn aggregated_and_soft_rows_match() {
        let x = [1.0, 1.0, 1.0, 1.0, 1.0, -1.0, 1.0, -1.0];
        let agg = fit(
            &x,
            4,
            2,
            &[1.0, 0.0, 1.0, 0.0],
            Some(&[8.0, 2.0, 4.0, 6.0]),
            &FitOptions::default(),
        )
        .unwrap();
        let soft = fit(
            &[1.0, 1.0, 1.0, -1.0],
            2,
            2,
            &[0.8, 0.4],
            Some(&[10.0, 10.0]),
            &FitOptions::default(),
        )
        .unwrap();
        let (xf, yf) = battles(8, 4);
        let full = fit(&xf, 20, 2, &yf, None, &FitOptions::default()).unwrap();
        for j in 0..2 {
            assert!((agg.coef[j] - full.coef[j]).abs() < 1e-12);
            assert!((soft.coef[j] - full.coef[j]).abs() < 1e-12);
            assert!((agg.se.as_ref().unwrap()[j] - full.se.as_ref().unwrap()[j]).abs() < 1e-12);
        }
        assert_eq!((agg.n_obs, agg.total_weight), (4, 20.0));
    }

    #[test]
    fn single_feature_separation_never_budget_dependent() {
        let (x, y) = battles(10, 0);
        for max_iter in [1, 2, 3, 5, 10, 100] {
            let opts = FitOptions {
                max_iter,
                ..FitOptions::default()
            };
            let f = fit(&x, 20, 2, &y, None, &opts).unwrap();
            assert_eq!(f.status, FitStatus::Separated, "max_iter {max_iter}");
            assert_eq!(f.separated_features, vec![1]);
            assert!(f.cov.is_none() && f.se.is_none());
        }
    }

    #[test]
    fn ridge_bounds_separation_unless_feature_is_free() {
        let (x, y) = battles(10, 0);
        let opts = FitOptions {
            l2: 1.0,
            ..FitOptions::default()
        };
        let f = fit(&x, 20, 2, &y, None, &opts).unwrap();
        assert_eq!(f.status, FitStatus::Converged);
        assert_eq!(f.separated_features, vec![1]);
        // Stationarity of the penalised objective: by symmetry theta = 0 and
        // 20 sigma(-gamma) = gamma, solved by bisection here.
        let (mut lo, mut hi) = (0.0, 20.0);
        for _ in 0..200 {
            let mid = 0.5 * (lo + hi);
            if 20.0 * sigmoid(-mid) > mid {
                lo = mid
            } else {
                hi = mid
            }
        }
        assert!(
            f.coef[0].abs() < 1e-9 && (f.coef[1] - lo).abs() < 1e-9,
            "{:?}",
            f.coef
        );
        let free_d = FitOptions {
            l2: 1.0,
            unpenalized: Some(vec![false, true]),
            ..opts.clone()
        };
        let g = fit(&x, 20, 2, &y, None, &free_d).unwrap();
        assert_eq!(g.status, FitStatus::Separated);
        let free_icpt = FitOptions {
            unpenalized: Some(vec![true, false]),
            ..opts
        };
        assert_eq!(
            fit(&x, 20, 2, &y, None, &free_icpt).unwrap().status,
            FitStatus::Converged
        );
    }

    #[test]
    fn combination_separation_found_by_certificate() {
        // y = 1 exactly when x1 + x2 > 0; rows with x1 + x2 = 0 have mixed
        // targets (quasi-complete). Neither feature separates alone.
        let mut x = Vec::new();
        let mut y = Vec::new();
        for a in -4_i32..=4 {
            for b in -4_i32..=4 {
                let reps = if a + b == 0 { 2 } else { 1 };
                for r in 0..reps {
                    x.extend_from_slice(&[1.0, f64::from(a), f64::from(b)]);
                    let t = if a + b == 0 { r == 0 } else { a + b > 0 };
                    y.push(f64::from(u8::from(t)));
                }
            }
        }
        let n = y.len();
        let d = Data {
            x: &x[..],
            p: 3,
            y: &y,
            w: None,
            rows: None,
            n,
        };
        assert!(single_feature_separation(&d).is_empty());
        for max_iter in [1, 2, 4] {
            let short = FitOptions {
                max_iter,
                ..FitOptions::default()
            };
            let f = fit(&x, n, 3, &y, None, &short).unwrap();
            assert_eq!(f.status, FitStatus::Separated, "max_iter {max_iter}");
        }
        let f = fit(&x, n, 3, &y, None, &FitOptions::default()).unwrap();
        assert_eq!(f.status, FitStatus::Separated);
        assert_eq!(f.separated_features, vec![1, 2]);
        let v = f.separating_direction.unwrap();
        assert!(
            v[0] == 0.0 && (v[1] - v[2]).abs() < 1e-6 && v[1] > 0.0,
            "{v:?}"
        );
    }

    #[test]
    fn no_false_separation_on_ordinary_data() {
        let (x, y) = simulate(3000, &[0.2, 1.0, -2.0, 0.5], 7);
        let f = fit(&x, 3000, 4, &y, None, &FitOptions::default()).unwrap();
        assert_eq!(f.status, FitStatus::Converged);
        assert!(f.separated_features.is_empty() && f.separating_direction.is_none());
    }

    #[test]
    fn known_truth_recovered() {
        let beta = [-0.5, 1.0, -0.7, 0.3];
        let (x, y) = simulate(20_000, &beta, 42);
        let f = fit(&x, 20_000, 4, &y, None, &FitOptions::default()).unwrap();
        let se = f.se.unwrap();
        for j in 0..4 {
            assert!(
                (f.coef[j] - beta[j]).abs() < 4.0 * se[j],
                "{j}: {:?}",
                f.coef
            );
        }
        assert!(f.converged && f.n_iter < 10);
    }

    #[test]
    fn thread_count_does_not_change_bits() {
        let (x, y) = simulate(20_000, &[0.1, 0.8, -0.4], 3);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| fit(&x, 20_000, 3, &y, None, &FitOptions::default()).unwrap())
        };
        let (a, b) = (run(1), run(3));
        let bits = |v: &[f64]| v.iter().map(|z| z.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a.coef), bits(&b.coef));
        assert_eq!(bits(a.se.as_ref().unwrap()), bits(b.se.as_ref().unwrap()));
        assert_eq!(a.nll.to_bits(), b.nll.to_bits());
    }

    #[test]
    fn f32_input_matches_f64_of_same_values() {
        let (x, y) = simulate(2000, &[0.3, -1.0, 0.6], 11);
        let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        let x64: Vec<f64> = x32.iter().map(|&v| f64::from(v)).collect();
        let a = fit(&x32, 2000, 3, &y, None, &FitOptions::default()).unwrap();
        let b = fit(&x64, 2000, 3, &y, None, &FitOptions::default()).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn soft_ties_give_zero() {
        let x = [1.0, 2.0, -1.0, 0.5];
        let f = fit(&x, 2, 2, &[0.5, 0.5], None, &FitOptions::default());
        // Two rows, two features, all ties: the optimum is beta = 0.
        let f = f.unwrap();
        assert_eq!((f.coef.clone(), f.n_iter), (vec![0.0, 0.0], 0));
        assert!((f.nll - 2.0 * 2.0_f64.ln()).abs() < 1e-15);
    }

    #[test]
    fn invalid_inputs_name_the_culprit() {
        let o = FitOptions::default();
        let mut x = vec![1.0; 8];
        x[7] = f64::NAN;
        let msg = |r: Result<LogisticFit>| match r {
            Err(CoreError::InvalidInput(m)) => m,
            other => panic!("expected InvalidInput, got {other:?}"),
        };
        assert!(msg(fit(&x, 4, 2, &[0.0; 4], None, &o)).contains("row 3, column 1"));
        let x = vec![1.0; 8];
        assert!(msg(fit(&x, 4, 2, &[0.0, 1.5, 0.0, 0.0], None, &o)).contains("y[row 1]"));
        assert!(
            msg(fit(&x, 4, 2, &[0.0; 4], Some(&[1.0, 1.0, -1.0, 1.0]), &o)).contains("w[row 2]")
        );
        assert!(msg(fit(&x, 4, 2, &[0.0; 3], None, &o)).contains("y has 3"));
        assert!(msg(fit(&x, 3, 2, &[0.0; 3], None, &o)).contains("x has 8"));
        assert!(msg(fit(&x, 4, 2, &[0.0; 4], Some(&[0.0; 4]), &o)).contains("sum to 0"));
        let bad = FitOptions {
            unpenalized: Some(vec![true]),
            l2: 1.0,
            ..o.clone()
        };
        assert!(msg(fit(&x, 4, 2, &[0.0; 4], None, &bad)).contains("unpenalized"));
        let bad = FitOptions { l2: -1.0, ..o };
        assert!(msg(fit(&x, 4, 2, &[0.0; 4], None, &bad)).contains("l2"));
    }

    #[test]
    fn collinear_feature_is_a_fit_error_unless_penalised() {
        let (mut x, y) = simulate(500, &[0.2, 0.5, 0.0], 5);
        for i in 0..500 {
            x[i * 3 + 2] = 2.0 * x[i * 3 + 1];
        }
        match fit(&x, 500, 3, &y, None, &FitOptions::default()) {
            Err(CoreError::Fit(m)) => assert!(m.contains("column 2"), "{m}"),
            other => panic!("expected a Fit error, got {other:?}"),
        }
        let opts = FitOptions {
            l2: 0.1,
            ..FitOptions::default()
        };
        let f = fit(&x, 500, 3, &y, None, &opts).unwrap();
        // The ridge splits the effect between the two copies as 1 : 2.
        assert!(f.converged && (2.0 * f.coef[1] - f.coef[2]).abs() < 1e-8);
    }

    #[test]
    fn splitmix_reference_vector_and_folds() {
        let mut r = SplitMix64(1_234_567);
        assert_eq!(r.next_u64(), 6_457_827_717_110_365_317);
        assert_eq!(r.next_u64(), 3_203_168_211_198_807_973);
        let a = fold_assignment(103, 5, 9);
        assert_eq!(a, fold_assignment(103, 5, 9));
        assert_ne!(a, fold_assignment(103, 5, 10));
        let sizes: Vec<usize> = (0..5)
            .map(|f| a.iter().filter(|&&g| g == f).count())
            .collect();
        assert_eq!(sizes, vec![21, 21, 21, 20, 20]);
    }

    #[test]
    fn kfold_is_deterministic_and_accurate() {
        let beta = [0.0, 2.0, -1.0];
        let (x, y) = simulate(4000, &beta, 21);
        let run = |seed| kfold(&x, 4000, 3, &y, None, 5, seed, &FitOptions::default()).unwrap();
        let (a, b) = (run(1), run(1));
        assert_eq!(a, b);
        assert_ne!(a.fold_of_row, run(2).fold_of_row);
        // Bayes accuracy of this model is about 0.83 (E max(s, 1 - s)).
        let acc = a.accuracy.unwrap();
        assert!(acc > 0.78 && acc < 0.88, "{acc}");
        let pooled: f64 = a
            .fold_log_loss
            .iter()
            .zip(&a.fold_weight)
            .map(|(l, w)| l.unwrap() * w)
            .sum();
        assert!((pooled / 4000.0 - a.log_loss.unwrap()).abs() < 1e-12);
        assert_eq!(a.fold_n.iter().sum::<usize>(), 4000);
    }

    #[test]
    fn kfold_half_credit_and_bounds() {
        // Feature all zero except the intercept; targets all ties: every
        // prediction earns half, and the log-loss is log 2.
        let x = vec![1.0; 10];
        let r = kfold(&x, 10, 1, &[0.5; 10], None, 5, 0, &FitOptions::default()).unwrap();
        assert_eq!(r.accuracy, Some(0.5));
        assert!((r.log_loss.unwrap() - 2.0_f64.ln()).abs() < 1e-15);
        assert!(kfold(&x, 10, 1, &[0.5; 10], None, 11, 0, &FitOptions::default()).is_err());
        assert!(kfold(&x, 10, 1, &[0.5; 10], None, 1, 0, &FitOptions::default()).is_err());
    }

    fn lbfgs_opts(tol: f64) -> FitOptions {
        FitOptions {
            solver: Solver::Lbfgs,
            tol,
            max_iter: 500,
            ..FitOptions::default()
        }
    }

    #[test]
    fn lbfgs_matches_newton() {
        let beta = [0.3, -1.0, 0.5, 0.0, 2.0, -0.25];
        let (x, y) = simulate(5000, &beta, 17);
        let tight = FitOptions {
            tol: 1e-13,
            ..FitOptions::default()
        };
        let newton = fit(&x, 5000, 6, &y, None, &tight).unwrap();
        let lb = fit(&x, 5000, 6, &y, None, &lbfgs_opts(1e-11)).unwrap();
        assert_eq!(
            (lb.solver, lb.status),
            (Solver::Lbfgs, FitStatus::Converged)
        );
        for j in 0..6 {
            assert!((lb.coef[j] - newton.coef[j]).abs() < 1e-7, "{j}");
            let (a, b) = (lb.se.as_ref().unwrap()[j], newton.se.as_ref().unwrap()[j]);
            assert!((a - b).abs() < 1e-7 * b);
        }
        // With a ridge on all but the intercept, too.
        let ridge = FitOptions {
            l2: 50.0,
            unpenalized: Some(vec![true, false, false, false, false, false]),
            ..tight
        };
        let n2 = fit(&x, 5000, 6, &y, None, &ridge).unwrap();
        let l2 = fit(
            &x,
            5000,
            6,
            &y,
            None,
            &FitOptions {
                solver: Solver::Lbfgs,
                tol: 1e-11,
                max_iter: 500,
                ..ridge.clone()
            },
        )
        .unwrap();
        for j in 0..6 {
            assert!((l2.coef[j] - n2.coef[j]).abs() < 1e-7, "{j}");
        }
    }

    #[test]
    fn auto_picks_lbfgs_for_many_features() {
        let mut beta = vec![0.0; 40];
        beta[1] = 1.0;
        let (x, y) = simulate(3000, &beta, 5);
        let f = fit(
            &x,
            3000,
            40,
            &y,
            None,
            &FitOptions {
                tol: 1e-9,
                max_iter: 500,
                ..FitOptions::default()
            },
        )
        .unwrap();
        assert_eq!((f.solver, f.status), (Solver::Lbfgs, FitStatus::Converged));
        let n = fit(
            &x,
            3000,
            40,
            &y,
            None,
            &FitOptions {
                solver: Solver::Newton,
                ..FitOptions::default()
            },
        )
        .unwrap();
        assert_eq!(n.solver, Solver::Newton);
        for j in 0..40 {
            assert!((f.coef[j] - n.coef[j]).abs() < 1e-5, "{j}");
        }
    }

    /// OWL-QN: exact zeros, and the lasso's optimality conditions
    /// |g_j| <= l1 at zeros, g_j = -l1 sign(beta_j) elsewhere.
    #[test]
    fn owlqn_satisfies_lasso_conditions() {
        let beta = [0.0, 1.5, -1.0, 0.0, 0.0, 0.05, 0.0, 0.8];
        let (x, y) = simulate(4000, &beta, 23);
        let mut free = vec![false; 8];
        free[0] = true;
        let opts = FitOptions {
            l1: 40.0,
            unpenalized: Some(free.clone()),
            ..lbfgs_opts(1e-10)
        };
        let f = fit(&x, 4000, 8, &y, None, &opts).unwrap();
        assert_eq!(f.status, FitStatus::Converged);
        assert!(f.cov.is_none() && f.se.is_none());
        let zeros: Vec<usize> = (0..8).filter(|&j| f.coef[j] == 0.0).collect();
        assert!(
            zeros.contains(&3) && zeros.contains(&4) && zeros.contains(&6),
            "{:?}",
            f.coef
        );
        assert!(f.coef[1] > 1.0 && f.coef[2] < -0.5);
        let d = Data {
            x: &x[..],
            p: 8,
            y: &y,
            w: None,
            rows: None,
            n: 4000,
        };
        let (_, g) = lbfgs::eval_grad(&d, &f.coef);
        for j in 0..8 {
            if free[j] {
                assert!(g[j].abs() < 1e-5, "{j}: {}", g[j]);
            } else if f.coef[j] == 0.0 {
                assert!(g[j].abs() <= 40.0 + 1e-5, "{j}: {}", g[j]);
            } else {
                assert!(
                    (g[j] + 40.0 * f.coef[j].signum()).abs() < 1e-5,
                    "{j}: {}",
                    g[j]
                );
            }
        }
        let l1_term: f64 = (1..8).map(|j| f.coef[j].abs()).sum::<f64>() * 40.0;
        assert!((f.penalty - l1_term).abs() < 1e-9);
        let newton_l1 = FitOptions {
            solver: Solver::Newton,
            ..opts
        };
        assert!(fit(&x, 4000, 8, &y, None, &newton_l1).is_err());
    }

    #[test]
    fn lbfgs_f32_in_place_and_weights() {
        let (x, y) = simulate(3000, &[0.2, -0.6, 0.9], 31);
        let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        let x64: Vec<f64> = x32.iter().map(|&v| f64::from(v)).collect();
        let a = fit(&x32, 3000, 3, &y, None, &lbfgs_opts(1e-10)).unwrap();
        let b = fit(&x64, 3000, 3, &y, None, &lbfgs_opts(1e-10)).unwrap();
        assert_eq!(a, b);
        // Weight 2 on every row equals each row twice.
        let w = vec![2.0; 3000];
        let c = fit(&x64, 3000, 3, &y, Some(&w), &lbfgs_opts(1e-10)).unwrap();
        for j in 0..3 {
            assert!((c.coef[j] - b.coef[j]).abs() < 1e-7);
        }
    }

    #[test]
    fn lbfgs_separation_is_reported() {
        let (x, y) = battles(10, 0);
        let f = fit(&x, 20, 2, &y, None, &lbfgs_opts(1e-8)).unwrap();
        assert_eq!(f.status, FitStatus::Separated);
        assert_eq!(f.separated_features, vec![1]);
    }

    #[test]
    fn groups_equal_separate_fits() {
        let (x, y) = simulate(900, &[0.1, 0.7, -0.4], 8);
        let rows_a: Vec<usize> = (0..600).collect();
        let rows_b: Vec<usize> = (300..900).collect();
        let idx: Vec<usize> = rows_a.iter().chain(&rows_b).copied().collect();
        let fits = fit_groups(
            &x,
            900,
            3,
            &y,
            None,
            &[0, 600, 1200],
            &idx,
            &FitOptions::default(),
        )
        .unwrap();
        let a = fit(&x[..1800], 600, 3, &y[..600], None, &FitOptions::default()).unwrap();
        let b = fit(&x[900..], 600, 3, &y[300..], None, &FitOptions::default()).unwrap();
        for j in 0..3 {
            assert!((fits[0].coef[j] - a.coef[j]).abs() < 1e-12);
            assert!((fits[1].coef[j] - b.coef[j]).abs() < 1e-12);
        }
        assert!(fit_groups(
            &x,
            900,
            3,
            &y,
            None,
            &[0, 5],
            &[0, 1, 2, 3, 900],
            &FitOptions::default()
        )
        .is_err());
        assert!(fit_groups(
            &x,
            900,
            3,
            &y,
            None,
            &[1, 5],
            &[0, 1, 2, 3, 4],
            &FitOptions::default()
        )
        .is_err());
    }

    #[test]
    fn kfold_held_out_probabilities() {
        let (x, y) = simulate(500, &[0.0, 1.5], 4);
        let r = kfold(&x, 500, 2, &y, None, 5, 7, &FitOptions::default()).unwrap();
        let prob = r.held_out_prob.as_ref().unwrap();
        // Recompute fold 0's predictions from a fit on the other folds.
        let train: Vec<usize> = (0..500).filter(|&i| r.fold_of_row[i] != 0).collect();
        let mut xt = Vec::new();
        let mut yt = Vec::new();
        for &i in &train {
            xt.extend_from_slice(&x[i * 2..i * 2 + 2]);
            yt.push(y[i]);
        }
        let f = fit(&xt, train.len(), 2, &yt, None, &FitOptions::default()).unwrap();
        for i in (0..500).filter(|&i| r.fold_of_row[i] == 0) {
            let eta = f.coef[0] * x[i * 2] + f.coef[1] * x[i * 2 + 1];
            assert!((prob[i] - sigmoid(eta)).abs() < 1e-12);
        }
        // Pooled log-loss from the probabilities.
        let ll: f64 = (0..500)
            .map(|i| -(y[i] * prob[i].ln() + (1.0 - y[i]) * (1.0 - prob[i]).ln()))
            .sum::<f64>()
            / 500.0;
        assert!((ll - r.log_loss.unwrap()).abs() < 1e-9);
    }

    #[test]
    fn kfold_refuses_separated_folds() {
        let (x, y) = battles(10, 0);
        let r = kfold(&x, 20, 2, &y, None, 4, 3, &FitOptions::default()).unwrap();
        assert!(r.fold_status.iter().all(|s| *s == FitStatus::Separated));
        assert!(r.accuracy.is_none() && r.log_loss.is_none());
        let opts = FitOptions {
            l2: 1.0,
            ..FitOptions::default()
        };
        let r = kfold(&x, 20, 2, &y, None, 4, 3, &opts).unwrap();
        assert_eq!(r.accuracy, Some(1.0));
    }

    /// The certificate as first written: one pass for the scales, then a
    /// scan of every row against the cut (a slow, readable reference).
    fn separates_reference(x: &[f64], p: usize, y: &[f64], v: &[f64]) -> bool {
        let margins: Vec<f64> = x
            .chunks_exact(p)
            .map(|r| r.iter().zip(v).map(|(a, b)| a * b).sum())
            .collect();
        let amax = margins.iter().fold(0.0_f64, |m, e| m.max(e.abs()));
        let mmax = x
            .chunks_exact(p)
            .map(|r| r.iter().zip(v).map(|(a, b)| (a * b).abs()).sum::<f64>())
            .fold(0.0_f64, f64::max);
        let cut = ZERO_MARGIN * amax;
        let clear = amax > 1e-8 * mmax;
        clear
            && margins
                .iter()
                .zip(y)
                .all(|(&m, &t)| (m <= cut || t == 1.0) && (m >= -cut || t == 0.0))
    }

    #[test]
    fn certificate_matches_reference() {
        // y = 1 exactly when x1 + x2 > 0 (quasi-complete: ties at 0 mixed),
        // 30,000 rows so that the quick look covers a fraction of them.
        let mut rng = SplitMix64(99);
        let n = 30_000;
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for i in 0..n {
            let a = (rng.below(21) as f64) - 10.0;
            let b = (rng.below(21) as f64) - 10.0;
            x.extend_from_slice(&[1.0, a, b, (rng.below(7) as f64) - 3.0]);
            y.push(if a + b == 0.0 {
                (i % 2) as f64
            } else {
                f64::from(u8::from(a + b > 0.0))
            });
        }
        // The last row alone breaks the direction (1, 1) but not (0, 1, 1).
        x.extend_from_slice(&[1.0, 0.0, 0.0, 2.0]);
        y.push(0.5);
        let d = Data {
            x: &x[..],
            p: 4,
            y: &y,
            w: None,
            rows: None,
            n: n + 1,
        };
        let candidates = vec![
            vec![0.0, 1.0, 1.0, 0.0],
            vec![0.0, 1.0, 1.0, 1e-3],
            vec![1.0, 1.0, 1.0, 0.0],
            vec![0.0, 1.0, 0.9, 0.0],
            vec![0.0, 0.0, 0.0, 0.0],
            vec![0.0, -1.0, -1.0, 0.0],
        ];
        let scale = sign_ranges(&d).column_scale(4);
        let got = separating(&d, &candidates, &scale);
        let want: Vec<bool> = candidates
            .iter()
            .map(|v| separates_reference(&x, 4, &y, v))
            .collect();
        assert_eq!(got, want);
        assert_eq!(want, vec![true, false, false, false, false, false]);
    }

    /// A step too long for the Armijo test: the line search halves it with
    /// loss-only passes, and the evaluation it returns is the full one at
    /// the accepted point.
    #[test]
    fn backtracking_returns_the_evaluation_of_its_point() {
        let (x, y) = simulate(3000, &[0.2, 1.0, -0.5], 13);
        let d = Data {
            x: &x[..],
            p: 3,
            y: &y,
            w: None,
            rows: None,
            n: 3000,
        };
        let free = vec![true; 3];
        let ridge = Ridge {
            l2: 0.0,
            free: &free,
        };
        let beta = vec![0.0; 3];
        let e0 = evaluate(&d, &beta, Want::Hess);
        let step: Vec<f64> = e0.grad.iter().map(|g| -40.0 * g / 3000.0).collect();
        let slope = dot(&e0.grad, &step);
        let (b, e) = line_search(&d, &ridge, &beta, &step, e0.nll, slope).unwrap();
        assert!(b[1] < step[1] && b[1] > 0.0, "{b:?} vs {step:?}");
        let again = evaluate(&d, &b, Want::Hess);
        assert_eq!(e.nll.to_bits(), again.nll.to_bits());
        assert_eq!(e.grad, again.grad);
        assert_eq!(e.hess, again.hess);
        assert!(e.nll < e0.nll);
    }

    /// f32 rows wider than one vector, read through index lists (folds) and
    /// with weights (row by row): the same bits as their f64 copies.
    #[test]
    fn wide_f32_through_folds_and_weights_matches_f64() {
        let mut beta = vec![0.0; 20];
        (0..20).for_each(|j| beta[j] = 0.1 * (j as f64 - 9.5) / 10.0);
        let (x, y) = simulate(2500, &beta, 29);
        let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        let x64: Vec<f64> = x32.iter().map(|&v| f64::from(v)).collect();
        let o = FitOptions::default();
        let a = kfold(&x32, 2500, 20, &y, None, 3, 5, &o).unwrap();
        let b = kfold(&x64, 2500, 20, &y, None, 3, 5, &o).unwrap();
        assert_eq!(a, b);
        let w: Vec<f64> = (0..2500).map(|i| f64::from((i % 3) as u8)).collect();
        let a = fit(&x32, 2500, 20, &y, Some(&w), &o).unwrap();
        let b = fit(&x64, 2500, 20, &y, Some(&w), &o).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.n_obs, 1666);
    }

    /// Folds start from the previous fold's fit: a training set that is
    /// separated is still found so after a converged one, with the verdict
    /// of a fit from zero on the same rows.
    #[test]
    fn warm_started_fold_still_finds_separation() {
        let n = 600;
        let fold = fold_assignment(n, 2, 11);
        let mut rng = SplitMix64(4);
        let z = normals(&mut rng, n);
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for i in 0..n {
            x.extend_from_slice(&[1.0, z[i]]);
            // Fold 0's rows (fold 1's training set) follow z exactly.
            let u = ((rng.next_u64() >> 11) as f64) / (1u64 << 53) as f64;
            let t = if fold[i] == 0 {
                z[i] > 0.0
            } else {
                u < sigmoid(z[i])
            };
            y.push(f64::from(u8::from(t)));
        }
        let r = kfold(&x, n, 2, &y, None, 2, 11, &FitOptions::default()).unwrap();
        assert_eq!(
            r.fold_status,
            vec![FitStatus::Converged, FitStatus::Separated]
        );
        let rows: Vec<usize> = (0..n).filter(|&i| fold[i] == 0).collect();
        let xt: Vec<f64> = rows.iter().flat_map(|&i| [1.0, z[i]]).collect();
        let yt: Vec<f64> = rows.iter().map(|&i| y[i]).collect();
        let cold = fit(&xt, rows.len(), 2, &yt, None, &FitOptions::default()).unwrap();
        assert_eq!(cold.status, FitStatus::Separated);
        assert_eq!(r.fold_separated[1], cold.separated_features);
        assert_eq!(cold.separated_features, vec![1]);
    }
}
