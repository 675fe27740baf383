#!/bin/bash
# The first cryo benchmark (`make bench`): how close do checkpoint and
# restore of a process holding N MiB (default 1024) of random memory come
# to the machine's physical limits?
#
# 1. bounds: memcpy, and write+fsync / cached read / O_DIRECT read
#    bandwidth of tmpfs (/dev/shm) and of the disk (/var/tmp).
# 2. For each of tmpfs and disk: start bench/memhog, time
#    `cryo checkpoint PID -o IMG --kill`, then `cryo restore IMG --detach`
#    until it returns, and check that the restored memhog's memory is
#    intact (SIGTERM -> PASS). Throughput is image bytes per second;
#    checkpoint is compared with the storage's write+fsync bound, restore
#    with its read bound (cached; on disk also cold, against O_DIRECT,
#    after dropping the image from the page cache).
#
# usage: bench/run.sh [--json] [--mib N] [--pattern random|zero|text|sparse]
# With --json the report is one JSON document on stdout; progress goes to
# stderr. Environment: CRYO (default build/cryo), CC, BUILD (default build).
set -eu

cd "$(dirname "$0")/.."
CRYO=${CRYO:-build/cryo}
CC=${CC:-cc}
BIN=${BUILD:-build}/bench
TMPFS_DIR=/dev/shm
DISK_DIR=/var/tmp
READY_TIMEOUT_S=300	# filling and hashing 1 GiB takes a few seconds
VERDICT_TIMEOUT_S=300
MEM_MARGIN_MIB=512

json=0
mib=1024
pattern=random
work=""		# logs
images=()	# to delete on exit
hog=""		# PID of the live memhog, original or restored
failures=0
rows=()		# JSON objects, one per measurement

log() { if [ "$json" = 1 ]; then printf '%s\n' "$*" >&2; else printf '%s\n' "$*"; fi; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }
calc() { awk "BEGIN { printf \"%.3f\", $* }"; }

cleanup() {
	if [ -n "$hog" ] && [ -e "/proc/$hog" ]; then
		kill -KILL "$hog" 2>/dev/null || true
	fi
	if [ "${#images[@]}" -gt 0 ]; then
		rm -f "${images[@]}"
	fi
	if [ -n "$work" ]; then
		rm -rf "$work"
	fi
}

usage() {
	echo "usage: bench/run.sh [--json] [--mib N] [--pattern random|zero|text|sparse]" >&2
	exit 64
}

parse_args() {
	while [ $# -gt 0 ]; do
		case $1 in
		--json) json=1 ;;
		--mib) [ $# -ge 2 ] || usage; mib=$2; shift ;;
		--pattern) [ $# -ge 2 ] || usage; pattern=$2; shift ;;
		*) usage ;;
		esac
		shift
	done
	case $mib in '' | *[!0-9]*) usage ;; esac
	# bounds writes its files in 4 MiB chunks
	if [ "$mib" -eq 0 ] || [ $((mib % 4)) -ne 0 ]; then
		die "--mib must be a positive multiple of 4"
	fi
}

build() {
	mkdir -p "$BIN"
	"$CC" -std=gnu11 -O2 -Wall -Wextra -Werror -o "$BIN/bounds" bench/bounds.c
	"$CC" -std=gnu11 -O2 -Wall -Wextra -Werror -o "$BIN/memhog" bench/memhog.c
}

# The tmpfs run holds the memhog, its image in /dev/shm and the restored
# copy's memory at once.
check_room() {
	local avail_mib disk_mib
	avail_mib=$(awk '/^MemAvailable:/ { print int($2 / 1024) }' /proc/meminfo)
	[ "$avail_mib" -ge $((3 * mib + MEM_MARGIN_MIB)) ] ||
		die "needs $((3 * mib + MEM_MARGIN_MIB)) MiB of available memory, has $avail_mib (try --mib)"
	disk_mib=$(df -Pm "$DISK_DIR" | awk 'NR == 2 { print $4 }')
	[ "$disk_mib" -ge $((2 * mib + MEM_MARGIN_MIB)) ] ||
		die "needs $((2 * mib + MEM_MARGIN_MIB)) MiB free in $DISK_DIR, has $disk_mib"
}

