//! The Tree-structured Parzen Estimator (Bergstra et al., 2011), univariate as in Optuna's
//! default `TPESampler`: the finished trials are split into the best `γ(n) = min(⌈n/10⌉, 25)`
//! and the rest; each parameter gets a Parzen density `l(x)` over the good values and `g(x)`
//! over the others, both with a prior; `n_candidates` draws from `l` are scored by
//! `log l(x) − log g(x)` and the best is kept. Running trials count as bad ones (the
//! "constant liar"), so parallel workers spread out instead of asking for the same point.
//! A parameter whose `when` is false for the values chosen before it is left out (`None`),
//! and only the trials where it was active shape its densities.
//!
//! Written here because the `tpe` crate (0.2, unmaintained) has neither conditional
//! parameters nor pending trials, and argmin has no TPE; ~300 lines with its tests.

use rand::Rng;
use rand::rngs::StdRng;

/// One dimension, in the coordinates the sweep gives it: a number, or a choice's index.
#[derive(Debug, Clone, PartialEq)]
pub enum Dist {
    Float {
        low: f64,
        high: f64,
        log: bool,
    },
    Int {
        low: i64,
        high: i64,
        step: i64,
        log: bool,
    },
    Choice {
        weights: Vec<f64>,
    },
}

/// A trial so far: its point (`None` where a parameter was inactive) and its value, lower
/// is better (`None` while it runs).
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub params: Vec<Option<f64>>,
    pub value: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TpeSettings {
    /// Random points until this many trials have values.
    pub n_startup: usize,
    /// Draws from `l(x)` scored per parameter.
    pub n_candidates: usize,
    /// The prior's weight among the observations of each density.
    pub prior_weight: f64,
}

impl Default for TpeSettings {
    fn default() -> Self {
        TpeSettings {
            n_startup: 10,
            n_candidates: 24,
            prior_weight: 1.0,
        }
    }
}

/// `active(i, chosen)`: whether parameter `i` applies, given the values chosen before it.
pub type Active<'a> = &'a dyn Fn(usize, &[Option<f64>]) -> bool;

/// A point drawn from the priors: uniform (in log space where `log`), choices by weight.
pub fn random_point(space: &[Dist], rng: &mut StdRng, active: Active) -> Vec<Option<f64>> {
    let mut point = Vec::with_capacity(space.len());
    for (i, dist) in space.iter().enumerate() {
        let value = active(i, &point).then(|| match dist {
            Dist::Choice { weights } => sample_categorical(weights, rng) as f64,
            numeric => {
                let (low, high) = bounds(numeric);
                from_unit(numeric, rng.random_range(low..=high))
            }
        });
        point.push(value);
    }
    point
}

/// The next point to try.
pub fn suggest(
    space: &[Dist],
    observations: &[Observation],
    settings: &TpeSettings,
    rng: &mut StdRng,
    active: Active,
) -> Vec<Option<f64>> {
    let mut finished: Vec<&Observation> =
        observations.iter().filter(|o| o.value.is_some()).collect();
    let seen = |point: &[Option<f64>]| observations.iter().any(|o| o.params == point);
    if finished.len() < settings.n_startup.max(1) {
        let mut point = random_point(space, rng, active);
        for _ in 0..16 {
            if !seen(&point) {
                break;
            }
            point = random_point(space, rng, active);
        }
        return point;
    }
    finished.sort_by(|a, b| a.value.unwrap().total_cmp(&b.value.unwrap()));
    let n_below = finished.len().div_ceil(10).min(25);
    let below = &finished[..n_below];
    let above: Vec<&Observation> = finished[n_below..]
        .iter()
        .copied()
        .chain(observations.iter().filter(|o| o.value.is_none()))
        .collect();
    // A point already tried (small discrete spaces) is drawn again, up to 16 times.
    let mut point = Vec::new();
    for _ in 0..16 {
        point.clear();
        for (i, dist) in space.iter().enumerate() {
            if !active(i, &point) {
                point.push(None);
                continue;
            }
            let values = |group: &[&Observation]| -> Vec<f64> {
                group
                    .iter()
                    .filter_map(|o| o.params.get(i).copied().flatten())
                    .collect()
            };
            point.push(Some(best_candidate(
                dist,
                &values(below),
                &values(&above),
                settings,
                rng,
            )));
        }
        if !seen(&point) {
            return point;
        }
    }
    // Every draw was tried before (the densities sit on one point of a small discrete
    // space): an untried point of the prior instead, so no worker trains a duplicate.
    for _ in 0..64 {
        let random = random_point(space, rng, active);
        if !seen(&random) {
            return random;
        }
    }
    point
}

