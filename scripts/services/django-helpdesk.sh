#!/usr/bin/env bash
# django-helpdesk 2.6 (from PyPI) for the live tests, run as its own small Django site.
#
# Usage: scripts/services/django-helpdesk.sh [start|stop|status|restart]   (default: start)
#   start    make a venv under $DJHD_HOME with pinned packages when missing, generate the
#            Django project (settings, urls), migrate SQLite, make sure the users and the
#            queue exist, start `runserver --noreload` on 127.0.0.1:$DJHD_PORT in the
#            background, wait until the REST API answers and write
#            $DESKBRIDGE_RUN_DIR/django-helpdesk.env. Seconds when already running.
#   stop     stop the server this script started
#   status   exit 0 when the API answers; prints the env file
#   instance start DIR PORT   a private django-helpdesk for one test: the same site and
#            users on a database of its own (DIR/db.sqlite3, a copy of a freshly migrated
#            template) and media under DIR, served on 127.0.0.1:PORT; writes
#            DIR/django-helpdesk.env (the keys below). Needs `start` to have run once.
#   instance seed DIR N       N tickets (each with its opening follow-up, one an hour up
#            to an hour ago, oldest first) inserted straight into DIR's database with SQL
#            in one transaction; prints SEEDED=N FIRST=id LAST=id SECONDS=s
#   instance stop DIR         stops DIR's server
#
# django-helpdesk.env (KEY=value lines, sourceable by sh):
#   DJHD_URL=http://127.0.0.1:8082          the API is under $DJHD_URL/api/
#   DJHD_USER=admin  DJHD_PASSWORD=...      staff superuser (the tests act as it), basic auth
#   DJHD_SERVICE_USER=deskbridge  DJHD_SERVICE_PASSWORD=...   staff account deskbridge writes as
#   DJHD_SERVICE_USER_ID=2                                    its user id (the profile's user_id)
#   DJHD_QUEUE=1  DJHD_QUEUE_SLUG=deskbridge                  the test queue
#   DJHD_WEBHOOKS_FILE=/run/deskbridge-test/django-helpdesk-webhooks   URLs (one a line) that
#                                             django-helpdesk posts its webhooks to
#   DJHD_CUSTOM_FIELDS=site,equipment,serial_number,partner_ticket,partner_status
#                                             the custom fields (by name: the API's custom_NAME)
#
# Traps (found with 2.6.1 on Python 3.11):
# - 2.6 needs Django >= 5.2 and DRF; the versions below are pinned because they install
#   together here (pip resolves the newest otherwise, which may drop 3.11).
# - HELPDESK_TEAMS_MODE_ENABLED defaults to True and makes the migrations depend on
#   pinax_teams (not a dependency of the wheel): switched off.
# - HELPDESK_KB_ENABLED = False breaks helpdesk/urls.py (NameError: kb): left on.
# - Follow-ups mail the submitter and the queue's CC list: the console e-mail backend
#   keeps them from failing on a machine without an MTA (and out of the way of the tests).
# - The API is admin only (IsAdminUser = is_staff) and needs DRF's BasicAuthentication
#   in REST_FRAMEWORK, which a fresh project does not list.
# - Ticket listing has no date filter or ordering parameter; follow-ups come embedded
#   in each ticket (followup_set), `api/followups/` has no ticket filter.
set -euo pipefail
SVC=django-helpdesk
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"

DJHD_PORT=${DJHD_PORT:-8082}
DJHD_HOME=${DJHD_HOME:-/opt/deskbridge-test/django-helpdesk}
START_TIMEOUT=${DJHD_START_TIMEOUT:-60}
VENV=$DJHD_HOME
SITE=$DJHD_HOME/site
PY=$VENV/bin/python
PIDF=$RUN_DIR/django-helpdesk.pid
ENVF=$RUN_DIR/django-helpdesk.env
HOOKS=$RUN_DIR/django-helpdesk-webhooks
LOG=$LOG_DIR/django-helpdesk-server.log
BASE=http://127.0.0.1:$DJHD_PORT
QUEUE_SLUG=deskbridge
ADMIN_PW=deskbridge-admin-pw-1
SERVICE_PW=deskbridge-service-pw-1
# What installs together on Python 3.11 (django-helpdesk 2.6.1's own requirements).
PIP_PKGS=(
  django-helpdesk==2.6.1 Django==5.2.19 djangorestframework==3.18.3
  django-model-utils==5.0.0 django-cleanup==9.0.0 email-reply-parser==0.5.12
  Markdown==3.11.3 nh3==0.3.8 beautifulsoup4==4.15.0 requests==2.34.2
  requests-oauthlib==2.0.0 oauthlib==4.0.1
)

