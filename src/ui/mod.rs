//! What a person sees while shallow works: the terminal dashboard, which shows
//! a plan's progress for the runner ([`crate::sweep::Progress`]).

pub mod dashboard;

pub use dashboard::{Dashboard, DisplayMode};
