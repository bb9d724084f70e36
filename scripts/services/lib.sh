# Shared helpers for scripts/services/*.sh (sourced, not run).
# Callers set SVC (a short name for messages) before sourcing.
#
# Everything the services write lives in:
#   $DESKBRIDGE_RUN_DIR  (default /run/deskbridge-test)      env files, pid files, locks, apt marker
#   $DESKBRIDGE_LOG_DIR  (default /var/log/deskbridge-test)  server logs

RUN_DIR=${DESKBRIDGE_RUN_DIR:-/run/deskbridge-test}
LOG_DIR=${DESKBRIDGE_LOG_DIR:-/var/log/deskbridge-test}
mkdir -p "$RUN_DIR" "$LOG_DIR"
chmod 755 "$RUN_DIR" "$LOG_DIR"

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}'; }
say() { printf '%s: %s\n' "$SVC" "$*"; }
die() { printf '%s: ERROR: %s\n' "$SVC" "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (installs Debian packages, binds loopback ports)"

# pkgs_installed PKG...: every package is fully installed (not half-configured).
pkgs_installed() {
  local p s
  for p in "$@"; do
    s=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) || return 1
    [ "$s" = "install ok installed" ] || return 1
  done
}

# apt_update_once PKG...: `apt-get update` at most once per machine run. Skipped when
# the marker exists (an earlier service script updated during this run), or when the
# package lists were written less than 6 hours ago and every PKG has an install
# candidate. Trap: apt sets the lists' mtime to the archive's Last-Modified, not to
# the download time, so the age is taken from the ctime (-cmin).
# Call with $RUN_DIR/apt.lock held (apt_install does).
apt_update_once() {
  local marker=$RUN_DIR/apt-updated p fresh=1
  [ -e "$marker" ] && return 0
  if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*_InRelease' -cmin -360 2>/dev/null | head -1)" ]; then
    fresh=0
  else
    for p in "$@"; do
      # no `| grep -q` under pipefail: grep quits early, apt-cache gets SIGPIPE
      case "$(apt-cache policy "$p" 2>/dev/null)" in
        *"Candidate: (none)"* | "") fresh=0; break ;;
      esac
    done
  fi
  if [ "$fresh" = 0 ]; then
    say "apt-get update (once per machine run; marker $marker)"
    apt-get update -q -o DPkg::Lock::Timeout=300 >"$LOG_DIR/apt-update.log" 2>&1 \
      || { tail -20 "$LOG_DIR/apt-update.log" >&2; die "apt-get update failed (log: $LOG_DIR/apt-update.log)"; }
  else
    say "apt lists are fresh (< 6 h) and have every package: no apt-get update"
  fi
  date -u +%FT%TZ > "$marker"
}

# apt_install PKG...: installs what is missing, serialised with the other service
# scripts (they may run in parallel) by a lock file. The caller may export
# environment for the maintainer scripts (debconf preseeding is done before).
apt_install() {
  local log=$LOG_DIR/apt-install-$SVC.log
  (
    flock -w 1800 9 || die "timed out waiting for $RUN_DIR/apt.lock"
    apt_update_once "$@"
    say "apt-get install $* (log: $log)"
    DEBIAN_FRONTEND=noninteractive timeout "${APT_INSTALL_TIMEOUT:-1500}" \
      apt-get install -y -q -o DPkg::Lock::Timeout=300 --no-install-recommends "$@" >"$log" 2>&1
  ) 9>"$RUN_DIR/apt.lock"
}

ensure_tools() {
  local missing=() t
  for t in curl flock; do command -v "$t" >/dev/null || missing+=("$t"); done
  [ ${#missing[@]} = 0 ] && return 0
  # flock is util-linux (always there on Debian); curl may be missing on a minimal image.
  command -v flock >/dev/null || die "flock (util-linux) is missing"
  apt_install curl || die "could not install curl"
}

# http_code ARGS...: the HTTP status of a curl request ("000" when nothing answers).
http_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$@" 2>/dev/null || true; }

# pid_alive PIDFILE PATTERN: the pid in PIDFILE runs and its command line matches PATTERN.
pid_alive() {
  local pid
  [ -s "$1" ] || return 1
  pid=$(cat "$1")
  [ -r "/proc/$pid/cmdline" ] || return 1
  case "$(tr '\0' ' ' < "/proc/$pid/cmdline")" in *"$2"*) return 0 ;; *) return 1 ;; esac
}

# port_owner PORT: "name(pid)" of whatever listens on 127.0.0.1:PORT, empty if none.
port_owner() {
  ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'users:(([^)]*))' | head -1 | sed 's/users:((//; s/))//'
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# stop_pidfile PIDFILE PATTERN PORT: SIGTERM the process group we started (setsid made the
# server its own group leader), wait up to 30 s, then SIGKILL it; returns once the port is free.
stop_pidfile() {
  local pidf=$1 pat=$2 port=$3 pid i
  if ! pid_alive "$pidf" "$pat"; then
    rm -f "$pidf"
    if port_open "$port"; then
      die "something not started by this script listens on 127.0.0.1:$port ($(port_owner "$port")); not touching it"
    fi
    say "not running"
    return 0
  fi
  pid=$(cat "$pidf")
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 150); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "still running after 30 s: SIGKILL"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  fi
  for i in $(seq 1 50); do port_open "$port" || break; sleep 0.2; done
  rm -f "$pidf"
  say "stopped (pid $pid)"
}

# write_env FILE: stdin (KEY=value lines) to FILE atomically.
write_env() {
  local tmp
  tmp=$(mktemp "$1.XXXXXX")
  cat > "$tmp"
  chmod 644 "$tmp"
  mv -f "$tmp" "$1"
}

# install_if_changed DEST MODE OWNER: stdin to DEST when it differs; returns 0 when changed.
install_if_changed() {
  local dest=$1 mode=$2 owner=$3 tmp
  tmp=$(mktemp)
  cat > "$tmp"
  if [ -f "$dest" ] && cmp -s "$tmp" "$dest"; then rm -f "$tmp"; return 1; fi
  install -m "$mode" -o "${owner%%:*}" -g "${owner##*:}" "$tmp" "$dest"
  rm -f "$tmp"
  return 0
}