find_python() {
  local p
  for p in python3.11 python3; do
    if command -v "$p" >/dev/null && "$p" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info[:2] < (3, 10))' 2>/dev/null; then
      command -v "$p"; return 0
    fi
  done
  return 1
}

installed() { [ -x "$PY" ] && "$PY" -c 'import helpdesk, django, rest_framework' 2>/dev/null; }

install_djhd() {
  installed && return 1
  local sys_py ilog=$LOG_DIR/pip-install-$SVC.log
  if ! sys_py=$(find_python); then
    apt_install python3 python3-venv || die "could not install python3-venv"
    sys_py=$(find_python) || die "no Python >= 3.10 with venv and ensurepip"
  fi
  say "creating venv $VENV ($("$sys_py" --version)); pip install ${PIP_PKGS[0]} (log: $ilog)"
  mkdir -p "$DJHD_HOME"
  "$sys_py" -m venv "$VENV" >"$ilog" 2>&1 || { tail -20 "$ilog" >&2; die "python -m venv failed"; }
  timeout "${PIP_INSTALL_TIMEOUT:-900}" "$VENV/bin/pip" install -q "${PIP_PKGS[@]}" >>"$ilog" 2>&1 \
    || { tail -30 "$ilog" >&2; die "pip install failed (log: $ilog)"; }
  installed || die "helpdesk does not import after pip install (log: $ilog)"
  return 0
}

# The generated project; rewritten when this script's version of it changes.
SITE_CHANGED=0
write_site() {
  mkdir -p "$SITE/deskbridge_site" "$SITE/media" "$SITE/static"
  local secret
  if [ -s "$SITE/secret_key" ]; then secret=$(cat "$SITE/secret_key"); else
    secret=$("$PY" -c 'import secrets; print(secrets.token_urlsafe(40))')
    (umask 077; echo "$secret" > "$SITE/secret_key")
  fi
  install_if_changed "$SITE/deskbridge_site/__init__.py" 644 root:root </dev/null && SITE_CHANGED=1 || true
  install_if_changed "$SITE/manage.py" 755 root:root <<'PY' && SITE_CHANGED=1 || true
#!/usr/bin/env python
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deskbridge_site.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
PY
  install_if_changed "$SITE/deskbridge_site/settings.py" 644 root:root <<'PY' && SITE_CHANGED=1 || true
# Generated by deskbridge's scripts/services/django-helpdesk.sh: a loopback test site.
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = (BASE_DIR / "secret_key").read_text().strip()
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.sites",
    "django.contrib.humanize",
    "rest_framework",
    "model_utils",
    "helpdesk",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "deskbridge_site.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": BASE_DIR / "db.sqlite3",
        # runserver is threaded: wait for the write lock instead of failing at once
        "OPTIONS": {"timeout": 20},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
TIME_ZONE = "UTC"
USE_TZ = True
SITE_ID = 1
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "static"
MEDIA_URL = "/media/"
MEDIA_ROOT = BASE_DIR / "media"
LOGIN_URL = "/login/"
EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
DEFAULT_FROM_EMAIL = "helpdesk@example.net"
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.BasicAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
}
HELPDESK_TEAMS_MODE_ENABLED = False
HELPDESK_API_ENABLED = True
HELPDESK_ENABLE_BACKLINKS = False
# A 500's traceback in the server's log (DEBUG stays off).
LOGGING = {
    "version": 1,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django.request": {"handlers": ["console"], "level": "ERROR"}},
}


