# shellcheck shell=bash
# shellcheck disable=SC2034,SC2154 # globals are shared with the sourcing script
# Shared by bench/run.sh and bench/scale.sh (sourced, not run).
#
# The caller sets: CRYO, BIN, work (a scratch directory), json (0/1), and
# defines nothing else this file uses. Results of the helpers come back in
# global variables, named after the helper (ck_*, rs_*, verdict...).

CC=${CC:-cc}
MEM_MARGIN_MIB=${MEM_MARGIN_MIB:-6144}	# never leave less available than this
READY_TIMEOUT_S=600	# filling and hashing 4 GiB takes a while
VERDICT_TIMEOUT_S=300
CFLAGS_BENCH=(-std=gnu11 -O2 -Wall -Wextra -Werror)

log() { if [ "$json" = 1 ]; then printf '%s\n' "$*" >&2; else printf '%s\n' "$*"; fi; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }
calc() { awk "BEGIN { printf \"%.6f\", $* }"; }

bench_build() {
	mkdir -p "$BIN"
	"$CC" "${CFLAGS_BENCH[@]}" -o "$BIN/bounds" bench/bounds.c -lzstd -llz4 -lpthread
	"$CC" "${CFLAGS_BENCH[@]}" -o "$BIN/memhog" bench/memhog.c
	"$CC" "${CFLAGS_BENCH[@]}" -o "$BIN/scale" bench/scale.c -lpthread
	"$CC" "${CFLAGS_BENCH[@]}" -o "$BIN/runstat" bench/runstat.c
}

# Which cryo is measured: the binary's hash and time, and the tree's
# revision (-dirty: with uncommitted changes, which the binary may or may
# not include).
cryo_identity() {
	local rev mtime
	rev=$(git describe --always --dirty 2>/dev/null || echo unknown)
	mtime=$(date -u -r "$CRYO" +%Y-%m-%dT%H:%M:%SZ 2>/dev/null || echo unknown)
	echo "$CRYO (sha256 $(sha256sum <"$CRYO" | cut -c1-12), built $mtime), tree $rev"
}

mem_avail_mib() {
	awk '/^MemAvailable:/ { print int($2 / 1024) }' /proc/meminfo
}

disk_avail_mib() {
	df -Pm "$1" | awk 'NR == 2 { print $4 }'
}

# Run "$@" as a target with only stdio, its output in the file $target_log:
# cryo refuses pipes leaked in from whatever runs the bench, and the log
# must be a regular file for the same reason. Call as: start_target CMD... &
start_target() {
	local f
	for f in "/proc/$BASHPID"/fd/*; do
		f=${f##*/}
		[ "$f" -gt 2 ] && eval "exec $f>&-"
	done
	exec "$@" >"$target_log" 2>&1 </dev/null
}

# Wait until the target's log, past byte $2, has a line matching $1.
wait_for_line() {
	local re=$1 from=$2 timeout_s=$3 _
	for _ in $(seq $((timeout_s * 20))); do
		tail -c +$((from + 1)) "$target_log" | grep -q "$re" && return 0
		sleep 0.05
	done
	return 1
}

# This VM's init reaps orphans up to ~2 s late: a PID is free only once
# /proc/PID is gone.
wait_gone() {
	local p=$1 _
	for _ in $(seq 200); do
		[ -e "/proc/$p" ] || return 0
		sleep 0.05
	done
	die "process $p still exists 10 s after it was killed"
}

# Peak RSS (VmHWM) of a process, KiB.
hwm_kib() {
	awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0
}

# A field of cryo's --stats line in file $2.
stat_field() {
	sed -n 's/.*"'"$1"'": \([0-9.]*\).*/\1/p' "$2" | tail -n 1
}

runstat_field() {
	sed -n 's/.*'"$1"'=\([0-9.]*\).*/\1/p' "$2"
}

# MiB of memory to warm up before a timed command that will allocate
# $1 MiB (see runstat -w): as much, or what leaves MEM_MARGIN_MIB (and
# 512 MiB more) available, or nothing with warm=0.
warm_size() {
	local want=$1 room
	if [ "${warm:-1}" = 0 ]; then
		echo 0
		return
	fi
	room=$(($(mem_avail_mib) - MEM_MARGIN_MIB - 512))
	[ "$room" -gt 0 ] || room=0
	echo $((want < room ? want : room))
}

# cryo checkpoint PID -o IMG "${@:3}" --kill --stats, measured, with
# warm_mib (global, default 0) MiB warmed up first.
# Sets ck_ok, ck_secs, ck_rss_kib, ck_frozen_ms, ck_image_bytes.
# The target is a child of this shell: its death is reaped with the shell's
# stderr muted, or bash would announce "Killed"; cryo's messages still go
# to the terminal through fd 3.
cryo_checkpoint() {
	local pid=$1 img=$2
	shift 2
	ck_ok=1
	{
		"$BIN/runstat" -w "${warm_mib:-0}" "$work/runstat" "$CRYO" checkpoint "$pid" -o "$img" --kill --stats \
			"$@" 2>"$work/cryo.err" || ck_ok=0
		if [ "$ck_ok" = 0 ]; then
			cat "$work/cryo.err" >&3
			kill -KILL "$pid" 2>/dev/null || true
		fi
		wait "$pid" 2>/dev/null || true
	} 3>&2 2>/dev/null
	wait_gone "$pid"
	[ "$ck_ok" = 1 ] || return 1
	ck_secs=$(runstat_field seconds "$work/runstat")
	ck_rss_kib=$(runstat_field maxrss_kib "$work/runstat")
	ck_frozen_ms=$(stat_field frozen_ms "$work/cryo.err")
	ck_image_bytes=$(stat -c %s "$img")
	# a checkpoint of a restored target: it is not our child, just wait
	return 0
}

# cryo restore IMG --detach --stats, measured (warm_mib warmed up first).
# Sets rs_ok, rs_secs,
# rs_rss_kib, rs_pid.
cryo_restore() {
	local img=$1
	rs_ok=1
	rs_pid=$("$BIN/runstat" -w "${warm_mib:-0}" "$work/runstat" "$CRYO" restore "$img" --detach --stats \
		2>"$work/cryo.err") || rs_ok=0
	if [ "$rs_ok" = 0 ] || [ -z "$rs_pid" ]; then
		rs_ok=0
		cat "$work/cryo.err" >&2
		return 1
	fi
	rs_secs=$(runstat_field seconds "$work/runstat")
	rs_rss_kib=$(runstat_field maxrss_kib "$work/runstat")
}

# Ask target $1 to check itself with signal $2 (USR1: keep running; TERM:
# final check, exit). Its answer is the first verdict line past byte $3 of
# its log. Sets verdict to PASS, or FAIL...
verify_target() {
	local pid=$1 sig=$2 from=$3
	kill -"$sig" "$pid"
	if ! wait_for_line '^PASS\|^FAIL' "$from" "$VERDICT_TIMEOUT_S"; then
		verdict="FAIL: no verdict within $VERDICT_TIMEOUT_S s"
		return 1
	fi
	verdict=$(tail -c +$((from + 1)) "$target_log" | grep -m1 '^PASS\|^FAIL')
	[ "$verdict" = PASS ]
}

# Drop a file from the page cache (it is clean: cryo fsynced it).
drop_cache() {
	dd if="$1" iflag=nocache count=0 status=none
}
