#!/usr/bin/env bash
# Redmine 5 (Debian 12's redmine, 5.0.4) for the live tests.
#
# Usage: scripts/services/redmine.sh [start|stop|status|restart]     (default: start)
#   start    install if missing (Debian packages, SQLite, no Apache/Passenger), start
#            WEBrick through rackup on 127.0.0.1:$REDMINE_PORT in the background as
#            www-data, wait until it answers, switch the REST API on, make sure the
#            default trackers/statuses/priorities and the test project exist, and
#            write $DESKBRIDGE_RUN_DIR/redmine.env. Seconds when already running.
#   stop     stop the server this script started
#   status   exit 0 when Redmine answers; prints the env file
#
# redmine.env (KEY=value lines, sourceable by sh):
#   REDMINE_URL=http://127.0.0.1:3000
#   REDMINE_API_KEY=...            header "X-Redmine-API-Key: $REDMINE_API_KEY" (admin)
#   REDMINE_PROJECT=deskbridge     identifier of a project with issue tracking and every tracker
#   REDMINE_USER=admin  REDMINE_PASSWORD=admin   basic auth works too
#
# Traps (from /work/shared/reference and found here):
# - ruby3.1 in bookworm ships bundler 2.3.27 as a default gem; that bundler does not see
#   Debian's rubygems-integration gems, so the package's postinst (`bundle install
#   --local`) fails ("Could not find racc-1.6.2.gem"). BUNDLER_VERSION must name
#   Debian's ruby-bundler (2.3.15) around the install and around every bundle call.
# - `rails server` wants to write /usr/share/redmine/tmp and finds no Rack server:
#   rackup with WEBrick instead, added to the bundle through Gemfile.local.
# - REST is off by default; admin has must_change_passwd set: both changed with
#   `rails runner` (about 5 s, only when the env file has no working key).
# - An invalid status_id in an update answers 204 and changes nothing.
set -euo pipefail
SVC=redmine
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"

RM_PORT=${REDMINE_PORT:-3000}
RM_TEST_PROJECT=${REDMINE_TEST_PROJECT:-deskbridge}
START_TIMEOUT=${REDMINE_START_TIMEOUT:-180}
PKGS=(redmine redmine-sqlite)
RM_DIR=/usr/share/redmine
PIDF=$RUN_DIR/redmine.pid
RACK_PIDF=/var/cache/redmine/default/tmp/deskbridge-server.pid
ENVF=$RUN_DIR/redmine.env
LOG=$LOG_DIR/redmine-server.log
BASE=http://127.0.0.1:$RM_PORT

# Debian's ruby-bundler version (upstream part), e.g. 2.3.15.
bundler_version() {
  local v
  v=$(dpkg-query -W -f='${Version}' ruby-bundler 2>/dev/null || true)
  [ -n "$v" ] || v=$(apt-cache policy ruby-bundler 2>/dev/null | sed -n 's/^ *Candidate: //p')
  v=${v#*:}; v=${v%%-*}; v=${v%%+*}
  [ -n "$v" ] && [ "$v" != "(none)" ] || v=2.3.15
  echo "$v"
}

# Redmine answers on the port (its home page names it; another server does not count).
up() {
  local body
  body=$(curl -s --max-time 10 "$BASE/" 2>/dev/null) || return 1
  case "$body" in *Redmine*) return 0 ;; *) return 1 ;; esac
}

# as_www CMD: run CMD (a shell string) as www-data in the Redmine dir with its environment.
as_www() {
  setpriv --reuid=www-data --regid=www-data --init-groups \
    env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/var/www LANG=C.UTF-8 \
      REDMINE_INSTANCE=default RAILS_ENV=production BUNDLER_VERSION="$BUNDLER_VERSION" \
      /bin/sh -c "cd $RM_DIR && $1"
}

