//! ringload: the load generator bundled with ringproxy for capacity planning.
//!
//! Not implemented yet: this binary exists so the workspace has its final shape. It refuses
//! to run rather than pretend to measure anything.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("ringload: not implemented yet; the load generator is planned work (see README)");
    ExitCode::from(2)
}
