//! Harvest activations: a corpus of documents cut into contexts that never span two documents, run through
//! a `sae_lm::Model`'s fast forward, and the rows at each requested hook point appended to one activation
//! store per hook (resumable), or streamed straight into training batches ([`Stream`]) without touching the disk.

mod batches;
mod contexts;
mod corpus;
mod error;
mod forward;
mod harvest;
mod rows;
mod sinks;
mod stream;

pub use batches::{Batch, Batcher};
pub use contexts::{Context, Contexts, Cursor};
pub use corpus::{Corpus, Document};
pub use error::{HarvestError, Result};
pub use harvest::{harvest, HarvestConfig, HarvestProgress, HarvestSummary};
pub use stream::{Stream, StreamBatches, StreamConfig, StreamStats};
