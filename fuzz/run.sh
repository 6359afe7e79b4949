#!/usr/bin/env bash
# Builds every fuzz target with libFuzzer's coverage instrumentation and runs each for
# SECONDS (default 60), starting from its committed seed corpus (corpus/TARGET) plus what
# earlier runs on this machine found (work/TARGET, not committed). A crash, a panic or an
# input slower than 10 s stops the run with a non-zero exit and leaves the input in
# artifacts/TARGET/; reproduce it with `target/TRIPLE/release/TARGET artifacts/TARGET/FILE`.
#
#   bash fuzz/run.sh [SECONDS] [TARGET ...]
#
# Stable Rust: the instrumentation flags below are stable codegen options, and no
# sanitizer is used (the code under test is safe Rust; panics and overflows are the
# findings). `cargo fuzz run TARGET` works too, with a nightly toolchain.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-60}
shift || true
triple=$(rustc -vV | sed -n 's/^host: //p')
# --target keeps these flags off build scripts and proc macros, which must not be
# instrumented (cargo-fuzz does the same).
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing"
cargo build --release --locked --target "$triple" --bins
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(ls fuzz_targets | sed 's/\.rs$//')
fi
for t in "${targets[@]}"; do
  mkdir -p "work/$t" "artifacts/$t"
  echo "== fuzz $t (${secs}s)"
  status=0
  "target/$triple/release/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="artifacts/$t/" -print_final_stats=1 "work/$t" "corpus/$t" \
    >"work/$t.log" 2>&1 || status=$?
  # The end of the fuzzer's log: executions, coverage, and any finding.
  grep -E '^(#[0-9]+[[:space:]]+DONE|Done|stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+==|thread .* panicked|SUMMARY)' "work/$t.log" || true
  if [ "$status" -ne 0 ]; then
    tail -n 40 "work/$t.log" >&2
    echo "fuzz target $t failed (exit $status); input in fuzz/artifacts/$t/" >&2
    ls -l "artifacts/$t" >&2 || true
    exit 1
  fi
done
echo "fuzz: ${#targets[@]} targets ran ${secs}s each with no finding"
