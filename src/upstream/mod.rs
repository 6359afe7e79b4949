//! The member side of a request: connections to members and the protocol spoken on them.
//!
//! [`pool`] keeps idle member connections per core, keyed by balancer and member.

pub mod pool;
