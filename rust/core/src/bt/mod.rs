//! Item-level Bradley-Terry on collapsed battle counts: the leaderboard
//! engine.
//!
//! Pipeline: battles → per-pair counts in one pass ([`counts`]) → graph
//! checks ([`graph`]: components of the comparison graph, strongly connected
//! blocks of the win graph, models that never win or never lose) → damped
//! Newton on the counts ([`newton`]) for ties `half`, `drop`, `davidson` or
//! `rao-kupper`, with an optional L2 prior `α/2 ‖θ‖²` → a constraint (mean
//! zero over the main block of each component, or one model anchored at 0)
//! → Hessian covariance under that constraint → optional count-space
//! bootstrap ([`bootstrap`]).
//!
//! Memory is the input plus O(K²) (the dense Hessian); no N×K matrix is
//! ever formed. Without a prior, data with no finite MLE get the extended
//! MLE (see [`graph`]): the main block of each component is fitted and every
//! other model is reported as above, below or not ordered against it, never
//! as a number. With `α > 0` every model is finite and the report says the
//! finite answer comes from the prior.
//!
//! Rejected: fitting a logistic regression on a one-hot design over battles
//! (FastChat's older scripts; N×K memory and a single-class crash when every
//! row reads `model_a`), and the MM iteration of Hunter (2004) (linear
//! convergence and no Hessian for the errors).

pub mod bootstrap;
pub mod counts;
pub mod graph;
mod linalg;
mod model;
mod newton;
mod rng;
pub mod style;

pub use bootstrap::{bootstrap, BootOptions, Bootstrap};
pub use counts::{scan, Battles, Cell, ModelTotals, PairCounts, Scan, A_WINS, B_WINS, TIE};
pub use graph::Standing;

use model::{Curvature, EffCell, Problem};
use newton::newton;
use rayon::prelude::*;

use crate::{invalid, CoreError, Result};

/// How a tie counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ties {
    /// Half a win to each side (Chatbot Arena's convention).
    Half,
    /// Ties removed before fitting.
    Drop,
    /// Davidson (1970): a tie parameter `ν`.
    Davidson,
    /// Rao & Kupper (1967): a threshold `κ = e^η ≥ 1`.
    RaoKupper,
}

impl Ties {
    /// Parse `half`, `drop`, `davidson` or `rao-kupper`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "half" => Ok(Self::Half),
            "drop" => Ok(Self::Drop),
            "davidson" => Ok(Self::Davidson),
            "rao-kupper" | "rao_kupper" => Ok(Self::RaoKupper),
            _ => Err(invalid!(
                "ties = {s:?}: expected half, drop, davidson or rao-kupper"
            )),
        }
    }
}

/// Options of [`fit`].
#[derive(Clone, Debug, PartialEq)]
pub struct FitOptions {
    pub ties: Ties,
    /// L2 prior strength `α ≥ 0` on θ (not on the tie parameter).
    pub alpha: f64,
    /// Anchor this model at θ = 0 instead of centring its component.
    pub anchor: Option<usize>,
    /// Stop when `‖∇‖∞ ≤ tol · max(1, total weight)`.
    pub tol: f64,
    pub max_iter: usize,
    /// Compute the Hessian covariance (O(K³) once).
    pub covariance: bool,
}

impl Default for FitOptions {
    fn default() -> Self {
        Self {
            ties: Ties::Half,
            alpha: 0.0,
            anchor: None,
            tol: 1e-12,
            max_iter: 100,
            covariance: true,
        }
    }
}

