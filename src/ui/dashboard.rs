//! Live terminal dashboard: one line per configuration (name, step / total, eta,
//! latest cost, latest validation accuracy) and an overall bar with elapsed time,
//! ETA and throughput. Training threads only store atomics; a render thread reads
//! them a few times a second. Without a terminal it prints one plain line per
//! finished configuration instead (indicatif draws nothing then).
//!
//! A line never wraps and a number is never cut: each line is made of fields in
//! order of priority, and those that do not fit the terminal's width are left
//! out whole. Nothing is shown before it has a value. With more runs than the
//! terminal has rows, only running configurations keep a line; the finished and
//! the waiting ones collapse into one line of counts.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::train::{LogPoint, Observer, RunConfig, RunOutcome, Status};

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DisplayMode {
    /// Bars redrawn in place (stderr is a terminal).
    Live,
    /// One line per finished configuration on stderr.
    Plain,
    /// Nothing.
    Quiet,
}

impl DisplayMode {
    /// Announces a stage of a pipeline on stderr (`== msg`), except when quiet.
    pub fn announce(self, msg: &str) {
        if self != DisplayMode::Quiet {
            eprintln!("== {msg}");
        }
    }

    /// Live when stderr is a terminal, plain otherwise, quiet on request.
    pub fn detect(quiet: bool) -> Self {
        if quiet {
            DisplayMode::Quiet
        } else if std::io::stderr().is_terminal() {
            DisplayMode::Live
        } else {
            DisplayMode::Plain
        }
    }
}

struct Row {
    label: String,
    total: usize,
    step: AtomicUsize,
    /// The step this process started from (a resume's checkpoint), or
    /// `usize::MAX` before the first step: speed counts only steps done here.
    base: AtomicUsize,
    eta: AtomicU64,
    cost: AtomicU64,
    val_acc: AtomicU64,
    logs: AtomicUsize,
    summary: Mutex<Option<String>>,
}

/// Rows and columns of a terminal.
pub type TermSize = (usize, usize);

/// Progress of a set of configurations, shared by the training threads.
pub struct Dashboard {
    mode: DisplayMode,
    rows: Vec<Row>,
    /// The terminal's rows and columns (live mode).
    size: TermSize,
    /// Width of the label column.
    label_width: usize,
    /// More runs than the terminal has rows: lines of finished and waiting runs
    /// collapse into `counts`.
    collapse: bool,
    counts: Option<ProgressBar>,
    /// Which rows have a line in the live display (collapsing mode).
    shown: Mutex<Vec<bool>>,
    eta_reset: AtomicBool,
    flops_per_step: Vec<f64>,
    flops_per_log: Vec<f64>,
    done_style: Option<ProgressStyle>,
    start: Instant,
    closed: AtomicBool,
    mp: Option<MultiProgress>,
    bars: Vec<ProgressBar>,
    overall: Option<ProgressBar>,
    /// A pruned search's stage ("rung 2 of 3"), once one has begun.
    rung: Mutex<Option<String>>,
    /// Runs pruned, and the steps they will never train (taken off the
    /// overall bar's length).
    pruned: AtomicUsize,
    pruned_steps: AtomicU64,
    /// The best validation accuracy of the rungs decided so far (NaN before).
    rung_best: AtomicU64,
}

fn f(bits: &AtomicU64) -> f64 {
    f64::from_bits(bits.load(Ordering::Relaxed))
}

/// The fields describing a finished run, most telling first.
pub fn summary_fields(o: &RunOutcome) -> Vec<String> {
    match o.status {
        Status::Done => vec![
            format!("done: val {:.2}%", 100.0 * o.val.acc),
            format!("test {:.2}%", 100.0 * o.test.acc),
            format!("train {:.2}%", 100.0 * o.train.acc),
            format!("cost {:.3}", o.train.cost),
            format!("{} steps in {:.1} s", o.steps_done, o.wall_s),
        ],
        Status::Diverged => {
            let d = o.diverged.expect("diverged runs record where");
            vec![
                format!("DIVERGED at step {}", d.step),
                format!("(eta {:.3e}): cost not finite; lower eta", d.eta),
            ]
        }
        Status::Interrupted => vec![
            format!("interrupted at step {}", o.steps_done),
            "(checkpoint kept)".to_string(),
        ],
        Status::Paused | Status::Pruned => vec![
            format!(
                "{} at step {}: val {:.2}%",
                if o.status == Status::Paused {
                    "rung"
                } else {
                    "pruned"
                },
                o.steps_done,
                100.0 * o.val.acc
            ),
            format!("train {:.2}%", 100.0 * o.train.acc),
            format!("cost {:.3}", o.train.cost),
        ],
    }
}

