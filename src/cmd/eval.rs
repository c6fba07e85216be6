//! `sae eval`: reconstruction, sparsity and (for synthetic stores) ground-truth recovery metrics of
//! an SAE on a store's held-out split (`--store`), or the SAE spliced into its model over a corpus
//! (`--model`, see `eval_spliced`).

use std::path::PathBuf;

use anyhow::Context;
use sae_model::{evaluate_report, EvalReport, Sae};
use sae_store::{Split, Store};

/// Evaluate an SAE: on the held-out (eval) split of an activation store (`--store`), or spliced into
/// its model over a corpus (`--model ... --corpus ...`: CE loss recovered, delta LM loss, KL; a
/// transcoder's prediction replaces its output hook).
#[derive(clap::Args)]
pub struct Args {
    /// SAE folder (ours, SAELens or sparsify), or a folder of one SAE per hook with --hook
    /// (the subfolder's name).
    #[arg(long)]
    sae: PathBuf,
    /// For a transcoder: the store of the hook it predicts (row-aligned with --store, as the
    /// stores of one harvest are); its output is scored against these rows.
    #[arg(long, requires = "store", alias = "target-store")]
    target: Option<PathBuf>,
    /// Activation store folder.
    #[arg(long, required_unless_present = "model", conflicts_with = "model")]
    store: Option<PathBuf>,
    #[command(flatten)]
    spliced: super::eval_spliced::SplicedArgs,
    /// Ground-truth features (safetensors, `features` [n, d_in]); defaults to the store's
    /// ground_truth.safetensors when present (a transcoder's: the target store's, [n, d_out]).
    #[arg(long)]
    ground_truth: Option<PathBuf>,
    /// Print one JSON object: mse, fvu, l0, dead_frac, dense_frac, l2_ratio (with mmcs and
    /// recovered_frac given ground truth, prefixes (width, mse, fvu, l0 of each nested prefix) for
    /// a Matryoshka SAE, absorption on a store with hierarchical features).
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    // --hook (of the spliced options) also picks the subfolder of a folder of one SAE per hook.
    let sae_dir = sae_model::load::resolve(&args.sae, args.spliced.hook.as_deref())
        .with_context(|| format!("loading SAE {}", args.sae.display()))?;
    let sae = Sae::load(&sae_dir).with_context(|| format!("loading SAE {}", sae_dir.display()))?;
    let Some(store_dir) = &args.store else {
        return super::eval_spliced::run(&args.spliced, &sae, &sae_dir, args.json);
    };
    let store =
        Store::open(store_dir).with_context(|| format!("opening store {}", store_dir.display()))?;
    let target = match &args.target {
        Some(t) => {
            Some(Store::open(t).with_context(|| format!("opening target store {}", t.display()))?)
        }
        None => None,
    };
    let ground_truth = match args.ground_truth {
        Some(p) => Some(p),
        None => Some(target.as_ref().unwrap_or(&store).ground_truth_path()).filter(|p| p.exists()),
    };
    let report = evaluate_report(&sae, &store, target.as_ref(), ground_truth.as_deref())
        .with_context(|| {
            format!(
                "evaluating {} on {}",
                sae_dir.display(),
                store_dir.display()
            )
        })?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_table(&report, store.split_rows(Split::Eval), &sae);
    }
    Ok(())
}

fn print_table(r: &EvalReport, rows: u64, sae: &Sae) {
    let m = &r.metrics;
    println!(
        "SAE {} (d_in {}, d_sae {}) on {rows} held-out rows",
        sae.kind(),
        sae.d_in(),
        sae.d_sae()
    );
    let mut lines = vec![
        ("mse", m.mse, "mean squared error per element"),
        ("fvu", m.fvu, "fraction of variance unexplained"),
        ("l0", m.l0, "mean active latents per row"),
        ("dead_frac", m.dead_frac, "latents that never fire"),
        (
            "dense_frac",
            m.dense_frac,
            "latents firing on > 10% of rows",
        ),
        ("l2_ratio", m.l2_ratio, "mean ||x_hat|| / ||x||"),
    ];
    if let (Some(mmcs), Some(rec)) = (m.mmcs, m.recovered_frac) {
        lines.push(("mmcs", mmcs, "mean max cosine of true features"));
        lines.push(("recovered_frac", rec, "true features with cosine > 0.9"));
    }
    for (name, value, what) in lines {
        println!("  {name:<15} {value:>12.6}   {what}");
    }
    if let Some(a) = &r.absorption {
        let scored = a.parents.iter().filter(|p| p.rows > 0).count();
        match a.mean {
            Some(mean) => println!(
                "  {:<15} {mean:>12.6}   mean over {scored} parents of rows where a child's latent stands in for the parent's",
                "absorption"
            ),
            None => println!("  absorption: no held-out row has a parent firing with a child"),
        }
    }
    if let Some(prefixes) = &r.prefixes {
        println!("  nested prefixes (the first `width` latents alone):");
        println!("  {:>8} {:>12} {:>12} {:>12}", "width", "fvu", "l0", "mse");
        for p in prefixes {
            println!(
                "  {:>8} {:>12.6} {:>12.6} {:>12.6}",
                p.width, p.fvu, p.l0, p.mse
            );
        }
    }
}
