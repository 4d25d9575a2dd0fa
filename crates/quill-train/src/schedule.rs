//! The learning-rate schedules: nanoGPT's (linear warmup, cosine decay, then a floor) and
//! warmup-stable-decay (WSD: linear warmup, the peak rate held, a linear cool-down to the floor
//! over the last `schedule.cooldown_fraction` of the steps; Hägele et al. 2024, modded-nanogpt).
//!
//! Written here rather than composed from burn's schedulers: burn 0.21's `ComposedLrScheduler`
//! combines schedulers at the same step (sum/product/average), it cannot run one after another,
//! and its cosine restarts instead of holding `min_lr`.

use burn::lr_scheduler::LrScheduler;
use burn::optim::LearningRate;
use burn::tensor::backend::Backend;

/// The learning rate as a function of the optimizer step, with the step as its only state.
#[derive(Debug, Clone)]
pub struct LrSchedule {
    pub lr: f64,
    pub min_lr: f64,
    pub warmup_steps: usize,
    /// The step at which the rate reaches `min_lr`.
    pub decay_steps: usize,
    /// `None`: cosine decay from the end of warmup; `Some(n)`: WSD, the peak held until `n`
    /// steps before `decay_steps`, then a straight line down.
    pub cooldown_steps: Option<usize>,
    /// Micro-batches per optimizer step: burn-train advances the scheduler once per
    /// micro-batch, so with gradient accumulation the step is `micro_batches / grad_accum`.
    pub grad_accum: usize,
    /// Micro-batches seen so far.
    pub micro_batches: usize,
    /// Micro-batches per scheduler step: 1 on one device; with several, burn-train steps the
    /// scheduler once per round of one micro-batch on each device.
    pub devices: usize,
}

impl LrSchedule {
    /// The rate for optimizer step `it` (0-based): for cosine exactly nanoGPT's `get_lr(it)`.
    pub fn lr_at(&self, it: usize) -> f64 {
        if it < self.warmup_steps {
            return self.lr * (it + 1) as f64 / (self.warmup_steps + 1) as f64;
        }
        if it > self.decay_steps {
            return self.min_lr;
        }
        if let Some(cooldown) = self.cooldown_steps {
            // The cool-down starts no earlier than the end of warmup.
            let start = self
                .decay_steps
                .saturating_sub(cooldown)
                .max(self.warmup_steps);
            if it <= start {
                return self.lr;
            }
            let ratio = (it - start) as f64 / (self.decay_steps - start) as f64;
            return self.lr + ratio * (self.min_lr - self.lr);
        }
        let span = (self.decay_steps - self.warmup_steps).max(1) as f64;
        let ratio = (it - self.warmup_steps) as f64 / span;
        let coeff = 0.5 * (1.0 + (std::f64::consts::PI * ratio).cos());
        self.min_lr + coeff * (self.lr - self.min_lr)
    }
}

impl LrScheduler for LrSchedule {
    type Record<B: Backend> = usize;

    fn step(&mut self) -> LearningRate {
        let lr = self.lr_at(self.micro_batches / self.grad_accum);
        self.micro_batches += self.devices;
        lr
    }

    fn to_record<B: Backend>(&self) -> usize {
        self.micro_batches
    }

    fn load_record<B: Backend>(mut self, micro_batches: usize) -> Self {
        self.micro_batches = micro_batches;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule() -> LrSchedule {
        LrSchedule {
            lr: 1e-3,
            min_lr: 1e-4,
            warmup_steps: 10,
            decay_steps: 110,
            cooldown_steps: None,
            grad_accum: 1,
            micro_batches: 0,
            devices: 1,
        }
    }

    #[test]
    fn warms_up_decays_and_holds() {
        let s = schedule();
        assert!((s.lr_at(0) - 1e-3 / 11.0).abs() < 1e-12);
        assert!((s.lr_at(9) - 1e-3 * 10.0 / 11.0).abs() < 1e-12);
        assert!((s.lr_at(10) - 1e-3).abs() < 1e-12);
        assert!((s.lr_at(60) - 5.5e-4).abs() < 1e-12);
        assert!((s.lr_at(110) - 1e-4).abs() < 1e-12);
        assert_eq!(s.lr_at(5000), 1e-4);
        let rates: Vec<f64> = (10..=110).map(|i| s.lr_at(i)).collect();
        assert!(rates.windows(2).all(|w| w[1] <= w[0]));
    }

    #[test]
    fn wsd_warms_up_holds_the_peak_then_cools_down_in_a_line() {
        let s = LrSchedule {
            cooldown_steps: Some(20),
            ..schedule()
        };
        // Warmup as the cosine's.
        assert_eq!(s.lr_at(0), schedule().lr_at(0));
        assert!((s.lr_at(9) - 1e-3 * 10.0 / 11.0).abs() < 1e-12);
        // Held from the end of warmup to the start of the cool-down (step 90).
        for it in [10, 50, 89, 90] {
            assert_eq!(s.lr_at(it), 1e-3, "step {it}");
        }
        // Halfway down at step 100, the floor at 110 and after.
        assert!((s.lr_at(100) - 5.5e-4).abs() < 1e-12);
        assert!((s.lr_at(110) - 1e-4).abs() < 1e-12);
        assert_eq!(s.lr_at(111), 1e-4);
        let rates: Vec<f64> = (90..=110).map(|i| s.lr_at(i)).collect();
        let steps: Vec<f64> = rates.windows(2).map(|w| w[0] - w[1]).collect();
        assert!(
            steps.iter().all(|d| (d - steps[0]).abs() < 1e-12),
            "a straight line"
        );
        // A cool-down longer than what follows warmup starts at the end of warmup.
        let all = LrSchedule {
            cooldown_steps: Some(1000),
            ..schedule()
        };
        assert_eq!(all.lr_at(10), 1e-3);
        assert!(all.lr_at(11) < 1e-3);
    }

    #[test]
    fn stepping_follows_lr_at_and_resumes_from_its_record() {
        let mut s = schedule();
        let first: Vec<f64> = (0..20).map(|_| s.step()).collect();
        assert_eq!(
            first,
            (0..20).map(|i| schedule().lr_at(i)).collect::<Vec<_>>()
        );
        type B = burn::backend::NdArray;
        let mut resumed = schedule().load_record::<B>(s.to_record::<B>());
        assert_eq!(resumed.step(), s.step());
    }

    #[test]
    fn gradient_accumulation_holds_the_rate_within_a_step() {
        let mut s = LrSchedule {
            grad_accum: 3,
            ..schedule()
        };
        let rates: Vec<f64> = (0..6).map(|_| s.step()).collect();
        let expected = [0, 0, 0, 1, 1, 1].map(|i| schedule().lr_at(i));
        assert_eq!(rates, expected);
    }

    #[test]
    fn on_several_devices_the_rate_follows_the_optimizer_step_and_the_record_carries_over() {
        // Four micro-batches per step on two devices: burn-train steps the scheduler twice.
        let mut two = LrSchedule {
            grad_accum: 4,
            devices: 2,
            ..schedule()
        };
        let rates: Vec<f64> = (0..6).map(|_| two.step()).collect();
        assert_eq!(rates, [0, 0, 1, 1, 2, 2].map(|i| schedule().lr_at(i)));
        // The record counts micro-batches, so one device resumes at the same step.
        type B = burn::backend::NdArray;
        let mut one = LrSchedule {
            grad_accum: 4,
            ..schedule()
        }
        .load_record::<B>(two.to_record::<B>());
        assert_eq!(one.micro_batches, 12);
        assert_eq!(one.step(), schedule().lr_at(3));
    }
}
