//! The paper's three experiments and the SAE probe.

pub mod dims;
pub mod intro;
pub mod phase;
pub mod probe;
