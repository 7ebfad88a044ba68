//! Tests of the battle-by-battle style Newton against closed forms and a
//! slow dense reference.

use super::*;

/// Small deterministic generator (LCG), uniform in [0, 1).
struct Lcg(u64);
impl Lcg {
    fn unit(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

struct Sim {
    a: Vec<u32>,
    b: Vec<u32>,
    z: Vec<f64>,
    y: Vec<f64>,
    w: Vec<f64>,
}

fn simulate(k: usize, n: usize, p: usize, seed: u64) -> Sim {
    let mut r = Lcg(seed);
    let theta: Vec<f64> = (0..k).map(|m| 0.1 * m as f64 - 0.05 * k as f64).collect();
    let gamma: Vec<f64> = (0..p).map(|j| 0.5 - 0.3 * j as f64).collect();
    let mut s = Sim {
        a: vec![],
        b: vec![],
        z: vec![],
        y: vec![],
        w: vec![],
    };
    for _ in 0..n {
        let a = (r.unit() * k as f64) as u32;
        let mut b = (r.unit() * (k - 1) as f64) as u32;
        if b >= a {
            b += 1;
        }
        let mut eta = theta[a as usize] - theta[b as usize];
        for g in &gamma {
            let zj = 2.0 * r.unit() - 1.0;
            eta += g * zj;
            s.z.push(zj);
        }
        let pr = 1.0 / (1.0 + (-eta).exp());
        let u = r.unit();
        let y = if u < 0.1 {
            0.5
        } else if r.unit() < pr {
            1.0
        } else {
            0.0
        };
        s.a.push(a);
        s.b.push(b);
        s.y.push(y);
        s.w.push(0.5 + r.unit());
    }
    s
}

fn data(s: &Sim, p: usize) -> StyleData<'_> {
    StyleData {
        a: &s.a,
        b: &s.b,
        z: &s.z,
        p,
        y: &s.y,
        w: &s.w,
    }
}

fn opts(k: usize, reference: usize, alpha: f64) -> StyleOptions {
    StyleOptions {
        k,
        reference,
        alpha,
        tol: 1e-12,
        max_iter: 100,
    }
}

/// Plain Newton on the dense design, row by row (the slow reference).
fn dense_reference(s: &Sim, p: usize, k: usize, reference: usize, alpha: f64) -> Vec<f64> {
    let n = k - 1 + p;
    let col = |m: u32| -> Option<usize> {
        let m = m as usize;
        (m != reference).then(|| if m < reference { m } else { m - 1 })
    };
    let mut beta = vec![0.0; n];
    for _ in 0..50 {
        let mut g = vec![0.0; n];
        let mut h = vec![0.0; n * n];
        for i in 0..s.a.len() {
            let mut x = vec![0.0; n];
            if let Some(c) = col(s.a[i]) {
                x[c] = 1.0;
            }
            if let Some(c) = col(s.b[i]) {
                x[c] = -1.0;
            }
            x[k - 1..].copy_from_slice(&s.z[i * p..(i + 1) * p]);
            let eta: f64 = x.iter().zip(&beta).map(|(u, v)| u * v).sum();
            let pr = 1.0 / (1.0 + (-eta).exp());
            for j in 0..n {
                g[j] += s.w[i] * (pr - s.y[i]) * x[j];
                for l in 0..n {
                    h[j * n + l] += s.w[i] * pr * (1.0 - pr) * x[j] * x[l];
                }
            }
        }
        for m in 0..k - 1 {
            g[m] += alpha * beta[m];
            h[m * n + m] += alpha;
        }
        // Gaussian elimination for the step.
        let mut aug: Vec<Vec<f64>> = (0..n)
            .map(|j| {
                let mut r = h[j * n..(j + 1) * n].to_vec();
                r.push(-g[j]);
                r
            })
            .collect();
        for c in 0..n {
            let piv = (c..n)
                .max_by(|&u, &v| aug[u][c].abs().total_cmp(&aug[v][c].abs()))
                .unwrap();
            aug.swap(c, piv);
            let pivot = aug[c].clone();
            for (r, row) in aug.iter_mut().enumerate() {
                if r != c {
                    let f = row[c] / pivot[c];
                    for (u, v) in row[c..].iter_mut().zip(&pivot[c..]) {
                        *u -= f * v;
                    }
                }
            }
        }
        for j in 0..n {
            beta[j] += aug[j][n] / aug[j][j];
        }
    }
    beta
}

#[test]
fn matches_dense_reference_with_ties_weights_and_prior() {
    let (k, n, p) = (6, 3000, 3);
    let s = simulate(k, n, p, 11);
    for (reference, alpha) in [(0, 0.0), (3, 2.5)] {
        let fit = fit_style(&data(&s, p), &opts(k, reference, alpha)).unwrap();
        assert_eq!(fit.status, StyleStatus::Converged);
        let want = dense_reference(&s, p, k, reference, alpha);
        for (g, w) in fit.coef.iter().zip(&want) {
            assert!((g - w).abs() < 1e-9, "{g} vs {w}");
        }
        let cov = fit.cov.unwrap();
        let m = k - 1 + p;
        for j in 0..m {
            assert!(cov[j * m + j] > 0.0);
            for l in 0..m {
                assert!((cov[j * m + l] - cov[l * m + j]).abs() < 1e-12);
            }
        }
    }
}

#[test]
fn published_two_model_answer() {
    // A (0) vs B (1), d = +1 for ten battles (A wins 8), -1 for ten (A wins 4):
    // theta + gamma = ln 4, theta - gamma = logit 0.4.
    let a = vec![0u32; 20];
    let b = vec![1u32; 20];
    let z: Vec<f64> = (0..20).map(|i| if i < 10 { 1.0 } else { -1.0 }).collect();
    let y: Vec<f64> = (0..20)
        .map(|i| f64::from(u8::from(i < 8 || (10..14).contains(&i))))
        .collect();
    let w = vec![1.0; 20];
    let d = StyleData {
        a: &a,
        b: &b,
        z: &z,
        p: 1,
        y: &y,
        w: &w,
    };
    let fit = fit_style(&d, &opts(2, 1, 0.0)).unwrap();
    assert_eq!(fit.status, StyleStatus::Converged);
    let (t, g) = (fit.coef[0], fit.coef[1]);
    assert!((t - 0.490_415).abs() < 1e-6, "{t}");
    assert!((g - 0.895_880).abs() < 1e-6, "{g}");
    assert!((t - 0.5 * (4f64.ln() + (0.4f64 / 0.6).ln())).abs() < 1e-12);
    // Var(theta + gamma) = 1 / (10 * 0.8 * 0.2), as for a single proportion.
    let c = fit.cov.unwrap();
    let v = c[0] + c[3] + 2.0 * c[1];
    assert!((v - 1.0 / 1.6).abs() < 1e-10, "{v}");
}

#[test]
fn bit_identical_for_any_thread_count() {
    let (k, n, p) = (30, 70_000, 2);
    let s = simulate(k, n, p, 5);
    let run = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| fit_style(&data(&s, p), &opts(k, 4, 0.5)).unwrap())
    };
    let (one, four) = (run(1), run(4));
    assert_eq!(one.iterations, four.iterations);
    for (u, v) in one.coef.iter().zip(&four.coef) {
        assert_eq!(u.to_bits(), v.to_bits());
    }
    for (u, v) in one.cov.unwrap().iter().zip(&four.cov.unwrap()) {
        assert_eq!(u.to_bits(), v.to_bits());
    }
}