# django-helpdesk's webhooks (new tickets, follow-ups) go to the URLs listed in
# this file, read at each event, so a test can point them at its own gateway.
# A URL whose port does not answer is skipped: django-helpdesk 2.6 catches only
# timeouts when posting, and a refused connection would fail the very request
# that made the change.
def _webhook_urls():
    import os
    import socket
    import urllib.parse

    try:
        urls = Path(os.environ["DJHD_WEBHOOKS_FILE"]).read_text().split()
    except (KeyError, OSError):
        return []
    live = []
    for url in urls:
        u = urllib.parse.urlsplit(url)
        try:
            socket.create_connection((u.hostname, u.port or 80), timeout=0.5).close()
            live.append(url)
        except OSError:
            pass
    return live


HELPDESK_GET_NEW_TICKET_WEBHOOK_URLS = _webhook_urls
HELPDESK_GET_FOLLOWUP_WEBHOOK_URLS = _webhook_urls
PY
  install_if_changed "$SITE/deskbridge_site/urls.py" 644 root:root <<'PY' && SITE_CHANGED=1 || true
from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.static import serve

urlpatterns = [
    path("admin/", admin.site.urls),
    # Follow-ups' files (a production site has its web server serve them).
    re_path(r"^media/(?P<path>.*)$", serve, {"document_root": settings.MEDIA_ROOT}),
    path("", include("helpdesk.urls", namespace="helpdesk")),
]
PY
}

manage() { (cd "$SITE" && "$PY" manage.py "$@"); }

# The API answers with JSON for the superuser.
api_ok() {
  [ "$(http_code -u "admin:$ADMIN_PW" "$BASE/api/tickets/?page_size=1")" = 200 ]
}


# The custom fields a service company keeps on its tickets (name, label): where
# deskbridge puts a ticket's site, equipment and serial number, and where it shows
# the partner's ticket id and status (the API shows each as the key custom_NAME).
CUSTOM_FIELDS="site:Site equipment:Equipment serial_number:Serial_number partner_ticket:Partner_ticket partner_status:Partner_status"
custom_field_names() { local f out=(); for f in $CUSTOM_FIELDS; do out+=("${f%%:*}"); done; (IFS=,; echo "${out[*]}"); }

# migrate_and_seed LOG: migrates the database of the settings in effect
# (DJANGO_SETTINGS_MODULE) and makes sure the users, the queue and the custom
# fields exist; prints SERVICE_ID= and QUEUE= into LOG.
migrate_and_seed() {
  local slog=${1:-$LOG_DIR/django-helpdesk-setup.log}
  say "migrate and seed users/queue/custom fields (log: $slog)"
  manage migrate --noinput >"$slog" 2>&1 || { tail -30 "$slog" >&2; die "migrate failed (log: $slog)"; }
  manage shell -c "
from django.contrib.auth import get_user_model
from helpdesk.models import Queue
U = get_user_model()
def account(name, pw, superuser):
    u, _ = U.objects.get_or_create(username=name, defaults={'email': name + '@example.net'})
    u.is_staff = True
    u.is_superuser = superuser
    u.is_active = True
    u.set_password(pw)
    u.save()
    return u
account('admin', '$ADMIN_PW', True)
# deskbridge writes as a superuser too: per-queue permissions are off, but
# accessible_tickets() still needs full access for tickets it did not create.
svc = account('deskbridge', '$SERVICE_PW', True)
print('SERVICE_ID=%d' % svc.id)
q, _ = Queue.objects.get_or_create(slug='$QUEUE_SLUG', defaults={'title': 'Deskbridge', 'allow_public_submission': False})
print('QUEUE=%d' % q.id)
from helpdesk.models import CustomField
for f in '$CUSTOM_FIELDS'.split():
    name, label = f.split(':')
    CustomField.objects.get_or_create(name=name, defaults={'label': label.replace('_', ' '), 'data_type': 'varchar', 'max_length': 200, 'staff_only': False})
" >>"$slog" 2>&1 || { tail -30 "$slog" >&2; die "seeding users/queue failed (log: $slog)"; }
}

