//! Scaled dot-product attention shared by the model files (grouped-query aware, additive masks).

use candle_core::{DType, Device, Tensor};

use crate::error::Result;

/// softmax(q k^T * scale + mask) v with `kv_heads` key/value heads shared by groups of query heads
/// (query head i reads key/value head i / (heads / kv_heads), as Hugging Face's `repeat_kv`).
///
/// q: [b, heads, t, hd], k, v: [b, kv_heads, t, hd], mask: additive, broadcastable to [b, heads, t, t]
/// -> [b, t, heads * hd]
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    scale: f64,
) -> Result<Tensor> {
    let probs = candle_nn::ops::softmax_last_dim(&scores(q, k, mask, scale)?)?;
    mix(&probs, v)
}

/// q k^T * scale + mask, grouped-query aware. q: [b, heads, t, hd], k: [b, kv_heads, t, hd]
/// -> [b, heads, t, t]
pub(crate) fn scores(q: &Tensor, k: &Tensor, mask: Option<&Tensor>, scale: f64) -> Result<Tensor> {
    let (b, heads, t, hd) = q.dims4()?;
    let kv_heads = k.dim(1)?;
    let group = heads / kv_heads;
    // Grouped queries share their key/value head without copying it: [b, kv, group * t, hd].
    let q = q.contiguous()?.reshape((b, kv_heads, group * t, hd))?;
    let scores = q.matmul(&k.t()?)?.reshape((b, heads, t, t))?;
    let scores = (scores * scale)?;
    Ok(match mask {
        Some(m) => scores.broadcast_add(m)?,
        None => scores,
    })
}

/// The pattern applied to the values. probs: [b, heads, t, t], v: [b, kv_heads, t, hd] -> [b, t, heads * hd]
pub(crate) fn mix(probs: &Tensor, v: &Tensor) -> Result<Tensor> {
    let (b, heads, t, _) = probs.dims4()?;
    let (kv_heads, hd) = (v.dim(1)?, v.dim(3)?);
    let group = heads / kv_heads;
    let probs = probs.reshape((b, kv_heads, group * t, t))?;
    let out = probs.matmul(&v.contiguous()?)?.reshape((b, heads, t, hd))?;
    Ok(out.transpose(1, 2)?.reshape((b, t, heads * hd))?)
}

/// The causal mask: 0 on and below the diagonal, -inf above. -> [t, t]
pub fn causal_mask(t: usize, device: &Device) -> Result<Tensor> {
    let data: Vec<f32> = (0..t)
        .flat_map(|i| (0..t).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Ok(Tensor::from_vec(data, (t, t), device)?)
}

/// A key-padding mask from each row's real length: 0 for real keys, f32::MIN for padding. -> [b, 1, 1, t]
pub fn padding_mask(lengths: &[usize], t: usize, device: &Device) -> Result<Tensor> {
    let data: Vec<f32> = lengths
        .iter()
        .flat_map(|&len| (0..t).map(move |j| if j < len { 0.0 } else { f32::MIN }))
        .collect();
    Ok(Tensor::from_vec(data, (lengths.len(), 1, 1, t), device)?.to_dtype(DType::F32)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plain per-head loop with explicit repeat of the key/value heads: the reference path.
    fn reference(q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor, scale: f64) -> Tensor {
        let (b, heads, t, hd) = q.dims4().unwrap();
        let group = heads / k.dim(1).unwrap();
        let mut rows = Vec::new();
        for bi in 0..b {
            let mut per_head = Vec::new();
            for h in 0..heads {
                let qh = q.get(bi).unwrap().get(h).unwrap();
                let kh = k.get(bi).unwrap().get(h / group).unwrap();
                let vh = v.get(bi).unwrap().get(h / group).unwrap();
                let s = ((qh.matmul(&kh.t().unwrap()).unwrap() * scale).unwrap() + mask).unwrap();
                let p = candle_nn::ops::softmax_last_dim(&s).unwrap();
                per_head.push(p.matmul(&vh).unwrap());
            }
            rows.push(Tensor::cat(&per_head, 1).unwrap());
        }
        Tensor::stack(&rows, 0)
            .unwrap()
            .reshape((b, t, heads * hd))
            .unwrap()
    }

    #[test]
    fn grouped_attention_matches_per_head_loop() {
        let dev = Device::Cpu;
        let q = Tensor::randn(0f32, 1., (2, 6, 5, 4), &dev).unwrap();
        let k = Tensor::randn(0f32, 1., (2, 2, 5, 4), &dev).unwrap();
        let v = Tensor::randn(0f32, 1., (2, 2, 5, 4), &dev).unwrap();
        let mask = causal_mask(5, &dev).unwrap();
        let fast = attention(&q, &k, &v, Some(&mask), 0.5).unwrap();
        let slow = reference(&q, &k, &v, &mask, 0.5);
        let diff = (fast - slow)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff < 1e-5, "max diff {diff}");
    }
}