fn best_candidate(
    dist: &Dist,
    below: &[f64],
    above: &[f64],
    settings: &TpeSettings,
    rng: &mut StdRng,
) -> f64 {
    match dist {
        Dist::Choice { weights } => {
            let l = categorical(weights, below, settings.prior_weight);
            let g = categorical(weights, above, settings.prior_weight);
            let draws = (0..settings.n_candidates).map(|_| sample_categorical(&l, rng));
            let score = |k: usize| l[k].ln() - g[k].ln();
            draws
                .max_by(|a, b| score(*a).total_cmp(&score(*b)))
                .unwrap_or(0) as f64
        }
        numeric => {
            let (low, high) = bounds(numeric);
            let unit = |xs: &[f64]| xs.iter().map(|x| to_unit(numeric, *x)).collect::<Vec<_>>();
            let l = Parzen::new(&unit(below), low, high, settings.prior_weight);
            let g = Parzen::new(&unit(above), low, high, settings.prior_weight);
            let draws: Vec<f64> = (0..settings.n_candidates).map(|_| l.sample(rng)).collect();
            let score = |x: f64| l.log_pdf(x) - g.log_pdf(x);
            let best = draws
                .into_iter()
                .max_by(|a, b| score(*a).total_cmp(&score(*b)));
            from_unit(numeric, best.unwrap_or((low + high) / 2.0))
        }
    }
}

/// The search interval of a numeric dimension: log space where `log`; an integer range widened
/// by half a step each side so its end values are as likely as the others.
fn bounds(dist: &Dist) -> (f64, f64) {
    match *dist {
        Dist::Float {
            low,
            high,
            log: false,
        } => (low, high),
        Dist::Float {
            low,
            high,
            log: true,
        } => (low.ln(), high.ln()),
        Dist::Int {
            low,
            high,
            log: true,
            ..
        } => ((low as f64 - 0.5).max(0.5).ln(), (high as f64 + 0.5).ln()),
        Dist::Int {
            low, high, step, ..
        } => (
            low as f64 - step as f64 / 2.0,
            high as f64 + step as f64 / 2.0,
        ),
        Dist::Choice { .. } => unreachable!("a choice has no interval"),
    }
}

fn to_unit(dist: &Dist, x: f64) -> f64 {
    match dist {
        Dist::Float { log: true, .. } | Dist::Int { log: true, .. } => {
            x.max(f64::MIN_POSITIVE).ln()
        }
        _ => x,
    }
}

/// Back from the search interval; integers onto their step grid.
fn from_unit(dist: &Dist, y: f64) -> f64 {
    match *dist {
        Dist::Float { low, high, log } => match log {
            true => y.exp().clamp(low, high),
            false => y.clamp(low, high),
        },
        Dist::Int {
            low,
            high,
            step,
            log,
        } => {
            let x = if log { y.exp() } else { y };
            let k = ((x - low as f64) / step as f64).round();
            (low as f64 + k * step as f64).clamp(low as f64, high as f64)
        }
        Dist::Choice { .. } => y,
    }
}

/// The prior's weights (normalised, times `prior_weight`) plus one per observed index.
fn categorical(weights: &[f64], observed: &[f64], prior_weight: f64) -> Vec<f64> {
    let total: f64 = weights.iter().sum();
    let mut p: Vec<f64> = weights.iter().map(|w| prior_weight * w / total).collect();
    for x in observed {
        let k = (x.round().max(0.0) as usize).min(p.len() - 1);
        p[k] += 1.0;
    }
    let sum: f64 = p.iter().sum();
    p.iter().map(|x| (x / sum).max(1e-12)).collect()
}

fn sample_categorical(weights: &[f64], rng: &mut StdRng) -> usize {
    let total: f64 = weights.iter().sum();
    let mut u = rng.random_range(0.0..total);
    for (k, w) in weights.iter().enumerate() {
        if u < *w {
            return k;
        }
        u -= w;
    }
    weights.len() - 1
}

