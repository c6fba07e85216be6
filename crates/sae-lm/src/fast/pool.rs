//! Activation buffers kept between layers and between forward passes. A pass needs a handful of large
//! buffers ([tokens, width] each); freeing and allocating them anew for every layer hands the pages back to
//! the kernel and faults them in again (a sixth of a MiniLM pass went to page faults and `memmove` into
//! fresh pages). A [`Pool`] keeps the freed buffers and hands out the smallest one that fits.

use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

/// Free buffers kept for reuse; shared by the passes of one model (a pass on another thread simply takes
/// other buffers).
#[derive(Default)]
pub(crate) struct Pool {
    free: Mutex<Vec<Vec<f32>>>,
}

/// Buffers a pool keeps at most (a pass holds about five at once).
const KEEP: usize = 12;

impl Pool {
    /// A buffer of `len` elements whose contents are unspecified (left from an earlier use): for callers
    /// that write every element before reading any.
    pub fn take(&self, len: usize) -> Buf<'_> {
        let mut v = {
            let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
            let best = free
                .iter()
                .enumerate()
                .filter(|(_, b)| b.capacity() >= len)
                .min_by_key(|(_, b)| b.capacity())
                .map(|(i, _)| i);
            match best {
                Some(i) => free.swap_remove(i),
                // None fits: give up the largest (it is smaller than needed) rather than keep it idle.
                None => {
                    let largest = (0..free.len()).max_by_key(|&i| free[i].capacity());
                    largest.map(|i| free.swap_remove(i)).unwrap_or_default()
                }
            }
        };
        if v.len() > len {
            v.truncate(len);
        } else {
            v.resize(len, 0.0);
        }
        Buf {
            pool: self,
            v: Some(v),
        }
    }

    fn give(&self, v: Vec<f32>) {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        if free.len() < KEEP {
            free.push(v);
        }
    }
}

/// A buffer on loan from a [`Pool`]; it goes back when dropped.
pub(crate) struct Buf<'a> {
    pool: &'a Pool,
    v: Option<Vec<f32>>,
}

impl Deref for Buf<'_> {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        self.v.as_deref().unwrap_or_default()
    }
}

impl DerefMut for Buf<'_> {
    fn deref_mut(&mut self) -> &mut [f32] {
        self.v.as_deref_mut().unwrap_or_default()
    }
}

impl Drop for Buf<'_> {
    fn drop(&mut self) {
        if let Some(v) = self.v.take() {
            self.pool.give(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_smallest_fit_first() {
        let pool = Pool::default();
        let (a, b) = (pool.take(100), pool.take(1000));
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        drop((a, b));
        // 90 elements fit both; the smaller (100) is handed out, then the 1000 one for 500.
        let c = pool.take(90);
        assert_eq!((c.len(), c.as_ptr()), (90, pa));
        let d = pool.take(500);
        assert_eq!((d.len(), d.as_ptr()), (500, pb));
        // Nothing free: a new buffer, zeroed.
        let e = pool.take(7);
        assert!(e.iter().all(|&v| v == 0.0) && e.len() == 7);
        // Too small for everything kept: the largest kept one grows (and is gone from the free list).
        drop((c, d, e));
        let f = pool.take(2000);
        assert_eq!(f.len(), 2000);
        assert_eq!(pool.free.lock().unwrap().len(), 2);
    }
}
