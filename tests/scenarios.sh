#!/bin/bash
# Scenarios the runner's one-program-per-test model does not cover:
#  - a daemon whose session leader exited (double fork), which restore
#    recreates with a helper task holding the leader's PID;
#  - restore in the foreground: cryo is the parent, forwards signals and
#    exits with the program's status;
#  - a descriptor on /proc/<pid>/... of a task outside the image that is
#    gone at restore time: restore must fail, naming the fd and the path,
#    and leave nothing behind;
#  - a tree whose sessions restore could not recreate: refused at
#    checkpoint time (even with --kill), the tree untouched;
#  - a FIFO whose writer is outside the image: refused without --external;
#    with it, restore needs --inherit-fd (our pipe takes its place: the
#    program reads what we write) or --hangup-external (it reads EOF).
# Output like errors.sh: ok/not ok lines, then "N passed, N failed".
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
CRYO=${CRYO:-$HERE/../build/cryo}
TESTBIN=${TESTBIN:-$HERE/../build/tests}
passed=0 failed=0

ok() { echo "ok - $1"; passed=$((passed + 1)); }
not_ok() { echo "not ok - $1: $2"; failed=$((failed + 1)); }

wait_gone() {
	for _ in $(seq 100); do [ -e "/proc/$1" ] || return 0; sleep 0.1; done
	return 1
}

proc_state() { awk '{ sub(/.*\) /, ""); print $1 }' "/proc/$1/stat" 2>/dev/null; }
ids() { awk '{ sub(/.*\) /, ""); print $2, $3, $4 }' "/proc/$1/stat"; }	# ppid pgid sid

daemon_with_dead_session_leader() {
	local dir pid before after
	dir=$(mktemp -d /tmp/cryo-sessions.XXXXXX)
	# sh leads a new session, starts the program in the background and exits
	(cd "$dir" && exec 3>&- 251>&- 255>&- && setsid sh -c \
		"$TESTBIN/threads > out 2>&1 < /dev/null & echo \$! > pid" </dev/null >/dev/null 2>&1)
	for _ in $(seq 50); do [ -s "$dir/pid" ] && grep -q READY "$dir/out" 2>/dev/null && break; sleep 0.1; done
	pid=$(cat "$dir/pid")
	before=$(ids "$pid" | cut -d' ' -f2,3)
	if [ "$(echo "$before" | cut -d' ' -f2)" = "$pid" ]; then
		not_ok "daemon" "setup: the program leads its own session"; kill -9 "$pid"; return
	fi
	if ! "$CRYO" checkpoint "$pid" -o "$dir/img" --kill 2>"$dir/err"; then
		not_ok "daemon" "checkpoint failed: $(cat "$dir/err")"; kill -9 "$pid"; return
	fi
	wait_gone "$pid"
	# the dead leader's PID must be free too (it was already)
	if ! "$CRYO" restore "$dir/img" --detach >"$dir/rpid" 2>"$dir/err"; then
		not_ok "daemon" "restore failed: $(cat "$dir/err")"; return
	fi
	after=$(ids "$pid" | cut -d' ' -f2,3)
	kill -TERM "$pid"
	wait_gone "$pid"
	if [ "$before" != "$after" ]; then
		not_ok "daemon" "pgid/sid were '$before', now '$after'"
	elif ! grep -q '^PASS' "$dir/out"; then
		not_ok "daemon" "program said: $(tail -1 "$dir/out")"
	else
		ok "daemon whose session leader is gone keeps its session and group ($after)"
		rm -rf "$dir"
	fi
}