measure_bounds() {
	log "== bounds ($mib MiB files)"
	"$BIN/bounds" --mib "$mib" --vars tmpfs="$TMPFS_DIR" disk="$DISK_DIR" >"$work/bounds.vars"
	# shellcheck disable=SC1091
	. "$work/bounds.vars"
	log "$(printf '  %-28s %8s GB/s' memcpy "$(bound memcpy_gbps)")"
	local t
	for t in tmpfs disk; do
		log "$(printf '  %-28s %8s GB/s' "$t write+fsync" "$(bound "${t}_write_gbps")")"
		log "$(printf '  %-28s %8s GB/s' "$t read, cached" "$(bound "${t}_read_cached_gbps")")"
		log "$(printf '  %-28s %8s GB/s' "$t read, O_DIRECT" "$(bound "${t}_read_direct_gbps")")"
	done
}

# The value of a bound by name, or "n/a".
bound() {
	local v=${!1:-}
	echo "${v:-n/a}"
}

# Start memhog with only stdio: cryo refuses pipes leaked in from whatever
# runs this script. Its log must be a regular file for the same reason.
start_memhog_child() {
	local f
	for f in "/proc/$BASHPID"/fd/*; do
		f=${f##*/}
		[ "$f" -gt 2 ] && eval "exec $f>&-"
	done
	exec "$BIN/memhog" -m "$mib" -p "$pattern" >"$work/memhog.log" 2>&1 </dev/null
}

wait_for_line() {
	local re=$1 timeout_s=$2 _
	for _ in $(seq $((timeout_s * 10))); do
		grep -q "$re" "$work/memhog.log" && return 0
		sleep 0.1
	done
	return 1
}

# This VM's init reaps orphans up to ~2 s late: a PID is free only once
# /proc/PID is gone.
wait_gone() {
	local p=$1 _
	for _ in $(seq 100); do
		[ -e "/proc/$p" ] || return 0
		sleep 0.1
	done
	die "process $p still exists 10 s after it was killed"
}

# One JSON row: target phase seconds image_bytes bound_name
record() {
	local target=$1 phase=$2 secs=$3 bytes=$4 bound_name=$5
	local bound_gbps rate ratio
	bound_gbps=$(bound "$bound_name")
	rate=$(calc "$bytes / $secs / 1e9")
	if [ "$bound_gbps" = n/a ]; then
		ratio=null
		log "$(printf '  %-6s %-16s %7.2f s %7.2f GB/s   (no %s figure)' \
			"$target" "$phase" "$secs" "$rate" "$bound_name")"
	else
		ratio=$(calc "$rate / $bound_gbps")
		log "$(printf '  %-6s %-16s %7.2f s %7.2f GB/s = %5.2f x %s (%s GB/s)' \
			"$target" "$phase" "$secs" "$rate" "$ratio" "$bound_name" "$bound_gbps")"
	fi
	rows+=("$(printf '{"target": "%s", "phase": "%s", "seconds": %s, "image_bytes": %s, "gbps": %s, "bound": "%s", "bound_gbps": %s, "ratio": %s}' \
		"$target" "$phase" "$secs" "$bytes" "$rate" "$bound_name" \
		"$([ "$bound_gbps" = n/a ] && echo null || echo "$bound_gbps")" "$ratio")")
}

