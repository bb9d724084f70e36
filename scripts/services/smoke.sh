#!/usr/bin/env bash
# Smoke test of the live services with curl, using only the env files that
# rt.sh / redmine.sh write: create a ticket/issue, add a public reply and an
# internal note, read them back and check what came back.
# Usage: scripts/services/smoke.sh [rt] [redmine]      (default: both)
set -euo pipefail
SVC=smoke
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
ensure_tools
command -v jq >/dev/null || apt_install jq || die "could not install jq"
J=(-H 'Content-Type: application/json')
stamp=$(date -u +%Y%m%dT%H%M%SZ)

smoke_rt() {
  [ -s "$RUN_DIR/rt.env" ] || die "no $RUN_DIR/rt.env: run scripts/services/rt.sh start"
  . "$RUN_DIR/rt.env"
  local A=(-sS --fail-with-body -H "Authorization: token $RT_TOKEN") tid r hist
  r=$(curl "${A[@]}" "${J[@]}" -X POST "$RT_REST_URL/ticket" -d "$(jq -n --arg q "$RT_QUEUE" --arg s "smoke $stamp" \
      '{Queue:$q, Subject:$s, Requestor:"customer@example.test", Content:"It is broken.", ContentType:"text/plain"}')")
  tid=$(jq -r .id <<<"$r"); [ "$tid" != null ] || die "RT: no ticket id in: $r"
  echo "rt: ticket $tid created (token auth)"
  r=$(curl "${A[@]}" "${J[@]}" -X POST "$RT_REST_URL/ticket/$tid/correspond" -d '{"Content":"public reply","ContentType":"text/plain"}')
  echo "rt: correspond -> $(jq -c . <<<"$r")"
  # the password works as well as the token
  r=$(curl -sS --fail-with-body -u "$RT_USER:$RT_PASSWORD" "${J[@]}" -X POST "$RT_REST_URL/ticket/$tid/comment" \
      -d '{"Content":"internal note","ContentType":"text/plain"}')
  echo "rt: comment (basic auth) -> $(jq -c . <<<"$r")"
  r=$(curl "${A[@]}" "$RT_REST_URL/ticket/$tid")
  echo "rt: read back: $(jq -c '{id, Subject, Status, Queue: .Queue.id}' <<<"$r")"
  hist=$(curl "${A[@]}" "$RT_REST_URL/ticket/$tid/history?fields=Type,Creator&per_page=50")
  echo "rt: history: $(jq -c '[.items[].Type]' <<<"$hist")"
  jq -e '[.items[].Type] | index("Correspond") and index("Comment")' <<<"$hist" >/dev/null \
    || die "RT: Correspond/Comment missing from the history of ticket $tid"
  local ct cc
  cc=$(jq -r '[.items[] | select(.Type=="Correspond")][0].id' <<<"$hist")
  ct=$(jq -r '[.items[] | select(.Type=="Comment")][0].id' <<<"$hist")
  # REST2 (5.0.3) returns a text part's Content as it is, not base64
  local reply note
  reply=$(curl "${A[@]}" "$RT_REST_URL/transaction/$cc/attachments?fields=Content,ContentType" | jq -r '[.items[] | select(.ContentType=="text/plain") | .Content] | join("|")')
  note=$(curl "${A[@]}" "$RT_REST_URL/transaction/$ct/attachments?fields=Content,ContentType" | jq -r '[.items[] | select(.ContentType=="text/plain") | .Content] | join("|")')
  echo "rt: reply text: $reply"
  echo "rt: note text:  $note"
  [ "$reply" = "public reply" ] && [ "$note" = "internal note" ] || die "RT: reply/note text did not come back"
  echo "rt: OK"
}

smoke_redmine() {
  [ -s "$RUN_DIR/redmine.env" ] || die "no $RUN_DIR/redmine.env: run scripts/services/redmine.sh start"
  . "$RUN_DIR/redmine.env"
  local K=(-sS --fail-with-body -H "X-Redmine-API-Key: $REDMINE_API_KEY") iid r code
  r=$(curl "${K[@]}" "${J[@]}" -X POST "$REDMINE_URL/issues.json" -d "$(jq -n --arg p "$REDMINE_PROJECT" --arg s "smoke $stamp" \
      '{issue:{project_id:$p, subject:$s, description:"It is broken."}}')")
  iid=$(jq -r .issue.id <<<"$r"); [ "$iid" != null ] || die "Redmine: no issue id in: $r"
  echo "redmine: issue $iid created ($(jq -c '{tracker:.issue.tracker.name, status:.issue.status.name, priority:.issue.priority.name}' <<<"$r"))"
  code=$(curl "${K[@]}" "${J[@]}" -o /dev/null -w '%{http_code}' -X PUT "$REDMINE_URL/issues/$iid.json" -d '{"issue":{"notes":"public reply"}}')
  echo "redmine: public note -> HTTP $code"
  code=$(curl "${K[@]}" "${J[@]}" -o /dev/null -w '%{http_code}' -X PUT "$REDMINE_URL/issues/$iid.json" -d '{"issue":{"notes":"internal note","private_notes":true}}')
  echo "redmine: private note -> HTTP $code"
  r=$(curl "${K[@]}" "$REDMINE_URL/issues/$iid.json?include=journals")
  echo "redmine: journals: $(jq -c '[.issue.journals[] | {notes, private_notes}]' <<<"$r")"
  jq -e '[.issue.journals[] | select(.notes=="public reply" and .private_notes==false)] | length == 1' <<<"$r" >/dev/null \
    && jq -e '[.issue.journals[] | select(.notes=="internal note" and .private_notes==true)] | length == 1' <<<"$r" >/dev/null \
    || die "Redmine: notes missing on issue $iid"
  echo "redmine: OK"
}

[ $# -gt 0 ] || set -- rt redmine
for s in "$@"; do
  case "$s" in
    rt) smoke_rt ;;
    redmine) smoke_redmine ;;
    *) die "unknown service $s (rt, redmine)" ;;
  esac
done