start_server() {
  if port_open "$DJHD_PORT"; then
    die "127.0.0.1:$DJHD_PORT is taken by $(port_owner "$DJHD_PORT") and it is not django-helpdesk"
  fi
  say "starting runserver on 127.0.0.1:$DJHD_PORT (log: $LOG)"
  # setsid: its own process group, so stop_pidfile ends it and nothing else.
  echo "=== $(date -u +%FT%TZ) started by $0" >> "$LOG"
  cd "$SITE"
  DJHD_WEBHOOKS_FILE=$HOOKS setsid nohup "$PY" manage.py runserver --noreload --insecure "127.0.0.1:$DJHD_PORT" \
    >>"$LOG" 2>&1 </dev/null &
  echo $! > "$PIDF"
  cd - >/dev/null
  local i
  for i in $(seq 1 $((START_TIMEOUT * 5))); do
    api_ok && { say "API answers after $i tries"; return 0; }
    pid_alive "$PIDF" runserver || { tail -30 "$LOG" >&2; die "runserver exited (log: $LOG)"; }
    sleep 0.2
  done
  tail -30 "$LOG" >&2
  die "the API did not answer within ${START_TIMEOUT} s (log: $LOG)"
}

write_credentials() {
  local qid svc_id
  qid=$(sed -n 's/^QUEUE=//p' "$LOG_DIR/django-helpdesk-setup.log" | tail -1)
  svc_id=$(sed -n 's/^SERVICE_ID=//p' "$LOG_DIR/django-helpdesk-setup.log" | tail -1)
  [ -n "$qid" ] && [ -n "$svc_id" ] || die "no queue or user id in $LOG_DIR/django-helpdesk-setup.log"
  write_env "$ENVF" <<ENV
DJHD_URL=$BASE
DJHD_USER=admin
DJHD_PASSWORD=$ADMIN_PW
DJHD_SERVICE_USER=deskbridge
DJHD_SERVICE_PASSWORD=$SERVICE_PW
DJHD_SERVICE_USER_ID=$svc_id
DJHD_QUEUE=$qid
DJHD_QUEUE_SLUG=$QUEUE_SLUG
DJHD_WEBHOOKS_FILE=$HOOKS
DJHD_CUSTOM_FIELDS=$(custom_field_names)
ENV
  [ "$(http_code -u "deskbridge:$SERVICE_PW" "$BASE/api/tickets/?page_size=1")" = 200 ] \
    || die "the service account cannot read $BASE/api/tickets/"
}

cmd_start() {
  local t0 t1 t2 t3 installed=0 started=0 running=0
  t0=$(now)
  ensure_tools
  install_djhd && installed=1
  t1=$(now)
  # A site generated by an older version of this script is rewritten and
  # restarted (runserver runs with --noreload).
  write_site
  if [ "$SITE_CHANGED" = 0 ] && api_ok && pid_alive "$PIDF" runserver && grep -q '^DJHD_WEBHOOKS_FILE=.' "$ENVF" 2>/dev/null; then
    running=1
  fi
  t2=$(now)
  if [ "$running" = 1 ] && grep -qx "DJHD_CUSTOM_FIELDS=$(custom_field_names)" "$ENVF" 2>/dev/null; then
    say "already running (pid $(cat "$PIDF"))"
  elif [ "$running" = 1 ]; then
    # Set up by an older version of this script (fewer custom fields): the
    # missing ones are added to the running site, no restart.
    say "running (pid $(cat "$PIDF")); adding the custom fields $(custom_field_names) where missing"
    migrate_and_seed
    write_credentials
  else
    if pid_alive "$PIDF" runserver; then stop_pidfile "$PIDF" runserver "$DJHD_PORT"; fi
    migrate_and_seed
    t2=$(now)
    if ! api_ok; then start_server; started=1; fi
    write_credentials
  fi
  t3=$(now)
  say "ready at $BASE/api/ (credentials: $ENVF)"
  say "timings: install $( [ $installed = 1 ] && echo "$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f",b-a}') s" || echo "skipped (installed)"), start $( [ $started = 1 ] && echo "$(awk -v a="$t2" -v b="$t3" 'BEGIN{printf "%.1f",b-a}') s" || echo "skipped (running)"), total $(since "$t0") s"
}