/// One line describing a finished run: every field of [`summary_fields`].
pub fn summary_line(o: &RunOutcome) -> String {
    summary_fields(o).join("  ")
}

/// Width of the progress bars: narrower on narrow terminals, to leave room
/// for the figures.
fn bar_width(size: TermSize) -> usize {
    if size.1 < 100 {
        10
    } else {
        16
    }
}

/// The fields that fit in `room` columns, whole, in order, two spaces apart:
/// a field that does not fit is left out, never cut.
pub fn fit_fields(fields: &[String], room: usize) -> String {
    let mut out = String::new();
    for f in fields {
        let width = f.chars().count();
        let need = if out.is_empty() {
            width
        } else {
            out.chars().count() + 2 + width
        };
        if need <= room {
            if !out.is_empty() {
                out.push_str("  ");
            }
            out.push_str(f);
        }
    }
    out
}

impl Dashboard {
    /// A dashboard for `configs` (their indices are the observer ids), with `label`
    /// naming each line.
    pub fn new(
        configs: &[RunConfig],
        mode: DisplayMode,
        label: impl Fn(&RunConfig) -> String,
    ) -> Self {
        let target = (mode == DisplayMode::Live).then(|| {
            let (rows, cols) = console::Term::stderr().size();
            (
                ProgressDrawTarget::stderr_with_hz(8),
                (rows as usize, cols as usize),
            )
        });
        Self::with_target(configs, mode, target, label)
    }

    /// Like [`Self::new`], drawing live bars on `target`, a terminal of the
    /// given size (stderr for a user; an in-memory terminal in tests). `target`
    /// is used only in live mode.
    pub fn with_target(
        configs: &[RunConfig],
        mode: DisplayMode,
        target: Option<(ProgressDrawTarget, TermSize)>,
        label: impl Fn(&RunConfig) -> String,
    ) -> Self {
        let rows: Vec<Row> = configs
            .iter()
            .map(|c| Row {
                label: label(c),
                total: c.steps,
                step: AtomicUsize::new(0),
                base: AtomicUsize::new(usize::MAX),
                eta: AtomicU64::new(f64::NAN.to_bits()),
                cost: AtomicU64::new(f64::NAN.to_bits()),
                val_acc: AtomicU64::new(f64::NAN.to_bits()),
                logs: AtomicUsize::new(0),
                summary: Mutex::new(None),
            })
            .collect();
        let flops_per_step = configs
            .iter()
            .map(|c| c.arch().step_flops(c.batch))
            .collect();
        // Each logged point evaluates the training and validation sets.
        let flops_per_log = configs
            .iter()
            .map(|c| {
                c.arch()
                    .forward_flops(c.split.train_len() + c.split.val_len())
            })
            .collect();
        let target = target.filter(|_| mode == DisplayMode::Live);
        let size = target.as_ref().map_or((24, 80), |t| t.1);
        let label_width = rows
            .iter()
            .map(|r| r.label.chars().count())
            .max()
            .unwrap_or(8)
            .max(3);
        // One line per run and the overall bar, on all but the last row.
        let collapse = rows.len() + 2 > size.0.max(4);
        let (mp, bars, overall, done_style, counts) = if let Some((target, _)) = target {
            let mp = MultiProgress::with_draw_target(target);
            let width = label_width;
            let bar = bar_width(size);
            let style = ProgressStyle::with_template(&format!(
                "{{prefix:>{width}}} [{{bar:{bar}.cyan/blue}}] {{pos:>5}}/{{len:<5}} {{wide_msg}}"
            ))
            .expect("valid template")
            .progress_chars("=> ");
            let done_style =
                ProgressStyle::with_template(&format!("{{prefix:>{width}}} {{wide_msg}}"))
                    .expect("valid template");
            // Collapsing: lines are added as runs start (render).
            let bars: Vec<ProgressBar> = rows
                .iter()
                .map(|r| {
                    // Not yet on screen: hidden, or it would draw on stderr itself.
                    let b = ProgressBar::with_draw_target(
                        Some(r.total as u64),
                        ProgressDrawTarget::hidden(),
                    );
                    let b = if collapse { b } else { mp.add(b) };
                    b.set_style(style.clone());
                    b.set_prefix(r.label.clone());
                    b
                })
                .collect();
            let counts = collapse.then(|| {
                let c = mp.add(ProgressBar::new(1));
                c.set_style(done_style.clone());
                c.set_prefix("");
                c
            });
            let total: u64 = rows.iter().map(|r| r.total as u64).sum();
            let o = mp.add(ProgressBar::new(total));
            o.set_style(
                ProgressStyle::with_template(&format!(
                    "{{prefix:>{width}}} [{{bar:{bar}.green}}] {{percent:>3}}% {{elapsed_precise}} ETA {{eta}} {{wide_msg}}"
                ))
                .expect("valid template")
                .progress_chars("=> "),
            );
            o.set_prefix("all");
            (Some(mp), bars, Some(o), Some(done_style), counts)
        } else {
            (None, Vec::new(), None, None, None)
        };
        let shown = Mutex::new(vec![!collapse; rows.len()]);
        Dashboard {
            mode,
            size,
            label_width,
            collapse,
            counts,
            shown,
            eta_reset: AtomicBool::new(false),
            rows,
            flops_per_step,
            flops_per_log,
            done_style,
            start: Instant::now(),
            closed: AtomicBool::new(false),
            mp,
            bars,
            overall,
            rung: Mutex::new(None),
            pruned: AtomicUsize::new(0),
            pruned_steps: AtomicU64::new(0),
            rung_best: AtomicU64::new(f64::NAN.to_bits()),
        }
    }

