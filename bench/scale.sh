#!/bin/bash
# How cryo's costs grow with the target: checkpoint and restore time, frozen
# time, image size and cryo's peak RSS against
#
#   size     memory 256 MiB ... 4 GiB       (1 area, 1 thread)
#   vmas     1 ... 10 000 areas             (40 MiB in all, 1 thread)
#   threads  1 ... 256 threads              (16 MiB, 1 area)
#
# Each point is one bench/scale process (random data): --runs times
# `cryo checkpoint PID -o IMG --kill --stats`, `cryo restore IMG --detach`,
# the image deleted at once, then the restored process checks its memory,
# its areas and that every thread answers (SIGUSR1; SIGTERM at the end, which
# also checks that untouched pages read zero). The table shows the best run
# of each point and the cost per unit beyond the first point (e.g. us per
# VMA beyond the first): when costs grow linearly it stays about constant,
# when they grow faster it grows with the point. The fixed memory of the
# vmas and threads sweeps is small so that their per-unit costs show.
#
# usage: bench/scale.sh [--json] [--quick] [--sweeps "size vmas threads"]
#                       [--sizes "256 512 1024 2048 4096"]
#                       [--vmas "1 10 100 1000 10000"]
#                       [--threads "1 4 16 64 128 256"] [--runs N]
#                       [--storage tmpfs|disk] [--no-warm]
#   --quick   sizes up to 1 GiB, one run per point
#   --no-warm do not warm up memory before each timed command (runstat.c)
# With --json the report is one JSON document on stdout, progress on
# stderr. Environment: CRYO (default build/cryo), CC, BUILD (default build),
# MEM_MARGIN_MIB (memory always left available, default 6144).
set -eu

cd "$(dirname "$0")/.."
. bench/lib.sh
CRYO=${CRYO:-build/cryo}
BIN=${BUILD:-build}/bench

json=0
sweeps="size vmas threads"
sizes="256 512 1024 2048 4096"
vma_counts="1 10 100 1000 10000"
thread_counts="1 4 16 64 128 256"
VMAS_MIB=40	# 10 240 pages: one per area with 10 000 areas
THREADS_MIB=16
runs=3
storage=tmpfs
warm=1
warm_mib=0
work=""
img=""
hog=""
target_log=""
failures=0

cleanup() {
	if [ -n "$hog" ] && [ -e "/proc/$hog" ]; then
		kill -KILL "$hog" 2>/dev/null || true
	fi
	if [ -n "$img" ]; then
		# and cryo's temporary file, if it was stopped while writing
		rm -f "$img" "${img%/*}/.${img##*/}.tmp."*
	fi
	if [ -n "$work" ] && [ "${BENCH_KEEP:-0}" != 1 ]; then
		rm -rf "$work"
	fi
}

usage() {
	sed -n '/^# usage:/,/^set -eu/p' "$0" | sed -n 's/^# \{0,1\}//p' >&2
	exit 64
}

parse_args() {
	while [ $# -gt 0 ]; do
		case $1 in
		--json) json=1 ;;
		--quick) sizes="256 512 1024"; runs=1 ;;
		--sweeps) [ $# -ge 2 ] || usage; sweeps=$2; shift ;;
		--sizes) [ $# -ge 2 ] || usage; sizes=$2; shift ;;
		--vmas) [ $# -ge 2 ] || usage; vma_counts=$2; shift ;;
		--threads) [ $# -ge 2 ] || usage; thread_counts=$2; shift ;;
		--runs) [ $# -ge 2 ] || usage; runs=$2; shift ;;
		--storage) [ $# -ge 2 ] || usage; storage=$2; shift ;;
		--no-warm) warm=0 ;;
		*) usage ;;
		esac
		shift
	done
	local v
	for v in $sizes $vma_counts $thread_counts $runs; do
		case $v in '' | *[!0-9]* | 0) usage ;; esac
	done
	for v in $sweeps; do
		case $v in size | vmas | threads) ;; *) usage ;; esac
	done
	case $storage in tmpfs) dir=/dev/shm ;; disk) dir=/var/tmp ;; *) usage ;; esac
}

row() {
	local IFS=$'\t'
	printf '%s\n' "$*" >>"$work/rows.tsv"
}

