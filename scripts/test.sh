#!/usr/bin/env bash
# The whole test suite on a fresh Debian 12 machine: checks the tools,
# starts what the tests need, builds once, runs everything.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }

# Partner systems in most tests are sample desks on port 0. The RabbitMQ
# tests need a broker on 127.0.0.1:5672 (guest/guest): started here when
# none answers, installed from Debian's packages when missing. The REST
# tests need Redmine 5 on 127.0.0.1:3000 (scripts/services/redmine.sh) and
# Request Tracker 5 on 127.0.0.1:8081 (scripts/services/rt.sh) and
# django-helpdesk 2.6 on 127.0.0.1:8082 (scripts/services/django-helpdesk.sh).

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

ensure_rabbitmq() {
  if port_open 5672; then echo "rabbitmq: already on 127.0.0.1:5672"; return; fi
  command -v rabbitmq-server >/dev/null || apt_install rabbitmq-server
  mkdir -p /etc/rabbitmq
  [ -f /etc/rabbitmq/rabbitmq.conf ] || printf 'listeners.tcp.default = 127.0.0.1:5672\nloopback_users.guest = true\n' > /etc/rabbitmq/rabbitmq.conf
  export ERL_EPMD_ADDRESS=127.0.0.1
  rabbitmq-server -detached
  # await_startup fails at once until the node registers with epmd: poll.
  for _ in $(seq 1 120); do
    rabbitmqctl -q --timeout 60 await_startup >/dev/null 2>&1 && break
    sleep 0.5
  done
  rabbitmqctl -q await_startup
  echo "rabbitmq: started"
}

if ! command -v cargo >/dev/null; then
  echo "cargo is missing: install Rust (rustup) first" >&2
  exit 1
fi

log "services"
ensure_rabbitmq
# The amqps test's private node makes a throwaway CA with openssl.
command -v openssl >/dev/null || apt_install openssl
# Redmine 5 for tests/suite/rest_redmine.rs (installed from Debian's packages when
# missing); credentials in /run/deskbridge-test/redmine.env.
bash scripts/services/redmine.sh start
# Request Tracker 5 for tests/suite/rest_rt.rs (installed from Debian's packages
# when missing); credentials in /run/deskbridge-test/rt.env.
bash scripts/services/rt.sh start
# django-helpdesk 2.6 for tests/suite/rest_djhd.rs (a venv from PyPI and a generated
# Django site when missing); credentials in /run/deskbridge-test/django-helpdesk.env.
bash scripts/services/django-helpdesk.sh start
# Mail for tests/suite/mail.rs: dovecot-imapd and python3-aiosmtpd from Debian's
# packages; each test starts its own private SMTP + IMAP pair on free
# loopback ports (no system MTA, so nothing competes for port 25).
bash scripts/services/mail.sh start

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
