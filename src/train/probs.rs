//! Class probabilities of a finished run on the validation and test sets, saved
//! beside its results (`val_probs.npy`, `test_probs.npy`: images x classes, f32;
//! `val_labels.npy`, `test_labels.npy`: u8), and ensembles of runs built from
//! them: the averaged probabilities of runs that differ only in their seed
//! member, or anything else trained on the same split.

use std::path::Path;

use anyhow::{bail, Context, Result};
use ndarray::Array2;
use ndarray_npy::{ReadNpyExt, WriteNpyExt};

use crate::nn::ensemble::{eval_probs, EnsembleEval};
use crate::util::write_atomic;

/// Class probabilities of one run, K x n column-major each (one column of K per
/// image), with the labels they are judged against.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClassProbs {
    /// Classes K.
    pub classes: usize,
    /// K x n_val.
    pub val: Vec<f32>,
    /// K x n_test.
    pub test: Vec<f32>,
    /// n_val labels.
    pub val_labels: Vec<u8>,
    /// n_test labels.
    pub test_labels: Vec<u8>,
}

fn npy<A: WriteNpyExt>(a: &A) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    a.write_npy(&mut bytes)?;
    Ok(bytes)
}

/// Writes `p` into the run folder `dir` (atomically, file by file).
pub fn write(dir: &Path, p: &ClassProbs) -> Result<()> {
    for (name, v) in [("val_probs.npy", &p.val), ("test_probs.npy", &p.test)] {
        // K x n column-major is n x K row-major: one row per image.
        let a = Array2::from_shape_vec((v.len() / p.classes, p.classes), v.clone())?;
        write_atomic(&dir.join(name), &npy(&a)?)?;
    }
    for (name, l) in [
        ("val_labels.npy", &p.val_labels),
        ("test_labels.npy", &p.test_labels),
    ] {
        write_atomic(&dir.join(name), &npy(&ndarray::Array1::from(l.clone()))?)?;
    }
    Ok(())
}

/// Reads the probabilities a run saved into `dir` (`--save-probs`).
pub fn read(dir: &Path) -> Result<ClassProbs> {
    let open = |name: &str| -> Result<std::fs::File> {
        std::fs::File::open(dir.join(name)).with_context(|| {
            format!(
                "{} has no {name}: train the run with --save-probs to use it in an ensemble",
                dir.display()
            )
        })
    };
    let val = Array2::<f32>::read_npy(open("val_probs.npy")?)?;
    let test = Array2::<f32>::read_npy(open("test_probs.npy")?)?;
    let val_labels = ndarray::Array1::<u8>::read_npy(open("val_labels.npy")?)?;
    let test_labels = ndarray::Array1::<u8>::read_npy(open("test_labels.npy")?)?;
    Ok(ClassProbs {
        classes: val.ncols(),
        val: val.iter().copied().collect(),
        test: test.iter().copied().collect(),
        val_labels: val_labels.to_vec(),
        test_labels: test_labels.to_vec(),
    })
}

/// The ensemble of the runs saved in `dirs`: their probabilities averaged, on
/// the validation and test sets. Refuses runs judged on different images.
pub fn ensemble(dirs: &[&Path]) -> Result<EnsembleEval> {
    let Some(first) = dirs.first() else {
        bail!("an ensemble needs at least one run");
    };
    let mut sum = read(first)?;
    for d in &dirs[1..] {
        let p = read(d)?;
        if p.val_labels != sum.val_labels
            || p.test_labels != sum.test_labels
            || p.classes != sum.classes
        {
            bail!(
                "{} and {} were evaluated on different images: an ensemble needs runs on the same split",
                first.display(),
                d.display()
            );
        }
        sum.val.iter_mut().zip(&p.val).for_each(|(a, b)| *a += b);
        sum.test.iter_mut().zip(&p.test).for_each(|(a, b)| *a += b);
    }
    Ok(EnsembleEval {
        members: dirs.len(),
        val: eval_probs(&sum.val, sum.classes, &sum.val_labels),
        test: eval_probs(&sum.test, sum.classes, &sum.test_labels),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Probabilities written and read back are the same; an ensemble of one run
    /// is that run; runs on other images are refused.
    #[test]
    fn round_trip_and_ensembles() {
        let tmp = tempfile::tempdir().unwrap();
        let a = ClassProbs {
            classes: 2,
            val: vec![0.9, 0.1, 0.4, 0.6],
            test: vec![0.2, 0.8],
            val_labels: vec![0, 0],
            test_labels: vec![1],
        };
        let (da, db, dc) = (
            tmp.path().join("a"),
            tmp.path().join("b"),
            tmp.path().join("c"),
        );
        for d in [&da, &db, &dc] {
            std::fs::create_dir(d).unwrap();
        }
        write(&da, &a).unwrap();
        assert_eq!(read(&da).unwrap(), a);
        let one = ensemble(&[&da]).unwrap();
        assert_eq!((one.val.acc, one.test.acc), (0.5, 1.0));
        // A second member sure of class 0 on the second validation image flips it.
        let b = ClassProbs {
            val: vec![0.6, 0.4, 0.9, 0.1],
            ..a.clone()
        };
        write(&db, &b).unwrap();
        let two = ensemble(&[&da, &db]).unwrap();
        assert_eq!((two.members, two.val.acc), (2, 1.0));
        let c = ClassProbs {
            test_labels: vec![0],
            ..a.clone()
        };
        write(&dc, &c).unwrap();
        let err = ensemble(&[&da, &dc]).unwrap_err().to_string();
        assert!(err.contains("different images"), "{err}");
        let err = ensemble(&[tmp.path()]).unwrap_err().to_string();
        assert!(err.contains("--save-probs"), "{err}");
    }
}