/// A fitted leaderboard (natural log-strengths).
#[derive(Clone, Debug, PartialEq)]
pub struct Fit {
    /// θ under the constraint; `0.0` (meaningless) where `standing` is not
    /// [`Standing::Finite`].
    pub theta: Vec<f64>,
    pub standing: Vec<Standing>,
    /// Connected component of each model (numbered by lowest model index).
    pub component: Vec<u32>,
    /// Strongly connected block of each model in the win graph.
    pub block: Vec<u32>,
    pub never_win: Vec<u32>,
    pub never_lose: Vec<u32>,
    /// True when one pass over the cells proves every component's win graph
    /// strongly connected (every model would have a finite rating without
    /// the prior); false proves nothing (a cycle with no pair won both ways
    /// is strongly connected too).
    pub strongly_connected: bool,
    /// Davidson `ν` or Rao-Kupper `κ`, with its Hessian standard error.
    pub tie_param: Option<f64>,
    pub tie_param_se: Option<f64>,
    /// True when the data have no ties, so the tie parameter sits on its
    /// boundary (`ν = 0`, `κ = 1`) and the fit is plain Bradley-Terry.
    pub tie_param_at_boundary: bool,
    pub iterations: usize,
    pub grad_norm: f64,
    pub converged: bool,
    /// The covariance of θ under the constraint as a factor `V`, `n × n`
    /// row-major (`n` = K, plus one with a Davidson or Rao-Kupper tie
    /// parameter): `cov(θ_u, θ_v) = V[:, u] · V[:, v]` for two models of
    /// one component; zero across components (and meaningless there). The
    /// columns of models with no finite estimate are zero. Forming the K×K
    /// matrix ([`Fit::covariance`]) costs as much again as the factor, so it
    /// is left to whoever needs more than `var`.
    pub cov_factor: Option<Vec<f64>>,
    /// The covariance's diagonal: the variance of each constrained θ.
    pub var: Option<Vec<f64>>,
}

impl Fit {
    /// `n`, the side of the square [`Fit::cov_factor`] (0 without one).
    pub fn cov_factor_dim(&self) -> usize {
        self.cov_factor.as_ref().map_or(0, |v| v.len().isqrt())
    }

    /// The K×K covariance of θ under the constraint (row-major; rows of
    /// non-finite models zero, entries across components zero), from
    /// [`Fit::cov_factor`]: O(K³), for small K and for checks.
    pub fn covariance(&self) -> Option<Vec<f64>> {
        let v = self.cov_factor.as_ref()?;
        let k = self.theta.len();
        let n = self.cov_factor_dim();
        let mut c = vec![0.0; k * k];
        for u in 0..k {
            for w in 0..k {
                if self.component[u] == self.component[w] {
                    c[u * k + w] = (0..n).map(|r| v[r * n + u] * v[r * n + w]).sum();
                }
            }
        }
        Some(c)
    }
}

/// Fit Bradley-Terry (with the chosen tie model) to collapsed counts.
pub fn fit(counts: &PairCounts, opts: &FitOptions) -> Result<Fit> {
    fit_from(counts, opts, None, true)
}

/// Everything a leaderboard needs from one pass over the battles.
#[derive(Clone, Debug, PartialEq)]
pub struct Leaderboard {
    pub totals: ModelTotals,
    pub n_cells: usize,
    pub fit: Fit,
    pub bootstrap: Option<Bootstrap>,
}

/// Collapse `battles`, fit, and (when `boot` is given) bootstrap the fit.
pub fn leaderboard(
    n_models: usize,
    battles: &Battles<'_>,
    opts: &FitOptions,
    boot: Option<&BootOptions>,
) -> Result<Leaderboard> {
    let counts = PairCounts::from_battles(n_models, battles)?;
    let fit = fit(&counts, opts)?;
    let bootstrap = match boot {
        Some(b) if b.rounds > 0 => {
            let mut warm = fit.theta.clone();
            if let Some(t) = fit.tie_param.filter(|_| !fit.tie_param_at_boundary) {
                warm.push(t.ln());
            }
            Some(bootstrap::bootstrap(&counts, opts, &warm, b)?)
        }
        _ => None,
    };
    Ok(Leaderboard {
        totals: counts.totals(),
        n_cells: counts.cells.len(),
        fit,
        bootstrap,
    })
}

