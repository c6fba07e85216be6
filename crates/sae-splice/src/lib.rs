//! The SAE judged inside the model. Three forward passes per batch of contexts: the clean model; the
//! hooked activation replaced by the SAE's reconstruction (special-token positions keep their own
//! activation); the hooked activation zero-ablated at every position. From their next-token
//! distributions: CE loss recovered, delta LM loss and the KL divergence score (definitions on
//! [`SplicedMetrics`]). A transcoder reads one hook and replaces a later one of the same pass (its
//! [`Site`]): at `ln2.hook_normalized` -> `hook_mlp_out` it stands in for the MLP, and the zero ablation
//! zeroes the MLP's output.

mod error;
mod eval;
mod loss;
mod site;
mod splice;

pub use error::{Result, SpliceError};
pub use eval::{spliced_eval, SplicedConfig, SplicedProgress};
pub use loss::{cross_entropy, kl_divergence, log_softmax, LossSums, SplicedMetrics};
pub use site::Site;
pub use splice::{score_batch, Replace, SpliceSink};
