//! The pipelines that chain training, sweeps and reports into a whole
//! experiment: the coarse-to-fine search, the assignments' experiments, the
//! bonus recipes, and the benchmark. They take settings, never flags (`app/` turns a command
//! line into them), and are the only callers of `report` besides `app/`.

pub mod bench;
pub mod bonus;
pub mod experiment;
pub mod search;
