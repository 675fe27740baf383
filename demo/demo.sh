#!/bin/bash
# The cryo demo (`make demo`): start a counter, checkpoint it to an image and
# kill it, then restore it from the image and watch it carry on counting
# with the same PID and no gap. Exits non-zero if anything is off, so it is
# also a smoke test.
#
# Environment: CRYO (default build/cryo), CC (default cc).
set -eu

cd "$(dirname "$0")/.."
CRYO=${CRYO:-build/cryo}
CC=${CC:-cc}
COUNT_SECONDS=2.2	# about four ticks of the counter before and after

tmp=""
pid=""

say() { printf '\n==> %s\n' "$*"; }
die() { printf '\ndemo FAILED: %s\n' "$*" >&2; exit 1; }

cleanup() {
	# Only the counter we started, by its PID; never by name.
	if [ -n "$pid" ] && [ -e "/proc/$pid" ]; then
		kill -KILL "$pid" 2>/dev/null || true
	fi
	if [ -n "$tmp" ]; then
		rm -rf "$tmp"
	fi
}

# This VM's init reaps orphans up to ~2 s late, and a PID is only free once
# /proc/PID is gone, so wait for that rather than for kill to return.
wait_gone() {
	local p=$1 _
	for _ in $(seq 100); do
		[ -e "/proc/$p" ] || return 0
		sleep 0.1
	done
	die "process $p still exists 10 s after it was killed"
}

# Start the counter with only stdin, stdout and stderr: a descriptor leaked
# into this shell by whatever ran it (a pipe to a CI runner, say) would be
# inherited, and cryo refuses pipes whose other end it cannot checkpoint.
start_counter() {
	local f
	for f in "/proc/$BASHPID"/fd/*; do
		f=${f##*/}
		[ "$f" -gt 2 ] && eval "exec $f>&-"
	done
	exec "$tmp/counter" >"$tmp/counter.log" 2>&1 </dev/null
}

last_count() {
	awk '$1 == "count" { n = $2 } END { print n + 0 }' "$tmp/counter.log"
}

# Every line must come from PID $1, counts must go 1, 2, 3... without a
# restart or a gap, and the memory check must hold on every line.
check_log() {
	awk -v pid="$1" '
		$1 == "count" {
			if ($4 != pid) { print "line " NR ": PID " $4 ", expected " pid; bad = 1 }
			if ($2 != n + 1) { print "line " NR ": count " $2 " after " n; bad = 1 }
			if ($6 != "ok") { print "line " NR ": memory state " $6; bad = 1 }
			n = $2
		}
		END { exit bad }' "$tmp/counter.log"
}

main() {
	local restored before after

	[ -x "$CRYO" ] || die "$CRYO not built (run make first)"
	trap cleanup EXIT
	tmp=$(mktemp -d /tmp/cryo-demo.XXXXXX)

	say "Building the counter (demo/counter.c): it prints a count and its PID every 0.5 s"
	"$CC" -O2 -o "$tmp/counter" demo/counter.c

	say "Starting it in the background, output to $tmp/counter.log"
	start_counter &
	pid=$!
	sleep "$COUNT_SECONDS"
	tail -n 3 "$tmp/counter.log"

	say "Checkpointing PID $pid and killing it: $CRYO checkpoint $pid -o counter.img --kill"
	# The shell's own stderr is muted while its killed child is reaped, or
	# bash would announce "Killed"; cryo's messages still go to fd 3.
	{
		"$CRYO" checkpoint "$pid" -o "$tmp/counter.img" --kill 2>&3 ||
			die "checkpoint failed (exit $?)" 2>&3
		wait "$pid" || true
	} 3>&2 2>/dev/null
	wait_gone "$pid"
	before=$(last_count)
	echo "PID $pid is gone; it had counted to $before. Image: $(du -h "$tmp/counter.img" | cut -f1)"

	say "What the image holds: $CRYO inspect counter.img | head"
	# head closes the pipe early; inspect's SIGPIPE is not a failure.
	"$CRYO" inspect "$tmp/counter.img" | head || true

	say "Restoring: $CRYO restore counter.img --detach"
	restored=$("$CRYO" restore "$tmp/counter.img" --detach) || die "restore failed (exit $?)"
	echo "restored PID: $restored"
	[ "$restored" = "$pid" ] || die "restored as PID $restored, was $pid"

	say "It goes on counting, same PID, from $((before + 1)):"
	sleep "$COUNT_SECONDS"
	tail -n 5 "$tmp/counter.log"
	after=$(last_count)
	[ "$after" -gt "$before" ] || die "no new count after the restore (still $after)"
	check_log "$pid" || die "the log shows a restart, a gap, another PID or bad memory"

	say "Stopping it (SIGTERM: its restored handler prints a last line)"
	kill -TERM "$pid"
	wait_gone "$pid"
	tail -n 1 "$tmp/counter.log"
	grep -q "^stopped at [0-9]* pid $pid\$" "$tmp/counter.log" ||
		die "the SIGTERM handler did not run after the restore"
	pid=""

	say "Demo OK: counted 1..$after across a checkpoint, a kill and a restore as PID $restored"
}

main "$@"
