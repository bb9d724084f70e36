#!/usr/bin/env bash
# The whole test suite on a fresh Debian 12 machine: checks the tools,
# starts what the tests need, builds once, runs everything.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }

# The spine's tests need no external service: partner systems are sample
# desks on port 0 and the bus is embedded. Services that later tests need
# (RabbitMQ, Request Tracker, Redmine, mail) are started here as they come.

if ! command -v cargo >/dev/null; then
  echo "cargo is missing: install Rust (rustup) first" >&2
  exit 1
fi

log "format"
cargo fmt --all -- --check

log "lint"
cargo clippy --all-targets --locked -- -D warnings

log "build (once, reused by every test)"
cargo build --all-targets --locked

log "tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --locked --no-fail-fast
  # nextest does not run doctests
  cargo test --doc --locked
else
  cargo test --locked --no-fail-fast
fi

log "demo"
cargo run --locked --quiet -- demo >/dev/null
echo "all green"
