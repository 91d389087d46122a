#!/bin/sh
# Forgets cluster members that are gone for good, so that quorum queues regrow on the node that replaces one.
#
# The clustered node's wrapper (seaport.rabbitmq_config.start_command) writes this file and starts it in the
# background just before it execs the server, as root (the CLI tools work as root in the container), with the
# wrapper's PID, which the exec keeps: the loop stops once the node's process is gone. seaport fills in the @...@
# values from rabbitmq_config's constants; the environment variables below override them (a round by hand, tests).
#
# A round, every SEAPORT_FORGET_INTERVAL_SECONDS:
#   1. `rabbitmqctl cluster_status`: the members (disk_nodes; ram_nodes on 3.x) and the running ones. The CLI
#      refuses when this node is not running the app. With no more than half the members running, this node
#      may be on the wrong side of a split: nothing is done (and nothing counted).
#   2. only when a member is down, `rabbitmq-diagnostics discover_peers`: a member that discovery still lists
#      (still registered in Consul, which deregisters it a while after its check fails: the plugin does not
#      filter on the check) has not departed. Discovery has to list every running member, or its answer is
#      not trusted this round.
#   3. the first time a member is seen down and unlisted goes into the state file; a member down and unlisted
#      in every round for SEAPORT_FORGET_GRACE_SECONDS (far longer than a node takes to restart on its
#      instance) is removed with `rabbitmqctl forget_cluster_node`, which also drops its quorum queue replicas
#      and refuses a node that runs. At most one member a round.
# A command that fails means nothing is done that round (the state file stays for the next one). Each decision
# is one line on stdout, the container's log.
#
# Usage: rabbitmq-forget-departed.sh loop <PID of the node's process> | once
set -uf # no globbing: lists of node names are split on new lines (IFS) only
newline='
'
IFS="$newline"

grace="${SEAPORT_FORGET_GRACE_SECONDS:-@GRACE_SECONDS@}"
interval="${SEAPORT_FORGET_INTERVAL_SECONDS:-@INTERVAL_SECONDS@}"
state="${SEAPORT_FORGET_STATE_FILE:-@STATE_FILE@}"
cli_timeout=120 # seconds one CLI command may take (some have no time limit of their own)

log() { printf 'seaport-forget-departed: %s\n' "$1"; }

is_number() {
  case "$1" in
    '' | *[!0-9]*) return 1 ;;
    *) return 0 ;;
  esac
}

# Runs a CLI command with a time limit (coreutils' or busybox's timeout, where there is one).
cli() {
  if command -v timeout > /dev/null 2>&1; then
    timeout "$cli_timeout" "$@"
  else
    "$@"
  fi
}

# The strings of the array that is the value of key $1 in the JSON object on stdin, one a line. The CLI writes
# cluster_status as one object; its node lists are arrays of node names, which hold no quote, comma or bracket.
json_array_of() {
  tr -d '\r\n' | sed -n "s/.*\"$1\"[[:space:]]*:[[:space:]]*\\[\\([^]]*\\)\\].*/\\1/p" | strings_of_list
}

# The strings of the JSON array on stdin (discover_peers); nothing for anything else (with no peer to list,
# the command prints {"message":"No peers discovered"}).
json_top_array() {
  tr -d '\r\n' | sed -n 's/^[[:space:]]*\[\([^]]*\)\][[:space:]]*$/\1/p' | strings_of_list
}

strings_of_list() {
  tr ',' '\n' | sed -n 's/^[[:space:]]*"\([^"]*\)"[[:space:]]*$/\1/p'
}

# Whether $1 is one of the lines of $2.
is_in() {
  printf '%s\n' "$2" | grep -qxF -e "$1"
}

# How many non-empty lines $1 has.
count() {
  printf '%s\n' "$1" | grep -c .
}

one_line() {
  printf '%s' "$1" | tr -s '\n' ' ' | sed 's/ *$//'
}

# When member $1 was first seen down and unlisted, from the state file (empty if it was not).
first_seen() {
  awk -v m="$1" '$1 == m { print $2; exit }' "$state" 2> /dev/null
}

# Whether member $1 has a line in $2 (lines "<member> <time>").
has_member() {
  printf '%s\n' "$2" | awk -v m="$1" '$1 == m { found = 1 } END { exit !found }'
}

# The lines of $2 ("<member> <time>") but member $1's.
without() {
  printf '%s' "$2" | awk -v m="$1" '$1 != m'
}