install_redmine() {
  if pkgs_installed "${PKGS[@]}"; then return 1; fi
  say "installing ${PKGS[*]} (BUNDLER_VERSION=$BUNDLER_VERSION)"
  debconf-set-selections <<DEB
redmine redmine/current-instances string default
redmine redmine/instances/default/dbconfig-install boolean true
redmine redmine/instances/default/database-type select sqlite3
redmine redmine/instances/default/db/basepath string /var/lib/dbconfig-common/sqlite3/redmine/instances/default
redmine redmine/instances/default/db/dbname string redmine_default
redmine redmine/instances/default/default-language select en
DEB
  local ilog=$LOG_DIR/apt-install-$SVC.log
  export BUNDLER_VERSION
  if ! apt_install "${PKGS[@]}"; then
    # A postinst failure leaves the packages half-configured: one more try.
    say "apt-get install failed; dpkg --configure -a (log: $ilog)"
    DEBIAN_FRONTEND=noninteractive dpkg --configure -a >>"$ilog" 2>&1 || true
  fi
  pkgs_installed "${PKGS[@]}" || { tail -30 "$ilog" >&2; die "redmine is not fully installed (log: $ilog)"; }
  return 0
}

# WEBrick in the bundle (once).
ensure_webrick() {
  local lock
  lock=$(readlink -f "$RM_DIR/Gemfile.lock" 2>/dev/null || echo /var/lib/redmine/Gemfile.lock)
  grep -q '^    webrick' "$lock" 2>/dev/null && return 0
  say "adding webrick to the bundle (Gemfile.local)"
  echo "gem 'webrick'" > "$RM_DIR/Gemfile.local"
  (cd "$RM_DIR" && BUNDLER_VERSION=$BUNDLER_VERSION bundle install --local --quiet) \
    >>"$LOG_DIR/redmine-bundle.log" 2>&1 || { tail -20 "$LOG_DIR/redmine-bundle.log" >&2; die "bundle install --local failed"; }
  chown www-data:www-data "$lock"
  grep -q '^    webrick' "$lock" || die "webrick is still not in $lock"
}

start_server() {
  if port_open "$RM_PORT"; then
    die "127.0.0.1:$RM_PORT is taken by $(port_owner "$RM_PORT") and its home page is not Redmine's"
  fi
  say "starting Redmine (rackup + WEBrick) on 127.0.0.1:$RM_PORT (log: $LOG)"
  echo "=== $(date -u +%FT%TZ) started by $0" >> "$LOG"
  rm -f "$RACK_PIDF"
  setsid nohup setpriv --reuid=www-data --regid=www-data --init-groups \
    env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/var/www LANG=C.UTF-8 \
      REDMINE_INSTANCE=default RAILS_ENV=production BUNDLER_VERSION="$BUNDLER_VERSION" \
      /bin/sh -c "cd $RM_DIR && exec bundle exec rackup -s webrick -o 127.0.0.1 -p $RM_PORT -E production -P $RACK_PIDF config.ru" \
    >>"$LOG" 2>&1 </dev/null &
  local pid=$!
  echo $pid > "$PIDF"
  local deadline=$((SECONDS + START_TIMEOUT))
  until up; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -30 "$LOG" >&2
      die "Redmine exited during start (log: $LOG)"
    fi
    if [ $SECONDS -ge $deadline ]; then
      tail -30 "$LOG" >&2
      stop_pidfile "$PIDF" rackup "$RM_PORT" >/dev/null 2>&1 || true
      die "Redmine did not answer at $BASE/ within ${START_TIMEOUT}s (log: $LOG)"
    fi
    sleep 0.5
  done
  # rackup's own pid file names the server; it should be the process we started.
  if [ -s "$RACK_PIDF" ] && [ "$(cat "$RACK_PIDF")" != "$pid" ]; then
    say "note: rackup pid $(cat "$RACK_PIDF") differs from the started pid $pid; using rackup's"
    cat "$RACK_PIDF" > "$PIDF"
  fi
}

env_ok() {
  [ -s "$ENVF" ] || return 1
  local key
  key=$(sed -n 's/^REDMINE_API_KEY=//p' "$ENVF")
  grep -qx "REDMINE_URL=$BASE" "$ENVF" && grep -qx "REDMINE_PROJECT=$RM_TEST_PROJECT" "$ENVF" || return 1
  grep -q "^REDMINE_SERVICE_KEY=." "$ENVF" || return 1
  grep -q "^REDMINE_CF_UPSTREAM_STATUS=." "$ENVF" || return 1
  [ -n "$key" ] && [ "$(http_code -H "X-Redmine-API-Key: $key" "$BASE/projects/$RM_TEST_PROJECT.json")" = 200 ]
}

