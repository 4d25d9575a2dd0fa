//! What a person watching a sweep sees: in a terminal, one line per running trial (its values,
//! step, val loss and what the pruner said), redrawn in place with indicatif's `MultiProgress`;
//! elsewhere (a log file, CI) one line per event.

use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::pruner::Decision;

#[derive(Debug)]
pub struct Progress {
    bars: Option<(MultiProgress, Vec<Option<ProgressBar>>)>,
    /// The values of the trial in each slot, for the redrawn lines.
    values: Vec<String>,
}

impl Progress {
    /// Lines redrawn in place when stderr is a terminal and `live`, else one line per event on
    /// stdout.
    pub fn new(slots: usize, live: bool) -> Self {
        let bars = (live && std::io::stderr().is_terminal()).then(|| {
            (
                MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                (0..slots).map(|_| None).collect(),
            )
        });
        Self {
            bars,
            values: vec![String::new(); slots],
        }
    }

    /// A line that stays: above the live lines, or on stdout.
    pub fn note(&self, line: &str) {
        match &self.bars {
            Some((multi, _)) => {
                let _ = multi.println(line);
            }
            None => println!("{line}"),
        }
    }

    pub fn started(&mut self, slot: usize, name: &str, values: &[(String, String)], resume: bool) {
        let values = values
            .iter()
            .map(|(k, v)| format!("{}={v}", k.rsplit('.').next().unwrap_or(k)))
            .collect::<Vec<_>>()
            .join(" ");
        let how = if resume { "resuming" } else { "training" };
        if let Some(values_slot) = self.values.get_mut(slot) {
            *values_slot = values.clone();
        }
        match &mut self.bars {
            Some((multi, bars)) => {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} [{prefix}] {msg}")
                        .expect("a valid template"),
                );
                bar.set_prefix(format!("slot {slot}"));
                bar.set_message(format!("{name}  {values}  {how}"));
                bar.enable_steady_tick(std::time::Duration::from_millis(250));
                bars[slot] = Some(bar);
            }
            None => println!("[slot {slot}] {name}: {how} ({values})"),
        }
    }

    pub fn evaluated(
        &mut self,
        slot: usize,
        name: &str,
        step: usize,
        loss: f64,
        decision: Decision,
    ) {
        let said = match decision {
            Decision::Continue => "",
            Decision::Pause => ", paused at its rung",
            Decision::Prune => ", pruned",
        };
        let line = format!(
            "{name}  {}  step {step}  val {loss:.4}{said}",
            self.values[slot]
        );
        match &self.bars {
            Some((_, bars)) => {
                if let Some(bar) = &bars[slot] {
                    bar.set_message(line);
                }
            }
            None => println!("[slot {slot}] {line}"),
        }
    }

    pub fn ended(&mut self, slot: usize, name: &str, how: &str) {
        let line = format!("[slot {slot}] {name}: {how}");
        match &mut self.bars {
            Some((multi, bars)) => {
                if let Some(bar) = bars[slot].take() {
                    bar.finish_and_clear();
                    multi.remove(&bar);
                }
                let _ = multi.println(line);
            }
            None => println!("{line}"),
        }
    }
}