    /// Redraws a few times a second until [`Self::close`]; run it on its own thread.
    pub fn render_loop(&self) {
        if self.mode != DisplayMode::Live {
            return;
        }
        while !self.closed.load(Ordering::Relaxed) {
            self.render();
            std::thread::sleep(Duration::from_millis(125));
        }
        self.render();
    }

    /// Columns left for a run line's fields after its label, bar and counts.
    fn row_room(&self, total: usize) -> usize {
        let digits = total.to_string().len().max(5);
        // "{label} [{bar}] {pos}/{len} "
        let used = self.label_width + 1 + (bar_width(self.size) + 2) + 1 + (2 * digits + 1) + 1;
        self.size.1.saturating_sub(used)
    }

    fn render(&self) {
        let mut done_steps = 0u64;
        let mut worked_steps = 0u64;
        let mut flops = 0.0;
        let (mut finished, mut waiting, mut best) = (0usize, 0usize, f64::NAN);
        // A pruned search's best so far: at a decided rung, or finished.
        let best_any = self
            .rows
            .iter()
            .filter(|r| r.summary.lock().expect("not poisoned").is_some())
            .map(|r| f(&r.val_acc))
            .chain(std::iter::once(f(&self.rung_best)))
            .filter(|a| a.is_finite())
            .fold(f64::NAN, f64::max);
        let mut shown = self.shown.lock().expect("not poisoned");
        for (i, (row, bar)) in self.rows.iter().zip(&self.bars).enumerate() {
            let step = row.step.load(Ordering::Relaxed);
            let base = row.base.load(Ordering::Relaxed);
            done_steps += step as u64;
            let worked = if base == usize::MAX {
                0
            } else {
                step.saturating_sub(base)
            };
            worked_steps += worked as u64;
            flops += worked as f64 * self.flops_per_step[i]
                + row.logs.load(Ordering::Relaxed) as f64 * self.flops_per_log[i];
            let room = self.row_room(row.total);
            if let Some(s) = row.summary.lock().expect("not poisoned").as_ref() {
                finished += 1;
                let acc = f(&row.val_acc);
                if acc.is_finite() && (best.is_nan() || acc > best) {
                    best = acc;
                }
                if self.collapse {
                    if shown[i] {
                        if let Some(mp) = &self.mp {
                            mp.remove(bar);
                        }
                        shown[i] = false;
                    }
                    continue;
                }
                if !bar.is_finished() {
                    bar.set_position(step as u64);
                    if let Some(style) = &self.done_style {
                        bar.set_style(style.clone());
                    }
                    let fields: Vec<String> = s.split("  ").map(str::to_string).collect();
                    let room = self.size.1.saturating_sub(self.label_width + 1);
                    bar.finish_with_message(fit_fields(&fields, room));
                }
                continue;
            }
            if self.collapse && !shown[i] {
                if base == usize::MAX {
                    waiting += 1;
                    continue;
                }
                if let (Some(mp), Some(counts)) = (&self.mp, &self.counts) {
                    mp.insert_before(counts, bar.clone());
                }
                shown[i] = true;
            }
            bar.set_position(step as u64);
            // Most telling first; a field that does not fit is left out whole.
            let (eta, cost, acc) = (f(&row.eta), f(&row.cost), f(&row.val_acc));
            let mut fields = Vec::new();
            if acc.is_finite() {
                fields.push(format!("val {:.2}%", 100.0 * acc));
            }
            if cost.is_finite() {
                fields.push(format!("cost {cost:.3}"));
            }
            if eta.is_finite() {
                fields.push(format!("eta {eta:.2e}"));
            }
            bar.set_message(fit_fields(&fields, room));
        }
        drop(shown);
        if let Some(c) = &self.counts {
            let mut fields = vec![format!("{finished} done")];
            if best.is_finite() {
                fields.push(format!("best val {:.2}%", 100.0 * best));
            }
            fields.push(format!("{waiting} waiting"));
            c.set_message(fit_fields(
                &fields,
                self.size.1.saturating_sub(self.label_width + 1),
            ));
        }
        if let Some(o) = &self.overall {
            let total: u64 = self.rows.iter().map(|r| r.total as u64).sum();
            o.set_length(total.saturating_sub(self.pruned_steps.load(Ordering::Relaxed)));
            o.set_position(done_steps);
            if !self.eta_reset.swap(true, Ordering::Relaxed) {
                // A resume starts part-way: its first position is not speed.
                o.reset_eta();
            }
            let secs = self.start.elapsed().as_secs_f64().max(1e-9);
            let mut fields = self.rung_fields(finished, best_any);
            if worked_steps > 0 {
                fields.push(format!("{:.0} steps/s", worked_steps as f64 / secs));
                fields.push(format!("{:.1} GFLOP/s", flops / secs / 1e9));
            }
            // "{label} [{16}] {percent:>3}% {HH:MM:SS} ETA {eta} "
            let room = self
                .size
                .1
                .saturating_sub(self.label_width + 1 + 18 + 1 + 4 + 1 + 8 + 1 + 8 + 1);
            o.set_message(fit_fields(&fields, room));
        }
    }

