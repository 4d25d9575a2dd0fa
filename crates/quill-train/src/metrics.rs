//! Metrics burn-train does not ship in the form a language model wants: perplexity from the
//! loss (burn's `PerplexityMetric` needs the full logits copied out every step) and training
//! throughput in tokens per second.

use std::sync::Arc;
use std::time::Instant;

use burn::train::metric::state::{FormatOptions, NumericMetricState};
use burn::train::metric::{
    Metric, MetricAttributes, MetricMetadata, MetricName, Numeric, NumericAttributes, NumericEntry,
    SerializedEntry,
};

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
        NumericAttributes {
            unit: None,
            higher_is_better: false,
        }
        .into()
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

/// Training tokens processed per second of wall time since the epoch's first batch.
#[derive(Clone)]
pub struct TokensPerSecond {
    name: MetricName,
    state: NumericMetricState,
    started: Option<Instant>,
    tokens: usize,
}

impl Default for TokensPerSecond {
    fn default() -> Self {
        Self {
            name: Arc::new("Tokens per second".into()),
            state: NumericMetricState::new(),
            started: None,
            tokens: 0,
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
                self.tokens += input.tokens;
                self.tokens as f64 / started.elapsed().as_secs_f64().max(1e-9)
            }
        };
        self.state
            .update(rate, 1, FormatOptions::new(self.name()).precision(0))
    }

    fn clear(&mut self) {
        *self = Self::default();
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
