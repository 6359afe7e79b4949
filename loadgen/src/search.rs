//! Capacity search: the highest offered rate at which the service level objective holds.
//!
//! Rates grow exponentially from a start rate until a step fails, then the interval between
//! the last passing and the first failing rate is bisected. Every step is a full open-loop
//! run, so every step's percentiles are coordinated-omission corrected.

use std::time::Duration;

use crate::engine::{self, LoadSpec, RunResult};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Metric {
    /// Corrected latency at this percentile.
    Percentile(f64),
    /// Errors (transport and 5xx) per attempt, as a fraction.
    ErrorRate,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Condition {
    pub metric: Metric,
    /// Inclusive (`<=`) or strict (`<`).
    pub inclusive: bool,
    /// Microseconds for latency, a fraction for error rate.
    pub limit: f64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("bad SLO '{0}': {1} (examples: 'p99<5ms', 'p99.9<=20ms', 'p50<800us', 'errors<1%')")]
pub struct SloError(String, &'static str);

/// Parses `p99<5ms,errors<0.1%` (several conditions separated by commas).
pub fn parse_slo(text: &str) -> Result<Vec<Condition>, SloError> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let err = |why| SloError(part.to_string(), why);
        let (lhs, inclusive, rhs) = if let Some((l, r)) = part.split_once("<=") {
            (l, true, r)
        } else if let Some((l, r)) = part.split_once('<') {
            (l, false, r)
        } else {
            return Err(err("expected '<' or '<='"));
        };
        let lhs = lhs.trim().to_ascii_lowercase();
        let rhs = rhs.trim().to_ascii_lowercase();
        let metric = if lhs == "errors" || lhs == "error_rate" || lhs == "error-rate" {
            Metric::ErrorRate
        } else if let Some(p) = lhs.strip_prefix('p') {
            let p: f64 = p.parse().map_err(|_| err("bad percentile"))?;
            if !(0.0..=100.0).contains(&p) {
                return Err(err("percentile must be within 0..100"));
            }
            Metric::Percentile(p)
        } else {
            return Err(err("left side must be pNN or errors"));
        };
        let limit = match metric {
            Metric::ErrorRate => match rhs.strip_suffix('%') {
                Some(n) => n.trim().parse::<f64>().map_err(|_| err("bad number"))? / 100.0,
                None => rhs.parse::<f64>().map_err(|_| err("bad number"))?,
            },
            Metric::Percentile(_) => parse_latency_us(&rhs).ok_or_else(|| err("bad time"))?,
        };
        out.push(Condition {
            metric,
            inclusive,
            limit,
        });
    }
    if out.is_empty() {
        return Err(SloError(text.to_string(), "no condition"));
    }
    Ok(out)
}

fn parse_latency_us(s: &str) -> Option<f64> {
    let (num, mult) = if let Some(n) = s.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix("µs") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1000.0)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1_000_000.0)
    } else {
        return None;
    };
    num.trim().parse::<f64>().ok().map(|v| v * mult)
}

impl Condition {
    pub fn value(&self, r: &RunResult) -> f64 {
        match self.metric {
            Metric::Percentile(p) => r.corrected.value_at_percentile(p) as f64,
            Metric::ErrorRate => r.error_rate(),
        }
    }

    pub fn holds(&self, r: &RunResult) -> bool {
        let v = self.value(r);
        if self.inclusive {
            v <= self.limit
        } else {
            v < self.limit
        }
    }
}

/// A step passes when every condition holds and the target really carried the offered rate
/// (within 5 %): a server that cannot keep up must not pass on latency alone.
pub const ACHIEVED_FRACTION: f64 = 0.95;

pub fn step_passes(conds: &[Condition], r: &RunResult) -> bool {
    let offered = r.offered_rate.unwrap_or(0.0);
    conds.iter().all(|c| c.holds(r)) && r.rps() >= offered * ACHIEVED_FRACTION
}

#[derive(Clone, Debug)]
pub struct SearchSpec {
    pub start_rate: f64,
    pub min_rate: f64,
    pub max_rate: f64,
    /// Growth factor of the exponential phase.
    pub factor: f64,
    /// Stop bisecting when the bracket is narrower than this fraction of the low end.
    pub precision: f64,
    pub max_steps: usize,
    pub step_duration: Duration,
    pub step_warmup: Duration,
}

pub struct SearchOutcome {
    /// (offered rate, result) in the order run.
    pub steps: Vec<(f64, RunResult)>,
    pub best: Option<f64>,
}

/// Runs the search; `on_step` is called after each step (for printing rows as they come).
pub fn search(
    base: &LoadSpec,
    conds: &[Condition],
    s: &SearchSpec,
    mut on_step: impl FnMut(f64, &RunResult, bool),
) -> Result<SearchOutcome, String> {
    let mut steps = Vec::new();
    let mut run_at = |rate: f64, steps: &mut Vec<(f64, RunResult)>| -> Result<bool, String> {
        let mut spec = base.clone();
        spec.rate = Some(rate);
        spec.duration = s.step_duration;
        spec.warmup = s.step_warmup;
        spec.requests = None;
        let r = engine::run(&spec)?;
        let pass = step_passes(conds, &r);
        on_step(rate, &r, pass);
        steps.push((rate, r));
        Ok(pass)
    };
    let mut lo: Option<f64> = None; // highest passing
    let mut hi: Option<f64> = None; // lowest failing
    let mut rate = s.start_rate.clamp(s.min_rate, s.max_rate);
    // Exponential phase: up while passing, down while failing.
    while steps.len() < s.max_steps {
        if run_at(rate, &mut steps)? {
            lo = Some(rate);
            if rate >= s.max_rate || hi.is_some() {
                break;
            }
            rate = (rate * s.factor).min(s.max_rate);
        } else {
            hi = Some(rate);
            if lo.is_some() {
                break;
            }
            if rate <= s.min_rate {
                break;
            }
            rate = (rate / s.factor).max(s.min_rate);
        }
    }
    // Bisection between the last pass and the first fail.
    while let (Some(l), Some(h)) = (lo, hi) {
        if steps.len() >= s.max_steps || (h - l) <= l * s.precision {
            break;
        }
        let mid = (l + h) / 2.0;
        if run_at(mid, &mut steps)? {
            lo = Some(mid);
        } else {
            hi = Some(mid);
        }
    }
    Ok(SearchOutcome { steps, best: lo })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slo_parsing_table() {
        let p = |s| parse_slo(s).unwrap();
        assert_eq!(
            p("p99<5ms"),
            vec![Condition {
                metric: Metric::Percentile(99.0),
                inclusive: false,
                limit: 5000.0
            }]
        );
        assert_eq!(p("p99.9<=20ms")[0].metric, Metric::Percentile(99.9));
        assert!(p("p99.9<=20ms")[0].inclusive);
        assert_eq!(p("p50<800us")[0].limit, 800.0);
        assert_eq!(p("p50<1s")[0].limit, 1_000_000.0);
        assert_eq!(p("errors<1%")[0].limit, 0.01);
        assert_eq!(p("errors<0.001")[0].limit, 0.001);
        assert_eq!(p("p99<5ms, errors<1%").len(), 2);
        for bad in ["p99", "p99<5", "q99<5ms", "p101<5ms", "errors<x", ""] {
            assert!(parse_slo(bad).is_err(), "{bad}");
        }
    }
}
