//! The bug-report cases and closed forms, on the core directly.

#![allow(clippy::needless_range_loop)] // index loops read clearer in checks

use super::*;

const ELO: f64 = 400.0 / std::f64::consts::LN_10;

fn counts(k: usize, rows: &[(u32, u32, u8)]) -> PairCounts {
    let a: Vec<u32> = rows.iter().map(|r| r.0).collect();
    let b: Vec<u32> = rows.iter().map(|r| r.1).collect();
    let o: Vec<u8> = rows.iter().map(|r| r.2).collect();
    PairCounts::from_battles(
        k,
        &Battles {
            a: &a,
            b: &b,
            outcome: &o,
            weight: None,
        },
    )
    .unwrap()
}

fn fit_rows(k: usize, rows: &[(u32, u32, u8)], opts: &FitOptions) -> Fit {
    fit(&counts(k, rows), opts).unwrap()
}

fn opts(ties: Ties) -> FitOptions {
    FitOptions {
        ties,
        tol: 1e-13,
        ..FitOptions::default()
    }
}

fn rep(n: usize, row: (u32, u32, u8)) -> Vec<(u32, u32, u8)> {
    vec![row; n]
}

#[test]
fn balanced_cycle_with_bothbad_ties_is_flat() {
    let rows = [
        (0, 1, A_WINS),
        (0, 1, TIE),
        (1, 2, A_WINS),
        (2, 0, TIE),
        (0, 2, B_WINS),
    ];
    let f = fit_rows(3, &rows, &opts(Ties::Half));
    assert!(f.converged);
    for t in &f.theta {
        assert!(t.abs() < 1e-12, "{:?}", f.theta);
    }
}

#[test]
fn every_row_model_a_is_flat() {
    let f = fit_rows(2, &[(0, 1, A_WINS), (1, 0, A_WINS)], &opts(Ties::Half));
    assert_eq!(f.standing, vec![Standing::Finite; 2]);
    assert!(f.theta.iter().all(|t| t.abs() < 1e-12));
}

fn three_of_four() -> Vec<(u32, u32, u8)> {
    let mut rows = Vec::new();
    for (x, y) in [(0, 1), (1, 2), (0, 2)] {
        rows.extend(rep(3, (x, y, A_WINS)));
        rows.push((x, y, B_WINS));
    }
    rows
}

#[test]
fn three_models_three_of_four() {
    let f = fit_rows(3, &three_of_four(), &opts(Ties::Half));
    let elo: Vec<f64> = f.theta.iter().map(|t| t * ELO).collect();
    assert!(
        (elo[0] - 131.384).abs() < 5e-4 && elo[1].abs() < 1e-9 && (elo[2] + 131.384).abs() < 5e-4,
        "{elo:?}"
    );
    // Renamed (permuted indices), sides swapped with the winner flipped, rows reversed.
    let perm = [2u32, 0, 1];
    let moved: Vec<(u32, u32, u8)> = three_of_four()
        .iter()
        .rev()
        .map(|&(a, b, o)| (perm[b as usize], perm[a as usize], 1 - o))
        .collect();
    let g = fit_rows(3, &moved, &opts(Ties::Half));
    for u in 0..3 {
        assert!((g.theta[perm[u] as usize] - f.theta[u]).abs() < 1e-12);
    }
}

#[test]
fn never_winning_model_gets_no_number() {
    // A beats B 2-1, A beats C 2-0, B beats C 2-0.
    let mut rows = rep(2, (0, 1, A_WINS));
    rows.push((0, 1, B_WINS));
    rows.extend(rep(2, (0, 2, A_WINS)));
    rows.extend(rep(2, (1, 2, A_WINS)));
    let f = fit_rows(3, &rows, &opts(Ties::Half));
    assert_eq!(f.never_win, vec![2]);
    assert_eq!(
        f.standing,
        vec![Standing::Finite, Standing::Finite, Standing::MinusInf]
    );
    assert!((f.theta[0] - f.theta[1] - 2f64.ln()).abs() < 1e-12);
    assert!(((f.theta[0] - f.theta[1]) * ELO - 120.41).abs() < 5e-3);
    assert!(f.theta.iter().all(|t| t.is_finite()));
    assert!(
        (f.theta[0] + f.theta[1]).abs() < 1e-12,
        "centred over the finite models"
    );
}