    /// A pruned search's fields of the overall line: the rung, the live and
    /// pruned counts, the best so far (none before a rung begins).
    fn rung_fields(&self, finished: usize, best: f64) -> Vec<String> {
        let mut fields = Vec::new();
        if let Some(rung) = self.rung.lock().expect("not poisoned").as_ref() {
            let pruned = self.pruned.load(Ordering::Relaxed);
            fields.push(rung.clone());
            fields.push(format!("{} live", self.rows.len() - finished));
            fields.push(format!("{pruned} pruned"));
            if best.is_finite() {
                fields.push(format!("best val {:.2}%", 100.0 * best));
            }
        }
        fields
    }

    /// Runs `work` while a render thread redraws the dashboard, then draws the final state.
    pub fn run_while<R>(&self, work: impl FnOnce() -> R) -> R {
        let r = std::thread::scope(|scope| {
            scope.spawn(|| self.render_loop());
            let r = work();
            self.close();
            r
        });
        self.finish();
        r
    }

    /// Configuration `id` continues from `step` (a checkpoint, on resume): its
    /// line starts there and its speed counts only the steps done from it.
    pub fn resume_at(&self, id: usize, step: usize) {
        let row = &self.rows[id];
        row.step.store(step, Ordering::Relaxed);
        row.base.store(step, Ordering::Relaxed);
    }

