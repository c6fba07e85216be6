//! Config parsing: defaults, tagged architectures, unknown keys named in the error, range checks,
//! and every example in configs/ parses.

use sae_train::{ArchConfig, SweepConfig, TrainConfig, TrainError};

#[test]
fn empty_config_is_all_defaults() {
    assert_eq!(TrainConfig::from_toml("").unwrap(), TrainConfig::default());
}

#[test]
fn arch_table_is_tagged_and_fills_defaults() {
    let c = TrainConfig::from_toml("steps = 7\n[arch]\nkind = \"batchtopk\"\nk = 3\n").unwrap();
    assert_eq!(c.steps, 7);
    assert_eq!(
        c.arch,
        ArchConfig::BatchTopK {
            k: 3,
            auxk_coef: 1.0 / 32.0,
            k_aux: None,
            threshold_ema: 0.99
        }
    );
    let c = TrainConfig::from_toml("[arch]\nkind = \"relu-l1\"\nl1_coef = 2.5\n").unwrap();
    assert!(matches!(c.arch, ArchConfig::ReluL1 { l1_coef, .. } if l1_coef == 2.5));
    // Round trip through TOML.
    assert_eq!(TrainConfig::from_toml(&c.to_toml()).unwrap(), c);
}

fn config_error(text: &str) -> String {
    match TrainConfig::from_toml(text) {
        Err(TrainError::Config(msg)) => msg,
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[test]
fn unknown_keys_and_bad_values_are_named() {
    let m = config_error("steps = 10\nlearning_rate = 1e-3\n");
    assert!(
        m.contains("unknown field `learning_rate`") && m.starts_with("line 2"),
        "{m}"
    );
    let m = config_error("[arch]\nkind = \"topk\"\nk = 4\nkay = 2\n");
    assert!(m.contains("unknown field `kay`"), "{m}");
    let m = config_error("[arch]\nkind = \"gated\"\n");
    assert!(m.contains("gated"), "{m}");
    let m = config_error("steps = \"many\"\n");
    assert!(m.contains("invalid type"), "{m}");
    assert!(!m.contains('\n'), "one line: {m}");
}

#[test]
fn resolve_checks_ranges_and_sizes() {
    let c = TrainConfig::from_toml("d_sae = 16\n[arch]\nkind = \"topk\"\nk = 17\n").unwrap();
    assert!(matches!(c.resolve(8), Err(TrainError::Invalid(m)) if m.contains("k = 17")));
    let c = TrainConfig::from_toml("expansion = 4.0\nsteps = 100\nbatch = 10\n").unwrap();
    let r = c.resolve(8).unwrap();
    assert_eq!(r.d_sae, 32);
    assert_eq!(r.k_aux, 4); // d_in / 2
    assert_eq!(r.dead_tokens, 500); // half of 100 * 10 tokens
                                    // BatchTopK: dead after 5 batches, AuxK over up to 256 latents.
    let c = TrainConfig::from_toml(
        "d_sae = 300\nsteps = 100\nbatch = 10\n[arch]\nkind = \"batchtopk\"\nk = 2\n",
    )
    .unwrap();
    let r = c.resolve(8).unwrap();
    assert_eq!((r.k_aux, r.dead_tokens), (256, 50));
    let c = TrainConfig::from_toml("lr = -1.0\n").unwrap();
    assert!(c.resolve(8).is_err());
}

#[test]
fn example_configs_parse() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        // Training configs; `toy*.toml` configure `sae toy`.
        let toy = path
            .file_name()
            .is_some_and(|f| f.to_string_lossy().starts_with("toy"));
        if path.extension().is_some_and(|e| e == "toml") && !toy {
            let text = std::fs::read_to_string(&path).unwrap();
            // `sae run` configs (they name a [model]) are checked by the tests of `sae run`.
            let table: toml::Table = text.parse().unwrap_or_else(|e| panic!("{path:?}: {e}"));
            if table.contains_key("model") {
                continue;
            }
            // An ordinary config, or a sweep (`sweep*.toml`) whose every entry resolves.
            let s = SweepConfig::from_toml(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"));
            let sweep = path
                .file_name()
                .is_some_and(|f| f.to_string_lossy().starts_with("sweep"));
            assert_eq!(s.is_sweep(), sweep, "{path:?}");
            s.base.resolve(128).unwrap();
            for e in &s.entries {
                e.cfg
                    .resolve(128)
                    .unwrap_or_else(|err| panic!("{path:?} {}: {err}", e.name));
            }
            n += 1;
        }
    }
    assert!(n >= 4, "configs/ holds the four architectures");
}