#[test]
fn chain_needs_the_prior() {
    let rows: Vec<(u32, u32, u8)> = (0..14).map(|u| (u, u + 1, A_WINS)).collect();
    let bare = fit_rows(15, &rows, &opts(Ties::Half));
    assert_eq!(bare.block.iter().max(), Some(&14));
    assert!(bare.standing[1..].iter().all(|s| *s == Standing::MinusInf));
    let f = fit_rows(
        15,
        &rows,
        &FitOptions {
            alpha: 0.1,
            ..opts(Ties::Half)
        },
    );
    assert!(f.standing.iter().all(|s| *s == Standing::Finite));
    // The prior makes every rating finite; the flag still says that the
    // unpenalised fit would not be (Python builds the warning from it).
    assert!(!bare.strongly_connected && !f.strongly_connected);
    let both = fit_rows(
        3,
        &three_of_four(),
        &FitOptions {
            alpha: 0.1,
            ..opts(Ties::Half)
        },
    );
    assert!(both.strongly_connected, "every pair is won both ways");
    assert!((f.theta[0] - 2.3827).abs() < 5e-5, "{}", f.theta[0]);
    for u in 0..15 {
        assert!((f.theta[u] + f.theta[14 - u]).abs() < 1e-10);
    }
}

#[test]
fn two_components_fit_alone() {
    let mut rows = rep(5, (0, 1, A_WINS));
    rows.extend(rep(3, (0, 1, B_WINS)));
    rows.extend(rep(4, (2, 3, A_WINS)));
    rows.extend(rep(2, (2, 3, B_WINS)));
    let f = fit_rows(4, &rows, &opts(Ties::Half));
    assert_eq!(f.component, vec![0, 0, 1, 1]);
    assert!(((f.theta[0] - f.theta[1]) * ELO - 88.74).abs() < 5e-3);
    assert!(((f.theta[2] - f.theta[3]) * ELO - 120.41).abs() < 5e-3);
    let cov = f.covariance().unwrap();
    assert_eq!(cov[1], cov[4], "symmetric");
    assert_eq!(cov[2], 0.0, "no covariance across components");
}

fn three_one_four() -> Vec<(u32, u32, u8)> {
    let mut rows = rep(3, (0, 1, A_WINS));
    rows.push((1, 0, A_WINS));
    rows.extend(rep(4, (1, 0, TIE)));
    rows
}

#[test]
fn ties_models_on_one_pair() {
    let d = |t: Ties| {
        let f = fit_rows(2, &three_one_four(), &opts(t));
        (f.theta[0] - f.theta[1], f)
    };
    let (dd, f) = d(Ties::Davidson);
    assert!((dd - 3f64.ln()).abs() < 1e-11 && (dd * ELO - 190.85).abs() < 5e-3);
    assert!((f.tie_param.unwrap() - 2.3094).abs() < 5e-5);
    assert!((f.tie_param.unwrap() - 4.0 / 3f64.sqrt()).abs() < 1e-10);
    // Delta method on the saturated multinomial: var(ln ν) = (2/3 + 2 + 2) / 8.
    let se = f.tie_param_se.unwrap();
    assert!(
        (se - f.tie_param.unwrap() * (14.0f64 / 3.0 / 8.0).sqrt()).abs() < 1e-8,
        "{se}"
    );
    let cov = f.covariance().unwrap();
    let var_d = cov[0] + cov[3] - 2.0 * cov[1];
    assert!((var_d - (8.0 / 3.0 + 8.0) / 8.0).abs() < 1e-8, "{var_d}");
    let (dh, _) = d(Ties::Half);
    assert!((dh - (5.0f64 / 3.0).ln()).abs() < 1e-11 && (dh * ELO - 88.74).abs() < 5e-3);
    let (dr, _) = d(Ties::Drop);
    assert!((dr - 3f64.ln()).abs() < 1e-11);
    // Rao-Kupper: σ(d − η) = 3/8 and σ(−d − η) = 1/8 solve to these.
    let (dk, f) = d(Ties::RaoKupper);
    assert!((dk - 0.5 * 4.2f64.ln()).abs() < 1e-10, "{dk}");
    assert!((f.tie_param.unwrap() - (35.0f64 / 3.0).sqrt()).abs() < 1e-9);
}

#[test]
fn hessian_errors_under_both_constraints() {
    // A beats B 5-3: var(d) = 1 / (n p (1 - p)) with p = 5/8.
    let mut rows = rep(5, (0, 1, A_WINS));
    rows.extend(rep(3, (0, 1, B_WINS)));
    let var_d = 1.0 / (8.0 * (5.0 / 8.0) * (3.0 / 8.0));
    let f = fit_rows(2, &rows, &opts(Ties::Half));
    let c = f.covariance().unwrap();
    assert!((c[0] - var_d / 4.0).abs() < 1e-10 && (c[1] + var_d / 4.0).abs() < 1e-10);
    let g = fit_rows(
        2,
        &rows,
        &FitOptions {
            anchor: Some(1),
            ..opts(Ties::Half)
        },
    );
    let c = g.covariance().unwrap();
    assert_eq!(g.theta[1], 0.0);
    assert!((c[0] - var_d).abs() < 1e-10 && c[3].abs() < 1e-14);
}

