//! Count-space bootstrap of the leaderboard.
//!
//! Resampling N battles with replacement and collapsing them gives cell
//! counts that follow Multinomial(N, n_c / N) over the cells (a cell being a
//! pair and an outcome). So each round draws that multinomial directly, and
//! exactly (O(cells + √N): Poisson draws corrected to the total N, see
//! [`super::rng`]), and refits warm-started from the full-data estimate:
//! the same distribution as the battle bootstrap at a fraction of the cost.
//! Each round's fit skips the covariance and stops at a looser tolerance
//! (see [`bootstrap`]).
//! Weighted input: a cell's resampled weight is its drawn count times its
//! mean weight, which ignores the spread of weights inside a cell (exact
//! when weights are constant per pair and outcome).
//!
//! Round `r` draws from a generator seeded by `(seed, r)` alone, and rounds
//! are collected in order, so the output is bit-identical whatever the
//! number of threads. A round in which a model has no finite estimate (it
//! never wins, never loses or falls outside the main block in that
//! resample) counts as degenerate for that model; its value is `±inf` when
//! ordered against the main block (kept: it is a real extreme of the
//! distribution) and undefined otherwise (left out of that model's
//! percentiles). Intervals are percentile intervals (Efron & Tibshirani
//! 1993, ch. 13) with linear interpolation between order statistics.
//! Rejected: Arena's practice of centring intervals on the bootstrap median
//! (the point estimate here is the full-data MLE, and the interval is
//! reported around it as computed).

use rayon::prelude::*;

use super::rng::{Redraw, Xoshiro256pp};
use super::{fit_from, Cell, FitOptions, PairCounts, Standing};
use crate::{invalid, Result};

/// Options of [`bootstrap`].
#[derive(Clone, Debug, PartialEq)]
pub struct BootOptions {
    pub rounds: usize,
    pub seed: u64,
    /// Central coverage of the interval, in (0, 1).
    pub level: f64,
    /// Threads to use (None: rayon's global pool).
    pub n_threads: Option<usize>,
}

/// Bootstrap draws and percentile intervals of θ (same constraint as the fit).
#[derive(Clone, Debug, PartialEq)]
pub struct Bootstrap {
    pub rounds: usize,
    pub n_models: usize,
    /// Round-major `rounds × n_models`; `±inf` for ordered degenerate
    /// rounds; `0.0` where `defined` is false.
    pub draws: Vec<f64>,
    pub defined: Vec<bool>,
    /// Percentile interval per model (meaningful where `n_defined > 0`).
    pub ci_low: Vec<f64>,
    pub ci_high: Vec<f64>,
    pub n_defined: Vec<u64>,
    /// Rounds where the model had no finite estimate.
    pub n_degenerate: Vec<u64>,
    /// Tie parameter per round (NaN-free: rounds without one are skipped),
    /// and its percentile interval.
    pub tie_draws: Vec<f64>,
    pub tie_ci: Option<(f64, f64)>,
    /// Rounds whose fit failed outright (all models undefined) or stopped
    /// before its tolerance.
    pub n_failed: u64,
    pub n_unconverged: u64,
}

struct Round {
    values: Vec<f64>,
    defined: Vec<bool>,
    degenerate: Vec<bool>,
    tie: Option<f64>,
    failed: bool,
    converged: bool,
}

/// One round's counts: Multinomial(N, n_cell / N) over the cells (a pair
/// and an outcome, in the order of `counts.cells`); `drawn` is scratch
/// space of three entries per cell, overwritten.
fn resample(
    counts: &PairCounts,
    redraw: &Redraw,
    rng: &mut Xoshiro256pp,
    drawn: &mut [u64],
) -> PairCounts {
    redraw.draw(rng, drawn);
    // Sized up front: growing by doubling copied the cells about twice.
    let mut cells = Vec::with_capacity(counts.cells.len());
    cells.extend(
        counts
            .cells
            .iter()
            .zip(drawn.chunks_exact(3))
            .filter(|(_, d)| d.iter().any(|&x| x > 0))
            .map(|(c, d)| {
                let mut w = [0.0; 3];
                for s in 0..3 {
                    if c.n[s] > 0 {
                        w[s] = d[s] as f64 * (c.w[s] / c.n[s] as f64);
                    }
                }
                Cell {
                    i: c.i,
                    j: c.j,
                    n: [d[0], d[1], d[2]],
                    w,
                }
            }),
    );
    PairCounts {
        n_models: counts.n_models,
        cells,
    }
}

