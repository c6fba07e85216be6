//! Where a splice reads and writes: an SAE at one hook, a transcoder from its input hook to a later
//! output hook of the same forward pass.

use sae_lm::{Hook, Model};
use sae_model::Sae;

use crate::error::{Result, SpliceError};

/// The hook a splice reads (the SAE's input) and the hook it writes (where its output replaces the
/// model's activation). An SAE reads and writes one hook; a transcoder at `blocks.L.ln2.hook_normalized`
/// writes `blocks.L.hook_mlp_out`, so its prediction stands in for the MLP. The write hook never comes
/// before the read hook in the forward pass (checked by [`Site::between`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Site {
    read: Hook,
    write: Hook,
}

impl Site {
    /// An SAE's site: it reads and writes `hook`.
    pub fn at(hook: Hook) -> Site {
        Site {
            read: hook,
            write: hook,
        }
    }

    /// A transcoder's site: it reads `read` and writes `write`, which must come after `read` in the same
    /// forward pass (the block's points in the order the block computes them, see `HookPoint::ALL`), else
    /// the output would replace an activation the pass has already used.
    pub fn between(read: Hook, write: Hook) -> Result<Site> {
        if write < read {
            return Err(SpliceError::Invalid(format!(
                "the output hook {write} comes before the input hook {read} in the forward pass; a \
                 transcoder's output must replace an activation computed after the one it reads"
            )));
        }
        Ok(Site { read, write })
    }

    /// The hook the SAE reads.
    pub fn read(&self) -> Hook {
        self.read
    }

    /// The hook whose activation the splice replaces.
    pub fn write(&self) -> Hook {
        self.write
    }

    /// Whether it writes another hook than it reads (a transcoder's site).
    pub fn is_pair(&self) -> bool {
        self.read != self.write
    }

    /// Checks that the SAE's input width is the read hook's and its output width the write hook's.
    pub fn check_widths(&self, model: &Model, sae: &Sae) -> Result<()> {
        let sides = [
            ("reads", sae.d_in(), self.read),
            ("writes", sae.d_out(), self.write),
        ];
        for (verb, width, hook) in sides {
            let want = model.width(hook);
            if width != want {
                return Err(SpliceError::Invalid(format!(
                    "the SAE {verb} {width} values per row but {hook} has width {want}"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sae_lm::HookPoint;

    #[test]
    fn the_output_hook_may_not_come_before_the_input_hook() {
        let h = |layer, point| Hook::new(layer, point);
        let ok = Site::between(h(3, HookPoint::MlpIn), h(3, HookPoint::MlpOut)).unwrap();
        assert!(ok.is_pair());
        assert_eq!(ok.write(), h(3, HookPoint::MlpOut));
        // A later block is after any point of an earlier one; the same hook is an SAE's site.
        Site::between(h(2, HookPoint::ResidPost), h(3, HookPoint::ResidPre)).unwrap();
        let same = Site::between(h(3, HookPoint::MlpOut), h(3, HookPoint::MlpOut)).unwrap();
        assert_eq!(same, Site::at(h(3, HookPoint::MlpOut)));
        assert!(!same.is_pair());
        for (read, write) in [
            (h(3, HookPoint::MlpOut), h(3, HookPoint::MlpIn)),
            (h(3, HookPoint::MlpIn), h(2, HookPoint::MlpOut)),
        ] {
            let err = Site::between(read, write).unwrap_err().to_string();
            assert!(
                err.contains(&read.name()) && err.contains(&write.name()) && err.contains("before"),
                "{err}"
            );
        }
    }
}
