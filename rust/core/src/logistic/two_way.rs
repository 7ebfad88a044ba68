//! Two-way logistic model: per-group coefficients plus one effect per item.
//!
//! Model. Row r belongs to group k_r (an AlpacaEval model, say) and item
//! i_r (an instruction) and carries q covariates z_r. With margin
//!
//!   eta_r = z_r . beta_{k_r} + g_{i_r}
//!
//! the objective is sum_r w_r [log(1 + e^eta_r) - y_r eta_r] + l2/2 |g|^2:
//! soft targets y in [0, 1], each group's q coefficients unpenalised, a ridge
//! on the item effects. The ridge also fixes the one direction the data
//! cannot see when every group has an intercept: a shift of every g against
//! every intercept.
//!
//! Method. Newton's method with an Armijo backtracking line search. The
//! Hessian is [[A, B], [B^T, D]] with A block-diagonal (a q x q block per
//! group), D diagonal (items) and B dense (group coefficients x items), so
//! each step eliminates the items through the Schur complement
//! S = A - B D^-1 B^T, of size (G q)^2, and recovers the item step from it
//! (the usual reduction for two-way fixed effects; e.g. Stammann, 2018,
//! arXiv:1707.01815, section 3). A step costs O(n q^2 + (G q)^2 I).
//! AlpacaEval's instruction difficulty is such a model (Dubois et al.,
//! 2024, arXiv:2404.04475): q = 2 (intercept, tanh of the standardised
//! length difference) and an effect per instruction.
//!
//! Rejected: the dense engine of `logistic` on the full design (p = G q + I
//! columns makes each pass O(n p^2), hundreds of times slower); alternating
//! group and item fits (block coordinate descent converges slowly when the
//! blocks are strongly coupled, as they are here); L-BFGS (needs hundreds of
//! passes and gives no standard errors).

use super::{
    dot, max_abs, newton_step, row_loss, sigmoid, sigmoid_var, FitStatus, ARMIJO_C, MAX_HALVINGS,
};
use crate::error::Result;
use crate::invalid;

/// Input of [`fit_two_way`]: `n` rows of `q` covariates.
pub struct TwoWayData<'a> {
    /// Row-major n x q covariates.
    pub z: &'a [f64],
    pub q: usize,
    pub group: &'a [usize],
    pub item: &'a [usize],
    pub y: &'a [f64],
    pub w: Option<&'a [f64]>,
    pub n_groups: usize,
    pub n_items: usize,
}

/// Result of [`fit_two_way`].
#[derive(Debug, Clone, PartialEq)]
pub struct TwoWayFit {
    /// Group coefficients, n_groups x q row-major.
    pub beta: Vec<f64>,
    /// Item effects.
    pub g: Vec<f64>,
    pub n_iter: usize,
    /// max |gradient| / total weight at the end.
    pub grad_norm: f64,
    pub status: FitStatus,
    /// Objective (penalised negative log-likelihood) at the end.
    pub objective: f64,
}

impl TwoWayData<'_> {
    fn n(&self) -> usize {
        self.y.len()
    }

    fn weight(&self, r: usize) -> f64 {
        self.w.map_or(1.0, |w| w[r])
    }

    fn zr(&self, r: usize) -> &[f64] {
        &self.z[r * self.q..(r + 1) * self.q]
    }

    fn eta(&self, r: usize, beta: &[f64], g: &[f64]) -> f64 {
        let k = self.group[r];
        dot(self.zr(r), &beta[k * self.q..(k + 1) * self.q]) + g[self.item[r]]
    }

    fn objective(&self, beta: &[f64], g: &[f64], l2: f64) -> f64 {
        let data: f64 = (0..self.n())
            .map(|r| self.weight(r) * row_loss(self.eta(r, beta, g), self.y[r]))
            .sum();
        data + 0.5 * l2 * dot(g, g)
    }
}

