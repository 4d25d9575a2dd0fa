//! Metrics burn-train does not ship in the form a language model wants: the training loss read
//! from the device seldom, perplexity from the loss (burn's `PerplexityMetric` needs the full
//! logits copied out every step) and training throughput in tokens per second.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use burn::prelude::*;

use burn::train::metric::state::{FormatOptions, NumericMetricState};
use burn::train::metric::{
    Metric, MetricAttributes, MetricMetadata, MetricName, Numeric, NumericAttributes, NumericEntry,
    SerializedEntry,
};

use crate::progress::LINE_INTERVAL;

/// What the loss metrics tell burn-train about themselves: unitless, lower is better.
fn lower_is_better() -> MetricAttributes {
    NumericAttributes {
        unit: None,
        higher_is_better: false,
    }
    .into()
}

static HOST_READS: AtomicUsize = AtomicUsize::new(0);

/// Reads of device values by the training loop so far (the training loss, the divergence
/// check), in this process. On a GPU each one waits for the work queued before it.
pub fn host_reads() -> usize {
    HOST_READS.load(Ordering::Relaxed)
}

/// The values of `tensors`, in order, in one read from the device.
pub fn read_values<B: Backend>(tensors: Vec<Tensor<B, 1>>) -> Vec<f64> {
    if tensors.is_empty() {
        return Vec::new();
    }
    HOST_READS.fetch_add(1, Ordering::Relaxed);
    // With several devices the losses live on each; one read from the first device's.
    let device = tensors[0].device();
    let tensors = tensors.into_iter().map(|t| t.to_device(&device)).collect();
    Tensor::cat(tensors, 0).into_data().iter::<f64>().collect()
}

/// A micro-batch's mean loss, still on the device.
pub struct LossTensorInput<B: Backend> {
    pub loss: Tensor<B, 1>,
}

/// The mean training loss of the epoch so far, named "Loss" like burn-train's `LossMetric`.
///
/// burn-train's `LossMetric` reads every batch's loss as it arrives, which on a GPU waits for
/// that batch's work and drains the fusion queue each step. This one keeps the losses on the
/// device and reads them together, at most as often as a progress line is printed
/// ([`LINE_INTERVAL`]) and at the epoch's last
/// batch, so the epoch mean (metrics.csv, the progress lines) stays exact. Entries between
/// reads carry no weight in burn-train's epoch aggregate.
#[derive(Clone)]
pub struct TrainLoss<B: Backend> {
    name: MetricName,
    pending: Vec<Tensor<B, 1>>,
    last_read: Option<Instant>,
    sum: f64,
    count: usize,
}

impl<B: Backend> Default for TrainLoss<B> {
    fn default() -> Self {
        Self {
            name: Arc::new("Loss".into()),
            pending: Vec::new(),
            last_read: None,
            sum: 0.0,
            count: 0,
        }
    }
}

impl<B: Backend> TrainLoss<B> {
    fn mean(&self) -> NumericEntry {
        NumericEntry::Aggregated {
            aggregated_value: self.sum / self.count.max(1) as f64,
            count: self.count,
        }
    }
}

impl<B: Backend> Metric for TrainLoss<B> {
    type Input = LossTensorInput<B>;

    fn name(&self) -> MetricName {
        self.name.clone()
    }

    fn update(&mut self, input: &LossTensorInput<B>, metadata: &MetricMetadata) -> SerializedEntry {
        self.pending.push(input.loss.clone());
        let progress = &metadata.progress;
        let epoch_end = progress.items_processed >= progress.items_total;
        let due = self.last_read.is_none_or(|t| t.elapsed() >= LINE_INTERVAL);
        // Between reads an entry of weight 0; a read brings the losses since the last one.
        let (sum, count) = if epoch_end || due {
            let losses = read_values(std::mem::take(&mut self.pending));
            self.last_read = Some(Instant::now());
            (losses.iter().sum::<f64>(), losses.len())
        } else {
            (0.0, 0)
        };
        self.sum += sum;
        self.count += count;
        let read = NumericEntry::Aggregated {
            aggregated_value: sum / count.max(1) as f64,
            count,
        };
        SerializedEntry::new(
            format!("epoch {:.3}", self.mean().current()),
            read.serialize(),
        )
    }

