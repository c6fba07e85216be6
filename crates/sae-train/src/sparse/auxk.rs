//! AuxK as a gathered dense block: when few latents are dead, most of them are chosen in every
//! row, and four GEMMs over the [rows, n_dead] block beat gathering k_aux decoder rows per row.
//!
//! With Z [B, n_dead] the AuxK activations (zero where not chosen), W_D the dead decoder rows,
//! e the detached error and h = hscale (e - Z W_D):
//!   e_hat = Z W_D,  dZ = (h W_D^T) * [Z != 0],  dW_D = Z^T h,  dW_enc^T[D] = dZ^T xc,
//!   db_enc[D] = sum_r dZ_r.

use rayon::prelude::*;

use crate::kernels::{matmul_into, Mat};
use crate::vecops::{dot, simd_dispatch};

/// Which AuxK implementation a step uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuxPath {
    /// Per row over the chosen latents (best when far more latents are dead than chosen).
    Sparse,
    /// GEMMs over the gathered dead block (best when most dead latents are chosen).
    Dense,
    /// Dense when n_dead <= `DENSE_FACTOR` x the mean chosen per row, else sparse.
    Auto,
}

/// A gathered GEMM does about this many times the useful work of a sparse pass in the same time
/// (measured with `sae bench train --dead-frac`: at 49% dead, 128 -> 1024, k_aux 64, both paths
/// cost about the same at n_dead / chosen = 8, the dense block 6% slower).
const DENSE_FACTOR: f64 = 8.0;

impl AuxPath {
    /// Whether this path may end dense for `n_dead` dead latents and `k_aux` (Auto: at most k_aux
    /// are chosen per row, so the dense block can win only when n_dead <= DENSE_FACTOR x k_aux).
    pub(super) fn may_be_dense(self, n_dead: usize, k_aux: usize) -> bool {
        match self {
            AuxPath::Sparse => false,
            AuxPath::Dense => true,
            AuxPath::Auto => n_dead as f64 <= DENSE_FACTOR * k_aux as f64,
        }
    }

    /// The path for `n_dead` dead latents of which `chosen` entries were picked over `rows` rows.
    pub fn resolve(self, n_dead: usize, chosen: usize, rows: usize) -> AuxPath {
        match self {
            AuxPath::Auto => {
                if (n_dead as f64) <= DENSE_FACTOR * chosen as f64 / rows.max(1) as f64 {
                    AuxPath::Dense
                } else {
                    AuxPath::Sparse
                }
            }
            p => p,
        }
    }
}

/// Rows per parallel task of the element-wise passes (fixed, so results do not depend on the
/// thread count).
const ROWS: usize = 64;

simd_dispatch! {
    /// e <- hscale (e - e_hat) over a block of rows of width `d`; returns the block's sum of
    /// (e - e_hat)^2 (each row's sum a vectorised dot).
    fn residual_block(e: &mut [f32], e_hat: &[f32], d: usize, hscale: f32) -> f64 {
        let mut s = 0f64;
        for (er, hr) in e.chunks_exact_mut(d).zip(e_hat.chunks_exact(d)) {
            er.iter_mut().zip(hr).for_each(|(e, h)| *e -= h);
            s += dot(er, er) as f64;
            er.iter_mut().for_each(|e| *e *= hscale);
        }
        s
    }
}

simd_dispatch! {
    /// dZ <- dZ where Z != 0 (else 0) over a block of rows; returns the block's column sums.
    fn mask_and_sum(dz: &mut [f32], z: &[f32], nd: usize) -> Vec<f32> {
        let mut sums = vec![0f32; nd];
        for (gr, zr) in dz.chunks_exact_mut(nd).zip(z.chunks_exact(nd)) {
            for ((g, &z), s) in gr.iter_mut().zip(zr).zip(sums.iter_mut()) {
                *g = if z != 0.0 { *g } else { 0.0 };
                *s += *g;
            }
        }
        sums
    }
}

/// Buffers of the dense AuxK block (kept between steps).
#[derive(Default)]
pub struct DenseAux {
    w_dead: Vec<f32>,
    z: Vec<f32>,
    e_hat: Vec<f32>,
    dz: Vec<f32>,
    dw: Vec<f32>,
}

