#!/usr/bin/env bash
# A PRIVATE RabbitMQ node: its own ports, data dir, node name and Erlang
# cookie, independent of the machine's shared broker (127.0.0.1:5672).
# Tests that kill or restart the broker use this, never the shared one.
#
# Usage: rabbitmq-private-node.sh start|stop|kill9|restart|status DIR [AMQP_PORT] [MGMT_PORT] [DIST_PORT]
#        rabbitmq-private-node.sh ctl DIR AMQP_PORT MGMT_PORT DIST_PORT ARGS...
#   start    start the node (detached) and wait until it accepts work
#   stop     clean shutdown; returns once the OS process has exited
#   kill9    SIGKILL the node (a crash); returns once it is gone
#   restart  kill9, then start (durable queues and persistent messages survive)
#   status   exit 0 when the node runs
#   ctl      rabbitmqctl ARGS on the node (set_policy, add_user, list_connections...)
# Defaults: 5673 15673 25673. Node name: dbpriv<AMQP_PORT>@localhost.
# The management plugin is off (faster start); set
# RABBITMQ_PRIVATE_MGMT=1 before the first start to have it on MGMT_PORT.
# RABBITMQ_PRIVATE_TLS_PORT=N before the first start adds an AMQPS listener
# on N, with a throwaway CA and a certificate for localhost and 127.0.0.1
# made in DIR/tls (the CA to trust: DIR/tls/ca.pem), and a client
# certificate of that CA in DIR/tls/client.p12 (password: test). With
# RABBITMQ_PRIVATE_TLS_VERIFY=1 as well, the listener refuses clients
# without such a certificate. With RABBITMQ_PRIVATE_TLS_EXTERNAL=1 too, it
# also offers the EXTERNAL mechanism (a login by the certificate alone: its
# common name is the user, who must exist: `ctl ... add_user`).
# Needs Debian's rabbitmq-server package (scripts/test.sh installs it).
#
# Traps (see /work/shared/reference/README.md):
# - Debian's /usr/sbin/rabbitmq* are su-wrappers that reset the environment
#   to the system node's: call the scripts in the server's own sbin.
# - HOME decides where the Erlang cookie lives: it is the data dir here, so
#   the private node and its rabbitmqctl share a cookie of their own.
# - /etc/rabbitmq/rabbitmq-env.conf would override the ports: point
#   RABBITMQ_CONF_ENV_FILE at an empty file.
# - Configuration keys of a plugin that is not enabled are an error at
#   start: the management keys are written only when the plugin is on.
# - await_startup fails at once until the node has registered with epmd:
#   poll it.
set -euo pipefail
CMD=${1:?usage: $0 start|stop|kill9|restart|status DIR [AMQP_PORT] [MGMT_PORT] [DIST_PORT]}
D=$(realpath -m "${2:?data dir}")
AP=${3:-5673}
MP=${4:-15673}
DP=${5:-25673}