#[test]
fn separated_style_feature_is_named() {
    // The longer answer (z = 1) always wins, with and without a prior.
    let (k, n) = (4usize, 400usize);
    let mut r = Lcg(3);
    let (mut a, mut b, mut z, mut y) = (vec![], vec![], vec![], vec![]);
    for i in 0..n {
        let ai = (i % k) as u32;
        let bi = ((i + 1 + (r.unit() * 2.0) as usize) % k) as u32;
        let zi = if r.unit() < 0.5 { 1.0 } else { -1.0 };
        a.push(ai);
        b.push(bi);
        z.push(zi);
        y.push(if zi > 0.0 { 1.0 } else { 0.0 });
    }
    let w = vec![1.0; n];
    let d = StyleData {
        a: &a,
        b: &b,
        z: &z,
        p: 1,
        y: &y,
        w: &w,
    };
    for alpha in [0.0, 1.0] {
        let fit = fit_style(&d, &opts(k, 0, alpha)).unwrap();
        assert_eq!(fit.status, StyleStatus::Separated, "alpha {alpha}");
        assert!(fit.separated.contains(&(k - 1)), "{:?}", fit.separated);
        assert!(fit.cov.is_none());
    }
}

#[test]
fn model_that_never_loses_is_separated() {
    // Model 2 wins all its battles; 0 and 1 split theirs.
    let a = vec![0u32, 1, 2, 2, 0, 1, 0, 1];
    let b = vec![1u32, 0, 0, 1, 2, 2, 1, 0];
    let y = vec![1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.5];
    let z = vec![0.3, -0.2, 0.1, 0.5, -0.4, 0.2, 0.7, -0.6];
    let w = vec![1.0; 8];
    let d = StyleData {
        a: &a,
        b: &b,
        z: &z,
        p: 1,
        y: &y,
        w: &w,
    };
    let fit = fit_style(&d, &opts(3, 0, 0.0)).unwrap();
    assert_eq!(fit.status, StyleStatus::Separated);
    // Coefficient 1 is model 2 (model 0 is the reference).
    assert!(fit.separated.contains(&1), "{:?}", fit.separated);
}