# A private instance (`instance start DIR PORT`): the shared site's code and
# settings, its own database and media in DIR, read through a settings module
# of its own in DIR.
private_settings() {
  cat > "$1/deskbridge_private.py" <<'PY'
# Generated by deskbridge's scripts/services/django-helpdesk.sh: a private instance.
from pathlib import Path

from deskbridge_site.settings import *  # noqa: F403

_HERE = Path(__file__).resolve().parent
DATABASES = {"default": {**DATABASES["default"], "NAME": _HERE / "db.sqlite3"}}  # noqa: F405
MEDIA_ROOT = _HERE / "media"
PY
}

# in_instance DIR CMD...: CMD with DIR's settings in effect.
in_instance() {
  local d=$1; shift
  DJANGO_SETTINGS_MODULE=deskbridge_private PYTHONPATH="$d" DJHD_WEBHOOKS_FILE="$d/webhooks" "$@"
}

# A freshly migrated and seeded database, copied for each private instance;
# one per version of the packages and of the set-up.
TEMPLATE=$DJHD_HOME/template-$(printf '%s ' "${PIP_PKGS[@]}" "$CUSTOM_FIELDS" "$QUEUE_SLUG" | md5sum | cut -c1-12)
ensure_template() {
  (
    flock -w 300 9 || die "timed out waiting for $DJHD_HOME/template.lock"
    [ -s "$TEMPLATE/db.sqlite3" ] && [ -s "$TEMPLATE/ids" ] && exit 0
    local tmp=$TEMPLATE.tmp.$$
    rm -rf "$tmp"; mkdir -p "$tmp"
    private_settings "$tmp"
    in_instance "$tmp" migrate_and_seed "$tmp/setup.log" >/dev/null
    grep -E '^(SERVICE_ID|QUEUE)=' "$tmp/setup.log" > "$tmp/ids"
    rm -rf "$TEMPLATE"; mv "$tmp" "$TEMPLATE"
  ) 9>"$DJHD_HOME/template.lock"
}

instance_start() {
  local D P base i qid svc_id
  D=$(realpath -m "${1:?DIR}"); P=${2:?PORT}
  { installed && [ -s "$SITE/manage.py" ]; } || die "django-helpdesk is not set up here: run $0 start once"
  port_open "$P" && die "127.0.0.1:$P is taken by $(port_owner "$P")"
  mkdir -p "$D/media"
  private_settings "$D"
  ensure_template
  cp "$TEMPLATE/db.sqlite3" "$D/db.sqlite3"
  : > "$D/webhooks"
  base=http://127.0.0.1:$P
  # (the server itself backgrounded, not a function: its pid is the server's)
  (cd "$SITE" || exit 1; DJANGO_SETTINGS_MODULE=deskbridge_private PYTHONPATH="$D" DJHD_WEBHOOKS_FILE="$D/webhooks" \
    setsid nohup "$PY" manage.py runserver --noreload --insecure "127.0.0.1:$P" >"$D/server.log" 2>&1 </dev/null &
    echo $! > "$D/server.pid")
  for i in $(seq 1 $((START_TIMEOUT * 5))); do
    [ "$(http_code -u "admin:$ADMIN_PW" "$base/api/tickets/?page_size=1")" = 200 ] && break
    pid_alive "$D/server.pid" runserver || { tail -30 "$D/server.log" >&2; die "runserver exited (log: $D/server.log)"; }
    sleep 0.2
  done
  [ "$(http_code -u "admin:$ADMIN_PW" "$base/api/tickets/?page_size=1")" = 200 ] \
    || { tail -30 "$D/server.log" >&2; die "the private instance did not answer within ${START_TIMEOUT} s (log: $D/server.log)"; }
  qid=$(sed -n 's/^QUEUE=//p' "$TEMPLATE/ids"); svc_id=$(sed -n 's/^SERVICE_ID=//p' "$TEMPLATE/ids")
  cat > "$D/django-helpdesk.env" <<ENV
DJHD_URL=$base
DJHD_USER=admin
DJHD_PASSWORD=$ADMIN_PW
DJHD_SERVICE_USER=deskbridge
DJHD_SERVICE_PASSWORD=$SERVICE_PW
DJHD_SERVICE_USER_ID=$svc_id
DJHD_QUEUE=$qid
DJHD_QUEUE_SLUG=$QUEUE_SLUG
DJHD_WEBHOOKS_FILE=$D/webhooks
DJHD_CUSTOM_FIELDS=$(custom_field_names)
ENV
  say "private instance at $base/api/ (dir $D, pid $(cat "$D/server.pid"))"
}