outside_target_gone() {
	local dir pid other
	dir=$(mktemp -d /tmp/cryo-scenarios.XXXXXX)
	sleep 1000 </dev/null >/dev/null 2>&1 &
	other=$!
	# a shell holding /proc/<other>/status open on fd 7, waiting
	(cd "$dir" && exec 3>&- 251>&- 255>&- && setsid bash -c \
		"exec 7</proc/$other/status; echo \$\$ > pid; exec sleep 1000" \
		</dev/null >/dev/null 2>&1 &)
	for _ in $(seq 50); do [ -s "$dir/pid" ] && break; sleep 0.1; done
	pid=$(cat "$dir/pid")
	sleep 0.2
	if ! "$CRYO" checkpoint "$pid" -o "$dir/img" --kill 2>"$dir/err"; then
		not_ok "outside target" "checkpoint failed: $(cat "$dir/err")"; kill -9 "$pid" "$other"; return
	fi
	kill -9 "$other"; wait "$other" 2>/dev/null
	wait_gone "$pid"; wait_gone "$other"
	"$CRYO" restore "$dir/img" --detach >/dev/null 2>"$dir/err"
	local rc=$?
	if [ "$rc" != 74 ]; then
		not_ok "outside target" "restore exited $rc, want 74: $(cat "$dir/err")"
	elif ! grep -q "fd 7 of task $pid (/proc/$other/status): task $other is not in the image and no longer exists" "$dir/err"; then
		not_ok "outside target" "message does not name fd and path: $(cat "$dir/err")"
	elif [ -e "/proc/$pid" ]; then
		not_ok "outside target" "task $pid exists after the failed restore"; kill -9 "$pid"
	else
		ok "fd on /proc of a task gone at restore: exit 74, one line naming fd and path, nothing created"
		rm -rf "$dir"
	fi
}

foreground_restore_forwards_signals() {
	local dir pid cryo_pid rc ppid
	dir=$(mktemp -d /tmp/cryo-scenarios.XXXXXX)
	(cd "$dir" && exec setsid "$TESTBIN/sys_pause" >out 2>&1 </dev/null 3>&- 251>&- 255>&-) &
	pid=$!
	for _ in $(seq 50); do grep -qs READY "$dir/out" && break; sleep 0.1; done
	if ! "$CRYO" checkpoint "$pid" -o "$dir/img" --kill 2>"$dir/err"; then
		not_ok "foreground restore" "checkpoint failed: $(cat "$dir/err")"; kill -9 "$pid"; return
	fi
	wait "$pid" 2>/dev/null
	wait_gone "$pid"
	"$CRYO" restore "$dir/img" 2>"$dir/err" &
	cryo_pid=$!
	for _ in $(seq 50); do [ -e "/proc/$pid" ] && [ "$(ids "$pid" | cut -d' ' -f1)" = "$cryo_pid" ] && break; sleep 0.1; done
	ppid=$(ids "$pid" | cut -d' ' -f1)
	sleep 0.3
	kill -TERM "$cryo_pid"	# forwarded to the restored program
	wait "$cryo_pid"
	rc=$?
	if [ "$ppid" != "$cryo_pid" ]; then
		not_ok "foreground restore" "restored $pid has parent $ppid, not cryo $cryo_pid"
	elif [ "$rc" != 0 ] || ! grep -q '^PASS' "$dir/out"; then
		not_ok "foreground restore" "cryo exited $rc, program said: $(tail -1 "$dir/out"); $(cat "$dir/err")"
	else
		ok "foreground restore: cryo is the parent, forwards SIGTERM, exits with the program's status"
		rm -rf "$dir"
	fi
}

# A bash reading fd 5, a FIFO whose writer is this script: it appends
# "got LINE" per line and "EOF" at the end to $dir/got.
start_fifo_reader() {
	local dir=$1
	mkfifo "$dir/fifo"
	exec 8<>"$dir/fifo"	# the outside end (read-write: never blocks)
	(cd "$dir" && exec 3>&- 251>&- 255>&- 8>&- && exec setsid bash -c \
		'while :; do if read -r -u 5 l; then echo "got $l" >> got; else echo EOF >> got; exit 0; fi; done' \
		5<"$dir/fifo" </dev/null >/dev/null 2>&1) &
	FIFO_PID=$!
	for _ in $(seq 50); do [ "$(readlink "/proc/$FIFO_PID/fd/5")" = "$dir/fifo" ] && break; sleep 0.1; done
}