SBIN=$(ls -d /usr/lib/rabbitmq/lib/rabbitmq_server-*/sbin 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$SBIN" ]; then
  echo "rabbitmq-server is not installed (apt-get install rabbitmq-server)" >&2
  exit 1
fi
mkdir -p "$D/mnesia" "$D/log"

export HOME="$D"
export RABBITMQ_NODENAME="dbpriv$AP@localhost"
export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
export RABBITMQ_NODE_PORT=$AP
export RABBITMQ_DIST_PORT=$DP
export RABBITMQ_MNESIA_BASE="$D/mnesia"
export RABBITMQ_LOG_BASE="$D/log"
export RABBITMQ_PID_FILE="$D/rabbit.pid"
export RABBITMQ_CONFIG_FILE="$D/rabbitmq.conf"
export RABBITMQ_ADVANCED_CONFIG_FILE="$D/advanced.config"
export RABBITMQ_ENABLED_PLUGINS_FILE="$D/enabled_plugins"
export RABBITMQ_CONF_ENV_FILE="$D/rabbitmq-env.conf"
export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
export ERL_EPMD_ADDRESS=127.0.0.1

TLS_PORT=${RABBITMQ_PRIVATE_TLS_PORT:-}
if [ -n "$TLS_PORT" ] && [ ! -f "$D/tls/server.pem" ]; then
  mkdir -p "$D/tls"
  (
    cd "$D/tls"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
      -keyout ca.key -out ca.pem -days 30 -subj "/CN=deskbridge test CA" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
      -keyout server.key -out server.csr -subj "/CN=localhost" 2>/dev/null
    printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" "basicConstraints=CA:FALSE" \
      "extendedKeyUsage=serverAuth" > server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
      -out server.pem -days 30 -extfile server.ext 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
      -keyout client.key -out client.csr -subj "/CN=deskbridge" 2>/dev/null
    printf '%s\n' "basicConstraints=CA:FALSE" "extendedKeyUsage=clientAuth" > client.ext
    openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
      -out client.pem -days 30 -extfile client.ext 2>/dev/null
    openssl pkcs12 -export -in client.pem -inkey client.key -out client.p12 -passout pass:test
  )
fi

if [ ! -f "$D/rabbitmq.conf" ]; then
  {
    echo "listeners.tcp.default = 127.0.0.1:$AP"
    echo "log.console = false"
    echo "log.file.level = info"
    if [ -n "$TLS_PORT" ]; then
      echo "listeners.ssl.default = 127.0.0.1:$TLS_PORT"
      echo "ssl_options.cacertfile = $D/tls/ca.pem"
      echo "ssl_options.certfile = $D/tls/server.pem"
      echo "ssl_options.keyfile = $D/tls/server.key"
      if [ "${RABBITMQ_PRIVATE_TLS_EXTERNAL:-0}" = 1 ]; then
        echo "auth_mechanisms.1 = PLAIN"
        echo "auth_mechanisms.2 = EXTERNAL"
        echo "ssl_cert_login_from = common_name"
      fi
      if [ "${RABBITMQ_PRIVATE_TLS_VERIFY:-0}" = 1 ]; then
        echo "ssl_options.verify = verify_peer"
        echo "ssl_options.fail_if_no_peer_cert = true"
      else
        echo "ssl_options.verify = verify_none"
        echo "ssl_options.fail_if_no_peer_cert = false"
      fi
    fi
    if [ "${RABBITMQ_PRIVATE_MGMT:-0}" = 1 ]; then
      echo "management.tcp.ip = 127.0.0.1"
      echo "management.tcp.port = $MP"
    fi
  } > "$D/rabbitmq.conf"
  : > "$D/rabbitmq-env.conf"
  echo '[].' > "$D/advanced.config"
  plugins=()
  [ "${RABBITMQ_PRIVATE_MGMT:-0}" = 1 ] && plugins+=(rabbitmq_management)
  [ -n "$TLS_PORT" ] && [ "${RABBITMQ_PRIVATE_TLS_EXTERNAL:-0}" = 1 ] && plugins+=(rabbitmq_auth_mechanism_ssl)
  (IFS=,; echo "[${plugins[*]}].") > "$D/enabled_plugins"
fi

ctl() { "$SBIN/rabbitmqctl" -n "$RABBITMQ_NODENAME" "$@"; }
pid() { cat "$RABBITMQ_PID_FILE" 2>/dev/null || true; }
alive() { local p; p=$(pid); [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }

wait_up() {
  for _ in $(seq 1 240); do
    ctl -q --timeout 10 await_startup >/dev/null 2>&1 && return 0
    # The node writes its pid file early; gone again means it failed to
    # boot (a port in use, say): say why instead of waiting a minute.
    if [ -s "$RABBITMQ_PID_FILE" ] && ! alive; then
      echo "the node exited during start; errors in $D/log:" >&2
      grep -ihE "error|eaddrinuse|failed" "$D"/log/*.log 2>/dev/null | head -n 15 >&2 || true
      return 1
    fi
    sleep 0.25
  done
  ctl await_startup
}

case "$CMD" in
  start)
    if alive && ctl -q status >/dev/null 2>&1; then
      echo "already running pid=$(pid)"
      exit 0
    fi
    rm -f "$RABBITMQ_PID_FILE"
    t0=$(date +%s.%N)
    "$SBIN/rabbitmq-server" -detached
    wait_up
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN{printf "started in %.1fs\n", b-a}'
    echo "node=$RABBITMQ_NODENAME pid=$(pid) amqp=127.0.0.1:$AP" ;;
  stop)
    p=$(pid)
    if [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then
      ctl shutdown >/dev/null 2>&1 || kill -9 "$p" 2>/dev/null || true
      while kill -0 "$p" 2>/dev/null; do sleep 0.1; done
      echo "stopped $p"
    else
      echo "not running"
    fi ;;
  kill9)
    p=$(pid)
    if [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then
      kill -9 "$p"
      while kill -0 "$p" 2>/dev/null; do sleep 0.05; done
      echo "killed -9 $p"
    else
      echo "not running"
    fi ;;
  restart)
    "$0" kill9 "$D" "$AP" "$MP" "$DP"
    "$0" start "$D" "$AP" "$MP" "$DP" ;;
  ctl)
    shift 5
    ctl -q "$@" ;;
  status)
    if alive; then ctl -q status >/dev/null 2>&1 && echo "running pid=$(pid)" && exit 0; fi
    echo "not running"
    exit 1 ;;
  *) echo "unknown command $CMD" >&2; exit 2 ;;
esac