#[test]
fn davidson_without_ties_sits_on_the_boundary() {
    let f = fit_rows(
        2,
        &[(0, 1, A_WINS), (0, 1, A_WINS), (1, 0, A_WINS)],
        &opts(Ties::Davidson),
    );
    assert!(f.tie_param_at_boundary);
    assert_eq!(f.tie_param, Some(0.0));
    assert!((f.theta[0] - f.theta[1] - 2f64.ln()).abs() < 1e-11);
    let e = fit(&counts(2, &[(0, 1, TIE)]), &opts(Ties::Davidson)).unwrap_err();
    assert!(e.to_string().contains("every battle is a tie"), "{e}");
}

#[test]
fn bootstrap_is_thread_count_invariant() {
    let mut rows = three_of_four();
    rows.extend(three_one_four());
    rows.extend(rep(2, (2, 1, TIE)));
    let pc = counts(3, &rows);
    for ties in [Ties::Half, Ties::Davidson] {
        let o = opts(ties);
        let f = fit(&pc, &o).unwrap();
        let mut warm = f.theta.clone();
        if let Some(t) = f.tie_param {
            warm.push(t.ln());
        }
        let run = |t| {
            let b = BootOptions {
                rounds: 200,
                seed: 42,
                level: 0.95,
                n_threads: Some(t),
            };
            bootstrap(&pc, &o, &warm, &b).unwrap()
        };
        let (one, three) = (run(1), run(3));
        assert_eq!(
            one.draws.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            three.draws.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        assert_eq!(one, three);
        let other = bootstrap(
            &pc,
            &o,
            &warm,
            &BootOptions {
                seed: 43,
                ..BootOptions {
                    rounds: 200,
                    seed: 0,
                    level: 0.95,
                    n_threads: Some(2),
                }
            },
        )
        .unwrap();
        assert_ne!(one.draws, other.draws);
    }
}

/// A deterministic simulation: K models on a complete schedule, outcomes from
/// a fixed pseudo-random stream, truth θ_u = (u - (K-1)/2) / K.
fn simulated(k: u32, per_pair: u32) -> (PairCounts, Vec<f64>) {
    let truth: Vec<f64> = (0..k)
        .map(|u| (f64::from(u) - f64::from(k - 1) / 2.0) / f64::from(k))
        .collect();
    let mut rng = rng::Xoshiro256pp::for_round(9, 9);
    let mut rows = Vec::new();
    for i in 0..k {
        for j in i + 1..k {
            let p = 1.0 / (1.0 + (truth[j as usize] - truth[i as usize]).exp());
            for _ in 0..per_pair {
                rows.push((i, j, if rng.uniform() < p { A_WINS } else { B_WINS }));
            }
        }
    }
    (counts(k as usize, &rows), truth)
}

#[test]
fn bootstrap_spread_matches_hessian_errors() {
    let (pc, _) = simulated(8, 150);
    let o = opts(Ties::Half);
    let f = fit(&pc, &o).unwrap();
    let b = bootstrap(
        &pc,
        &o,
        &f.theta,
        &BootOptions {
            rounds: 800,
            seed: 1,
            level: 0.95,
            n_threads: None,
        },
    )
    .unwrap();
    let cov = f.covariance().unwrap();
    for u in 0..8 {
        let v: Vec<f64> = (0..800).map(|r| b.draws[r * 8 + u]).collect();
        let mean = v.iter().sum::<f64>() / 800.0;
        let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 799.0).sqrt();
        let se = cov[u * 8 + u].sqrt();
        assert!(
            (sd / se - 1.0).abs() < 0.12,
            "model {u}: bootstrap sd {sd}, Hessian se {se}"
        );
        assert!(b.ci_low[u] < f.theta[u] && f.theta[u] < b.ci_high[u]);
        assert_eq!(b.n_degenerate[u], 0);
    }
}

#[test]
fn newton_matches_a_slow_reference() {
    // Reference: plain MM (Zermelo) iterations to a tight fixed point.
    let (pc, _) = simulated(6, 40);
    let f = fit(&pc, &opts(Ties::Half)).unwrap();
    let k = 6;
    let mut pi = vec![1.0f64; k];
    let (mut w, mut n) = (vec![0.0; k], vec![vec![0.0; k]; k]);
    for c in &pc.cells {
        let (i, j) = (c.i as usize, c.j as usize);
        w[i] += c.w[0];
        w[j] += c.w[1];
        n[i][j] += c.w[0] + c.w[1];
        n[j][i] += c.w[0] + c.w[1];
    }
    for _ in 0..20_000 {
        for i in 0..k {
            let den: f64 = (0..k)
                .filter(|&j| j != i)
                .map(|j| n[i][j] / (pi[i] + pi[j]))
                .sum();
            pi[i] = w[i] / den;
        }
    }
    let mean = pi.iter().map(|p| p.ln()).sum::<f64>() / k as f64;
    for u in 0..k {
        assert!((pi[u].ln() - mean - f.theta[u]).abs() < 1e-9);
    }
}

