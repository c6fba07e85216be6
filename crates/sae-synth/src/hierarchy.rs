//! Hierarchical features (`--parents P --children C`): features 0..P are parents; parent p's
//! children are features P + p C .. P + (p + 1) C. Every feature keeps its own firing
//! probability, and a parent also fires whenever any of its children fires (as in the feature
//! absorption literature: "starts with S" fires whenever "short" does). A parent brought by its
//! children fires with the magnitude of its first firing child, so `child + parent` is one
//! direction at one magnitude: a latent for it reconstructs those rows alone, and absorbing the
//! parent costs nothing but the parent latent's activations (the case absorption arises in).

use sae_store::ParentFeature;

use crate::SynthError;

/// The shape of a feature hierarchy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HierarchySpec {
    /// Number of parent features (the first ones).
    pub parents: usize,
    /// Children per parent (the features after the parents, in parent order).
    pub children: usize,
}

impl HierarchySpec {
    /// Checks that the parents and their children fit in `features`.
    pub fn validate(&self, features: usize) -> Result<(), SynthError> {
        let needed = self.parents.checked_mul(self.children + 1);
        if self.parents == 0 || self.children == 0 || needed.is_none_or(|n| n > features) {
            return Err(SynthError::Invalid(format!(
                "--parents {} with --children {} each needs {} features (parents and children), \
                 but --features is {features}; both must be positive",
                self.parents,
                self.children,
                needed.map_or("too many".to_string(), |n| n.to_string())
            )));
        }
        Ok(())
    }

    /// The parent of feature `i`, if it is a child.
    pub fn parent_of(&self, i: u32) -> Option<u32> {
        let (p, c) = (self.parents as u32, self.children as u32);
        (i >= p && i < p + p * c).then(|| (i - p) / c)
    }

    /// Every parent with its children.
    pub fn parents(&self) -> Vec<ParentFeature> {
        let (p, c) = (self.parents as u32, self.children as u32);
        (0..p)
            .map(|q| ParentFeature {
                feature: q,
                children: (p + q * c..p + (q + 1) * c).collect(),
            })
            .collect()
    }

    /// Adds the parent of every firing child to `on`, which ends sorted and without repeats.
    pub fn add_parents(&self, on: &mut Vec<u32>) {
        let n = on.len();
        for k in 0..n {
            if let Some(p) = self.parent_of(on[k]) {
                on.push(p);
            }
        }
        on.sort_unstable();
        on.dedup();
    }
}

impl HierarchySpec {
    /// Gives each parent in `on` (sorted) that has a firing child the magnitude of its first
    /// firing child: `mags[k]` is the magnitude of feature `on[k]`.
    pub fn tie_magnitudes(&self, on: &[u32], mags: &mut [f32]) {
        for k in 0..on.len() {
            let Some(p) = self.parent_of(on[k]) else {
                continue;
            };
            let first_child = (0..k).all(|j| self.parent_of(on[j]) != Some(p));
            if first_child {
                if let Ok(pk) = on.binary_search(&p) {
                    mags[pk] = mags[k];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_bring_their_parent() {
        let h = HierarchySpec {
            parents: 2,
            children: 3,
        };
        assert_eq!(h.parent_of(1), None);
        assert_eq!(h.parent_of(2), Some(0));
        assert_eq!(h.parent_of(4), Some(0));
        assert_eq!(h.parent_of(5), Some(1));
        assert_eq!(h.parent_of(8), None);
        assert_eq!(h.parents()[1].children, vec![5, 6, 7]);
        let mut on = vec![9, 6, 3, 1];
        h.add_parents(&mut on);
        assert_eq!(on, vec![0, 1, 3, 6, 9]);
        let mut mags = vec![0.1, 0.2, 0.3, 0.4, 0.5];
        h.tie_magnitudes(&on, &mut mags);
        // Parent 0 takes child 3's magnitude, parent 1 child 6's; 9 has no parent.
        assert_eq!(mags, vec![0.3, 0.4, 0.3, 0.4, 0.5]);
        assert!(h.validate(8).is_ok());
        assert!(h.validate(7).is_err());
    }
}