# instance seed DIR N: N tickets straight into DIR's database with plain SQL in
# one transaction (no Django: no signals, no mail, no auto_now rewriting the
# dates): each with the follow-up django-helpdesk opens a ticket with, one an
# hour, the newest an hour ago.
instance_seed() {
  local D N
  D=$(realpath -m "${1:?DIR}"); N=${2:?N}
  [ -s "$D/db.sqlite3" ] || die "no private instance in $D"
  "$PY" - "$D/db.sqlite3" "$N" "$QUEUE_SLUG" <<'PY' || die "seeding $D failed"
import sqlite3, sys, time, uuid
from datetime import datetime, timedelta, timezone
t0 = time.monotonic()
db, n, slug = sys.argv[1], int(sys.argv[2]), sys.argv[3]
c = sqlite3.connect(db, timeout=30, isolation_level=None)
c.execute("BEGIN IMMEDIATE")
(queue,) = c.execute("SELECT id FROM helpdesk_queue WHERE slug = ?", (slug,)).fetchone()
first = (c.execute("SELECT max(id) FROM helpdesk_ticket").fetchone()[0] or 0) + 1
now = datetime.now(timezone.utc).replace(microsecond=0, tzinfo=None)
def at(i):
    return (now - timedelta(hours=n - i)).strftime("%Y-%m-%d %H:%M:%S.%f")
c.executemany(
    "INSERT INTO helpdesk_ticket (id, title, created, modified, submitter_email, status, on_hold,"
    " description, priority, queue_id, secret_key) VALUES (?, ?, ?, ?, ?, 1, 0, ?, 3, ?, ?)",
    ((first + i, "Seeded ticket %d of %d" % (i + 1, n), at(i), at(i), "client%d@example.invalid" % (i % 500),
      "Ticket %d of the large desk." % (i + 1), queue, str(uuid.uuid4())) for i in range(n)))
c.executemany(
    "INSERT INTO helpdesk_followup (date, title, comment, public, ticket_id) VALUES (?, 'Ticket Opened', ?, 1, ?)",
    ((at(i), "Ticket %d of the large desk." % (i + 1), first + i) for i in range(n)))
c.execute("COMMIT")
print("SEEDED=%d FIRST=%d LAST=%d SECONDS=%.2f" % (n, first, first + n - 1, time.monotonic() - t0))
PY
}

instance_stop() {
  local D
  D=$(realpath -m "${1:?DIR}")
  [ -s "$D/server.pid" ] || return 0
  if pid_alive "$D/server.pid" runserver; then
    kill -TERM -- "-$(cat "$D/server.pid")" 2>/dev/null || kill -TERM "$(cat "$D/server.pid")" 2>/dev/null || true
  fi
  rm -f "$D/server.pid"
}

cmd_status() {
  if api_ok; then
    say "running on $BASE$(pid_alive "$PIDF" runserver && echo " (pid $(cat "$PIDF"))")"
    [ -s "$ENVF" ] && sed 's/PASSWORD=.*/PASSWORD=(set)/; s/^/  /' "$ENVF"
    return 0
  fi
  say "not running"
  return 1
}

case "${1:-start}" in
  start) cmd_start ;;
  stop) stop_pidfile "$PIDF" runserver "$DJHD_PORT" ;;
  restart) stop_pidfile "$PIDF" runserver "$DJHD_PORT"; cmd_start ;;
  status) cmd_status ;;
  instance)
    case "${2:-}" in
      start) instance_start "${3:-}" "${4:-}" ;;
      seed) instance_seed "${3:-}" "${4:-}" ;;
      stop) instance_stop "${3:-}" ;;
      *) die "usage: $0 instance start DIR PORT | instance seed DIR N | instance stop DIR" ;;
    esac ;;
  *) echo "usage: $0 [start|stop|status|restart] | instance start DIR PORT | instance seed DIR N | instance stop DIR" >&2; exit 2 ;;
esac
