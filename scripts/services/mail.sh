#!/usr/bin/env bash
# Mail servers for the e-mail connector's live tests (tests/suite/mail.rs).
#
# Usage:
#   scripts/services/mail.sh start
#       install what is missing (Debian's dovecot-imapd and python3-aiosmtpd), then
#       start and stop one private pair to prove it works. Seconds when installed.
#   scripts/services/mail.sh instance start DIR SMTP_PORT IMAP_PORT
#       a private pair on loopback, everything under DIR (tests run one each):
#         SMTP = python3-aiosmtpd on 127.0.0.1:SMTP_PORT, delivering each accepted RCPT
#                to DIR/mail/<localpart>/Maildir (unknown local parts get 550 5.1.1);
#         IMAP = a private dovecot (-c DIR/dovecot.conf, own base_dir, passwd-file
#                users, plaintext LOGIN on loopback, IDLE) on 127.0.0.1:IMAP_PORT.
#       Users (MAIL_USERS, "name:password ..."): by default agent, vendor, chain,
#       stranger, each with password "<name>pw"; addresses are <name>@localhost.
#   scripts/services/mail.sh instance stop DIR
#
# Traps (from /work/shared/reference and found here):
# - installing Request Tracker pulls in exim4, which may hold port 25: private
#   ports avoid every system MTA, so nothing here touches 25 or 143;
# - plain IMAP on loopback needs disable_plaintext_auth = no;
# - a test's temporary directory is created 0700: dovecot's auth process
#   (user dovecot) cannot read the users file inside until it is opened up;
# - the Maildir files must belong to the passwd-file uid (mail, uid 8), or dovecot
#   refuses them: the SMTP side chowns what it delivers.
set -euo pipefail
SVC=mail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"

PKGS=(dovecot-imapd python3-aiosmtpd openssl)
MAILUSER=${MAIL_OWNER:-mail}
USERS=${MAIL_USERS:-"agent:agentpw vendor:vendorpw chain:chainpw stranger:strangerpw"}

install_pkgs() {
  if pkgs_installed "${PKGS[@]}"; then
    return 0
  fi
  apt_install "${PKGS[@]}" || die "could not install ${PKGS[*]} (log: $LOG_DIR/apt-install-$SVC.log)"
  pkgs_installed "${PKGS[@]}" || die "${PKGS[*]} not installed after apt-get"
}

