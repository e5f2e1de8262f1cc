//! What people look at: line charts, weight images, and the Markdown/HTML report.
//! It reads plain records (a run's outcome and history, result and summary
//! files) from the layers below and imports nothing above them.

pub mod bonus;
pub mod build;
pub mod confusion;
pub mod doc;
pub mod plot;
pub mod png;
pub mod run;
pub mod rungs;
pub mod summary;
pub mod weights;

pub use run::run_pictures;