fn validate(d: &TwoWayData, l2: f64) -> Result<()> {
    let n = d.y.len();
    if n == 0 || d.q == 0 {
        return Err(invalid!("two-way fit: no rows or no covariates"));
    }
    if d.z.len() != n * d.q || d.group.len() != n || d.item.len() != n {
        return Err(invalid!(
            "two-way fit: z has {} values, group {}, item {}; expected {n} x {} , {n}, {n}",
            d.z.len(),
            d.group.len(),
            d.item.len(),
            d.q
        ));
    }
    if let Some(r) = d.z.iter().position(|v| !v.is_finite()) {
        return Err(invalid!(
            "z[row {}, column {}] is not finite",
            r / d.q,
            r % d.q
        ));
    }
    if let Some(r) = d.y.iter().position(|v| !(0.0..=1.0).contains(v)) {
        return Err(invalid!(
            "y[row {r}] = {}; expected a target in [0, 1]",
            d.y[r]
        ));
    }
    if let Some(r) = d.group.iter().position(|&k| k >= d.n_groups) {
        return Err(invalid!(
            "group[row {r}] = {}; expected < {}",
            d.group[r],
            d.n_groups
        ));
    }
    if let Some(r) = d.item.iter().position(|&i| i >= d.n_items) {
        return Err(invalid!(
            "item[row {r}] = {}; expected < {}",
            d.item[r],
            d.n_items
        ));
    }
    if let Some(w) = d.w {
        if w.len() != n {
            return Err(invalid!("w has {} values; expected {n}", w.len()));
        }
        if let Some(r) = w.iter().position(|v| !(v.is_finite() && *v >= 0.0)) {
            return Err(invalid!(
                "w[row {r}] = {}; expected a finite weight >= 0",
                w[r]
            ));
        }
    }
    if !(l2.is_finite() && l2 >= 0.0) {
        return Err(invalid!("l2 = {l2}; expected a finite value >= 0"));
    }
    Ok(())
}

/// Gradient and Hessian blocks at (beta, g).
struct Blocks {
    grad_b: Vec<f64>,
    grad_g: Vec<f64>,
    /// Per group, a q x q block; n_groups * q * q.
    a: Vec<f64>,
    d: Vec<f64>,
    /// (n_groups q) x n_items, row-major.
    b: Vec<f64>,
}

fn blocks(dt: &TwoWayData, beta: &[f64], g: &[f64], l2: f64) -> Blocks {
    let (q, ni) = (dt.q, dt.n_items);
    let gq = dt.n_groups * q;
    let mut out = Blocks {
        grad_b: vec![0.0; gq],
        grad_g: g.iter().map(|v| l2 * v).collect(),
        a: vec![0.0; gq * q],
        d: vec![l2; ni],
        b: vec![0.0; gq * ni],
    };
    for r in 0..dt.n() {
        let w = dt.weight(r);
        if w == 0.0 {
            continue;
        }
        let (k, i, z) = (dt.group[r], dt.item[r], dt.zr(r));
        let eta = dt.eta(r, beta, g);
        let (res, h) = (w * (sigmoid(eta) - dt.y[r]), w * sigmoid_var(eta));
        out.grad_g[i] += res;
        out.d[i] += h;
        for j in 0..q {
            out.grad_b[k * q + j] += res * z[j];
            out.b[(k * q + j) * ni + i] += h * z[j];
            for l in 0..q {
                out.a[(k * q + j) * q + l] += h * z[j] * z[l];
            }
        }
    }
    out
}

