//! The README's first command: ringproxy (embedded example config, two built-in demo
//! backends, all on loopback) driven by ringload for a few seconds, with the latency tables.

use std::time::Duration;

use ringproxy::runtime::{DriverChoice, RunOptions};

use crate::engine::{self, LoadSpec};
use crate::report;
use crate::target::{RequestSpec, Target};

pub fn run(seconds: u64) -> Result<(), String> {
    // One proxy worker (pinned to the first core by the config default) and one load
    // thread on the last core, so the two do not share a core where there are two.
    let demo = ringproxy::demo::start(
        0,
        RunOptions {
            workers: Some(1),
            driver: ringproxy::runtime::driver_from_env(),
            hold_accepts: false,
        },
    )?;
    let addr = demo.server.addrs[0];
    println!("ringload demo: ringproxy on http://{addr}/ in front of two demo backends");
    println!(
        "({} and {}, loadfactor 5:1)\n",
        demo.backends[0], demo.backends[1]
    );
    let url = format!("http://{addr}/hello");
    let target = Target::new(&url, &RequestSpec::default()).map_err(|e| e.to_string())?;
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let secs = Duration::from_secs(seconds.max(1));
    let mut spec = LoadSpec {
        targets: vec![target],
        connections: 32,
        max_connections: 32,
        threads: 1,
        duration: secs,
        requests: None,
        rate: None,
        pipeline: 1,
        warmup: Duration::from_millis(500),
        timeout: Duration::from_secs(5),
        driver: DriverChoice::Auto,
        pin: cores.len() > 1,
        cpus: cores.last().map(|c| vec![c.id]).unwrap_or_default(),
        progress: true,
    };
    let closed = engine::run(&spec)?;
    print!(
        "{}",
        report::table(
            &closed,
            &format!(
                "closed loop, {} connections, {}s:",
                spec.connections, seconds
            )
        )
    );
    // Half the closed-loop throughput, paced: the latency a service sees at that load.
    let rate = (closed.rps() / 2.0).max(100.0);
    spec.rate = Some(rate);
    // Paced sends wait on a millisecond timer, so an open loop needs more connections in
    // flight than a closed one at the same rate: let the pool grow rather than send late.
    spec.max_connections = 64;
    let open = engine::run(&spec)?;
    println!();
    print!(
        "{}",
        report::table(
            &open,
            &format!("open loop at {rate:.0} req/s (half of the above), {seconds}s:")
        )
    );
    if open.late > 0 {
        println!(
            "(Late sends: the machine was too busy to send some requests on time; an open loop counts them from when they were due, so their delay is in the latencies.)"
        );
    }
    // The demo's proxy stops with the demo: the hint names what to start first.
    println!(
        "\nNext: start ringproxy on your own file (`target/release/ringproxy -f lb.conf`), then\n`ringload --slo 'p99<5ms' http://127.0.0.1:PORT/` finds the highest rate that keeps p99 under 5 ms."
    );
    demo.server.shutdown();
    demo.server.join();
    Ok(())
}