# Restore the image, time it, then check the restored memhog and stop it.
# The log is cut back to what it held at checkpoint, so the verdict read is
# this restore's: the restored memhog writes at its saved file offset.
restore_and_verify() {
	local target=$1 phase=$2 img=$3 bytes=$4 bound_name=$5 orig_pid=$6 log_bytes=$7
	local t0 t1 pid
	truncate -s "$log_bytes" "$work/memhog.log"
	t0=$EPOCHREALTIME
	if ! pid=$("$CRYO" restore "$img" --detach); then
		log "  $target $phase: cryo restore failed"
		failures=$((failures + 1))
		return 1
	fi
	t1=$EPOCHREALTIME
	hog=$pid
	record "$target" "$phase" "$(calc "$t1 - $t0")" "$bytes" "$bound_name"
	if [ "$pid" != "$orig_pid" ]; then
		log "  $target $phase: restored as PID $pid, was $orig_pid"
		failures=$((failures + 1))
	fi
	kill -TERM "$pid"
	if ! wait_for_line '^PASS\|^FAIL' "$VERDICT_TIMEOUT_S"; then
		log "  $target $phase: no verdict from the restored memhog"
		failures=$((failures + 1))
	elif grep -q '^FAIL' "$work/memhog.log"; then
		log "  $target $phase: restored memory is wrong: $(grep '^FAIL' "$work/memhog.log")"
		failures=$((failures + 1))
	else
		log "  $target $phase: the restored memhog verified its memory: PASS"
	fi
	wait_gone "$pid"
	hog=""
}

bench_target() {
	local target=$1 dir=$2 img pid t0 t1 bytes log_bytes ok
	img="$dir/cryo-bench.$$.img"
	images+=("$img")
	log "== $target: $mib MiB $pattern, image $img"

	start_memhog_child &
	pid=$!
	hog=$pid
	wait_for_line '^READY' "$READY_TIMEOUT_S" || die "memhog did not get ready"

	# The shell's stderr is muted while its killed child is reaped, or bash
	# would announce "Killed"; cryo's messages still go to fd 3.
	{
		t0=$EPOCHREALTIME
		ok=1
		"$CRYO" checkpoint "$pid" -o "$img" --kill 2>&3 || ok=0
		t1=$EPOCHREALTIME
		[ "$ok" = 1 ] || kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" || true
	} 3>&2 2>/dev/null
	hog=""
	if [ "$ok" = 0 ]; then
		log "  $target: cryo checkpoint failed"
		failures=$((failures + 1))
		return 0
	fi
	wait_gone "$pid"
	bytes=$(stat -c %s "$img")
	log_bytes=$(stat -c %s "$work/memhog.log")
	log "  image: $((bytes / 1048576)) MiB for $mib MiB of memory"
	record "$target" checkpoint "$(calc "$t1 - $t0")" "$bytes" "${target}_write_gbps"

	if [ "$target" = disk ]; then
		# Cold: the image leaves the page cache (it is clean: cryo fsynced it).
		dd if="$img" iflag=nocache count=0 status=none
		restore_and_verify "$target" restore-cold "$img" "$bytes" disk_read_direct_gbps \
			"$pid" "$log_bytes" || return 0
	fi
	restore_and_verify "$target" restore "$img" "$bytes" "${target}_read_cached_gbps" \
		"$pid" "$log_bytes" || true
	rm -f "$img"
}

print_json() {
	local i v
	printf '{"mib": %s, "pattern": "%s", "bounds": {' "$mib" "$pattern"
	printf '"memcpy_gbps": %s' "${memcpy_gbps:-null}"
	for v in tmpfs_write_gbps tmpfs_read_cached_gbps tmpfs_read_direct_gbps \
		disk_write_gbps disk_read_cached_gbps disk_read_direct_gbps; do
		printf ', "%s": %s' "$v" "${!v:-null}"
	done
	printf '}, "results": ['
	for i in "${!rows[@]}"; do
		[ "$i" -gt 0 ] && printf ', '
		printf '%s' "${rows[$i]}"
	done
	printf '], "failures": %s}\n' "$failures"
}

main() {
	parse_args "$@"
	[ -x "$CRYO" ] || die "$CRYO not built (run make first)"
	trap cleanup EXIT
	work=$(mktemp -d /tmp/cryo-bench.XXXXXX)
	build
	check_room
	measure_bounds
	bench_target tmpfs "$TMPFS_DIR"
	bench_target disk "$DISK_DIR"
	if [ "$json" = 1 ]; then
		print_json
	fi
	[ "$failures" -eq 0 ] || die "$failures failure(s)"
	log "== done"
}

main "$@"
