//! L-BFGS and OWL-QN for the logistic objective with many features.
//!
//! Objective. The data term of `logistic` plus an elastic-net penalty on the
//! coefficients not marked unpenalised:
//!
//!   F(beta) = sum_i w_i [log(1 + e^eta_i) - y_i eta_i]
//!             + l2/2 sum_{j pen} beta_j^2 + l1 sum_{j pen} |beta_j|.
//!
//! Method. Limited-memory BFGS with the two-loop recursion and the usual
//! initial scaling s'y / y'y (Nocedal & Wright, 2006, algorithm 7.4 and
//! eq. 7.20), `history` pairs kept; the first step is scaled by the Hessian's
//! diagonal at the start, which the first pass computes too. With l1 > 0 it
//! becomes OWL-QN (Andrew & Gao, "Scalable training of L1-regularized
//! log-linear models", ICML 2007): the gradient is replaced by the
//! pseudo-gradient of F, the direction is zeroed where it disagrees in sign
//! with minus the pseudo-gradient, and every trial point is projected onto
//! the orthant of the current point, so that coefficients reach exact zeros.
//! Backtracking line search with the Armijo test on F. Each trial point
//! costs one pass over the rows that computes the loss and the gradient
//! together (so an accepted step needs no second pass); a pass is O(n p)
//! against Newton's O(n p^2), and the rows are read in place in their own
//! precision (f32 or f64).
//!
//! The stopping rule is the one of Newton: max_j |pseudo-gradient_j| divided
//! by the total weight at most `tol`.
//!
//! Rejected: coordinate descent (glmnet's method; its passes are cheap per
//! coordinate but touch the matrix column by column, which row-major f32
//! input in place makes slow); proximal gradient / FISTA (needs many more
//! passes than a quasi-Newton method on these well-conditioned problems);
//! a More-Thuente line search (the Armijo step 1 is accepted in almost every
//! iteration here, and the convex objective keeps s'y > 0).

use super::{
    dot, max_abs, Data, FitStatus, NewtonRun, Real, Want, ARMIJO_C, LOSS_RESOLUTION, MAX_HALVINGS,
};

/// The penalty: ridge and lasso strengths, and which coefficients they touch.
pub(super) struct Penalty<'a> {
    pub l2: f64,
    pub l1: f64,
    /// `true` for coefficients neither penalty touches.
    pub free: &'a [bool],
}

impl Penalty<'_> {
    /// l2/2 sum beta^2 + l1 sum |beta| over the penalised coefficients.
    pub fn value(&self, beta: &[f64]) -> f64 {
        beta.iter()
            .zip(self.free)
            .filter(|(_, f)| !**f)
            .map(|(b, _)| 0.5 * self.l2 * b * b + self.l1 * b.abs())
            .sum()
    }

    /// Add the ridge's gradient (the smooth part) to `g`.
    fn add_ridge(&self, beta: &[f64], g: &mut [f64]) {
        if self.l2 > 0.0 {
            for ((gj, b), f) in g.iter_mut().zip(beta).zip(self.free) {
                if !*f {
                    *gj += self.l2 * b;
                }
            }
        }
    }

    /// OWL-QN's pseudo-gradient: the gradient of the smooth part, moved by
    /// the lasso's subgradient towards zero where beta_j = 0.
    fn pseudo_gradient(&self, beta: &[f64], g: &[f64]) -> Vec<f64> {
        let mut pg = g.to_vec();
        if self.l1 == 0.0 {
            return pg;
        }
        for j in 0..beta.len() {
            if self.free[j] {
                continue;
            }
            let (b, gj, l) = (beta[j], g[j], self.l1);
            pg[j] = if b > 0.0 {
                gj + l
            } else if b < 0.0 {
                gj - l
            } else if gj + l < 0.0 {
                gj + l
            } else if gj - l > 0.0 {
                gj - l
            } else {
                0.0
            };
        }
        pg
    }
}

/// Weighted negative log-likelihood and its gradient, in one pass.
pub(super) fn eval_grad<T: Real>(d: &Data<T>, beta: &[f64]) -> (f64, Vec<f64>) {
    let e = super::evaluate(d, beta, Want::Grad);
    (e.nll, e.grad)
}

/// Memory of the quasi-Newton pairs (s, y, 1 / s'y), oldest first.
struct Memory {
    pairs: Vec<(Vec<f64>, Vec<f64>, f64)>,
    cap: usize,
    /// The penalised Hessian's diagonal at the start, which scales a step
    /// taken with no pairs (`None` when some entry is not positive).
    diag0: Option<Vec<f64>>,
}

impl Memory {
    fn push(&mut self, s: Vec<f64>, y: Vec<f64>) {
        let sy = dot(&s, &y);
        // The objective is convex, so s'y >= 0; skip pairs too flat to use.
        if sy > 1e-12 * dot(&y, &y).max(f64::MIN_POSITIVE) {
            if self.pairs.len() == self.cap {
                self.pairs.remove(0);
            }
            self.pairs.push((s, y, 1.0 / sy));
        }
    }