fn validate(k: usize, opts: &FitOptions) -> Result<()> {
    if !(opts.alpha.is_finite() && opts.alpha >= 0.0) {
        return Err(invalid!(
            "alpha = {}: expected a finite number >= 0",
            opts.alpha
        ));
    }
    if !(opts.tol.is_finite() && opts.tol > 0.0) {
        return Err(invalid!("tol = {}: expected a finite number > 0", opts.tol));
    }
    if opts.max_iter == 0 {
        return Err(invalid!("max_iter must be at least 1"));
    }
    if let Some(a) = opts.anchor.filter(|a| *a >= k) {
        return Err(invalid!("anchor index {a} out of range (n_models = {k})"));
    }
    if k == 0 {
        return Err(invalid!("no models"));
    }
    Ok(())
}

/// Cells from which [`effective`] converts in parallel (a bootstrap round's
/// few thousand cells stay on their own thread).
const EFFECTIVE_PAR_FROM: usize = 1 << 16;

fn effective_cell(c: &Cell, ties: Ties) -> EffCell {
    let (i, j) = (c.i as usize, c.j as usize);
    match ties {
        Ties::Half => EffCell {
            i,
            j,
            wi: c.w[0] + 0.5 * c.w[2],
            wj: c.w[1] + 0.5 * c.w[2],
            t: 0.0,
        },
        Ties::Drop => EffCell {
            i,
            j,
            wi: c.w[0],
            wj: c.w[1],
            t: 0.0,
        },
        _ => EffCell {
            i,
            j,
            wi: c.w[0],
            wj: c.w[1],
            t: c.w[2],
        },
    }
}

/// Cells under the tie convention (a map cell by cell: the same result on
/// any number of threads).
fn effective(cells: &[Cell], ties: Ties) -> Vec<EffCell> {
    if cells.len() < EFFECTIVE_PAR_FROM {
        cells.iter().map(|c| effective_cell(c, ties)).collect()
    } else {
        cells.par_iter().map(|c| effective_cell(c, ties)).collect()
    }
}

/// Graph structure shared by the fit and each bootstrap round.
struct Structure {
    component: Vec<u32>,
    block: Vec<u32>,
    main: Vec<u32>,
    standing: Vec<Standing>,
    never_win: Vec<u32>,
    never_lose: Vec<u32>,
    strongly_connected: bool,
}

fn structure(k: usize, eff: &[EffCell], alpha: f64) -> Structure {
    let q = graph::quick(k, eff);
    let n_comp = q.component.iter().max().map_or(0, |m| *m + 1);
    if alpha > 0.0 || q.strongly_connected {
        // Every model is finite: the prior bounds it, or its component is one
        // block (numbered like the components, by lowest model index).
        return Structure {
            block: q.component.clone(),
            main: (0..n_comp).collect(),
            standing: vec![Standing::Finite; k],
            component: q.component,
            never_win: q.never_win,
            never_lose: q.never_lose,
            strongly_connected: q.strongly_connected,
        };
    }
    let (fwd, rev) = graph::win_graph(k, eff);
    let block = graph::blocks(k, &fwd);
    let main = graph::main_blocks(&q.component, &block);
    let standing = graph::standings(&fwd, &rev, &block, &main, &q.component);
    Structure {
        component: q.component,
        block,
        main,
        standing,
        never_win: q.never_win,
        never_lose: q.never_lose,
        strongly_connected: false,
    }
}

/// Starting value of the tie parameter from the share of ties at `d = 0`.
fn tie_start(ties: Ties, tie_w: f64, total: f64) -> f64 {
    let f = (tie_w / total).clamp(1e-6, 1.0 - 1e-6);
    match ties {
        Ties::Davidson => (2.0 * f / (1.0 - f)).ln(),
        _ => ((1.0 + f) / (1.0 - f)).ln(),
    }
}

