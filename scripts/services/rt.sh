#!/usr/bin/env bash
# Request Tracker 5 (Debian 12's request-tracker5, 5.0.3) for the live tests.
#
# Usage: scripts/services/rt.sh [start|stop|status|restart]     (default: start)
#   start    install if missing (Debian packages, SQLite, no Apache), start the
#            standalone server (Starlet) on 127.0.0.1:$RT_PORT in the background,
#            wait for REST2, ensure the API user, its token and the test queue, and
#            write $DESKBRIDGE_RUN_DIR/rt.env. Seconds when already running.
#   stop     stop the server this script started
#   status   exit 0 when REST2 answers; prints the env file
#
# rt.env (KEY=value lines, sourceable by sh):
#   RT_URL=http://127.0.0.1:8081          web base
#   RT_REST_URL=http://127.0.0.1:8081/REST/2.0
#   RT_USER=deskbridge  RT_PASSWORD=...   basic auth (privileged user, SuperUser right)
#   RT_TOKEN=...                          header "Authorization: token $RT_TOKEN"
#   RT_QUEUE=deskbridge                   a queue for the tests
#   RT_ROOT_USER=root  RT_ROOT_PASSWORD=... the initial admin
#
# Traps (from /work/shared/reference and found here):
# - rt-server is not on PATH: /usr/share/request-tracker5/libexec/rt-server; it is a
#   Plack::Runner, Starlet comes from rt5-standalone. It uses 400-640 MB.
# - The install is non-interactive only with the debconf answers below (dbconfig-common
#   creates the SQLite database; the initial root password is set then and only then).
# - REST2 in 5.0.3 has no endpoint to create auth tokens: the token is made through RT's
#   Perl API, and RT stores only its hash, so it is shown once: a new one is made (and
#   the old ones of the user removed) whenever the env file has none that works.
# - The server runs as root: it reads RT_SiteConfig.d (root:www-data 640) and writes the
#   SQLite database.
# - A change of the site config needs a restart: `start` restarts when it rewrote it.
set -euo pipefail
SVC=rt
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"

RT_PORT=${RT_PORT:-8081}
RT_ROOT_PW=${RT_ROOT_PW:-rtpassword}
RT_API_USER=${RT_API_USER:-deskbridge}
RT_API_PW=${RT_API_PW:-deskbridge-pw}
RT_TEST_QUEUE=${RT_TEST_QUEUE:-deskbridge}
START_TIMEOUT=${RT_START_TIMEOUT:-180}
PKGS=(request-tracker5 rt5-db-sqlite rt5-standalone)
RT_SERVER=/usr/share/request-tracker5/libexec/rt-server
RT_LIB=/usr/share/request-tracker5/lib
SITECONF=/etc/request-tracker5/RT_SiteConfig.d/90-deskbridge-test.pm
PIDF=$RUN_DIR/rt.pid
ENVF=$RUN_DIR/rt.env
LOG=$LOG_DIR/rt-server.log
BASE=http://127.0.0.1:$RT_PORT
REST=$BASE/REST/2.0

rest_up() { [ "$(http_code -u "root:$RT_ROOT_PW" "$REST/rt")" = 200 ]; }

install_rt() {
  if pkgs_installed "${PKGS[@]}"; then return 1; fi
  say "installing ${PKGS[*]}"
  debconf-set-selections <<DEB
request-tracker5 request-tracker5/rtname string deskbridge.test
request-tracker5 request-tracker5/organization string deskbridge.test
request-tracker5 request-tracker5/correspondaddress string rt@localhost
request-tracker5 request-tracker5/commentaddress string rt-comment@localhost
request-tracker5 request-tracker5/webbaseurl string $BASE
request-tracker5 request-tracker5/webpath string
request-tracker5 request-tracker5/handle-siteconfig-permissions boolean true
request-tracker5 request-tracker5/install-cronjobs boolean false
request-tracker5 request-tracker5/initial-root-password password $RT_ROOT_PW
request-tracker5 request-tracker5/dbconfig-install boolean true
request-tracker5 request-tracker5/database-type select sqlite3
request-tracker5 request-tracker5/db/dbname string rtdb
request-tracker5 request-tracker5/db/basepath string /var/lib/dbconfig-common/sqlite3/request-tracker5
rt5-db-sqlite rt5-db-sqlite/available boolean true
DEB
  apt_install "${PKGS[@]}" || { tail -30 "$LOG_DIR/apt-install-$SVC.log" >&2; die "apt-get install failed (log: $LOG_DIR/apt-install-$SVC.log)"; }
  pkgs_installed "${PKGS[@]}" || die "packages not fully installed after apt-get (see $LOG_DIR/apt-install-$SVC.log)"
  return 0
}