/// What the dense AuxK block needs and where its gradients go.
pub struct DenseAuxIo<'a> {
    /// Dead latents (global indices, increasing).
    pub dead: &'a [u32],
    /// Decoder [d_sae, d_out].
    pub w_dec: &'a [f32],
    /// Encoder inputs [B, d_in] (centred for an autoencoder).
    pub xc: &'a [f32],
    /// In: the error e [B, d_in]; out: h = hscale (e - e_hat).
    pub e_h: &'a mut [f32],
    /// dW_dec [d_sae, d_in] (dead rows added to).
    pub dw_dec: &'a mut [f32],
    /// dW_enc^T [d_sae, d_in] (dead rows added to).
    pub dw_enc_t: &'a mut [f32],
    /// db_enc [d_sae] (dead entries added to).
    pub db_enc: &'a mut [f32],
}

impl DenseAux {
    /// The block Z [rows, n_dead] for the selection to fill (see `select::DenseBlock`); its contents
    /// are overwritten row by row.
    pub(super) fn block_mut(&mut self, rows: usize, n_dead: usize) -> &mut [f32] {
        self.z.resize(rows * n_dead, 0.0);
        &mut self.z
    }

    /// Runs the block on the Z the selection filled last (through [`DenseAux::block_mut`]) with
    /// h = hscale (e - e_hat); returns sum_r ||e_r - e_hat_r||^2. `d_in` is the width of e and of
    /// the decoder rows, `d_x` that of the encoder's input rows `xc` (they differ for a
    /// transcoder).
    pub fn run(&mut self, io: DenseAuxIo<'_>, d_in: usize, d_x: usize, hscale: f32) -> f64 {
        let nd = io.dead.len();
        let b = io.e_h.len() / d_in.max(1);
        if nd == 0 || b == 0 {
            return 0.0;
        }
        assert_eq!(self.z.len(), b * nd, "the AuxK block is filled first");
        self.w_dead.clear();
        for &j in io.dead {
            let j = j as usize;
            self.w_dead
                .extend_from_slice(&io.w_dec[j * d_in..(j + 1) * d_in]);
        }
        self.e_hat.resize(b * d_in, 0.0);
        let (z, w) = (Mat::new(&self.z, b, nd), Mat::new(&self.w_dead, nd, d_in));
        matmul_into(&mut self.e_hat, z, w, false);
        let sse: f64 = io
            .e_h
            .par_chunks_mut(ROWS * d_in)
            .zip(self.e_hat.par_chunks(ROWS * d_in))
            .map(|(e, h)| residual_block(e, h, d_in, hscale))
            .collect::<Vec<f64>>()
            .iter()
            .sum();
        let h = Mat::new(io.e_h, b, d_in);
        self.dz.resize(b * nd, 0.0);
        matmul_into(&mut self.dz, h, Mat::t(&self.w_dead, nd, d_in), false);
        // Keep dZ where a latent was chosen, and sum its columns (db_enc) per block of rows,
        // the blocks added in order.
        let col_sums: Vec<Vec<f32>> = self
            .dz
            .par_chunks_mut(ROWS * nd)
            .zip(self.z.par_chunks(ROWS * nd))
            .map(|(g, z)| mask_and_sum(g, z, nd))
            .collect();
        for part in &col_sums {
            for (&j, s) in io.dead.iter().zip(part) {
                io.db_enc[j as usize] += s;
            }
        }
        self.dw.resize(nd * d_in, 0.0);
        matmul_into(&mut self.dw, Mat::t(&self.z, b, nd), h, false);
        self.scatter_add(io.dead, d_in, io.dw_dec);
        self.dw.resize(nd * d_x, 0.0);
        matmul_into(
            &mut self.dw,
            Mat::t(&self.dz, b, nd),
            Mat::new(io.xc, b, d_x),
            false,
        );
        self.scatter_add(io.dead, d_x, io.dw_enc_t);
        sse
    }

    /// dst[dead[n]] += dw[n] for every dead row.
    fn scatter_add(&self, dead: &[u32], d_in: usize, dst: &mut [f32]) {
        for (n, &j) in dead.iter().enumerate() {
            let j = j as usize;
            let src = &self.dw[n * d_in..(n + 1) * d_in];
            dst[j * d_in..(j + 1) * d_in]
                .iter_mut()
                .zip(src)
                .for_each(|(a, b)| *a += b);
        }
    }
}
