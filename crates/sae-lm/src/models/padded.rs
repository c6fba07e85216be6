//! The bridge from the packed fast forward to the tensor-based [`HookSink`]: rows offered as right-padded
//! [b, t, width] tensors, and a sink's replacement written back into the packed rows.

use candle_core::{Device, Tensor};

use crate::error::Result;
use crate::fast::RowSink;
use crate::hooks::{Hook, HookSink};

/// Offers packed rows to a [`HookSink`] as right-padded [b, t, width] tensors (zeros at padding).
pub(super) struct Padded<'a> {
    pub sink: &'a mut dyn HookSink,
    pub lengths: &'a [usize],
    pub t: usize,
    pub device: Device,
}

impl Padded<'_> {
    /// Packed rows [tokens, width] -> [b, t, width] with zeros at padding.
    fn padded(&self, rows: &[f32], width: usize) -> Result<Tensor> {
        let (b, t) = (self.lengths.len(), self.t);
        let mut out = vec![0.0f32; b * t * width];
        let mut src = rows.chunks(width);
        for (i, &len) in self.lengths.iter().enumerate() {
            for (dst, row) in out[i * t * width..]
                .chunks_mut(width)
                .zip(src.by_ref().take(len))
            {
                dst.copy_from_slice(row);
            }
        }
        Ok(Tensor::from_vec(out, (b, t, width), &self.device)?)
    }
}

impl RowSink for Padded<'_> {
    fn wants(&self, hook: Hook) -> bool {
        self.sink.wants(hook)
    }

    fn last_layer(&self) -> Option<usize> {
        self.sink.last_layer()
    }

    fn put_rows(&mut self, hook: Hook, rows: &[f32], width: usize) -> Result<()> {
        let x = self.padded(rows, width)?;
        self.sink.put(hook, &x)
    }

    fn edit_rows(&mut self, hook: Hook, rows: &mut [f32], width: usize) -> Result<()> {
        let x = self.padded(rows, width)?;
        let id = x.id();
        let y = self.sink.offer(hook, x)?;
        if y.id() == id {
            return Ok(());
        }
        let y: Vec<f32> = y.flatten_all()?.to_vec1()?;
        let mut dst = rows.chunks_mut(width);
        for (i, &len) in self.lengths.iter().enumerate() {
            let src = y[i * self.t * width..].chunks(width).take(len);
            for (row, s) in dst.by_ref().take(len).zip(src) {
                row.copy_from_slice(s);
            }
        }
        Ok(())
    }
}