# Returns 0 when the file changed.
write_siteconfig() {
  install_if_changed "$SITECONF" 640 root:www-data <<CONF
# Written by deskbridge scripts/services/rt.sh: standalone server on loopback.
Set(\$WebDomain, '127.0.0.1');
Set(\$WebPort, $RT_PORT);
Set(\$WebPath, '');
Set(\$WebBaseURL, '$BASE');
Set(\$CanonicalizeRedirectURLs, 1);
Set(\$LogToSyslog, undef);
Set(\$LogToSTDERR, 'warning');
# Outgoing mail goes to /var/lib/request-tracker5/*.mbox instead of an MTA.
Set(\$MailCommand, 'mbox');
1;
CONF
}

start_server() {
  if port_open "$RT_PORT"; then
    die "127.0.0.1:$RT_PORT is taken by $(port_owner "$RT_PORT") and it is not an RT answering root:\$RT_ROOT_PW"
  fi
  say "starting rt-server (Starlet) on 127.0.0.1:$RT_PORT (log: $LOG)"
  echo "=== $(date -u +%FT%TZ) started by $0" >> "$LOG"
  setsid nohup "$RT_SERVER" --server Starlet --host 127.0.0.1 --port "$RT_PORT" \
    --max-workers 2 >>"$LOG" 2>&1 </dev/null &
  echo $! > "$PIDF"
  local deadline=$((SECONDS + START_TIMEOUT))
  until rest_up; do
    if ! kill -0 "$(cat "$PIDF")" 2>/dev/null; then
      tail -30 "$LOG" >&2
      die "rt-server exited during start (log: $LOG)"
    fi
    if [ $SECONDS -ge $deadline ]; then
      tail -30 "$LOG" >&2
      stop_pidfile "$PIDF" rt-server "$RT_PORT" >/dev/null 2>&1 || true
      die "REST2 at $REST/rt did not answer within ${START_TIMEOUT}s (log: $LOG)"
    fi
    sleep 0.5
  done
}