ensure_credentials() {
  if env_ok; then say "credentials in $ENVF work"; return; fi
  say "setting up REST, default data, project '$RM_TEST_PROJECT' and the admin key (rails runner)"
  local rb out key svc_key slog=$LOG_DIR/redmine-setup.log
  rb=$(mktemp /tmp/deskbridge-redmine-setup.XXXXXX.rb)
  cat > "$rb" <<'RUBY'
ident = ARGV[0]
Setting.rest_api_enabled = '1'
if Redmine::DefaultData::Loader.no_data?
  Redmine::DefaultData::Loader.load('en')
  STDERR.puts 'loaded default data (trackers, statuses, roles, priorities, workflows)'
end
admin = User.find_by_login('admin') or raise 'no admin user'
admin.update_columns(must_change_passwd: false) if admin.must_change_passwd?
project = Project.find_by_identifier(ident)
unless project
  project = Project.new(name: ident.capitalize, identifier: ident, is_public: false,
                        description: 'deskbridge live tests')
  project.enabled_module_names = ['issue_tracking']
  project.trackers = Tracker.sorted.to_a
  project.save!
  STDERR.puts "created project #{ident}"
end
missing = Tracker.sorted.to_a - project.trackers.to_a
project.trackers << missing unless missing.empty?
project.enable_module!('issue_tracking') unless project.module_enabled?('issue_tracking')
raise 'no issue statuses' if IssueStatus.count == 0
raise 'no default priority' unless IssuePriority.default || IssuePriority.active.any?
# deskbridge's own service account (what examples/rt-to-redmine.toml uses).
svc = User.find_by_login('deskbridge')
unless svc
  svc = User.new(firstname: 'Desk', lastname: 'Bridge', mail: 'deskbridge@example.net')
  svc.login = 'deskbridge'
  svc.password = 'deskbridge-test-pw-1'
  svc.must_change_passwd = false
  svc.save!
  STDERR.puts 'created user deskbridge'
end
manager = Role.find_by_name('Manager') or raise 'no Manager role'
unless Member.where(user_id: svc.id, project_id: project.id).exists?
  Member.create!(principal: svc, project: project, roles: [manager])
end
# The custom fields a service company keeps on its issues: where
# deskbridge puts a ticket's site, equipment and serial number.
# And where it shows the partner's ticket id and status, and in the
# middle of a chain the client's (the company that handed it the work).
{ 'SITE' => 'Site', 'EQUIPMENT' => 'Equipment', 'SERIAL' => 'Serial number',
  'PARTNER_TICKET' => 'Partner ticket', 'PARTNER_STATUS' => 'Partner status',
  'UPSTREAM_TICKET' => 'Client ticket', 'UPSTREAM_STATUS' => 'Client status' }.each do |key, name|
  cf = IssueCustomField.find_by_name(name)
  unless cf
    cf = IssueCustomField.new(name: name, field_format: 'string', is_for_all: true,
                              visible: true, editable: true)
    cf.trackers = Tracker.sorted.to_a
    cf.save!
    STDERR.puts "created custom field #{name}"
  end
  missing_trackers = Tracker.sorted.to_a - cf.trackers.to_a
  cf.trackers << missing_trackers unless missing_trackers.empty?
  puts "CF_#{key}=#{cf.id}"
end
puts "SERVICE_KEY=#{svc.api_key}"
puts "API_KEY=#{admin.api_key}"
RUBY
  chmod 644 "$rb"
  out=$(as_www "bundle exec rails runner $rb $RM_TEST_PROJECT" 2>"$slog") || { rm -f "$rb"; cat "$slog" >&2; die "rails runner setup failed (log: $slog)"; }
  rm -f "$rb"
  key=$(printf '%s\n' "$out" | sed -n 's/^API_KEY=//p' | tail -1)
  svc_key=$(printf '%s\n' "$out" | sed -n 's/^SERVICE_KEY=//p' | tail -1)
  [ -n "$key" ] && [ -n "$svc_key" ] || { cat "$slog" >&2; die "rails runner printed no API key"; }
  local cf_site cf_equipment cf_serial cf_pticket cf_pstatus cf_uticket cf_ustatus
  cf_site=$(printf '%s\n' "$out" | sed -n 's/^CF_SITE=//p' | tail -1)
  cf_equipment=$(printf '%s\n' "$out" | sed -n 's/^CF_EQUIPMENT=//p' | tail -1)
  cf_serial=$(printf '%s\n' "$out" | sed -n 's/^CF_SERIAL=//p' | tail -1)
  cf_pticket=$(printf '%s\n' "$out" | sed -n 's/^CF_PARTNER_TICKET=//p' | tail -1)
  cf_pstatus=$(printf '%s\n' "$out" | sed -n 's/^CF_PARTNER_STATUS=//p' | tail -1)
  cf_uticket=$(printf '%s\n' "$out" | sed -n 's/^CF_UPSTREAM_TICKET=//p' | tail -1)
  cf_ustatus=$(printf '%s\n' "$out" | sed -n 's/^CF_UPSTREAM_STATUS=//p' | tail -1)
  [ -n "$cf_site" ] && [ -n "$cf_equipment" ] && [ -n "$cf_serial" ] && [ -n "$cf_pticket" ] && [ -n "$cf_pstatus" ] \
    && [ -n "$cf_uticket" ] && [ -n "$cf_ustatus" ] || { cat "$slog" >&2; die "rails runner printed no custom field ids"; }
  write_env "$ENVF" <<ENV
REDMINE_URL=$BASE
REDMINE_API_KEY=$key
REDMINE_PROJECT=$RM_TEST_PROJECT
REDMINE_USER=admin
REDMINE_PASSWORD=admin
REDMINE_SERVICE_USER=deskbridge
REDMINE_SERVICE_KEY=$svc_key
REDMINE_CF_SITE=$cf_site
REDMINE_CF_EQUIPMENT=$cf_equipment
REDMINE_CF_SERIAL=$cf_serial
REDMINE_CF_PARTNER_TICKET=$cf_pticket
REDMINE_CF_PARTNER_STATUS=$cf_pstatus
REDMINE_CF_UPSTREAM_TICKET=$cf_uticket
REDMINE_CF_UPSTREAM_STATUS=$cf_ustatus
ENV
  env_ok || die "the new key in $ENVF does not work against $BASE (REST API off?)"
}

