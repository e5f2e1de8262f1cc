//! The pipelines that chain training, sweeps and reports into a whole
//! experiment: the coarse-to-fine search, the assignments' experiments and the
//! bonus recipes. They take settings, never flags (`app/` turns a command
//! line into them), and are the only callers of `report` besides `app/`.

pub mod bonus;
pub mod experiment;
pub mod search;
