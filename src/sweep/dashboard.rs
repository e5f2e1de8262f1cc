//! Live terminal dashboard: one line per configuration (name, step / total, eta,
//! latest cost, latest validation accuracy) and an overall bar with elapsed time,
//! ETA and throughput. Training threads only store atomics; a render thread reads
//! them a few times a second. Without a terminal it prints one plain line per
//! finished configuration instead (indicatif draws nothing then).

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
    eta: AtomicU64,
    cost: AtomicU64,
    val_acc: AtomicU64,
    logs: AtomicUsize,
    summary: Mutex<Option<String>>,
}

/// Progress of a set of configurations, shared by the training threads.
pub struct Dashboard {
    mode: DisplayMode,
    rows: Vec<Row>,
    flops_per_step: Vec<f64>,
    flops_per_log: Vec<f64>,
    done_style: Option<ProgressStyle>,
    start: Instant,
    closed: AtomicBool,
    mp: Option<MultiProgress>,
    bars: Vec<ProgressBar>,
    overall: Option<ProgressBar>,
}

fn f(bits: &AtomicU64) -> f64 {
    f64::from_bits(bits.load(Ordering::Relaxed))
}

/// One line describing a finished run.
pub fn summary_line(o: &RunOutcome) -> String {
    match o.status {
        Status::Done => format!(
            "done: train {:.2}%  val {:.2}%  test {:.2}%  cost {:.3}  {} steps in {:.1} s",
            100.0 * o.train.acc,
            100.0 * o.val.acc,
            100.0 * o.test.acc,
            o.train.cost,
            o.steps_done,
            o.wall_s
        ),
        Status::Diverged => {
            let d = o.diverged.expect("diverged runs record where");
            format!(
                "DIVERGED at step {} (eta {:.3e}): cost not finite; lower eta",
                d.step, d.eta
            )
        }
        Status::Interrupted => format!("interrupted at step {} (checkpoint kept)", o.steps_done),
    }
}

impl Dashboard {
    /// A dashboard for `configs` (their indices are the observer ids), with `label`
    /// naming each line.
    pub fn new(
        configs: &[RunConfig],
        mode: DisplayMode,
        label: impl Fn(&RunConfig) -> String,
    ) -> Self {
        let target = (mode == DisplayMode::Live).then(|| ProgressDrawTarget::stderr_with_hz(8));
        Self::with_target(configs, mode, target, label)
    }

    /// Like [`Self::new`], drawing live bars on `target` (stderr for a user;
    /// an in-memory terminal in tests). `target` is used only in live mode.
    pub fn with_target(
        configs: &[RunConfig],
        mode: DisplayMode,
        target: Option<ProgressDrawTarget>,
        label: impl Fn(&RunConfig) -> String,
    ) -> Self {
        let rows: Vec<Row> = configs
            .iter()
            .map(|c| Row {
                label: label(c),
                total: c.steps,
                step: AtomicUsize::new(0),
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
        // Lines never wrap: `wide_msg` truncates the message to the terminal's width.
        let target = target.filter(|_| mode == DisplayMode::Live);
        let (mp, bars, overall, done_style) = if let Some(target) = target {
            let mp = MultiProgress::with_draw_target(target);
            let width = rows.iter().map(|r| r.label.len()).max().unwrap_or(8);
            let style = ProgressStyle::with_template(&format!(
                "{{prefix:>{width}}} [{{bar:16.cyan/blue}}] {{pos:>5}}/{{len:<5}} {{wide_msg}}"
            ))
            .expect("valid template")
            .progress_chars("=> ");
            let done_style =
                ProgressStyle::with_template(&format!("{{prefix:>{width}}} {{wide_msg}}"))
                    .expect("valid template");
            let bars: Vec<ProgressBar> = rows
                .iter()
                .map(|r| {
                    let b = mp.add(ProgressBar::new(r.total as u64));
                    b.set_style(style.clone());
                    b.set_prefix(r.label.clone());
                    b
                })
                .collect();
            let total: u64 = rows.iter().map(|r| r.total as u64).sum();
            let o = mp.add(ProgressBar::new(total));
            o.set_style(
                ProgressStyle::with_template(&format!(
                    "{{prefix:>{width}}} [{{bar:16.green}}] {{percent:>3}}% {{elapsed_precise}} ETA {{eta}} {{wide_msg}}"
                ))
                .expect("valid template")
                .progress_chars("=> "),
            );
            o.set_prefix("all");
            (Some(mp), bars, Some(o), Some(done_style))
        } else {
            (None, Vec::new(), None, None)
        };
        Dashboard {
            mode,
            rows,
            flops_per_step,
            flops_per_log,
            done_style,
            start: Instant::now(),
            closed: AtomicBool::new(false),
            mp,
            bars,
            overall,
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

    fn render(&self) {
        let mut done_steps = 0u64;
        let mut flops = 0.0;
        for (i, (row, bar)) in self.rows.iter().zip(&self.bars).enumerate() {
            let step = row.step.load(Ordering::Relaxed);
            done_steps += step as u64;
            flops += step as f64 * self.flops_per_step[i]
                + row.logs.load(Ordering::Relaxed) as f64 * self.flops_per_log[i];
            if let Some(s) = row.summary.lock().expect("not poisoned").as_ref() {
                if !bar.is_finished() {
                    bar.set_position(step as u64);
                    if let Some(style) = &self.done_style {
                        bar.set_style(style.clone());
                    }
                    bar.finish_with_message(s.clone());
                }
                continue;
            }
            bar.set_position(step as u64);
            // Most telling first: the message is cut at the terminal's edge.
            let (eta, cost, acc) = (f(&row.eta), f(&row.cost), f(&row.val_acc));
            let mut msg = String::new();
            if acc.is_finite() {
                msg.push_str(&format!("val {:.2}%  ", 100.0 * acc));
            }
            if cost.is_finite() {
                msg.push_str(&format!("cost {cost:.3}  "));
            }
            msg.push_str(&format!("eta {eta:.2e}"));
            bar.set_message(msg);
        }
        if let Some(o) = &self.overall {
            o.set_position(done_steps);
            let secs = self.start.elapsed().as_secs_f64().max(1e-9);
            o.set_message(format!(
                "{:.1} GFLOP/s  {:.0} steps/s",
                flops / secs / 1e9,
                done_steps as f64 / secs
            ));
        }
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

    /// Finishes the overall bar (after the render thread ended).
    pub fn finish(&self) {
        self.render();
        if let Some(o) = &self.overall {
            o.finish();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::net::Eval;
    use crate::sweep::{LambdaSpec, SweepSpec};
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
        let mut configs = SweepSpec {
            lambdas: LambdaSpec::List(vec![0.0, 0.0, 0.1, 1.0]),
            ..SweepSpec::default()
        }
        .configs();
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
        let dash = Dashboard::with_target(&configs, DisplayMode::Live, Some(target), |c| {
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
            lines[0].contains("done: train 44.68%  val 38.47%  test 39.00%"),
            "{screen}"
        );
        assert!(
            lines[1].contains(&format!("1000/{}", configs[1].steps))
                && lines[1].contains("val 38.47%"),
            "{screen}"
        );
        assert!(lines[4].contains("GFLOP/s"), "{screen}");
    }
}