cmd_start() {
  local t0 t1 t1b t2 t3 installed=0 started=0
  t0=$(now)
  ensure_tools
  BUNDLER_VERSION=$(bundler_version)
  install_redmine && installed=1
  ensure_webrick
  t1=$(now)
  if up; then
    pid_alive "$PIDF" rackup && say "already running (pid $(cat "$PIDF"))" \
      || say "already running on $RM_PORT (not started by this script)"
  else
    start_server; started=1
  fi
  t2=$(now)
  ensure_credentials
  t3=$(now)
  say "ready at $BASE (credentials: $ENVF)"
  say "timings: install $( [ $installed = 1 ] && echo "$(awk -v a=$t0 -v b=$t1 'BEGIN{printf "%.1f",b-a}') s" || echo "skipped (installed)"), start $( [ $started = 1 ] && echo "$(awk -v a=$t1 -v b=$t2 'BEGIN{printf "%.1f",b-a}') s" || echo "skipped (running)"), credentials $(awk -v a=$t2 -v b=$t3 'BEGIN{printf "%.1f",b-a}') s, total $(since "$t0") s"
}

cmd_status() {
  if up; then
    say "running on $BASE$(pid_alive "$PIDF" rackup && echo " (pid $(cat "$PIDF"))")"
    [ -s "$ENVF" ] && sed 's/^/  /' "$ENVF"
    return 0
  fi
  say "not running"
  return 1
}

case "${1:-start}" in
  start) cmd_start ;;
  stop) stop_pidfile "$PIDF" rackup "$RM_PORT" ;;
  restart) stop_pidfile "$PIDF" rackup "$RM_PORT"; cmd_start ;;
  status) cmd_status ;;
  *) echo "usage: $0 [start|stop|status|restart]" >&2; exit 2 ;;
esac