#[allow(clippy::too_many_arguments)]
fn one_round(
    counts: &PairCounts,
    redraw: &Redraw,
    opts: &FitOptions,
    warm: &[f64],
    seed: u64,
    r: usize,
    drawn: &mut [u64],
) -> Round {
    let k = counts.n_models;
    let mut rng = Xoshiro256pp::for_round(seed, r as u64);
    let rc = resample(counts, redraw, &mut rng, drawn);
    let Ok(fit) = fit_from(&rc, opts, Some(warm), false) else {
        let (values, defined, degenerate) = (vec![0.0; k], vec![false; k], vec![true; k]);
        return Round {
            values,
            defined,
            degenerate,
            tie: None,
            failed: true,
            converged: false,
        };
    };
    let mut values = fit.theta.clone();
    let mut defined = vec![true; k];
    for u in 0..k {
        match fit.standing[u] {
            Standing::Finite => {}
            Standing::PlusInf => values[u] = f64::INFINITY,
            Standing::MinusInf => values[u] = f64::NEG_INFINITY,
            Standing::Undefined => defined[u] = false,
        }
    }
    let degenerate = fit
        .standing
        .iter()
        .map(|s| *s != Standing::Finite)
        .collect();
    let tie = fit.tie_param.filter(|_| !fit.tie_param_at_boundary);
    Round {
        values,
        defined,
        degenerate,
        tie,
        failed: false,
        converged: fit.converged,
    }
}

/// Percentile (linear interpolation between order statistics, the
/// "type 7" rule) of sorted values; infinities propagate.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let h = (sorted.len() - 1) as f64 * q;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    let frac = h - lo as f64;
    if frac == 0.0 || sorted[lo] == sorted[hi] {
        sorted[lo]
    } else {
        sorted[lo] + frac * (sorted[hi] - sorted[lo])
    }
}

fn interval(mut v: Vec<f64>, level: f64) -> Option<(f64, f64)> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let a = 0.5 * (1.0 - level);
    Some((percentile(&v, a), percentile(&v, 1.0 - a)))
}

/// Bootstrap the fit `theta_hat` (θ, with the tie parameter on its log scale
/// appended when the tie model has one) over `boot.rounds` rounds.
pub fn bootstrap(
    counts: &PairCounts,
    opts: &FitOptions,
    warm: &[f64],
    boot: &BootOptions,
) -> Result<Bootstrap> {
    if !(boot.level > 0.0 && boot.level < 1.0) {
        return Err(invalid!(
            "level = {}: expected a number in (0, 1)",
            boot.level
        ));
    }
    // A round's optimisation error only needs to be far below its sampling
    // spread: 1e-9 per battle moves θ by ~1e-9·K, against spreads ~K/√N.
    let fit_opts = FitOptions {
        covariance: false,
        tol: opts.tol.max(1e-9),
        ..opts.clone()
    };
    let flat: Vec<u64> = counts.cells.iter().flat_map(|c| c.n).collect();
    let redraw = Redraw::new(&flat);
    let run = || -> Vec<Round> {
        // Each task keeps one scratch buffer for the draws; a round's
        // result depends on its index alone, never on the buffer's history
        // (every entry is overwritten).
        (0..boot.rounds)
            .into_par_iter()
            .map_init(
                || vec![0u64; flat.len()],
                |drawn, r| one_round(counts, &redraw, &fit_opts, warm, boot.seed, r, drawn),
            )
            .collect()
    };
    let rounds = match boot.n_threads {
        None => run(),
        Some(t) => rayon::ThreadPoolBuilder::new()
            .num_threads(t.max(1))
            .build()
            .map_err(|e| invalid!("cannot start {t} threads: {e}"))?
            .install(run),
    };
    Ok(summarise(counts.n_models, rounds, boot.level))
}

fn summarise(k: usize, rounds: Vec<Round>, level: f64) -> Bootstrap {
    let r = rounds.len();
    let mut out = Bootstrap {
        rounds: r,
        n_models: k,
        draws: Vec::with_capacity(r * k),
        defined: Vec::with_capacity(r * k),
        ci_low: vec![0.0; k],
        ci_high: vec![0.0; k],
        n_defined: vec![0; k],
        n_degenerate: vec![0; k],
        tie_draws: rounds.iter().filter_map(|x| x.tie).collect(),
        tie_ci: None,
        n_failed: rounds.iter().filter(|x| x.failed).count() as u64,
        n_unconverged: rounds.iter().filter(|x| !x.failed && !x.converged).count() as u64,
    };
    for round in &rounds {
        for u in 0..k {
            out.draws.push(if round.defined[u] {
                round.values[u]
            } else {
                0.0
            });
            out.defined.push(round.defined[u]);
            out.n_defined[u] += u64::from(round.defined[u]);
            out.n_degenerate[u] += u64::from(round.degenerate[u]);
        }
    }
    for u in 0..k {
        let v: Vec<f64> = (0..r)
            .filter(|&i| out.defined[i * k + u])
            .map(|i| out.draws[i * k + u])
            .collect();
        if let Some((lo, hi)) = interval(v, level) {
            out.ci_low[u] = lo;
            out.ci_high[u] = hi;
        }
    }
    out.tie_ci = interval(out.tie_draws.clone(), level);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_matches_type_seven() {
        let v = [1.0, 2.0, 3.0, 4.0, 10.0];
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&v, 1.0), 10.0);
        assert!((percentile(&v, 0.9) - 7.6).abs() < 1e-12); // numpy: 7.6
        assert!((percentile(&v, 0.025) - 1.1).abs() < 1e-12);
        let inf = [0.0, 1.0, f64::INFINITY];
        assert_eq!(percentile(&inf, 0.975), f64::INFINITY);
        assert_eq!(percentile(&inf, 0.5), 1.0);
    }
}