    /// Marks configuration `id` as finished without training (e.g. found done on resume).
    pub fn mark_done(&self, id: usize, steps: usize, line: &str) {
        self.rows[id].step.store(steps, Ordering::Relaxed);
        if self.mode == DisplayMode::Plain {
            eprintln!("{}: {line}", self.rows[id].label);
        }
        *self.rows[id].summary.lock().expect("not poisoned") = Some(line.to_string());
    }

    /// Stops the render loop and leaves the final state on screen.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
    }

    /// Leaves the final state on screen (after the render thread ended): a
    /// complete overall bar when every run finished, else where it stopped.
    pub fn finish(&self) {
        self.render();
        if let Some(o) = &self.overall {
            let all = self
                .rows
                .iter()
                .all(|r| r.summary.lock().expect("not poisoned").is_some());
            if all && o.position() >= o.length().unwrap_or(0) {
                o.finish();
            } else {
                o.abandon();
            }
        }
        for b in &self.bars {
            if !b.is_finished() {
                b.abandon();
            }
        }
    }

    /// Prints a line above the bars (or plainly), whatever the mode but quiet.
    pub fn println(&self, line: &str) {
        match (&self.mp, self.mode) {
            (_, DisplayMode::Quiet) => {}
            (Some(mp), _) => {
                let _ = mp.println(line);
            }
            (None, _) => eprintln!("{line}"),
        }
    }
}

