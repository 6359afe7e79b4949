//! mod_reqtimeout's request-read deadlines: a head or body must arrive within an initial
//! time, extended by one second for every `MinRate` bytes received, up to a maximum. A
//! client that sends one byte every few seconds is cut off by these, where the per-read
//! `Timeout` alone would wait for it forever. Pure: no I/O, no clock reads of its own.

use std::time::{Duration, Instant};

/// One stage of `RequestReadTimeout`: `header=20-40,MinRate=500`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stage {
    /// Time allowed before any data counts.
    pub initial: Duration,
    /// The deadline never moves past this (from the stage's start); `None`: no cap.
    pub max: Option<Duration>,
    /// Bytes per second that earn one more second; 0: the deadline never moves.
    pub min_rate: u32,
}

/// `RequestReadTimeout`: `None` for a stage that is off (`header=0`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadTimeouts {
    /// The TLS handshake (off by default, as in Apache: `Timeout` bounds it then).
    pub handshake: Option<Stage>,
    pub header: Option<Stage>,
    pub body: Option<Stage>,
}

impl Default for ReadTimeouts {
    /// Debian's and Apache 2.4's default: `header=20-40,MinRate=500 body=20,MinRate=500`.
    fn default() -> Self {
        ReadTimeouts {
            handshake: None,
            header: Some(Stage {
                initial: Duration::from_secs(20),
                max: Some(Duration::from_secs(40)),
                min_rate: 500,
            }),
            body: Some(Stage {
                initial: Duration::from_secs(20),
                max: None,
                min_rate: 500,
            }),
        }
    }
}

/// Which stage a timeout ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    Header = 0,
    Body = 1,
}

impl Which {
    pub fn label(self) -> &'static str {
        match self {
            Which::Header => "header",
            Which::Body => "body",
        }
    }
}

/// A stage under way: when it started and what has arrived.
#[derive(Clone, Copy, Debug)]
pub struct RateDeadline {
    start: Instant,
    stage: Stage,
    received: u64,
}

impl RateDeadline {
    pub fn new(stage: Stage, start: Instant) -> Self {
        RateDeadline {
            start,
            stage,
            received: 0,
        }
    }

    /// `n` more bytes arrived.
    pub fn received(&mut self, n: usize) {
        self.received = self.received.saturating_add(n as u64);
    }

    /// The current deadline: initial time plus a second per `MinRate` bytes, capped.
    pub fn deadline(&self) -> Instant {
        let earned = match self.stage.min_rate {
            0 => Duration::ZERO,
            rate => Duration::from_secs_f64(self.received as f64 / f64::from(rate)),
        };
        let mut allowed = self.stage.initial.saturating_add(earned);
        if let Some(max) = self.stage.max {
            allowed = allowed.min(max);
        }
        self.start + allowed
    }

    /// How long the next read may wait: the socket's own timeout, or less when the stage's
    /// deadline comes first (then `true`). `None`: the deadline has passed.
    pub fn next_wait(&self, socket: Duration, now: Instant) -> Option<(Duration, bool)> {
        let left = self.deadline().checked_duration_since(now)?;
        if left.is_zero() {
            return None;
        }
        Some(if left < socket {
            (left, true)
        } else {
            (socket, false)
        })
    }
}

/// Parses `RequestReadTimeout` arguments over `base` (stages not named keep their value).
pub fn parse(args: &[String], base: ReadTimeouts) -> Result<ReadTimeouts, String> {
    let mut out = base;
    if args.is_empty() {
        return Err("RequestReadTimeout takes stage=timeout[-max][,MinRate=rate] …".into());
    }
    for a in args {
        let (name, rest) = a
            .split_once('=')
            .ok_or_else(|| format!("'{a}': expected header=…, body=… or handshake=…"))?;
        let mut parts = rest.split(',');
        let times = parts.next().unwrap_or_default();
        let mut min_rate = 0u32;
        for p in parts {
            let (k, v) = p
                .split_once('=')
                .ok_or_else(|| format!("'{p}' in '{a}': expected MinRate=bytes"))?;
            if !k.eq_ignore_ascii_case("minrate") {
                return Err(format!("'{k}' in '{a}': only MinRate may follow the time"));
            }
            min_rate = v
                .parse()
                .ok()
                .filter(|r| *r > 0)
                .ok_or_else(|| format!("MinRate={v}: a positive number of bytes per second"))?;
        }
        let secs = |s: &str| -> Result<u64, String> {
            s.parse()
                .map_err(|_| format!("'{s}' in '{a}': whole seconds expected"))
        };
        let (initial, max) = match times.split_once('-') {
            Some((i, m)) => (secs(i)?, Some(secs(m)?)),
            None => (secs(times)?, None),
        };
        if let Some(m) = max {
            if m < initial {
                return Err(format!("'{a}': the maximum is below the initial time"));
            }
            if min_rate == 0 {
                return Err(format!("'{a}': a maximum needs MinRate (as in Apache)"));
            }
        }
        let stage = (initial > 0).then(|| Stage {
            initial: Duration::from_secs(initial),
            max: max.map(Duration::from_secs),
            min_rate,
        });
        match name.to_ascii_lowercase().as_str() {
            "header" => out.header = stage,
            "body" => out.body = stage,
            "handshake" => out.handshake = stage,
            other => return Err(format!("unknown stage '{other}' (header, body, handshake)")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn directive_forms() {
        let d = ReadTimeouts::default();
        assert_eq!(
            parse(&args("header=20-40,MinRate=500 body=20,MinRate=500"), d),
            Ok(d)
        );
        let t = parse(&args("header=10"), d).unwrap();
        assert_eq!(
            t.header,
            Some(Stage {
                initial: Duration::from_secs(10),
                max: None,
                min_rate: 0
            })
        );
        assert_eq!(t.body, d.body, "stages not named keep their value");
        let t = parse(&args("header=0 body=0"), d).unwrap();
        assert_eq!((t.header, t.body), (None, None));
        assert!(parse(&args("handshake=5"), d).is_ok());
        for bad in [
            "header",
            "header=x",
            "header=20-10,MinRate=1",
            "header=20-40",
            "header=20,MinRate=0",
            "header=20,Rate=5",
            "trailer=5",
        ] {
            assert!(parse(&args(bad), d).is_err(), "{bad}");
        }
    }

    #[test]
    fn deadlines_move_with_the_data_up_to_the_cap() {
        let t0 = Instant::now();
        let stage = ReadTimeouts::default().header.unwrap();
        let mut d = RateDeadline::new(stage, t0);
        assert_eq!(d.deadline(), t0 + Duration::from_secs(20));
        d.received(1000);
        assert_eq!(d.deadline(), t0 + Duration::from_secs(22));
        d.received(1_000_000);
        assert_eq!(d.deadline(), t0 + Duration::from_secs(40), "capped");
        let socket = Duration::from_secs(60);
        assert_eq!(
            d.next_wait(socket, t0 + Duration::from_secs(39)),
            Some((Duration::from_secs(1), true))
        );
        assert_eq!(d.next_wait(socket, t0 + Duration::from_secs(40)), None);
        let short = Duration::from_secs(5);
        assert_eq!(d.next_wait(short, t0), Some((short, false)));
        // A byte every ten seconds earns nothing near enough to keep a client alive.
        let mut slow = RateDeadline::new(stage, t0);
        slow.received(3);
        assert!(slow.deadline() < t0 + Duration::from_secs(21));
    }
}