pub(crate) fn fit_from(
    counts: &PairCounts,
    opts: &FitOptions,
    warm: Option<&[f64]>,
    strict_anchor: bool,
) -> Result<Fit> {
    let k = counts.n_models;
    validate(k, opts)?;
    let eff_all = effective(&counts.cells, opts.ties);
    let st = structure(k, &eff_all, opts.alpha);
    // Only cells inside one block inform the (extended) MLE.
    // One pass: drop the rest, and sum the kept weights (in cell order).
    let mut cells = eff_all;
    let (mut tie_w, mut win_w) = (0.0, 0.0);
    cells.retain(|c| {
        let keep = c.total() > 0.0 && st.block[c.i] == st.block[c.j];
        if keep {
            tie_w += c.t;
            win_w += c.wi + c.wj;
        }
        keep
    });
    let mut ties = opts.ties;
    let boundary = matches!(ties, Ties::Davidson | Ties::RaoKupper) && tie_w == 0.0;
    if boundary {
        ties = Ties::Drop;
    } else if matches!(ties, Ties::Davidson | Ties::RaoKupper) && win_w == 0.0 {
        return Err(CoreError::Fit(format!(
            "every battle is a tie: the {} tie parameter has no finite estimate \
             (use ties = half or drop)",
            if ties == Ties::Davidson {
                "Davidson"
            } else {
                "Rao-Kupper"
            }
        )));
    }
    let gauge = gauge_blocks(&st.block, opts.alpha);
    let p = Problem {
        k,
        cells: &cells,
        ties,
        alpha: opts.alpha,
        gauge: &gauge,
    };
    let mut x0 = vec![0.0; p.dim()];
    if let Some(w) = warm {
        for (x, v) in x0.iter_mut().zip(w) {
            *x = if v.is_finite() { *v } else { 0.0 };
        }
    }
    if p.has_tie_param() && warm.is_none_or(|w| w.len() <= k) {
        x0[k] = tie_start(ties, tie_w, tie_w + win_w);
    }
    let out = newton(&p, x0, opts.tol, opts.max_iter)?;
    let mut fit = Fit {
        theta: out.x[..k].to_vec(),
        standing: st.standing,
        component: st.component,
        block: st.block,
        never_win: st.never_win,
        never_lose: st.never_lose,
        strongly_connected: st.strongly_connected,
        tie_param: None,
        tie_param_se: None,
        tie_param_at_boundary: boundary,
        iterations: out.iterations,
        grad_norm: out.grad_norm,
        converged: out.converged,
        cov_factor: None,
        var: None,
    };
    let weights = constrain(&mut fit, &st.main, opts.anchor, strict_anchor)?;
    let tau = p.has_tie_param().then(|| out.x[k]);
    fit.tie_param = match (opts.ties, tau) {
        (Ties::Davidson | Ties::RaoKupper, Some(t)) => Some(t.exp()),
        (Ties::Davidson, None) => Some(0.0),
        (Ties::RaoKupper, None) => Some(1.0),
        _ => None,
    };
    if opts.covariance {
        let (factor, var, tau_var) = covariance(&p, &out.curv, &fit, &weights)?;
        fit.cov_factor = Some(factor);
        fit.var = Some(var);
        if let (Some(t), Some(v)) = (fit.tie_param, tau_var) {
            fit.tie_param_se = Some(t * v.max(0.0).sqrt());
        }
    }
    Ok(fit)
}

fn gauge_blocks(block: &[u32], alpha: f64) -> Vec<Vec<usize>> {
    if alpha > 0.0 {
        return Vec::new();
    }
    let n = block.iter().max().map_or(0, |m| *m as usize + 1);
    let mut out = vec![Vec::new(); n];
    for (u, b) in block.iter().enumerate() {
        out[*b as usize].push(u);
    }
    out
}

/// Reference weights per component: the anchor, or uniform over the main
/// block. `θ_u ← θ_u − Σ_v w_v θ_v` for the main-block models.
type RefWeights = Vec<Vec<(usize, f64)>>;