/// A mixture of normals truncated to `[low, high]`, one at each observation plus a wide one
/// (the prior) at the middle. Each bandwidth is the larger gap to its neighbours, clipped to
/// `[(high − low) / min(100, n + 2), high − low]` (Optuna's rule).
struct Parzen {
    mus: Vec<f64>,
    sigmas: Vec<f64>,
    weights: Vec<f64>,
    low: f64,
    high: f64,
}

impl Parzen {
    fn new(observed: &[f64], low: f64, high: f64, prior_weight: f64) -> Parzen {
        let range = high - low;
        let mut mus: Vec<f64> = observed.iter().map(|x| x.clamp(low, high)).collect();
        mus.sort_by(f64::total_cmp);
        let n = mus.len();
        let min_sigma = range / (n as f64 + 2.0).min(100.0);
        let mut sigmas: Vec<f64> = (0..n)
            .map(|k| {
                // The end points look inward only once there are two (Optuna's default).
                let left = match k {
                    0 if n > 1 => 0.0,
                    0 => mus[0] - low,
                    _ => mus[k] - mus[k - 1],
                };
                let right = match k + 1 == n {
                    true if n > 1 => 0.0,
                    true => high - mus[k],
                    false => mus[k + 1] - mus[k],
                };
                left.max(right).clamp(min_sigma, range)
            })
            .collect();
        let mut weights = vec![1.0; n];
        mus.push((low + high) / 2.0);
        sigmas.push(range);
        weights.push(prior_weight);
        let total: f64 = weights.iter().sum();
        weights.iter_mut().for_each(|w| *w /= total);
        Parzen {
            mus,
            sigmas,
            weights,
            low,
            high,
        }
    }

    fn sample(&self, rng: &mut StdRng) -> f64 {
        let k = sample_categorical(&self.weights, rng);
        let (mu, sigma) = (self.mus[k], self.sigmas[k]);
        // Inverse CDF between the truncation points: exact, no rejection loop.
        let a = normal_cdf((self.low - mu) / sigma);
        let b = normal_cdf((self.high - mu) / sigma);
        let u = a + rng.random_range(0.0..1.0) * (b - a);
        (mu + sigma * normal_quantile(u.clamp(1e-12, 1.0 - 1e-12))).clamp(self.low, self.high)
    }

    fn log_pdf(&self, x: f64) -> f64 {
        let density: f64 = (0..self.mus.len())
            .map(|k| {
                let (mu, sigma) = (self.mus[k], self.sigmas[k]);
                let mass =
                    normal_cdf((self.high - mu) / sigma) - normal_cdf((self.low - mu) / sigma);
                let z = (x - mu) / sigma;
                self.weights[k] * (-0.5 * z * z).exp()
                    / (sigma * (2.0 * std::f64::consts::PI).sqrt() * mass.max(1e-12))
            })
            .sum();
        density.max(1e-300).ln()
    }
}

/// Φ by the complementary error function (Numerical Recipes' `erfcc`, error < 1.2e-7).
fn normal_cdf(z: f64) -> f64 {
    let x = z.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.5 * x);
    let poly = -x * x - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * poly.exp();
    if z >= 0.0 {
        1.0 - erfc / 2.0
    } else {
        erfc / 2.0
    }
}

/// Φ⁻¹ by Acklam's rational approximation, refined by one Newton step.
fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -39.696_830_286_653_76,
        220.946_098_424_520_5,
        -275.928_510_446_968_7,
        138.357_751_867_269,
        -30.664_798_066_147_16,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -54.476_098_798_224_06,
        161.585_836_858_040_9,
        -155.698_979_859_886_6,
        66.801_311_887_719_72,
        -13.280_681_552_885_72,
    ];
    const C: [f64; 6] = [
        -0.007_784_894_002_430_293,
        -0.322_396_458_041_136_5,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        0.007_784_695_709_041_462,
        0.322_467_129_070_039_8,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    let x = if p < 0.024_25 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.024_25 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    };
    let density = (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
    x - (normal_cdf(x) - p) / density.max(1e-300)
}

#[cfg(test)]
mod tests;
