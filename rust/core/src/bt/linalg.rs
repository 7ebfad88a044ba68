//! Dense symmetric positive definite algebra for the Newton steps and the
//! Hessian covariance: Cholesky factorisation, solve, and inverse.
//!
//! Row-major `n × n` storage; only the lower triangle is read or written.
//! The inner loops are contiguous dot products and axpys over rows, written
//! with four independent accumulators so the compiler can vectorise them.
//! Rejected: a LAPACK dependency (a system library for one factorisation of a
//! matrix that is at most a few thousand wide) and ndarray (plain slices are
//! the core's convention).

/// Dot product of two equal-length slices with four accumulators.
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0f64; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..4 {
            acc[l] += x[l] * y[l];
        }
    }
    let tail: f64 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// `y += s * x`.
fn axpy(y: &mut [f64], s: f64, x: &[f64]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += s * xi;
    }
}

/// Overwrite the lower triangle of `a` with its Cholesky factor `L`
/// (`a = L Lᵀ`). Returns false when a pivot is not positive (the matrix is
/// not numerically positive definite); `a` is then garbage.
pub(crate) fn cholesky(a: &mut [f64], n: usize) -> bool {
    for i in 0..n {
        let (done, rest) = a.split_at_mut(i * n);
        let row_i = &mut rest[..n];
        for j in 0..i {
            let row_j = &done[j * n..j * n + j + 1];
            let s = row_i[j] - dot(&row_i[..j], &row_j[..j]);
            row_i[j] = s / row_j[j];
        }
        let d = row_i[i] - dot(&row_i[..i], &row_i[..i]);
        if !(d > 0.0 && d.is_finite()) {
            return false;
        }
        row_i[i] = d.sqrt();
    }
    true
}

/// Solve `L Lᵀ x = b` in place, `l` from [`cholesky`].
pub(crate) fn cholesky_solve(l: &[f64], n: usize, b: &mut [f64]) {
    for i in 0..n {
        let row = &l[i * n..i * n + i];
        b[i] = (b[i] - dot(row, &b[..i])) / l[i * n + i];
    }
    for i in (0..n).rev() {
        b[i] /= l[i * n + i];
        let bi = b[i];
        for k in 0..i {
            b[k] -= l[i * n + k] * bi;
        }
    }
}

/// `(L Lᵀ)⁻¹` as a full symmetric row-major matrix, `l` from [`cholesky`].
pub(crate) fn cholesky_inverse(l: &[f64], n: usize) -> Vec<f64> {
    // M = L⁻¹ row by row: L[i,i] M[i,:] = e_i - Σ_{k<i} L[i,k] M[k,:].
    let mut m = vec![0.0; n * n];
    for i in 0..n {
        let (done, rest) = m.split_at_mut(i * n);
        let row = &mut rest[..n];
        for k in 0..i {
            let lik = l[i * n + k];
            if lik != 0.0 {
                axpy(&mut row[..=k], -lik, &done[k * n..k * n + k + 1]);
            }
        }
        let inv = 1.0 / l[i * n + i];
        for x in &mut row[..i] {
            *x *= inv;
        }
        row[i] = inv;
    }
    // A⁻¹ = Mᵀ M as a sum of outer products of the rows of M.
    let mut out = vec![0.0; n * n];
    for k in 0..n {
        let mk = &m[k * n..k * n + k + 1];
        for i in 0..=k {
            if mk[i] != 0.0 {
                axpy(&mut out[i * n..i * n + i + 1], mk[i], &mk[..=i]);
            }
        }
    }
    for i in 0..n {
        for j in 0..i {
            out[j * n + i] = out[i * n + j];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spd(n: usize) -> Vec<f64> {
        // A = B Bᵀ + n I with a fixed pseudo-random B.
        let b: Vec<f64> = (0..n * n)
            .map(|t| ((t * 37 % 101) as f64 - 50.0) / 50.0)
            .collect();
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                a[i * n + j] = (0..n).map(|k| b[i * n + k] * b[j * n + k]).sum::<f64>();
            }
            a[i * n + i] += n as f64;
        }
        a
    }

    #[test]
    fn solve_and_inverse_recover_identity() {
        for n in [1, 2, 5, 17] {
            let a = spd(n);
            let mut l = a.clone();
            assert!(cholesky(&mut l, n));
            let x_true: Vec<f64> = (0..n).map(|i| i as f64 - 3.5).collect();
            let mut b: Vec<f64> = (0..n)
                .map(|i| dot(&a[i * n..(i + 1) * n], &x_true))
                .collect();
            cholesky_solve(&l, n, &mut b);
            for (x, t) in b.iter().zip(&x_true) {
                assert!((x - t).abs() < 1e-10, "n={n}");
            }
            let inv = cholesky_inverse(&l, n);
            for i in 0..n {
                for j in 0..n {
                    let e: f64 = (0..n).map(|k| a[i * n + k] * inv[k * n + j]).sum();
                    assert!((e - f64::from(u8::from(i == j))).abs() < 1e-10);
                }
            }
        }
    }

    #[test]
    fn rejects_indefinite() {
        let mut a = vec![1.0, 2.0, 2.0, 1.0];
        assert!(!cholesky(&mut a, 2));
    }
}