# One point: sweep name, its value, then bench/scale's options.
point() {
	local sweep=$1 value=$2 mib=$3 vmas=$4 threads=$5
	local need from run orig bytes
	img="$dir/cryo-scale.$$.img"
	need=$((mib + MEM_MARGIN_MIB))
	[ "$storage" = tmpfs ] && need=$((need + mib))
	if [ "$(mem_avail_mib)" -lt "$need" ]; then
		log "  $sweep=$value: skipped, needs $need MiB of available memory"
		row "$sweep" "$value" "$mib" "$vmas" "$threads" 0 skipped - - - - "skipped: memory"
		return 0
	fi
	target_log="$work/scale.log"
	start_target "$BIN/scale" --mib "$mib" --vmas "$vmas" --threads "$threads" &
	hog=$!
	orig=$hog
	if ! wait_for_line '^READY' 0 "$READY_TIMEOUT_S"; then
		cat "$target_log" >&2
		die "scale did not get ready"
	fi
	bytes=$(sed -n 's/^READY.* bytes=\([0-9]*\).*/\1/p' "$target_log")
	for run in $(seq "$runs"); do
		from=$(stat -c %s "$target_log")
		warm_mib=$(warm_size "$mib")
		if ! cryo_checkpoint "$hog" "$img"; then
			log "  $sweep=$value run $run: cryo checkpoint failed"
			failures=$((failures + 1))
			row "$sweep" "$value" "$mib" "$vmas" "$threads" "$run" checkpoint - - - - \
				"FAIL: checkpoint failed"
			hog=""
			rm -f "$img"
			return 0
		fi
		hog=""
		row "$sweep" "$value" "$mib" "$vmas" "$threads" "$run" checkpoint "$ck_secs" \
			"$ck_frozen_ms" "$ck_image_bytes" "$ck_rss_kib" ok "$bytes"
		truncate -s "$from" "$target_log"
		warm_mib=$(warm_size "$mib")
		if ! cryo_restore "$img"; then
			log "  $sweep=$value run $run: cryo restore failed"
			failures=$((failures + 1))
			row "$sweep" "$value" "$mib" "$vmas" "$threads" "$run" restore - - - - \
				"FAIL: restore failed"
			rm -f "$img"
			return 0
		fi
		rm -f "$img"
		hog=$rs_pid
		[ "$rs_pid" = "$orig" ] || {
			log "  restored as PID $rs_pid, was $orig"
			failures=$((failures + 1))
		}
		verify_target "$hog" USR1 "$from" || failures=$((failures + 1))
		row "$sweep" "$value" "$mib" "$vmas" "$threads" "$run" restore "$rs_secs" - \
			"$ck_image_bytes" "$rs_rss_kib" "$verdict" "$bytes"
		log "$(printf '  %-7s %6s run %d: checkpoint %7.3f s (frozen %8.1f ms, image %7.1f MiB, RSS %5.1f MiB), restore %7.3f s: %s' \
			"$sweep" "$value" "$run" "$ck_secs" "$ck_frozen_ms" "$(calc "$ck_image_bytes / 1048576")" \
			"$(calc "$ck_rss_kib / 1024")" "$rs_secs" "$verdict")"
	done
	img=""
	from=$(stat -c %s "$target_log")
	if ! verify_target "$hog" TERM "$from"; then
		log "  $sweep=$value final check: $verdict"
		failures=$((failures + 1))
		row "$sweep" "$value" "$mib" "$vmas" "$threads" "$runs" final - - - - "$verdict"
	fi
	wait_gone "$hog"
	hog=""
}

main() {
	parse_args "$@"
	[ -x "$CRYO" ] || die "$CRYO not built (run make first)"
	trap cleanup EXIT
	trap 'exit 130' INT TERM
	work=$(mktemp -d /tmp/cryo-scale.XXXXXX)
	cryo_id=$(cryo_identity)
	log "== cryo: $cryo_id"
	: >"$work/rows.tsv"
	bench_build
	local s v
	for s in $sweeps; do
		log "== sweep: $s ($storage, best of $runs)"
		case $s in
		size) for v in $sizes; do point size "$v" "$v" 1 1; done ;;
		vmas) for v in $vma_counts; do point vmas "$v" "$VMAS_MIB" "$v" 1; done ;;
		threads) for v in $thread_counts; do point threads "$v" "$THREADS_MIB" 1 "$v"; done ;;
		esac
	done
	if [ "$json" = 1 ]; then
		awk -F'\t' -v mode=json -v runs="$runs" -v storage="$storage" -v failures="$failures" \
			-v vmas_mib="$VMAS_MIB" -v threads_mib="$THREADS_MIB" -v cryo="$cryo_id" \
			-f bench/scale.awk "$work/rows.tsv"
		awk -F'\t' -v mode=table -v runs="$runs" -v storage="$storage" \
			-v vmas_mib="$VMAS_MIB" -v threads_mib="$THREADS_MIB" -v cryo="$cryo_id" \
			-f bench/scale.awk "$work/rows.tsv" >&2
	else
		awk -F'\t' -v mode=table -v runs="$runs" -v storage="$storage" \
			-v vmas_mib="$VMAS_MIB" -v threads_mib="$THREADS_MIB" -v cryo="$cryo_id" \
			-f bench/scale.awk "$work/rows.tsv"
	fi
	[ "$failures" -eq 0 ] || die "$failures failure(s): the figures of failed runs are void"
	log "== done"
}

main "$@"