unrestorable_session() {
	local dir pid rc q
	dir=$(mktemp -d /tmp/cryo-plan.XXXXXX)
	(cd "$dir" && exec 3>&- 251>&- 255>&- && exec setsid python3 "$HERE/scenarios/session_elsewhere.py" \
		"$dir/q" </dev/null >/dev/null 2>&1) &
	pid=$!
	for _ in $(seq 50); do [ -s "$dir/q" ] && break; sleep 0.1; done
	"$CRYO" checkpoint "$pid" -o "$dir/img" --kill 2>"$dir/err"
	rc=$?
	if [ "$rc" != 69 ] || ! grep -q "session $(cat "$dir/q")" "$dir/err" || [ -e "$dir/img" ] ||
	   [ "$(proc_state "$pid")" != S ]; then
		not_ok "unrestorable session" "checkpoint exit $rc, state $(proc_state "$pid"): $(cat "$dir/err")"
	else
		ok "a session restore could not recreate: checkpoint --kill exits 69 naming it, the tree runs on"
	fi
	# the tree: main, and Q's session (Q and R), all started here
	q=$(cat "$dir/q" 2>/dev/null)
	# shellcheck disable=SC2046
	kill -9 "$pid" $([ -n "$q" ] && [ "$q" -gt 1 ] && pgrep -s "$q") 2>/dev/null
	wait "$pid" 2>/dev/null
	rm -rf "$dir"
}

external_fifo() {
	local dir pid rc
	dir=$(mktemp -d /tmp/cryo-external.XXXXXX)
	start_fifo_reader "$dir"
	pid=$FIFO_PID
	"$CRYO" checkpoint "$pid" -o "$dir/img" --kill 2>"$dir/err"
	rc=$?
	if [ "$rc" != 69 ] || ! grep -q "fd 5 ($dir/fifo)" "$dir/err" || [ -e "$dir/img" ] ||
	   [ ! -e "/proc/$pid" ]; then
		not_ok "external FIFO" "checkpoint without --external: exit $rc, $(cat "$dir/err")"
		kill -9 "$pid"; exec 8>&-; return
	fi
	ok "a FIFO whose writer is outside: checkpoint exits 69 naming fd 5 and the path, target untouched"
	if ! "$CRYO" checkpoint "$pid" -o "$dir/img" --kill --external 2>"$dir/err"; then
		not_ok "external FIFO" "checkpoint --external failed: $(cat "$dir/err")"
		kill -9 "$pid"; exec 8>&-; return
	fi
	wait "$pid" 2>/dev/null
	wait_gone "$pid"
	"$CRYO" restore "$dir/img" --detach >/dev/null 2>"$dir/err"
	rc=$?
	if [ "$rc" != 64 ] || ! grep -q "fd 5 of task $pid ($dir/fifo)" "$dir/err" || [ -e "/proc/$pid" ]; then
		not_ok "external FIFO" "restore without --inherit-fd: exit $rc, $(cat "$dir/err")"
		kill -9 "$pid" 2>/dev/null; exec 8>&-; return
	fi
	ok "restore of an external fd without --inherit-fd or --hangup-external: exit 64 naming it"
	# our pipe takes the FIFO's place: the program reads what we write, then EOF
	exec 9< <(echo hello; echo world)
	if ! "$CRYO" restore "$dir/img" --detach --inherit-fd "$pid:5=9" >/dev/null 2>"$dir/err"; then
		not_ok "external FIFO" "restore --inherit-fd failed: $(cat "$dir/err")"
		exec 8>&- 9<&-; return
	fi
	exec 9<&-
	wait_gone "$pid"
	if [ "$(cat "$dir/got" 2>/dev/null | tr '\n' ' ')" != "got hello got world EOF " ]; then
		not_ok "external FIFO" "with --inherit-fd the program wrote '$(cat "$dir/got" 2>/dev/null)'"
		kill -9 "$pid" 2>/dev/null; exec 8>&-; return
	fi
	ok "restore --inherit-fd: the program reads from our descriptor in the FIFO's place"
	rm -f "$dir/got"
	"$CRYO" restore "$dir/img" --detach --hangup-external >/dev/null 2>"$dir/err"
	rc=$?
	wait_gone "$pid"
	exec 8>&-
	if [ "$rc" != 0 ] || [ "$(cat "$dir/got" 2>/dev/null)" != EOF ]; then
		not_ok "external FIFO" "--hangup-external: exit $rc, wrote '$(cat "$dir/got" 2>/dev/null)'; $(cat "$dir/err")"
		kill -9 "$pid" 2>/dev/null; return
	fi
	ok "restore --hangup-external: the program reads EOF where the outside writer was"
	rm -rf "$dir"
}

daemon_with_dead_session_leader
outside_target_gone
foreground_restore_forwards_signals
unrestorable_session
external_fifo
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
