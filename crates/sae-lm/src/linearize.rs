//! The reference forward made differentiable with respect to activations, and optionally linearised: the
//! norms' scales, the element-wise nonlinearities and the attention patterns frozen at the values a first
//! (recording) pass computed.
//!
//! With every rule on, the forward pass is an affine map of any hook's activation whose Jacobian is what
//! LRP's identity rule (norm scales, element-wise nonlinearities), CP-LRP (attention patterns) and the
//! uniform rule (the gated MLP's product: half the gradient to each factor) give, so relevance is
//! activation x gradient. A replayed pass evaluates exactly that affine map at other activations (the
//! interventions that check attributions). With no rule on, gradients are the plain ones.
//!
//! [`Linearize::off`] is today's forward: the fused candle kernels (which have no backward) and nothing kept.

use std::collections::HashMap;

use candle_core::{Tensor, D};
use candle_nn::{LayerNorm, Module, RmsNorm};

use crate::error::{LmError, Result};

/// Which parts of the forward pass are frozen. All off: plain gradients (gradient x input).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rules {
    /// LayerNorm / RMSNorm: the 1 / std (1 / rms) scale is a constant (identity rule).
    pub norm: bool,
    /// Element-wise nonlinearities: f(x) = x * [f(x) / x] with the ratio constant (identity rule); a gated
    /// MLP's product a * b splits its gradient half and half (uniform rule).
    pub nonlinearity: bool,
    /// Attention patterns are constants (CP-LRP): gradients flow through the values only.
    pub attention: bool,
    /// AttnLRP instead of CP-LRP (when `attention` is off): the softmax keeps its gradient (AttnLRP's
    /// softmax rule in gradient form) and both products, q k^T and pattern x values, split their gradient
    /// half and half (uniform rule). Not an affine map: nothing is frozen or replayed for it.
    pub attn_lrp: bool,
}

impl Rules {
    /// Plain gradients.
    pub const GRADIENT: Rules = Rules {
        norm: false,
        nonlinearity: false,
        attention: false,
        attn_lrp: false,
    };
    /// Every rule on: the linearised model (LRP with identity / CP-LRP / uniform rules).
    pub const LRP: Rules = Rules {
        norm: true,
        nonlinearity: true,
        attention: true,
        attn_lrp: false,
    };
    /// AttnLRP (Achtibat et al. 2024): identity rules on norms and nonlinearities, the softmax rule and
    /// uniform rules on the attention products.
    pub const ATTN_LRP: Rules = Rules {
        norm: true,
        nonlinearity: true,
        attention: false,
        attn_lrp: true,
    };

    /// Whether every rule is on (the forward pass is then affine in any hook's activation).
    pub fn is_linear(&self) -> bool {
        self.norm && self.nonlinearity && self.attention
    }
}

