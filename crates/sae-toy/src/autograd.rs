//! The reference training path: the batched toy model as a candle graph, autograd and candle's
//! AdamW. Shapes: x [I, B, n]; W [I, m, n]; h = x W^T [I, B, m]; x' = h W + b [I, B, n].

use candle_core::{Device, Tensor, Var};
use candle_nn::{AdamW as CandleAdamW, Optimizer, ParamsAdamW};

use crate::error::{Result, ToyError};
use crate::fast::{Grads, BETA1, BETA2, EPS};
use crate::model::{Instance, ModelKind, ToyModel};
use crate::train::{sample_batch, TrainSettings, Trained};

/// Per-instance losses [I] of x [I, B, n] under W [I, m, n], b [I, n] (candle graph).
fn losses(kind: ModelKind, x: &Tensor, w: &Tensor, b: &Tensor, imp: &Tensor) -> Result<Tensor> {
    let batch = x.dim(1)? as f64;
    let mut h = x.matmul(&w.transpose(1, 2)?)?;
    if kind.hidden_relu() {
        h = h.relu()?;
    }
    let mut out = h.matmul(w)?.broadcast_add(&b.unsqueeze(1)?)?;
    if kind.output_relu() {
        out = out.relu()?;
    }
    let err = (x - out)?.sqr()?.broadcast_mul(imp)?;
    Ok((err.sum(2)?.sum(1)? / batch)?)
}

/// Per-instance losses of `model` on `x` [I, B, n] through the candle graph used in training.
pub fn batched_losses(model: &ToyModel, x: &[f32], batch: usize) -> Result<Vec<f64>> {
    let (i, n, m) = (model.instances.len(), model.n, model.m);
    let dev = Device::Cpu;
    let xt = Tensor::from_slice(x, (i, batch, n), &dev)?;
    let w = Tensor::from_slice(&model.w, (i, m, n), &dev)?;
    let b = Tensor::from_slice(&model.b, (i, n), &dev)?;
    let imp = importance_tensor(&model.instances, n)?;
    let l = losses(model.kind, &xt, &w, &b, &imp)?;
    Ok(l.to_vec1::<f32>()?.into_iter().map(f64::from).collect())
}

fn importance_tensor(instances: &[Instance], n: usize) -> Result<Tensor> {
    let v: Vec<f32> = instances
        .iter()
        .flat_map(|inst| inst.importance.iter().map(|v| *v as f32))
        .collect();
    Ok(Tensor::from_vec(v, (instances.len(), 1, n), &Device::Cpu)?)
}

pub(crate) fn train_autograd(
    start: ToyModel,
    s: &TrainSettings,
    mut progress: impl FnMut(u64, f64),
) -> Result<Trained> {
    let (n, m, kind, i) = (start.n, start.m, start.kind, start.instances.len());
    let dev = Device::Cpu;
    let w = Var::from_tensor(&Tensor::from_slice(&start.w, (i, m, n), &dev)?)?;
    let b = Var::from_tensor(&Tensor::from_slice(&start.b, (i, n), &dev)?)?;
    let imp = importance_tensor(&start.instances, n)?;
    let params = ParamsAdamW {
        lr: s.lr,
        beta1: BETA1,
        beta2: BETA2,
        eps: EPS,
        weight_decay: s.weight_decay,
    };
    let mut opt = CandleAdamW::new(vec![w.clone(), b.clone()], params)?;
    let mut last = Vec::new();
    for step in 0..s.steps {
        let x = sample_batch(&start.instances, n, s.batch, s.seed, step);
        let xt = Tensor::from_vec(x, (i, s.batch, n), &dev)?;
        let per = losses(kind, &xt, w.as_tensor(), b.as_tensor(), &imp)?;
        let total = per.sum_all()?;
        opt.backward_step(&total)?;
        last = per.to_vec1::<f32>()?.into_iter().map(f64::from).collect();
        progress(step + 1, last.iter().sum());
    }
    let model = ToyModel {
        w: w.as_tensor().flatten_all()?.to_vec1::<f32>()?,
        b: b.as_tensor().flatten_all()?.to_vec1::<f32>()?,
        ..start
    };
    Ok(Trained {
        model,
        final_loss: last,
    })
}

/// Loss and gradients of every instance on x [I, B, n] through candle autograd (the reference).
pub fn autograd_grads(model: &ToyModel, x: &[f32], batch: usize) -> Result<Vec<Grads>> {
    let (i, n, m) = (model.instances.len(), model.n, model.m);
    let dev = Device::Cpu;
    let xt = Tensor::from_slice(x, (i, batch, n), &dev)?;
    let w = Var::from_tensor(&Tensor::from_slice(&model.w, (i, m, n), &dev)?)?;
    let b = Var::from_tensor(&Tensor::from_slice(&model.b, (i, n), &dev)?)?;
    let imp = importance_tensor(&model.instances, n)?;
    let per = losses(model.kind, &xt, w.as_tensor(), b.as_tensor(), &imp)?;
    let store = per.sum_all()?.backward()?;
    let missing = || ToyError::Invalid("autograd produced no gradient".into());
    let gw = store
        .get(w.as_tensor())
        .ok_or_else(missing)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let gb = store
        .get(b.as_tensor())
        .ok_or_else(missing)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let l = per.to_vec1::<f32>()?;
    Ok((0..i)
        .map(|k| Grads {
            loss: f64::from(l[k]),
            w: gw[k * m * n..(k + 1) * m * n].to_vec(),
            b: gb[k * n..(k + 1) * n].to_vec(),
        })
        .collect())
}