impl Observer for Dashboard {
    fn on_step(&self, ids: &[usize], steps_done: usize, etas: &[f64]) {
        for (&id, &eta) in ids.iter().zip(etas) {
            let row = &self.rows[id];
            // The first step seen fixes where this process started.
            let _ = row.base.compare_exchange(
                usize::MAX,
                steps_done - 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
            row.step.store(steps_done, Ordering::Relaxed);
            row.eta.store(eta.to_bits(), Ordering::Relaxed);
        }
    }

    fn on_log(&self, id: usize, p: &LogPoint) {
        let row = &self.rows[id];
        row.cost.store(p.train.cost.to_bits(), Ordering::Relaxed);
        row.val_acc.store(p.val.acc.to_bits(), Ordering::Relaxed);
        row.logs.fetch_add(1, Ordering::Relaxed);
    }

    fn on_done(&self, id: usize, o: &RunOutcome) {
        let line = summary_line(o);
        if o.status == Status::Paused {
            // At a rung: the line goes on at the next one, or is pruned.
            if self.mode == DisplayMode::Plain {
                eprintln!(
                    "[{:>7.1}s] {}: {line}",
                    self.start.elapsed().as_secs_f64(),
                    self.rows[id].label
                );
            }
            return;
        }
        if self.mode == DisplayMode::Plain {
            eprintln!(
                "[{:>7.1}s] {}: {line}",
                self.start.elapsed().as_secs_f64(),
                self.rows[id].label
            );
        }
        *self.rows[id].summary.lock().expect("not poisoned") = Some(line);
    }
}

impl crate::sweep::Progress for Dashboard {
    fn println(&self, line: &str) {
        Dashboard::println(self, line);
    }
    fn resume_at(&self, id: usize, step: usize) {
        Dashboard::resume_at(self, id, step);
    }
    fn mark_done(&self, id: usize, steps: usize, line: &str) {
        Dashboard::mark_done(self, id, steps, line);
    }
    fn show_while(&self, work: &mut dyn FnMut()) {
        self.run_while(work);
    }
    fn pruned(&self, id: usize, steps: usize, line: &str) {
        let row = &self.rows[id];
        if row.summary.lock().expect("not poisoned").is_none() {
            self.pruned.fetch_add(1, Ordering::Relaxed);
            self.pruned_steps
                .fetch_add(row.total.saturating_sub(steps) as u64, Ordering::Relaxed);
        }
        Dashboard::mark_done(self, id, steps, line);
    }
    fn decided(&self, best: f64, line: &str) {
        let old = f(&self.rung_best);
        if best.is_finite() && (old.is_nan() || old < best) {
            self.rung_best.store(best.to_bits(), Ordering::Relaxed);
        }
        Dashboard::println(self, line);
    }
    fn stage(&self, stage: usize, stages: usize, line: &str) {
        *self.rung.lock().expect("not poisoned") = Some(format!("rung {} of {stages}", stage + 1));
        Dashboard::println(self, line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::net::Eval;
    use crate::sweep::{log_range, SweepSpec};
    use crate::train::TrainSettings;
    use indicatif::InMemoryTerm;

    fn eval(acc: f64) -> Eval {
        Eval {
            cost: 1.761,
            loss: 1.6,
            acc,
        }
    }

    /// What a user sees in an 80-column terminal: one line per configuration and
    /// one overall line, none wrapped, with the figures that matter.
    #[test]
    fn lines_fit_an_80_column_terminal() {
        // Four runs named as Assignment 1's are, its longest names.
        let mut configs = SweepSpec::lambdas(TrainSettings::sweep_default(), &[0.0, 0.0, 0.1, 1.0])
            .configs()
            .unwrap();
        for (c, name) in configs.iter_mut().zip([
            "a1_lambda0_eta0.1",
            "a1_lambda0_eta0.001",
            "a1_lambda0.1_eta0.001",
            "a1_lambda1_eta0.001",
        ]) {
            c.name = name.to_string();
        }
        let term = InMemoryTerm::new(20, 80);
        let target = ProgressDrawTarget::term_like(Box::new(term.clone()));
        let dash =
            Dashboard::with_target(&configs, DisplayMode::Live, Some((target, (20, 80))), |c| {
                c.name.clone()
            });
        for id in 0..configs.len() {
            dash.on_step(&[id], 1000, &[1e-3]);
            let point = LogPoint {
                step: 1000,
                epoch: 10.0,
                eta: 1e-3,
                train: eval(0.41),
                train_images: 10000,
                val: eval(0.3847),
            };
            dash.on_log(id, &point);
        }
        let outcome = RunOutcome {
            config: configs[0].clone(),
            status: Status::Done,
            history: vec![],
            steps_done: configs[0].steps,
            train: eval(0.4468),
            val: eval(0.3847),
            test: eval(0.39),
            diverged: None,
            wall_s: 4.3,
            ms_per_step: 0.35,
            group_size: 4,
            weights: vec![],
            averaged: None,
            probs: None,
        };
        dash.on_done(0, &outcome);
        dash.finish();

        let screen = term.contents();
        let lines: Vec<&str> = screen.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), configs.len() + 1, "a line wrapped:\n{screen}");
        for (line, c) in lines.iter().zip(&configs) {
            assert!(line.trim_start().starts_with(&c.name), "{screen}");
        }
        assert!(
            lines[0].contains("done: val 38.47%  test 39.00%  train 44.68%"),
            "{screen}"
        );
        for line in &lines {
            assert!(line.chars().count() <= 80, "{line}");
        }
        assert!(
            lines[1].contains(&format!("1000/{}", configs[1].steps))
                && lines[1].contains("val 38.47%"),
            "{screen}"
        );
        assert!(lines[4].contains("steps/s"), "{screen}");
    }

    fn configs(n: usize) -> Vec<RunConfig> {
        SweepSpec::lambdas(TrainSettings::sweep_default(), &log_range(1e-5, 1e-1, n))
            .configs()
            .unwrap()
    }

    fn live(configs: &[RunConfig], size: TermSize) -> (Dashboard, InMemoryTerm) {
        let term = InMemoryTerm::new(size.0 as u16, size.1 as u16);
        let target = ProgressDrawTarget::term_like(Box::new(term.clone()));
        let dash = Dashboard::with_target(configs, DisplayMode::Live, Some((target, size)), |c| {
            format!("lambda {:.3e}", c.lambda)
        });
        (dash, term)
    }

    fn screen_lines(term: &InMemoryTerm) -> Vec<String> {
        term.contents()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect()
    }