/// Newton direction for (beta, g) through the Schur complement; None when
/// the reduced system cannot be solved.
fn direction(bl: &Blocks, q: usize, ni: usize) -> Option<(Vec<f64>, Vec<f64>)> {
    let gq = bl.grad_b.len();
    if bl.d.iter().any(|&v| v <= 0.0) {
        return None;
    }
    let scaled: Vec<f64> = (0..gq * ni).map(|x| bl.b[x] / bl.d[x % ni]).collect();
    let mut s = vec![0.0; gq * gq];
    for u in 0..gq {
        let (ku, ju) = (u / q, u % q);
        for v in u..gq {
            let mut acc = -dot(&scaled[u * ni..(u + 1) * ni], &bl.b[v * ni..(v + 1) * ni]);
            if v / q == ku {
                acc += bl.a[(ku * q + ju) * q + v % q];
            }
            s[u * gq + v] = acc;
            s[v * gq + u] = acc;
        }
    }
    // S step_b = -grad_b + B D^-1 grad_g, i.e. newton_step with this gradient.
    let neg_rhs: Vec<f64> = (0..gq)
        .map(|u| bl.grad_b[u] - dot(&scaled[u * ni..(u + 1) * ni], &bl.grad_g))
        .collect();
    let (step_b, _) = newton_step(&s, &neg_rhs, gq)?;
    let step_g = (0..ni)
        .map(|i| {
            let cross: f64 = (0..gq).map(|u| bl.b[u * ni + i] * step_b[u]).sum();
            (-bl.grad_g[i] - cross) / bl.d[i]
        })
        .collect();
    Some((step_b, step_g))
}

/// Fit the two-way model from beta = 0, g = 0.
///
/// # Errors
///
/// `InvalidInput` naming the row or array that breaks the contract.
/// Non-convergence (for example a group whose targets are all 0) is a
/// status, not an error.
pub fn fit_two_way(d: &TwoWayData, l2: f64, tol: f64, max_iter: usize) -> Result<TwoWayFit> {
    validate(d, l2)?;
    let total: f64 = (0..d.n()).map(|r| d.weight(r)).sum();
    if !(total > 0.0 && total.is_finite()) {
        return Err(invalid!(
            "the weights sum to {total}; expected a positive total"
        ));
    }
    let mut beta = vec![0.0; d.n_groups * d.q];
    let mut g = vec![0.0; d.n_items];
    let mut obj = d.objective(&beta, &g, l2);
    let mut fit = TwoWayFit {
        beta: Vec::new(),
        g: Vec::new(),
        n_iter: 0,
        grad_norm: f64::INFINITY,
        status: FitStatus::MaxIter,
        objective: obj,
    };
    loop {
        let bl = blocks(d, &beta, &g, l2);
        fit.grad_norm = max_abs(&bl.grad_b).max(max_abs(&bl.grad_g)) / total;
        if fit.grad_norm <= tol {
            fit.status = FitStatus::Converged;
            break;
        }
        if fit.n_iter >= max_iter {
            break;
        }
        let Some((sb, sg)) = direction(&bl, d.q, d.n_items) else {
            fit.status = FitStatus::LineSearchFailed;
            break;
        };
        let slope = dot(&bl.grad_b, &sb) + dot(&bl.grad_g, &sg);
        let Some((nb, ng, new)) = search(d, l2, (&beta, &g), (&sb, &sg), obj, slope) else {
            fit.status = FitStatus::LineSearchFailed;
            break;
        };
        (beta, g, obj) = (nb, ng, new);
        fit.n_iter += 1;
    }
    fit.objective = obj;
    fit.beta = beta;
    fit.g = g;
    Ok(fit)
}

type Point<'a> = (&'a [f64], &'a [f64]);