#[test]
fn large_fit_is_thread_count_invariant() {
    // More cells than one chunk of the passes over cells, and a Hessian wide
    // enough for the parallel factorisation: 1 and 3 threads, same bits.
    let k = 300u32;
    let mut rng = rng::Xoshiro256pp::for_round(5, 5);
    let mut rows = Vec::new();
    for i in 0..k {
        for j in i + 1..k {
            let d = (f64::from(i) - f64::from(j)) / f64::from(k);
            for _ in 0..3 {
                let u = rng.uniform();
                let p_a = 0.4 / (1.0 + (-d).exp()) + 0.1;
                rows.push((
                    i,
                    j,
                    if u < p_a {
                        A_WINS
                    } else if u < 0.8 {
                        B_WINS
                    } else {
                        TIE
                    },
                ));
            }
        }
    }
    let pc = counts(k as usize, &rows);
    assert!(pc.cells.len() > 1 << 15);
    for ties in [Ties::Half, Ties::Davidson] {
        let run = |t: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .unwrap()
                .install(|| fit(&pc, &opts(ties)).unwrap())
        };
        let (one, three) = (run(1), run(3));
        assert!(one.converged, "{ties:?}");
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&one.theta), bits(&three.theta), "{ties:?}");
        assert_eq!(
            bits(one.cov_factor.as_ref().unwrap()),
            bits(three.cov_factor.as_ref().unwrap()),
            "{ties:?}"
        );
        assert_eq!(
            one.tie_param.map(f64::to_bits),
            three.tie_param.map(f64::to_bits)
        );
    }
}

fn cov_scenarios() -> Vec<(String, Fit)> {
    // Two components (0..8 and 8..11), model 7 never wins, plus a lone pair.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = |m: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % m
    };
    let mut rows = Vec::new();
    for _ in 0..400 {
        let (a, b) = (next(7) as u32, next(7) as u32);
        if a != b {
            rows.push((a, b, [A_WINS, B_WINS, TIE][next(3) as usize]));
        }
    }
    for _ in 0..6 {
        rows.push((7, next(7) as u32, B_WINS));
    }
    for _ in 0..60 {
        let (a, b) = (8 + next(3) as u32, 8 + next(3) as u32);
        if a != b {
            rows.push((a, b, [A_WINS, B_WINS, TIE][next(3) as usize]));
        }
    }
    let mut out = Vec::new();
    for ties in [Ties::Half, Ties::Davidson, Ties::RaoKupper, Ties::Drop] {
        for alpha in [0.0, 0.3] {
            for anchor in [None, Some(2)] {
                let o = FitOptions {
                    ties,
                    alpha,
                    anchor,
                    tol: 1e-13,
                    ..FitOptions::default()
                };
                out.push((
                    format!("{ties:?} {alpha} {anchor:?}"),
                    fit_rows(11, &rows, &o),
                ));
            }
        }
    }
    out
}

/// The factor's covariance under every tie model, prior and constraint:
/// its diagonal is `var`; the constrained θ of a component sums to zero
/// (mean zero) or holds the anchor at 0, so the rows of the covariance over
/// the component's finite models sum to zero, or the anchor's row is zero;
/// nothing is shared across components; and the Davidson and Rao-Kupper
/// fits report a tie-parameter se.
#[test]
fn covariance_factor_respects_the_constraint() {
    for (name, f) in cov_scenarios() {
        let c = f.covariance().unwrap();
        let var = f.var.clone().unwrap();
        let k = 11;
        let finite = |u: usize| f.standing[u] == Standing::Finite;
        for u in 0..k {
            assert!(
                (var[u] - c[u * k + u]).abs() <= 1e-15 * (1.0 + c[u * k + u]),
                "{name}"
            );
            assert_eq!(
                var[u] > 0.0,
                finite(u) && !(name.ends_with("Some(2)") && u == 2)
            );
            for v in 0..k {
                assert!((c[u * k + v] - c[v * k + u]).abs() < 1e-15, "{name}");
                if f.component[u] != f.component[v] {
                    assert_eq!(c[u * k + v], 0.0, "{name}");
                }
            }
            let row: f64 = (0..k)
                .filter(|&v| finite(v) && f.component[v] == f.component[u])
                .map(|v| c[u * k + v])
                .sum();
            if name.ends_with("None") && finite(u) {
                assert!(row.abs() < 1e-14, "{name} model {u}: {row}");
            }
        }
        assert_eq!(
            f.tie_param_se.is_some(),
            name.starts_with("Davidson") || name.starts_with("Rao")
        );
    }
}
