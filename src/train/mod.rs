//! Training: schedules, the one loop over a group of configurations, history,
//! checkpoints and the files a run leaves.

pub mod batches;
pub mod checkpoint;
pub mod config;
pub mod evaluator;
pub mod group;
pub mod model;
pub mod onnx;
pub mod outcome;
pub mod output;
pub mod probs;
pub mod schedule;
pub mod snapshots;

pub mod settings;

pub use config::{EvalTrain, RunConfig, DEFAULT_EVAL_TRAIN};
pub use group::{
    train_group, Control, Group, GroupOutcome, LogPoint, Observer, RunOutcome, Status,
};
pub use schedule::Schedule;
pub use settings::{Axis, ScheduleKind, TrainSettings, Value};
