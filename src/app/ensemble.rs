//! `shallow ensemble RUN...`: the averaged prediction of finished runs that
//! saved their class probabilities (`--save-probs`), e.g. the members of a
//! seed-ensemble sweep (`--grid member=0,1,2`).

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;

use super::common::{print_json, Finish};

/// Flags of `shallow ensemble`.
#[derive(Args)]
pub struct EnsembleArgs {
    /// Run folders (each with val_probs.npy and test_probs.npy), or a sweep
    /// folder: then every run in it.
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Expands sweep folders into their runs, then evaluates the ensemble.
pub fn run(a: &EnsembleArgs) -> Result<Finish> {
    let mut dirs = Vec::new();
    for d in &a.runs {
        if d.join("val_probs.npy").exists() {
            dirs.push(d.clone());
            continue;
        }
        if !d.is_dir() {
            bail!(
                "{} is not a folder: give run folders or a sweep folder",
                d.display()
            );
        }
        let mut inner: Vec<PathBuf> = std::fs::read_dir(d)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("val_probs.npy").exists())
            .collect();
        if inner.is_empty() {
            bail!(
                "{} holds no saved probabilities: train its runs with --save-probs",
                d.display()
            );
        }
        inner.sort();
        dirs.extend(inner);
    }
    // One run twice would weigh it double: refused, naming it.
    let mut seen = std::collections::BTreeMap::new();
    for d in &dirs {
        let key = d.canonicalize().unwrap_or_else(|_| d.clone());
        if let Some(first) = seen.insert(key, d.clone()) {
            bail!(
                "{} and {} are the same run: an ensemble counts each run once; give it once",
                first.display(),
                d.display()
            );
        }
    }
    let refs: Vec<&std::path::Path> = dirs.iter().map(|p| p.as_path()).collect();
    let e = crate::train::probs::ensemble(&refs)?;
    if a.json {
        print_json(&e)?;
    } else {
        for d in &dirs {
            crate::outln!("  {}", d.display())?;
        }
        crate::outln!(
            "ensemble of {}: validation {:.2}%, test {:.2}% (loss {:.4})",
            e.members,
            100.0 * e.val.acc,
            100.0 * e.test.acc,
            e.test.loss
        )?;
    }
    Ok(Finish::Done)
}