# Ensures the API user (privileged, SuperUser), the test queue and, when asked, a new
# token (printed on stdout; older tokens of that user with our description are removed).
rt_setup() {
  perl -I"$RT_LIB" -e '
    use strict; use warnings;
    use RT; RT::LoadConfig(); RT::Init();
    my ($name, $pw, $qname, $want_token) = @ARGV;
    my $sys = RT->SystemUser;
    my $u = RT::User->new($sys); $u->Load($name);
    unless ($u->id) {
      my ($ok, $msg) = $u->Create(Name => $name, Password => $pw, RealName => "deskbridge tests",
        EmailAddress => "$name\@localhost", Privileged => 1);
      die "create user $name: $msg\n" unless $ok;
      print STDERR "created user $name\n";
    }
    $u->SetDisabled(0) if $u->Disabled;
    $u->SetPrivileged(1) unless $u->Privileged;
    unless ($u->IsPassword($pw)) { my ($ok, $msg) = $u->SetPassword($pw); die "password: $msg\n" unless $ok; }
    unless ($u->PrincipalObj->HasRight(Right => "SuperUser", Object => RT->System)) {
      my ($ok, $msg) = $u->PrincipalObj->GrantRight(Right => "SuperUser", Object => RT->System);
      die "grant SuperUser: $msg\n" unless $ok;
    }
    my $q = RT::Queue->new($sys); $q->Load($qname);
    unless ($q->id) {
      my ($ok, $msg) = $q->Create(Name => $qname, Description => "deskbridge live tests");
      die "create queue $qname: $msg\n" unless $ok;
      print STDERR "created queue $qname\n";
    }
    # The custom fields a service company keeps on its tickets: where
    # deskbridge puts a ticket'"'"'s site, equipment and serial number, and its
    # partner'"'"'s ticket id and status, and in the middle of a chain the
    # client'"'"'s (the company that handed it the work).
    # (In this order, so that a new instance gives them the same ids.)
    my %cfs = (SITE => "Site", EQUIPMENT => "Equipment", SERIAL => "Serial number",
      PARTNER_TICKET => "Partner ticket", PARTNER_STATUS => "Partner status",
      UPSTREAM_TICKET => "Client ticket", UPSTREAM_STATUS => "Client status");
    for my $key (qw(EQUIPMENT SERIAL SITE PARTNER_TICKET PARTNER_STATUS UPSTREAM_TICKET UPSTREAM_STATUS)) {
      my $cf = RT::CustomField->new($sys);
      $cf->LoadByName(Name => $cfs{$key}, LookupType => "RT::Queue-RT::Ticket");
      unless ($cf->id) {
        my ($ok, $msg) = $cf->Create(Name => $cfs{$key}, Type => "FreeformSingle",
          LookupType => "RT::Queue-RT::Ticket");
        die "create custom field $cfs{$key}: $msg\n" unless $ok;
        print STDERR "created custom field $cfs{$key}\n";
      }
      unless ($cf->IsAdded($q->id)) {
        my ($ok, $msg) = $cf->AddToObject($q);
        die "add custom field $cfs{$key} to $qname: $msg\n" unless $ok;
      }
      print "CF_$key=" . $cf->id . "\n";
    }
    if ($want_token) {
      my $old = RT::AuthTokens->new($sys);
      $old->LimitOwner(VALUE => $u->id);
      while (my $t = $old->Next) { $t->Delete if ($t->Description // "") eq "deskbridge tests"; }
      my $t = RT::AuthToken->new($sys);
      my ($ok, $msg, $tok) = $t->Create(Owner => $u->id, Description => "deskbridge tests");
      die "create token: $msg\n" unless $ok && $tok;
      print "TOKEN=$tok\n";
    }
  ' "$RT_API_USER" "$RT_API_PW" "$RT_TEST_QUEUE" "$1"
}

env_ok() {
  [ -s "$ENVF" ] || return 1
  local tok user pw queue
  tok=$(sed -n 's/^RT_TOKEN=//p' "$ENVF"); user=$(sed -n 's/^RT_USER=//p' "$ENVF")
  pw=$(sed -n 's/^RT_PASSWORD=//p' "$ENVF"); queue=$(sed -n 's/^RT_QUEUE=//p' "$ENVF")
  [ "$user" = "$RT_API_USER" ] && [ "$pw" = "$RT_API_PW" ] && [ "$queue" = "$RT_TEST_QUEUE" ] || return 1
  grep -qx "RT_URL=$BASE" "$ENVF" || return 1
  grep -q "^RT_CF_UPSTREAM_STATUS=." "$ENVF" || return 1
  [ -n "$tok" ] && [ "$(http_code -H "Authorization: token $tok" "$REST/queue/$RT_TEST_QUEUE")" = 200 ] \
    && [ "$(http_code -u "$user:$pw" "$REST/queue/$RT_TEST_QUEUE")" = 200 ]
}

ensure_credentials() {
  if env_ok; then say "credentials in $ENVF work"; return; fi
  say "setting up API user '$RT_API_USER', queue '$RT_TEST_QUEUE' and a token (RT Perl API)"
  local out tok cf_site cf_equipment cf_serial cf_pticket cf_pstatus cf_uticket cf_ustatus
  out=$(rt_setup 1 2>"$LOG_DIR/rt-setup.log") || { cat "$LOG_DIR/rt-setup.log" >&2; die "API user/token setup failed"; }
  tok=$(printf '%s\n' "$out" | sed -n 's/^TOKEN=//p' | tail -1)
  cf_site=$(printf '%s\n' "$out" | sed -n 's/^CF_SITE=//p' | tail -1)
  cf_equipment=$(printf '%s\n' "$out" | sed -n 's/^CF_EQUIPMENT=//p' | tail -1)
  cf_serial=$(printf '%s\n' "$out" | sed -n 's/^CF_SERIAL=//p' | tail -1)
  cf_pticket=$(printf '%s\n' "$out" | sed -n 's/^CF_PARTNER_TICKET=//p' | tail -1)
  cf_pstatus=$(printf '%s\n' "$out" | sed -n 's/^CF_PARTNER_STATUS=//p' | tail -1)
  cf_uticket=$(printf '%s\n' "$out" | sed -n 's/^CF_UPSTREAM_TICKET=//p' | tail -1)
  cf_ustatus=$(printf '%s\n' "$out" | sed -n 's/^CF_UPSTREAM_STATUS=//p' | tail -1)
  [ -n "$tok" ] && [ -n "$cf_site" ] && [ -n "$cf_equipment" ] && [ -n "$cf_serial" ] \
    && [ -n "$cf_pticket" ] && [ -n "$cf_pstatus" ] && [ -n "$cf_uticket" ] && [ -n "$cf_ustatus" ] \
    || { cat "$LOG_DIR/rt-setup.log" >&2; die "the RT setup printed no token or custom field ids"; }
  write_env "$ENVF" <<ENV
RT_URL=$BASE
RT_REST_URL=$REST
RT_USER=$RT_API_USER
RT_PASSWORD=$RT_API_PW
RT_TOKEN=$tok
RT_QUEUE=$RT_TEST_QUEUE
RT_ROOT_USER=root
RT_ROOT_PASSWORD=$RT_ROOT_PW
RT_CF_SITE=$cf_site
RT_CF_EQUIPMENT=$cf_equipment
RT_CF_SERIAL=$cf_serial
RT_CF_PARTNER_TICKET=$cf_pticket
RT_CF_PARTNER_STATUS=$cf_pstatus
RT_CF_UPSTREAM_TICKET=$cf_uticket
RT_CF_UPSTREAM_STATUS=$cf_ustatus
ENV
  env_ok || die "the new credentials in $ENVF do not work against $REST"
}

cmd_start() {
  local t0 t1 t2 t3 installed=0 changed=0 started=0
  t0=$(now)
  ensure_tools
  install_rt && installed=1
  t1=$(now)
  write_siteconfig && changed=1
  if pid_alive "$PIDF" rt-server && [ $changed = 1 ]; then
    say "site config changed: restarting"
    stop_pidfile "$PIDF" rt-server "$RT_PORT"
  fi
  t1b=$(now)
  if rest_up; then
    pid_alive "$PIDF" rt-server && say "already running (pid $(cat "$PIDF"))" \
      || say "already running on $RT_PORT (not started by this script)"
  else
    start_server; started=1
  fi
  t2=$(now)
  ensure_credentials
  t3=$(now)
  say "ready at $REST (credentials: $ENVF)"
  say "timings: install $( [ $installed = 1 ] && echo "$(awk -v a=$t0 -v b=$t1 'BEGIN{printf "%.1f",b-a}') s" || echo "skipped (installed)"), start $( [ $started = 1 ] && echo "$(awk -v a=$t1b -v b=$t2 'BEGIN{printf "%.1f",b-a}') s" || echo "skipped (running)"), credentials $(awk -v a=$t2 -v b=$t3 'BEGIN{printf "%.1f",b-a}') s, total $(since "$t0") s"
}

cmd_status() {
  if rest_up; then
    say "running on $REST$(pid_alive "$PIDF" rt-server && echo " (pid $(cat "$PIDF"))")"
    [ -s "$ENVF" ] && sed 's/^/  /' "$ENVF"
    return 0
  fi
  say "not running"
  return 1
}

case "${1:-start}" in
  start) cmd_start ;;
  stop) stop_pidfile "$PIDF" rt-server "$RT_PORT" ;;
  restart) stop_pidfile "$PIDF" rt-server "$RT_PORT"; cmd_start ;;
  status) cmd_status ;;
  *) echo "usage: $0 [start|stop|status|restart]" >&2; exit 2 ;;
esac