# The state file becomes $1: lines "<member> <first seen down and unlisted, seconds since the epoch>".
write_state() {
  if printf '%s\n' "$1" | sed '/^$/d' > "$state.new" && mv "$state.new" "$state"; then return 0; fi
  log "cannot write $state: nothing done this round"
  return 1
}

round() {
  now="$(date +%s)"
  is_number "$now" || {
    log "no clock ($now): nothing done this round"
    return 0
  }
  status="$(cli rabbitmqctl cluster_status --formatter json 2> /dev/null)" || {
    log "cluster_status failed (exit $?; this node is not running the app, or the CLI cannot reach it): nothing done this round"
    return 0
  }
  members="$(printf '%s' "$status" | json_array_of disk_nodes)"
  ram="$(printf '%s' "$status" | json_array_of ram_nodes)"
  members="$(printf '%s\n%s\n' "$members" "$ram" | sed '/^$/d')"
  reported="$(printf '%s' "$status" | json_array_of running_nodes)"
  if [ -z "$members" ] || [ -z "$reported" ]; then
    log "cluster_status lists no member or no running node: nothing done this round"
    return 0
  fi
  running=""
  down=""
  for member in $members; do
    if is_in "$member" "$reported"; then
      running="$running$member$newline"
    else
      down="$down$member$newline"
    fi
  done
  up="$(count "$running")"
  total="$(count "$members")"
  if [ $((up * 2)) -le "$total" ]; then
    log "only $up of $total members run: nothing done from a minority, nothing counted (down: $(one_line "$down"))"
    write_state ""
    return 0
  fi

  listed=""
  if [ -n "$down" ]; then
    peers="$(cli rabbitmq-diagnostics discover_peers --formatter json 2> /dev/null)" || {
      log "discover_peers failed (exit $?): nothing done this round (down: $(one_line "$down"))"
      return 0
    }
    listed="$(printf '%s' "$peers" | json_top_array)"
    for member in $running; do
      if ! is_in "$member" "$listed"; then
        log "discovery does not list $member, which runs: its answer is not trusted, nothing done this round"
        return 0
      fi
    done
  fi

  # The members down and unlisted, each with the time it was first seen so (kept from the last round).
  departed=""
  for member in $down; do
    if is_in "$member" "$listed"; then
      log "$member is down but still listed by discovery: not departed"
      continue
    fi
    since="$(first_seen "$member")"
    if ! is_number "$since" || [ "$since" -gt "$now" ]; then
      since="$now"
      log "$member is down and not listed by discovery: forgotten in $grace s unless it comes back"
    fi
    departed="$departed$member $since$newline"
  done
  while IFS=' ' read -r member _; do
    if [ -n "$member" ] && ! has_member "$member" "$departed"; then
      log "$member runs, is listed by discovery again or is no longer a member: not counted any more"
    fi
  done < "$state"
  write_state "$departed" || return 0

  # At most one member a round: the one down and unlisted the longest, once past the grace period.
  oldest="$(printf '%s' "$departed" | sort -n -k 2,2 | head -n 1)"
  [ -n "$oldest" ] || return 0
  member="${oldest%% *}"
  away=$((now - ${oldest##* }))
  if [ "$away" -lt "$grace" ]; then return 0; fi
  if result="$(cli rabbitmqctl forget_cluster_node "$member" 2>&1)"; then
    log "forgot $member after $away s down and unlisted"
    write_state "$(without "$member" "$departed")"
  else
    log "forget_cluster_node $member failed (exit $?) after $away s down and unlisted: $(one_line "$result")"
  fi
  return 0
}

# Sleeps $1 seconds, a few at a time; fails once process $2 (the node's) is gone.
pause() {
  left="$1"
  while [ "$left" -gt 0 ]; do
    kill -0 "$2" 2> /dev/null || return 1
    step=5
    if [ "$left" -lt "$step" ]; then step="$left"; fi
    sleep "$step"
    left=$((left - step))
  done
  kill -0 "$2" 2> /dev/null
}

if ! is_number "$grace" || ! is_number "$interval"; then
  log "grace and interval must be whole seconds (grace '$grace', interval '$interval')"
  exit 64
fi
touch "$state" || exit 73

case "${1:-}" in
  once)
    round
    ;;
  loop)
    node_pid="${2:-}"
    is_number "$node_pid" || {
      log "usage: $0 loop <PID of the node's process>"
      exit 64
    }
    log "started: every $interval s, forgets a member down and not listed by discovery for $grace s"
    while pause "$interval" "$node_pid"; do round; done
    ;;
  *)
    log "usage: $0 loop <PID of the node's process> | once"
    exit 64
    ;;
esac
