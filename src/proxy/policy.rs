//! When a request goes again, and where: Apache's failover rules and ringproxy's one
//! addition, as decisions over a typed outcome. No I/O here (the attempt loop does it), so
//! each rule is a row in the table test below.
//!
//! - A failed connect: nothing reached the member, so any method moves to another member
//!   (Apache's failover, up to `maxattempts`).
//! - A pooled connection the member had closed while it was idle, found before the member
//!   saw the request: the same member again, on a fresh connection.
//! - ringproxy's own: a request still whole on the proxy (its body came with the head)
//!   whose method may be repeated (RFC 9110 idempotent) moves to one other member when its
//!   fresh connection closed or reset before any response byte. Once per request.
//! - Never after a timeout: a member that is slow is still running the request, and
//!   sending it again would multiply its load (Apache answers 504 once).

use crate::admin::stats::Retry;
use crate::error::{ErrorKind, ProxyError};

/// How one attempt ended, as far as retrying goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The connect failed or timed out.
    ConnectFailed,
    /// The connection ended before the member saw the request; `pooled`: it came from the
    /// pool.
    Stale { pooled: bool },
    /// Anything else; `closed_early`: the connection was closed or reset before any
    /// response byte reached the client (see [`closed_early`]).
    Failed { closed_early: bool },
}

/// What the attempt loop does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// The same member on a new connection.
    FreshConnection,
    /// Another member of the balancer (the reason is counted in metrics).
    OtherMember(Retry),
    /// Answer with this attempt's error.
    GiveUp,
}

/// One request's retry state.
#[derive(Clone, Copy, Debug)]
pub struct Retries {
    /// Moves left beyond Apache's (0 or 1).
    idempotent: u8,
}

impl Retries {
    /// `replayable`: the whole request is still on the proxy; `idempotent`: its method may
    /// be repeated.
    pub fn new(replayable: bool, idempotent: bool) -> Retries {
        Retries {
            idempotent: u8::from(replayable && idempotent),
        }
    }

    pub fn next(&mut self, outcome: Outcome) -> Next {
        match outcome {
            Outcome::ConnectFailed => Next::OtherMember(Retry::Connect),
            Outcome::Stale { pooled: true } => Next::FreshConnection,
            Outcome::Stale { pooled: false } | Outcome::Failed { closed_early: true } => {
                if self.idempotent > 0 {
                    self.idempotent -= 1;
                    Next::OtherMember(Retry::Idempotent)
                } else {
                    Next::GiveUp
                }
            }
            Outcome::Failed {
                closed_early: false,
            } => Next::GiveUp,
        }
    }
}

/// Whether `e` ended the attempt by a closed or reset member connection before any
/// response byte reached the client (never a timeout).
pub fn closed_early(e: &ProxyError, response_started: bool) -> bool {
    !response_started
        && matches!(
            e.kind,
            ErrorKind::BackendClosed(_) | ErrorKind::BackendIo(..)
        )
}

/// After `tried` members failed: whether another may be tried (`maxattempts`, which
/// Apache sets to the number of members less one unless configured).
pub fn another_member(tried: usize, maxattempts: usize) -> bool {
    tried <= maxattempts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions() {
        use Next::*;
        use Outcome::*;
        let closed = Failed { closed_early: true };
        let late = Failed {
            closed_early: false,
        };
        // (replayable, idempotent, outcomes in order, expected decisions)
        let cases: &[(bool, bool, &[Outcome], &[Next])] = &[
            // A failed connect moves on whatever the method (POST included).
            (
                false,
                false,
                &[ConnectFailed],
                &[OtherMember(Retry::Connect)],
            ),
            // A stale pooled connection: a fresh one, as often as it happens.
            (false, false, &[Stale { pooled: true }], &[FreshConnection]),
            // A fresh connection closed before it saw the request: once, when repeatable.
            (
                true,
                true,
                &[Stale { pooled: false }, Stale { pooled: false }],
                &[OtherMember(Retry::Idempotent), GiveUp],
            ),
            (true, false, &[Stale { pooled: false }], &[GiveUp]),
            (false, true, &[Stale { pooled: false }], &[GiveUp]),
            (
                true,
                true,
                &[closed, closed],
                &[OtherMember(Retry::Idempotent), GiveUp],
            ),
            // Timeouts and anything after the response began: never again.
            (true, true, &[late], &[GiveUp]),
            // The one extra move is shared by both kinds of early close.
            (
                true,
                true,
                &[ConnectFailed, closed, Stale { pooled: false }],
                &[
                    OtherMember(Retry::Connect),
                    OtherMember(Retry::Idempotent),
                    GiveUp,
                ],
            ),
        ];
        for (replayable, idempotent, outcomes, want) in cases {
            let mut r = Retries::new(*replayable, *idempotent);
            let got: Vec<Next> = outcomes.iter().map(|o| r.next(*o)).collect();
            assert_eq!(&got, want, "{replayable} {idempotent} {outcomes:?}");
        }
    }

    #[test]
    fn early_close_is_a_close_or_reset_before_the_response() {
        let closed = ProxyError::new(ErrorKind::BackendClosed("m".into()));
        let timeout = ProxyError::new(ErrorKind::BackendTimeout("m".into()));
        assert!(closed_early(&closed, false));
        assert!(!closed_early(&closed, true));
        assert!(!closed_early(&timeout, false));
        assert!(another_member(1, 1) && !another_member(2, 1));
    }
}