    /// Nothing is shown before it has a value, and at any width a field is
    /// whole or absent: never `eta 3.95e` or `NaN`.
    #[test]
    fn fields_are_whole_or_absent_and_nothing_shows_before_it_has_a_value() {
        let cfgs = configs(2);
        for width in [50, 60, 66, 72, 80, 200] {
            let (dash, term) = live(&cfgs, (10, width));
            dash.render();
            let before = term.contents();
            assert!(
                !before.contains("NaN") && !before.contains("eta"),
                "{before}"
            );
            dash.on_step(&[0, 1], 10, &[3.95e-3, 3.95e-3]);
            dash.on_log(
                0,
                &LogPoint {
                    step: 10,
                    epoch: 0.1,
                    eta: 3.95e-3,
                    train: eval(0.3),
                    train_images: 1000,
                    val: eval(0.2917),
                },
            );
            dash.render();
            for line in screen_lines(&term) {
                assert!(line.chars().count() <= width, "{width}: {line}");
                for (key, whole) in [
                    ("val", "val 29.17%"),
                    ("cost", "cost 1.761"),
                    ("eta", "eta 3.95e-3"),
                ] {
                    if line.contains(key) && !line.contains("lambda") {
                        continue;
                    }
                    let fields = line.split("  ").filter(|f| f.trim_start().starts_with(key));
                    for f in fields {
                        assert_eq!(f.trim(), whole, "{width} columns, a cut field: {line}");
                    }
                }
                assert!(!line.contains("NaN"), "{line}");
            }
            let text = term.contents();
            if width >= 80 {
                assert!(
                    text.contains("val 29.17%  cost 1.761  eta 3.95e-3"),
                    "{width}: {text}"
                );
            }
        }
    }

    /// More runs than rows: running runs keep their line, finished and waiting
    /// ones collapse into a line of counts, and the overall bar stays visible.
    #[test]
    fn more_runs_than_rows_collapse_into_counts() {
        let cfgs = configs(30);
        let (dash, term) = live(&cfgs, (10, 80));
        for (id, cfg) in cfgs.iter().enumerate().take(12) {
            dash.on_step(&[id], cfg.steps, &[1e-3]);
            dash.on_log(
                id,
                &LogPoint {
                    step: cfg.steps,
                    epoch: 1.0,
                    eta: 1e-3,
                    train: eval(0.5),
                    train_images: 1000,
                    val: eval(0.40 + id as f64 / 1000.0),
                },
            );
            let mut o = RunOutcome {
                config: cfg.clone(),
                status: Status::Done,
                history: vec![],
                steps_done: cfg.steps,
                train: eval(0.5),
                val: eval(0.4),
                test: eval(0.4),
                diverged: None,
                wall_s: 1.0,
                ms_per_step: 0.1,
                group_size: 4,
                weights: vec![],
                averaged: None,
                probs: None,
            };
            o.val.acc = 0.40 + id as f64 / 1000.0;
            dash.on_done(id, &o);
        }
        dash.on_step(&[12, 13], 50, &[1e-3, 1e-3]);
        dash.render();
        let lines = screen_lines(&term);
        assert!(lines.len() < 10, "{lines:#?}");
        assert!(
            lines.iter().any(|l| l.contains("12 done")
                && l.contains("best val 41.10%")
                && l.contains("16 waiting")),
            "{lines:#?}"
        );
        assert_eq!(
            lines.iter().filter(|l| l.contains("/3600")).count(),
            2,
            "{lines:#?}"
        );
        assert!(
            lines.last().unwrap().trim_start().starts_with("all"),
            "{lines:#?}"
        );
    }

    /// An interrupted display stays where it stopped (not 100%), and a resumed
    /// run's speed counts only the steps done since the resume.
    #[test]
    fn interrupted_stays_where_it_stopped_and_resumed_speed_counts_new_steps() {
        let cfgs = configs(1);
        let (dash, term) = live(&cfgs, (10, 120));
        dash.resume_at(0, 1800);
        dash.on_step(&[0], 1801, &[1e-3]);
        std::thread::sleep(Duration::from_millis(100));
        dash.render();
        let text = term.contents();
        let rate: f64 = text
            .split_whitespace()
            .collect::<Vec<_>>()
            .windows(2)
            .find(|w| w[1] == "steps/s")
            .map(|w| w[0].parse().unwrap())
            .unwrap_or_else(|| panic!("{text}"));
        // One step in at least 0.1 s: at most 10 steps/s (1801 counted would be 18,000).
        assert!(
            rate <= 10.0,
            "1 step in 0.1 s shown as {rate} steps/s: {text}"
        );
        dash.finish();
        let text = term.contents();
        assert!(text.contains(" 50%") && !text.contains("100%"), "{text}");
    }
}
