//! The mixing buffer's draw rule, shared by every stream of shuffled batches (stores here, live
//! model streams in sae-harvest): each row is drawn uniformly from the buffer and removed by moving
//! the buffer's last row into its place. The replay on row ids makes exactly the same generator
//! calls, so a resumed stream can skip batches without their data.

use rand::Rng;

/// Draws `out.len() / d` rows from `buffer` (rows of `d` values) into `out`, removing each.
pub fn draw_rows<R: Rng>(buffer: &mut Vec<f32>, d: usize, rng: &mut R, out: &mut [f32]) {
    for o in out.chunks_exact_mut(d) {
        let n = buffer.len() / d;
        let r = rng.random_range(0..n);
        o.copy_from_slice(&buffer[r * d..(r + 1) * d]);
        let last = n - 1;
        if r != last {
            buffer.copy_within(last * d..(last + 1) * d, r * d);
        }
        buffer.truncate(last * d);
    }
}

/// The draws of [`draw_rows`] for `rows` rows, replayed on row ids.
pub fn draw_ids<R: Rng, T>(ids: &mut Vec<T>, rows: usize, rng: &mut R) {
    for _ in 0..rows {
        let r = rng.random_range(0..ids.len());
        ids.swap_remove(r);
    }
}
