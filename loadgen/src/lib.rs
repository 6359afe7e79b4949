//! ringload: the load generator bundled with ringproxy for tail latency and capacity planning.
//!
//! Same shape as the proxy: one pinned monoio thread per core, each owning its connections
//! ([`engine`], [`client`]). Open-loop runs pace every request to an intended send time
//! ([`schedule`]), slept to with sub-millisecond precision ([`pacer`]), and report latency corrected for coordinated omission next to the
//! uncorrected one; [`search`] finds the highest rate that holds an SLO; [`report`] prints
//! and writes the results.

pub mod client;
pub mod demo;
pub mod engine;
pub mod pacer;
pub mod report;
pub mod schedule;
pub mod search;
pub mod target;

/// Parses `30s`, `500ms`, `2m`, `1h`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let t = s.trim().to_ascii_lowercase();
    let (num, mult) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (t.as_str(), 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a duration (e.g. 30s, 500ms, 2m)"))?;
    if !(0.0..=86_400.0 * 7.0).contains(&v) || !v.is_finite() {
        return Err(format!("'{s}' is out of range"));
    }
    Ok(std::time::Duration::from_secs_f64(v * mult))
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations() {
        use std::time::Duration;
        assert_eq!(super::parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(
            super::parse_duration("500ms"),
            Ok(Duration::from_millis(500))
        );
        assert_eq!(super::parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(super::parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(super::parse_duration("soon").is_err());
        assert!(super::parse_duration("-1s").is_err());
    }
}