/// Where in the model a frozen value was taken: (layer, what).
type Key = (usize, &'static str);

/// The switches of a differentiable reference forward and the values it froze.
#[derive(Debug)]
pub struct Linearize {
    rules: Rules,
    differentiable: bool,
    replay: bool,
    frozen: HashMap<Key, Tensor>,
}

impl Linearize {
    /// Today's forward: fused kernels, no gradients through them, nothing frozen.
    pub fn off() -> Linearize {
        Linearize {
            rules: Rules::GRADIENT,
            differentiable: false,
            replay: false,
            frozen: HashMap::new(),
        }
    }

    /// A differentiable forward with these rules; the first pass records the frozen values.
    pub fn new(rules: Rules) -> Linearize {
        Linearize {
            rules,
            differentiable: true,
            replay: false,
            frozen: HashMap::new(),
        }
    }

    /// The rules in force.
    pub fn rules(&self) -> Rules {
        self.rules
    }

    /// From now on passes reuse the recorded values (the same shapes are needed) instead of recording.
    pub fn replay(&mut self) {
        self.replay = true;
    }

    /// The value at `key`: computed live when its rule is off, else recorded (detached) or replayed.
    fn frozen(
        &mut self,
        key: Key,
        on: bool,
        live: impl FnOnce() -> Result<Tensor>,
    ) -> Result<Tensor> {
        if !on {
            return live();
        }
        if self.replay {
            return self.frozen.get(&key).cloned().ok_or_else(|| {
                LmError::Invalid(format!(
                    "nothing was recorded at block {} ({}) to replay",
                    key.0, key.1
                ))
            });
        }
        let value = live()?.detach();
        self.frozen.insert(key, value.clone());
        Ok(value)
    }

    /// A LayerNorm; with the norm rule its 1 / std is frozen.
    pub(crate) fn layer_norm(&mut self, key: Key, ln: &LayerNorm, x: &Tensor) -> Result<Tensor> {
        if !self.differentiable {
            return Ok(ln.forward(x)?);
        }
        let xc = x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?;
        let eps = ln.eps();
        let inv = self.frozen(key, self.rules.norm, || {
            Ok((xc.sqr()?.mean_keepdim(D::Minus1)? + eps)?
                .sqrt()?
                .recip()?)
        })?;
        let y = xc.broadcast_mul(&inv)?.broadcast_mul(ln.weight())?;
        Ok(match ln.bias() {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }

    /// An RMSNorm; with the norm rule its 1 / rms is frozen.
    pub(crate) fn rms_norm(&mut self, key: Key, ln: &RmsNorm, x: &Tensor) -> Result<Tensor> {
        if !self.differentiable {
            return Ok(ln.forward(x)?);
        }
        let eps = ln.eps();
        let inv = self.frozen(key, self.rules.norm, || {
            Ok((x.sqr()?.mean_keepdim(D::Minus1)? + eps)?.sqrt()?.recip()?)
        })?;
        Ok(x.broadcast_mul(&inv)?.broadcast_mul(ln.weight())?)
    }

    /// GELU (tanh approximation, or erf); with the nonlinearity rule x * frozen(gelu(x) / x).
    pub(crate) fn gelu(&mut self, key: Key, x: &Tensor, erf: bool) -> Result<Tensor> {
        let f = |x: &Tensor| -> Result<Tensor> { Ok(if erf { x.gelu_erf()? } else { x.gelu()? }) };
        if !self.differentiable || !self.rules.nonlinearity {
            return f(x);
        }
        let ratio = self.frozen(key, true, || {
            // gelu(x) / x, with its limit 1/2 at x = 0.
            let zero = x.eq(0f32)?;
            let safe = zero.where_cond(&x.ones_like()?, x)?;
            let r = (f(x)? / safe)?;
            Ok(zero.where_cond(&(x.ones_like()? * 0.5)?, &r)?)
        })?;
        Ok((x * ratio)?)
    }

    /// A gated MLP's act(gate) * up with SiLU; with the nonlinearity rule silu(g) = g * frozen(sigmoid(g))
    /// and the product's gradient split half and half: 0.5 * (a * frozen(b) + frozen(a) * b).
    pub(crate) fn silu_gate(&mut self, layer: usize, gate: &Tensor, up: &Tensor) -> Result<Tensor> {
        if !self.differentiable || !self.rules.nonlinearity {
            return Ok((candle_nn::ops::silu(gate)? * up)?);
        }
        let sig = self.frozen((layer, "sigmoid"), true, || {
            Ok(candle_nn::ops::sigmoid(gate)?)
        })?;
        let a = (gate * sig)?;
        let a0 = self.frozen((layer, "gate"), true, || Ok(a.clone()))?;
        let b0 = self.frozen((layer, "up"), true, || Ok(up.clone()))?;
        Ok(((&a * b0)? + (a0 * up)?)?.affine(0.5, 0.0)?)
    }

    /// Rotary embeddings: the composite (differentiable) version unless the pass is off.
    pub(crate) fn rope(
        &self,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        interleaved: bool,
    ) -> Result<Tensor> {
        use candle_nn::rotary_emb::{rope, rope_i, rope_i_slow, rope_slow};
        Ok(match (self.differentiable, interleaved) {
            (false, false) => rope(x, cos, sin)?,
            (false, true) => rope_i(x, cos, sin)?,
            (true, false) => rope_slow(&x.contiguous()?, cos, sin)?,
            (true, true) => rope_i_slow(&x.contiguous()?, cos, sin)?,
        })
    }

    /// Scaled dot-product attention (see [`crate::attention::attention`]); with the attention rule the
    /// pattern is frozen.
    pub(crate) fn attention(
        &mut self,
        layer: usize,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        mask: &Tensor,
        scale: f64,
    ) -> Result<Tensor> {
        use crate::attention::{attention, mix, scores};
        if !self.differentiable {
            return attention(q, k, v, Some(mask), scale);
        }
        if self.rules.attn_lrp && !self.rules.attention {
            // 0.5 (q k0^T + q0 k^T) and 0.5 (p v0 + p0 v): the values of q k^T and p v, half the gradient each.
            let (q0, k0, v0) = (q.detach(), k.detach(), v.detach());
            let s = (scores(q, &k0, Some(mask), scale)? + scores(&q0, k, Some(mask), scale)?)?;
            let probs = candle_nn::ops::softmax(&s.affine(0.5, 0.0)?, D::Minus1)?;
            let out = (mix(&probs, &v0)? + mix(&probs.detach(), v)?)?;
            return Ok(out.affine(0.5, 0.0)?);
        }
        let probs = self.frozen((layer, "pattern"), self.rules.attention, || {
            Ok(candle_nn::ops::softmax(
                &scores(q, k, Some(mask), scale)?,
                D::Minus1,
            )?)
        })?;
        mix(&probs, v)
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor, Var};

    use super::{Linearize, Rules};
    use crate::attention::causal_mask;

    /// Gradients of sum(attention . w) with respect to q, k, v under `rules`.
    fn grads(rules: Rules, q: &Var, k: &Var, v: &Var, w: &Tensor) -> [Tensor; 3] {
        let mask = causal_mask(5, &Device::Cpu).unwrap();
        let mut lin = Linearize::new(rules);
        let out = lin.attention(0, q, k, v, &mask, 0.5).unwrap();
        let g = (out * w).unwrap().sum_all().unwrap().backward().unwrap();
        [q, k, v].map(|x| match g.get(x.as_tensor()) {
            Some(t) => t.clone(),
            None => x.as_tensor().zeros_like().unwrap(),
        })
    }

    #[test]
    fn attn_lrp_halves_the_products_gradients() {
        let dev = Device::Cpu;
        let var = |s: (usize, usize, usize, usize)| {
            Var::from_tensor(&Tensor::randn(0f32, 1., s, &dev).unwrap()).unwrap()
        };
        let (q, k, v) = (var((1, 4, 5, 3)), var((1, 2, 5, 3)), var((1, 2, 5, 3)));
        let w = Tensor::randn(0f32, 1., (1, 5, 12), &dev).unwrap();
        let plain = grads(Rules::GRADIENT, &q, &k, &v, &w);
        let lrp = grads(Rules::ATTN_LRP, &q, &k, &v, &w);
        // v: one product (p v) -> half; q, k: two products (q k^T, then p v) -> a quarter.
        for (i, factor) in [0.25, 0.25, 0.5].into_iter().enumerate() {
            let want = (&plain[i] * factor).unwrap();
            let d = (&lrp[i] - want).unwrap().abs().unwrap().max_all().unwrap();
            let d = d.to_scalar::<f32>().unwrap();
            assert!(d < 1e-5, "operand {i}: max diff {d}");
        }
        // CP-LRP: nothing reaches q and k.
        let cp = grads(Rules::LRP, &q, &k, &v, &w);
        assert!(
            cp[0]
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
                == 0.0
        );
    }
}