# make_tls DIR: a throwaway CA (DIR/tls/ca.pem) and a server certificate it
# signed for localhost and 127.0.0.1. A self-signed leaf would not do:
# rustls refuses a CA certificate used as the server's own.
make_tls() {
  local T=$1/tls
  mkdir -p "$T"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=deskbridge test CA" \
    -keyout "$T/ca.key" -out "$T/ca.pem" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
    -keyout "$T/key.pem" -out "$T/req.csr" 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' > "$T/ext"
  openssl x509 -req -in "$T/req.csr" -CA "$T/ca.pem" -CAkey "$T/ca.key" -CAcreateserial \
    -days 2 -extfile "$T/ext" -out "$T/cert.pem" 2>/dev/null
  chmod 644 "$T"/*.pem
}

# instance start DIR SMTP IMAP [IMAPS]: with IMAPS, TLS everywhere: IMAP
# over TLS on IMAPS (and STARTTLS on IMAP), SMTP with STARTTLS required and
# a login (the users below) required after it.
instance_start() {
  local D SP IP TP uid gid up u p i ssl
  D=$(realpath -m "${1:?DIR}"); SP=${2:?SMTP_PORT}; IP=${3:?IMAP_PORT}; TP=${4:-0}
  install_pkgs
  mkdir -p "$D/run" "$D/mail"
  # dovecot's auth process (user dovecot) and the mail owner must reach the
  # users file and the Maildirs: a test's temporary directory is 0700.
  chmod 755 "$D"
  uid=$(id -u "$MAILUSER"); gid=$(id -g "$MAILUSER")
  : > "$D/users"
  for up in $USERS; do
    u=${up%%:*}; p=${up#*:}
    echo "$u:{PLAIN}$p:$uid:$gid::$D/mail/$u" >> "$D/users"
    mkdir -p "$D/mail/$u/Maildir/"{cur,new,tmp}
  done
  chown -R "$MAILUSER:" "$D/mail"
  ssl="ssl = no"
  if [ "$TP" != 0 ]; then
    make_tls "$D"
    ssl="ssl = yes
ssl_cert = <$D/tls/cert.pem
ssl_key = <$D/tls/key.pem"
  fi
  cat > "$D/dovecot.conf" <<EOF
base_dir = $D/run
instance_name = dovecot-$IP
listen = 127.0.0.1
protocols = imap
$ssl
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
first_valid_uid = $uid
mail_location = maildir:~/Maildir
log_path = $D/dovecot.log
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $IP
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = $TP
  }
}
passdb {
  driver = passwd-file
  args = $D/users
}
userdb {
  driver = passwd-file
  args = $D/users
}
EOF
  # Its own streams closed: a caller reading this script's output (a test
  # harness) would otherwise wait for the daemon to exit.
  dovecot -c "$D/dovecot.conf" </dev/null >"$D/dovecot.start.log" 2>&1 \
    || { cat "$D/dovecot.start.log" >&2; die "dovecot did not start (config $D/dovecot.conf)"; }
  cat > "$D/smtp.py" <<'PY'
import asyncio, mailbox, os, sys, pwd, ssl
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
root, port, owner = sys.argv[1], int(sys.argv[2]), sys.argv[3]
pw = pwd.getpwnam(owner)
users = {}
for line in open(os.path.join(root, "users")):
    name, rest = line.split(":", 1)
    users[name] = rest.split(":", 1)[0].replace("{PLAIN}", "")
def authenticator(server, session, envelope, mechanism, auth_data):
    ok = users.get(auth_data.login.decode()) == auth_data.password.decode()
    return AuthResult(success=ok)
class H:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@")[0].lower()
        if not os.path.isdir(os.path.join(root, "mail", local, "Maildir")):
            return "550 5.1.1 <%s>: User unknown" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"
    async def handle_DATA(self, server, session, envelope):
        for rcpt in envelope.rcpt_tos:
            local = rcpt.split("@")[0].lower()
            path = os.path.join(root, "mail", local, "Maildir")
            md = mailbox.Maildir(path, create=False)
            md.add(b"Return-Path: <%s>\r\n" % envelope.mail_from.encode() + envelope.original_content)
            for dirpath, _, files in os.walk(os.path.join(root, "mail", local)):
                os.chown(dirpath, pw.pw_uid, pw.pw_gid)
                for f in files: os.chown(os.path.join(dirpath, f), pw.pw_uid, pw.pw_gid)
        # Tests that kill the client between the delivery and its "250"
        # (SMTP_ACCEPT_DELAY seconds) open that window wide.
        await asyncio.sleep(float(os.environ.get("SMTP_ACCEPT_DELAY", "0")))
        return "250 OK delivered"
tls = {}
if os.path.exists(os.path.join(root, "tls", "cert.pem")):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(os.path.join(root, "tls", "cert.pem"), os.path.join(root, "tls", "key.pem"))
    tls = dict(tls_context=ctx, require_starttls=True, auth_required=True,
               auth_require_tls=True, authenticator=authenticator)
c = Controller(H(), hostname="127.0.0.1", port=port, data_size_limit=26214400, **tls)
c.start(); print("smtp ready", flush=True)
try: asyncio.get_event_loop().run_forever()
except KeyboardInterrupt: pass
finally: c.stop()
PY
  setsid nohup /usr/bin/python3 "$D/smtp.py" "$D" "$SP" "$MAILUSER" > "$D/smtp.log" 2>&1 < /dev/null &
  echo $! > "$D/smtp.pid"
  for i in $(seq 1 80); do
    port_open "$SP" && port_open "$IP" && break
    sleep 0.1
  done
  port_open "$SP" || die "private SMTP did not start on $SP (log: $D/smtp.log)"
  port_open "$IP" || die "private dovecot did not start on $IP (log: $D/dovecot.log)"
  if [ "$TP" != 0 ]; then
    for i in $(seq 1 40); do port_open "$TP" && break; sleep 0.1; done
    port_open "$TP" || die "private dovecot did not listen for TLS on $TP (log: $D/dovecot.log)"
  fi
  say "smtp=127.0.0.1:$SP imap=127.0.0.1:$IP dir=$D"
}

instance_stop() {
  local D
  D=$(realpath -m "${1:?DIR}")
  if [ -s "$D/smtp.pid" ]; then kill "$(cat "$D/smtp.pid")" 2>/dev/null || true; rm -f "$D/smtp.pid"; fi
  if [ -f "$D/dovecot.conf" ]; then
    doveadm -c "$D/dovecot.conf" stop 2>/dev/null \
      || { [ -s "$D/run/master.pid" ] && kill "$(cat "$D/run/master.pid")" 2>/dev/null; } || true
  fi
}

case "${1:-start}" in
  start)
    t0=$(now)
    install_pkgs
    probe=$(mktemp -d)
    sp=$((20000 + RANDOM % 20000)); ip=$((sp + 1))
    instance_start "$probe" "$sp" "$ip" >/dev/null
    instance_stop "$probe"
    rm -rf "$probe"
    say "ready: dovecot-imapd and python3-aiosmtpd installed, a private pair starts ($(since "$t0") s)"
    ;;
  instance)
    case "${2:-}" in
      start) instance_start "${3:-}" "${4:-}" "${5:-}" "${6:-0}" ;;
      stop) instance_stop "${3:-}" ;;
      *) die "usage: $0 instance start DIR SMTP_PORT IMAP_PORT [IMAPS_PORT] | instance stop DIR" ;;
    esac
    ;;
  *) die "usage: $0 start | instance start DIR SMTP_PORT IMAP_PORT [IMAPS_PORT] | instance stop DIR" ;;
esac