    /// -H g by the two-loop recursion. A step with no pairs (the first, or
    /// after a restart) is -g_j / H_jj with the Hessian's diagonal at the
    /// start: Newton's step if the columns were orthogonal, and free of
    /// their scales, where a step of unit length in the max norm was often
    /// twice too long and cost a halving and an iteration or two. Without a
    /// usable diagonal it is that unit step.
    fn direction(&self, g: &[f64]) -> Vec<f64> {
        if let (true, Some(h)) = (self.pairs.is_empty(), &self.diag0) {
            return g.iter().zip(h).map(|(gj, hj)| -gj / hj).collect();
        }
        let mut q = g.to_vec();
        let mut alpha = vec![0.0; self.pairs.len()];
        for (k, (s, y, rho)) in self.pairs.iter().enumerate().rev() {
            alpha[k] = rho * dot(s, &q);
            q.iter_mut()
                .zip(y)
                .for_each(|(qj, yj)| *qj -= alpha[k] * yj);
        }
        let gamma = match self.pairs.last() {
            Some((_, y, rho)) => 1.0 / (rho * dot(y, y)),
            None => 1.0 / max_abs(g).max(f64::MIN_POSITIVE),
        };
        q.iter_mut().for_each(|v| *v *= gamma);
        for (k, (s, y, rho)) in self.pairs.iter().enumerate() {
            let b = rho * dot(y, &q);
            q.iter_mut()
                .zip(s)
                .for_each(|(qj, sj)| *qj += (alpha[k] - b) * sj);
        }
        q.iter_mut().for_each(|v| *v = -*v);
        q
    }
}

/// The current iterate: coefficients, smooth gradient, objective.
struct Point {
    beta: Vec<f64>,
    grad: Vec<f64>,
    nll: f64,
    obj: f64,
}

fn evaluate<T: Real>(d: &Data<T>, pen: &Penalty, beta: Vec<f64>) -> Point {
    let (nll, grad) = eval_grad(d, &beta);
    point(pen, beta, nll, grad)
}

/// The point `beta` whose data term has loss `nll` and gradient `grad`.
fn point(pen: &Penalty, beta: Vec<f64>, nll: f64, mut grad: Vec<f64>) -> Point {
    pen.add_ridge(&beta, &mut grad);
    let obj = nll + pen.value(&beta);
    Point {
        beta,
        grad,
        nll,
        obj,
    }
}

/// Backtracking along `dir` from `at`; with the lasso, trial points are
/// projected onto the orthant of `at` (signs of beta, or of -pg at zeros).
fn line_search<T: Real>(
    d: &Data<T>,
    pen: &Penalty,
    at: &Point,
    pg: &[f64],
    dir: &[f64],
) -> Option<Point> {
    let orthant: Vec<f64> = at
        .beta
        .iter()
        .zip(pg)
        .map(|(&b, &g)| if b != 0.0 { b.signum() } else { -g.signum() })
        .collect();
    let resolution = LOSS_RESOLUTION * at.obj.abs().max(f64::MIN_POSITIVE);
    let mut t = 1.0;
    for _ in 0..MAX_HALVINGS {
        let mut cand: Vec<f64> = at.beta.iter().zip(dir).map(|(b, s)| b + t * s).collect();
        if pen.l1 > 0.0 {
            for j in 0..cand.len() {
                if !pen.free[j] && cand[j] * orthant[j] <= 0.0 {
                    cand[j] = 0.0;
                }
            }
        }
        let moved: Vec<f64> = cand.iter().zip(&at.beta).map(|(c, b)| c - b).collect();
        let decrease = dot(pg, &moved);
        let next = evaluate(d, pen, cand);
        let small = t == 1.0 && -decrease <= resolution && next.obj <= at.obj + resolution;
        if next.obj <= at.obj + ARMIJO_C * decrease || small {
            return Some(next);
        }
        t *= 0.5;
    }
    None
}

/// Run L-BFGS / OWL-QN from `at_start` = (beta, and the data term's loss,
/// gradient and Hessian diagonal there). The returned `NewtonRun` carries
/// the iterate, status and last displacements for the separation report;
/// its `hess` is left empty.
pub(super) fn lbfgs<T: Real>(
    d: &Data<T>,
    pen: &Penalty,
    at_start: (Vec<f64>, f64, Vec<f64>, Vec<f64>),
    tol: f64,
    w_total: f64,
    limits: (usize, usize),
) -> NewtonRun {
    let (max_iter, history) = limits;
    let mut run = NewtonRun::start(d.p);
    let (beta0, nll0, grad0, mut diag0) = at_start;
    let mut at = point(pen, beta0, nll0, grad0);
    diag0
        .iter_mut()
        .zip(pen.free)
        .for_each(|(h, &f)| *h += if f { 0.0 } else { pen.l2 });
    let usable = diag0.iter().all(|h| *h > 0.0 && h.is_finite());
    let mut mem = Memory {
        pairs: Vec::new(),
        cap: history,
        diag0: usable.then_some(diag0),
    };
    loop {
        let pg = pen.pseudo_gradient(&at.beta, &at.grad);
        run.grad_norm = max_abs(&pg) / w_total;
        if run.grad_norm <= tol {
            run.status = FitStatus::Converged;
            break;
        }
        if run.n_iter >= max_iter {
            run.status = FitStatus::MaxIter;
            break;
        }
        let mut dir = mem.direction(&pg);
        if pen.l1 > 0.0 {
            dir.iter_mut()
                .zip(&pg)
                .for_each(|(v, g)| *v = if *v * g < 0.0 { *v } else { 0.0 });
        }
        if dot(&dir, &pg) >= 0.0 {
            mem.pairs.clear();
            dir = pg.iter().map(|g| -g / max_abs(&pg)).collect();
        }
        let Some(next) = line_search(d, pen, &at, &pg, &dir) else {
            run.status = FitStatus::LineSearchFailed;
            break;
        };
        let s: Vec<f64> = next.beta.iter().zip(&at.beta).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = next.grad.iter().zip(&at.grad).map(|(a, b)| a - b).collect();
        run.steps.push(s.clone());
        if run.steps.len() > 3 {
            run.steps.remove(0);
        }
        mem.push(s, y);
        at = next;
        run.n_iter += 1;
    }
    run.nll = at.nll;
    run.beta = at.beta;
    run
}