/// Armijo backtracking; a full step whose predicted decrease is below the
/// resolution of the summed loss is taken when it does not raise it.
fn search(
    d: &TwoWayData,
    l2: f64,
    at: Point,
    step: Point,
    obj0: f64,
    slope: f64,
) -> Option<(Vec<f64>, Vec<f64>, f64)> {
    if slope.is_nan() || slope >= 0.0 {
        return None;
    }
    let resolution = 1e-12 * obj0.abs().max(f64::MIN_POSITIVE);
    let mut t = 1.0;
    for _ in 0..MAX_HALVINGS {
        let nb: Vec<f64> = at.0.iter().zip(step.0).map(|(a, s)| a + t * s).collect();
        let ng: Vec<f64> = at.1.iter().zip(step.1).map(|(a, s)| a + t * s).collect();
        let obj = d.objective(&nb, &ng, l2);
        let small = t == 1.0 && -slope <= resolution && obj <= obj0 + resolution;
        if obj <= obj0 + ARMIJO_C * t * slope || small {
            return Some((nb, ng, obj));
        }
        t *= 0.5;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logistic::{fit, FitOptions};

    /// A small design: 3 groups x 4 items, intercept + one covariate.
    fn design() -> (Vec<f64>, Vec<usize>, Vec<usize>, Vec<f64>) {
        let (mut z, mut k, mut i, mut y) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for grp in 0..3 {
            for it in 0..4 {
                for rep in 0..3 {
                    let t = ((grp * 7 + it * 3 + rep) % 5) as f64 / 2.0 - 1.0;
                    z.extend_from_slice(&[1.0, t]);
                    k.push(grp);
                    i.push(it);
                    y.push(((grp + 2 * it + rep) % 7) as f64 / 6.0);
                }
            }
        }
        (z, k, i, y)
    }

    /// The same model as one dense design for the Newton engine, with the
    /// ridge on the item columns only: the two optima must agree.
    #[test]
    fn matches_dense_engine() {
        let (z, k, i, y) = design();
        let n = y.len();
        let d = TwoWayData {
            z: &z,
            q: 2,
            group: &k,
            item: &i,
            y: &y,
            w: None,
            n_groups: 3,
            n_items: 4,
        };
        let f = fit_two_way(&d, 0.5, 1e-12, 100).unwrap();
        assert_eq!(f.status, FitStatus::Converged);
        let p = 3 * 2 + 4;
        let mut x = vec![0.0; n * p];
        for r in 0..n {
            x[r * p + k[r] * 2] = z[r * 2];
            x[r * p + k[r] * 2 + 1] = z[r * 2 + 1];
            x[r * p + 6 + i[r]] = 1.0;
        }
        let mut free = vec![true; 6];
        free.extend([false; 4]);
        let opts = FitOptions {
            l2: 0.5,
            unpenalized: Some(free),
            tol: 1e-13,
            ..FitOptions::default()
        };
        let dense = fit(&x, n, p, &y, None, &opts).unwrap();
        for j in 0..6 {
            assert!((dense.coef[j] - f.beta[j]).abs() < 1e-8, "{j}");
        }
        for j in 0..4 {
            assert!((dense.coef[6 + j] - f.g[j]).abs() < 1e-8, "item {j}");
        }
    }

    #[test]
    fn weights_equal_repeated_rows_and_bad_input_is_named() {
        let (z, k, i, y) = design();
        let base = TwoWayData {
            z: &z,
            q: 2,
            group: &k,
            item: &i,
            y: &y,
            w: None,
            n_groups: 3,
            n_items: 4,
        };
        let w2 = vec![2.0; y.len()];
        let a = fit_two_way(&base, 1.0, 1e-12, 100).unwrap();
        let b = fit_two_way(
            &TwoWayData {
                w: Some(&w2),
                ..base
            },
            2.0,
            1e-12,
            100,
        )
        .unwrap();
        for (u, v) in a.beta.iter().zip(&b.beta) {
            assert!((u - v).abs() < 1e-9);
        }
        let bad_item = vec![9; y.len()];
        let e = fit_two_way(
            &TwoWayData {
                item: &bad_item,
                ..base
            },
            1.0,
            1e-9,
            10,
        );
        assert!(format!("{:?}", e.unwrap_err()).contains("item[row 0] = 9"));
        let mut bad_y = y.clone();
        bad_y[5] = 1.5;
        let e = fit_two_way(&TwoWayData { y: &bad_y, ..base }, 1.0, 1e-9, 10);
        assert!(format!("{:?}", e.unwrap_err()).contains("y[row 5]"));
    }
}
