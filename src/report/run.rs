//! A finished run's pictures, drawn into its folder as it finishes.

use anyhow::Result;

use super::{plot, weights};

/// Draws a finished run's pictures into `dir`: curves.png (when it logged at
/// least two points) and, for a finished linear classifier, weights.png. Handed
/// to the runner as its [`crate::train::output::DrawRun`].
pub fn run_pictures(
    dir: &std::path::Path,
    o: &crate::train::RunOutcome,
    class_names: &[String],
) -> Result<()> {
    if o.history.len() >= 2 {
        plot::curves(&dir.join("curves.png"), o)?;
    }
    if o.status == crate::train::Status::Done && o.config.hidden.is_empty() {
        if let Some(p) = o.weights.first() {
            weights::montage(
                &dir.join("weights.png"),
                p.w.view(),
                o.config.split.data.image,
                class_names,
                &o.config.describe(),
            )?;
        }
    }
    Ok(())
}