#[test]
fn bad_inputs_name_the_battle() {
    let s = simulate(3, 10, 1, 1);
    let mut bad = s.a.clone();
    bad[7] = 9;
    let d = StyleData {
        a: &bad,
        ..data(&s, 1)
    };
    let e = fit_style(&d, &opts(3, 0, 0.0)).unwrap_err();
    assert!(
        matches!(&e, CoreError::InvalidInput(m) if m.contains("battle 7")),
        "{e}"
    );
    let mut z = s.z.clone();
    z[4] = f64::NAN;
    let d = StyleData {
        z: &z,
        ..data(&s, 1)
    };
    let e = fit_style(&d, &opts(3, 0, 0.0)).unwrap_err();
    assert!(
        matches!(&e, CoreError::InvalidInput(m) if m.contains("battle 4")),
        "{e}"
    );
    let mut y = s.y.clone();
    y[2] = 1.5;
    let d = StyleData {
        y: &y,
        ..data(&s, 1)
    };
    assert!(fit_style(&d, &opts(3, 0, 0.0)).is_err());
    let d = StyleData {
        w: &s.w[..9],
        ..data(&s, 1)
    };
    let e = fit_style(&d, &opts(3, 0, 0.0)).unwrap_err();
    assert!(
        matches!(&e, CoreError::InvalidInput(m) if m.contains("length of w")),
        "{e}"
    );
    assert!(fit_style(&data(&s, 1), &opts(3, 3, 0.0)).is_err());
}

#[test]
fn one_pair_over_many_blocks_matches_closed_form() {
    // Two models, z = +-1: theta + gamma = logit(rate | z = 1) and
    // theta - gamma = logit(rate | z = -1), with the only pair's run spread
    // over several blocks of a pass (its sums come back as carries).
    let n = 3 * BLOCK + 123;
    let mut r = Lcg(9);
    let a = vec![0u32; n];
    let b = vec![1u32; n];
    let z: Vec<f64> = (0..n)
        .map(|i| if i % 3 == 0 { 1.0 } else { -1.0 })
        .collect();
    let y: Vec<f64> = z
        .iter()
        .map(|&zi| f64::from(u8::from(r.unit() < if zi > 0.0 { 0.7 } else { 0.45 })))
        .collect();
    let w = vec![1.0; n];
    let d = StyleData {
        a: &a,
        b: &b,
        z: &z,
        p: 1,
        y: &y,
        w: &w,
    };
    let rate = |sign: f64| {
        let (mut k, mut m) = (0.0, 0.0);
        for (zi, yi) in z.iter().zip(&y) {
            if *zi == sign {
                k += yi;
                m += 1.0;
            }
        }
        (k / m, m)
    };
    let ((r1, n1), (r0, n0)) = (rate(1.0), rate(-1.0));
    let logit = |q: f64| (q / (1.0 - q)).ln();
    let fit = fit_style(&d, &opts(2, 1, 0.0)).unwrap();
    assert_eq!(fit.status, StyleStatus::Converged);
    let (t, g) = (fit.coef[0], fit.coef[1]);
    assert!((t + g - logit(r1)).abs() < 1e-10, "{t} {g}");
    assert!((t - g - logit(r0)).abs() < 1e-10, "{t} {g}");
    // Var(theta - gamma) = 1 / (n0 r0 (1 - r0)).
    let c = fit.cov.unwrap();
    let v = c[0] + c[3] - 2.0 * c[1];
    assert!((v * n0 * r0 * (1.0 - r0) - 1.0).abs() < 1e-8, "{v}");
    let v1 = c[0] + c[3] + 2.0 * c[1];
    assert!((v1 * n1 * r1 * (1.0 - r1) - 1.0).abs() < 1e-8, "{v1}");
}

#[test]
fn too_many_coefficients_are_refused() {
    let s = simulate(3, 10, 1, 1);
    let e = fit_style(&data(&s, 1), &opts(MAX_COEF, 0, 0.0)).unwrap_err();
    assert!(
        matches!(&e, CoreError::InvalidInput(m) if m.contains("at most")),
        "{e}"
    );
}
