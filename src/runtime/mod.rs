//! What runs the proxy, apart from what it does with a request: one pinned thread per core
//! with its own event loop ([`driver`], [`thread`]), its listeners ([`accept`]),
//! configuration generations and reload ([`generation`], [`server`]), and the per-thread
//! machinery every connection uses: coarse timers, buffer pools, busy polling, drain and
//! shutdown signals.

pub mod accept;
pub mod blocking;
pub mod buffer;
pub mod busypoll;
pub mod dns;
pub mod driver;
pub mod generation;
pub mod server;
pub mod shutdown;
pub mod slots;
pub mod thread;
pub mod timer;

pub use driver::{driver_from_env, run_local, uring_setup_from_env, DriverChoice, UringSetup};
pub use generation::{CoreGen, Generations, Shared};
pub use server::{start, ReloadError, RunOptions, Server};
pub use thread::Thread;