    fn clear(&mut self) {
        *self = Self::default();
    }

    fn attributes(&self) -> MetricAttributes {
        lower_is_better()
    }
}

impl<B: Backend> Numeric for TrainLoss<B> {
    fn value(&self) -> NumericEntry {
        self.mean()
    }

    fn running_value(&self) -> NumericEntry {
        self.mean()
    }
}

pub struct LossValueInput {
    pub loss: f64,
}

pub struct TokensInput {
    pub tokens: usize,
}

/// `exp(mean loss)`: the epoch value is the exponential of the epoch's mean loss, not the mean
/// of per-batch perplexities.
#[derive(Clone)]
pub struct Perplexity {
    name: MetricName,
    sum: f64,
    count: usize,
    last: f64,
}

impl Default for Perplexity {
    fn default() -> Self {
        Self {
            name: Arc::new("Perplexity".into()),
            sum: 0.0,
            count: 0,
            last: f64::NAN,
        }
    }
}

impl Metric for Perplexity {
    type Input = LossValueInput;

    fn name(&self) -> MetricName {
        self.name.clone()
    }

    fn update(&mut self, input: &LossValueInput, _: &MetricMetadata) -> SerializedEntry {
        self.last = input.loss.exp();
        self.sum += input.loss;
        self.count += 1;
        let running = (self.sum / self.count as f64).exp();
        SerializedEntry::new(
            format!("epoch {running:.3} - batch {:.3}", self.last),
            self.last.to_string(),
        )
    }

    fn clear(&mut self) {
        *self = Self::default();
    }

    fn attributes(&self) -> MetricAttributes {
        lower_is_better()
    }
}

impl Numeric for Perplexity {
    fn value(&self) -> NumericEntry {
        NumericEntry::Value(self.last)
    }

    fn running_value(&self) -> NumericEntry {
        NumericEntry::Value((self.sum / self.count.max(1) as f64).exp())
    }
}

/// Training tokens processed per second of wall time since the epoch's first batch, by all
/// the nodes of a run across machines (each trains as many tokens per step as this one).
#[derive(Clone)]
pub struct TokensPerSecond {
    name: MetricName,
    state: NumericMetricState,
    started: Option<Instant>,
    tokens: usize,
    nodes: usize,
}

impl Default for TokensPerSecond {
    fn default() -> Self {
        Self::across(1)
    }
}

impl TokensPerSecond {
    /// The rate of `nodes` nodes that train in step with this one.
    pub fn across(nodes: usize) -> Self {
        Self {
            name: Arc::new("Tokens per second".into()),
            state: NumericMetricState::new(),
            started: None,
            tokens: 0,
            nodes,
        }
    }
}

impl Metric for TokensPerSecond {
    type Input = TokensInput;

    fn name(&self) -> MetricName {
        self.name.clone()
    }

    fn update(&mut self, input: &TokensInput, _: &MetricMetadata) -> SerializedEntry {
        // The first batch only starts the clock: its time is unknown.
        let rate = match self.started {
            None => {
                self.started = Some(Instant::now());
                0.0
            }
            Some(started) => {
                self.tokens += input.tokens * self.nodes;
                self.tokens as f64 / started.elapsed().as_secs_f64().max(1e-9)
            }
        };
        self.state
            .update(rate, 1, FormatOptions::new(self.name()).precision(0))
    }

    fn clear(&mut self) {
        *self = Self::across(self.nodes);
    }

    fn attributes(&self) -> MetricAttributes {
        NumericAttributes {
            unit: Some("tok/s".into()),
            higher_is_better: true,
        }
        .into()
    }
}

impl Numeric for TokensPerSecond {
    fn value(&self) -> NumericEntry {
        self.state.current_value()
    }

    fn running_value(&self) -> NumericEntry {
        // The latest rate already covers the whole epoch so far.
        self.state.current_value()
    }
}