fn constrain(
    fit: &mut Fit,
    main: &[u32],
    anchor: Option<usize>,
    strict: bool,
) -> Result<RefWeights> {
    let k = fit.theta.len();
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); main.len()];
    for u in 0..k {
        if fit.standing[u] == Standing::Finite {
            members[fit.component[u] as usize].push(u);
        }
    }
    let mut weights: RefWeights = members
        .iter()
        .map(|m| m.iter().map(|&u| (u, 1.0 / m.len() as f64)).collect())
        .collect();
    if let Some(a) = anchor {
        let c = fit.component[a] as usize;
        if fit.standing[a] == Standing::Finite {
            weights[c] = vec![(a, 1.0)];
        } else if strict {
            return Err(invalid!(
                "the anchor model (index {a}) has no finite estimate: {:?}",
                fit.standing[a]
            ));
        } else {
            for u in 0..k {
                if fit.component[u] as usize == c {
                    fit.standing[u] = Standing::Undefined;
                }
            }
        }
    }
    let shift: Vec<f64> = weights
        .iter()
        .map(|w| w.iter().map(|&(u, s)| s * fit.theta[u]).sum())
        .collect();
    for u in 0..k {
        fit.theta[u] = match fit.standing[u] {
            Standing::Finite => fit.theta[u] - shift[fit.component[u] as usize],
            _ => 0.0,
        };
    }
    Ok(weights)
}

/// Rows of the covariance factor per task when summing the variances (a
/// fixed split, so the sums are the same on any number of threads).
const VAR_ROWS: usize = 64;

/// The covariance of the constrained θ as a factor, the variances, and the
/// variance of the tie parameter (on its log scale), from the Hessian at the
/// optimum (`curv`, the curvature Newton ended on).
///
/// With `H + G = L Lᵀ` (the gauge `G` added for the directions the
/// likelihood leaves free) and `W = L⁻¹`, `(H + G)⁻¹ = Wᵀ W`. The
/// constraint maps θ to `P θ`, `P = I − Σ_c 1_c w_cᵀ` (`w_c` the reference
/// weights of component `c`, summing to 1), so `cov = P (H + G)⁻¹ Pᵀ`
/// after the gauge's own term `Σ_B 1_B 1_Bᵀ / (c_B |B|)` is taken back out;
/// `P` sends every `1_B` of the finite models to zero, so that term drops,
/// and `cov = Vᵀ V` with `V = W Pᵀ`: column `u` of `W` minus `W w_c`. One
/// triangular inverse (`n³/6` multiply-adds) and O(n²) after it; forming
/// `Vᵀ V` would cost as much again, and only pairwise differences need it.
fn covariance(
    p: &Problem<'_>,
    curv: &Curvature,
    fit: &Fit,
    weights: &RefWeights,
) -> Result<(Vec<f64>, Vec<f64>, Option<f64>)> {
    let (k, n) = (p.k, p.dim());
    let mut h = vec![0.0; n * n];
    p.dense(curv, &mut h);
    if !linalg::cholesky(&mut h, n) {
        return Err(CoreError::Fit(
            "the Hessian at the optimum is singular; no standard errors".into(),
        ));
    }
    let mut v = linalg::lower_inverse(&h, n);
    drop(h);
    let finite: Vec<bool> = fit
        .standing
        .iter()
        .map(|s| *s == Standing::Finite)
        .collect();
    let comp = &fit.component;
    let partial: Vec<Vec<f64>> = v
        .par_chunks_mut((n * VAR_ROWS).max(1))
        .map(|rows| {
            let mut sq = vec![0.0; n];
            let mut shift = vec![0.0; weights.len()];
            for row in rows.chunks_exact_mut(n) {
                for (t, w) in shift.iter_mut().zip(weights) {
                    *t = w.iter().map(|&(u, s)| s * row[u]).sum();
                }
                for u in 0..k {
                    row[u] = if finite[u] {
                        row[u] - shift[comp[u] as usize]
                    } else {
                        0.0
                    };
                }
                for (a, x) in sq.iter_mut().zip(row.iter()) {
                    *a += x * x;
                }
            }
            sq
        })
        .collect();
    let mut var = vec![0.0; n];
    for sq in &partial {
        for (a, x) in var.iter_mut().zip(sq) {
            *a += x;
        }
    }
    let tau_var = p.has_tie_param().then(|| var[k]);
    var.truncate(k);
    Ok((v, var, tau_var))
}

#[cfg(test)]
mod tests;
