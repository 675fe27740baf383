#!/bin/bash
# cryo's benchmark (`make bench`): how close do checkpoint and restore come
# to the machine's physical limits? Everything in one run:
#
# 1. bounds (bench/bounds.c): memcpy; process_vm_readv from another
#    process; write (page cache, +fsync, O_DIRECT) and read (page cache,
#    into fresh memory, O_DIRECT) bandwidth of tmpfs (/dev/shm), of the
#    disk (/var/tmp) and, with --storage slow, of emulated slow storage;
#    zstd and lz4 speed on text.
# 2. For each size (1 and 4 GiB), pattern (random, zero, text, sparse: see
#    bench/patterns.h) and storage (tmpfs, disk): start bench/memhog, then
#    --runs times: `cryo checkpoint PID -o IMG --kill --stats`, then
#    `cryo restore IMG --detach` (on disk: first cold, the image dropped
#    from the page cache, then again from the page cache), delete the image
#    at once, and have the restored memhog check its memory (SIGUSR1:
#    PASS or FAIL; the next run checkpoints the restored process). At the
#    end SIGTERM: memhog checks again, and that untouched pages read zero.
#    A figure whose check failed is void, and the bench exits non-zero.
# 3. The same with --compress=zstd and --compress=lz4 on the text pattern,
#    to the slowest storage measured (slow, else disk, else tmpfs).
#
# "slow" storage is emulated (root only): an ext4 file system on a loop
# device over a file in /var/tmp, whose writes are throttled to SLOW_MBPS
# (default 200, a hard disk or a 1.6 Gbit/s network) by the blkio cgroup
# (cgroup v1 root group: it applies to writeback too). Where the storage is
# the bottleneck, compression must beat no compression.
#
# Reported for each (best of the runs; every run is in --json): image size,
# frozen time (cryo's --stats frozen_ms), checkpoint time, restore time
# (until `cryo restore --detach` returns: the process runs), cryo's peak
# RSS (wait4), the restored process's peak RSS beyond the original's
# (what restoring cost inside it), and every time as a ratio to its bound:
#
#   ratio = bound seconds / measured seconds   (1.00 = the machine's speed)
#
#   checkpoint   max(P / process_vm_readv, I / write+fsync of the storage)
#                (with a codec also P / its compression speed)
#   restore      I / read into fresh memory of the storage (cold: O_DIRECT)
#                (with a codec max(I / read, P / its decompression speed,
#                P / read into fresh memory))
#   frozen       frozen time / time to write all the target's memory to the
#                storage (the target: <= 1)
#
# where P is the memory the target wrote (present pages) and I the image
# size. The bench only reports: no figure makes it fail, only a failed
# checkpoint, restore or memory check does.
#
# usage: bench/run.sh [--json] [--quick] [--mib "1024 4096"]
#                     [--patterns "random zero text sparse"]
#                     [--storage "tmpfs disk slow"] [--codecs "zstd lz4 zstd:LEVEL"]
#                     [--runs N] [--no-sync] [--no-warm] [--bounds-mib N]
#   --quick     1 GiB only, tmpfs only (compression then goes to tmpfs)
#   --codecs "" no compression variants (zstd:LEVEL: that level, -50..19;
#               only zstd's default level 1 has a codec bound, so a ratio)
#   --no-warm   do not warm up memory before each timed command (see
#               bench/runstat.c: in this VM, memory that sat free for a few
#               seconds costs 3-4 times as much to touch again)
# With --json the report is one JSON document on stdout; progress goes to
# stderr. Environment: CRYO (default build/cryo), CC, BUILD (default build),
# MEM_MARGIN_MIB (memory always left available, default 6144), BENCH_KEEP=1
# (keep the scratch directory with the raw rows, for debugging), SLOW_MBPS.
set -eu

cd "$(dirname "$0")/.."
. bench/lib.sh
CRYO=${CRYO:-build/cryo}
BIN=${BUILD:-build}/bench
TMPFS_DIR=/dev/shm
DISK_DIR=/var/tmp
SLOW_DIR=""	# made by slow_setup
SLOW_MBPS=${SLOW_MBPS:-200}
slow_loop="" slow_base="" slow_devnum=""

json=0
sizes="1024 4096"
patterns="random zero text sparse"
storages="tmpfs disk"
codecs="zstd lz4"
runs=3
sync=1
warm=1
warm_mib=0
bounds_mib=1024
work=""
img=""		# the image in use, deleted on exit
hog=""		# PID of the live memhog, original or restored
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
	slow_teardown
}

# The emulated slow storage: see the top of this file.
THROTTLE=/sys/fs/cgroup/blkio/blkio.throttle.write_bps_device
slow_setup() {
	local mib=$1
	[ "$(id -u)" = 0 ] || die "--storage slow needs root (loop device, blkio throttle)"
	[ -w "$THROTTLE" ] || die "--storage slow: no cgroup v1 blkio throttle ($THROTTLE)"
	[ "$(disk_avail_mib "$DISK_DIR")" -gt $((mib + 1024)) ] || die "--storage slow: not enough disk"
	slow_base=$(mktemp -d "$DISK_DIR/cryo-bench-slow.XXXXXX")
	truncate -s "$((mib + 1024))M" "$slow_base/backing"
	slow_loop=$(losetup -f --show "$slow_base/backing") || die "--storage slow: losetup failed"
	mkfs.ext4 -q -E lazy_itable_init=0,lazy_journal_init=0 "$slow_loop" >/dev/null ||
		die "--storage slow: mkfs.ext4 failed"
	mkdir "$slow_base/mnt"
	mount "$slow_loop" "$slow_base/mnt" || die "--storage slow: mount failed"
	SLOW_DIR=$slow_base/mnt
	slow_devnum=$(lsblk -dno MAJ:MIN "$slow_loop" | tr -d ' ')
	echo "$slow_devnum $((SLOW_MBPS * 1000000))" >"$THROTTLE"
	log "== slow storage: $slow_loop on $slow_base, writes throttled to $SLOW_MBPS MB/s"
}

slow_teardown() {
	[ -n "$slow_devnum" ] && echo "$slow_devnum 0" >"$THROTTLE" 2>/dev/null
	[ -n "$SLOW_DIR" ] && umount "$SLOW_DIR" 2>/dev/null
	[ -n "$slow_loop" ] && losetup -d "$slow_loop" 2>/dev/null
	[ -n "$slow_base" ] && rm -rf "$slow_base"
	slow_devnum="" SLOW_DIR="" slow_loop="" slow_base=""
	return 0
}

usage() {
	sed -n '/^# usage:/,/^set -eu/p' "$0" | sed -n 's/^# \{0,1\}//p' >&2
	exit 64
}

parse_args() {
	while [ $# -gt 0 ]; do
		case $1 in
		--json) json=1 ;;
		--quick) sizes=1024; storages=tmpfs ;;
		--mib) [ $# -ge 2 ] || usage; sizes=$2; shift ;;
		--patterns | --pattern) [ $# -ge 2 ] || usage; patterns=$2; shift ;;
		--storage) [ $# -ge 2 ] || usage; storages=$2; shift ;;
		--codecs) [ $# -ge 2 ] || usage; codecs=$2; shift ;;
		--runs) [ $# -ge 2 ] || usage; runs=$2; shift ;;
		--no-sync) sync=0 ;;
		--no-warm) warm=0 ;;
		--bounds-mib) [ $# -ge 2 ] || usage; bounds_mib=$2; shift ;;
		*) usage ;;
		esac
		shift
	done
	local v
	for v in $sizes $runs $bounds_mib; do
		case $v in '' | *[!0-9]* | 0) usage ;; esac
	done
	for v in $sizes; do
		[ $((v % 64)) -eq 0 ] || die "--mib: sizes must be multiples of 64"
	done
	[ $((bounds_mib % 8)) -eq 0 ] || die "--bounds-mib must be a multiple of 8"
	for v in $patterns; do
		case $v in random | zero | text | sparse) ;; *) usage ;; esac
	done
	for v in $storages; do
		case $v in tmpfs | disk | slow) ;; *) usage ;; esac
	done
	for v in $codecs; do
		case $v in zstd | lz4 | zstd:[1-9] | zstd:1[0-9] | zstd:-[1-9] | zstd:-[1-4][0-9] | zstd:-50) ;; *) usage ;; esac
	done
}

storage_dir() {
	case $1 in tmpfs) echo "$TMPFS_DIR" ;; disk) echo "$DISK_DIR" ;; slow) echo "$SLOW_DIR" ;; esac
}

# Bytes the target wrote (present pages) for a pattern and size.
present_bytes() {
	local mib=$1 pattern=$2
	if [ "$pattern" = sparse ]; then
		echo $((mib * 1048576 / 16))
	else
		echo $((mib * 1048576))
	fi
}

# One TSV row per measurement, aggregated by report.awk at the end:
# mib pattern storage codec run phase seconds frozen_ms image_bytes
# present_bytes rss_kib hwm_extra_kib verdict
row() {
	local IFS=$'\t'
	printf '%s\n' "$*" >>"$work/rows.tsv"
}

# Restore $img, measure, delete it if asked, check the restored memhog.
# Sets hog to the restored PID. $1: phase name, $2: 1 to delete the image.
restore_phase() {
	local phase=$1 delete=$2 from=$3 hwm0=$4
	local hwm extra
	truncate -s "$from" "$target_log"
	warm_mib=$(warm_size $(($(present_bytes "$mib" "$pattern") / 1048576)))
	if ! cryo_restore "$img"; then
		log "  $phase: cryo restore failed"
		failures=$((failures + 1))
		row "$mib" "$pattern" "$storage" "$codec" "$run" "$phase" - - - - - - "FAIL: restore failed"
		return 1
	fi
	[ "$delete" = 1 ] && rm -f "$img"
	hog=$rs_pid
	if [ "$rs_pid" != "$orig_pid" ]; then
		log "  $phase: restored as PID $rs_pid, was $orig_pid"
		failures=$((failures + 1))
	fi
	verify_target "$rs_pid" USR1 "$from" || true
	[ "$verdict" = PASS ] || failures=$((failures + 1))
	hwm=$(hwm_kib "$rs_pid")
	extra=$((hwm - hwm0))
	log "$(printf '  run %d %-12s %7.3f s   cryo RSS %6d KiB, restored peak RSS %+d KiB   %s' \
		"$run" "$phase" "$rs_secs" "$rs_rss_kib" "$extra" "$verdict")"
	row "$mib" "$pattern" "$storage" "$codec" "$run" "$phase" "$rs_secs" - "$ck_image_bytes" \
		"$(present_bytes "$mib" "$pattern")" "$rs_rss_kib" "$extra" "$verdict"
	[ "$verdict" = PASS ]
}

# One workload: memhog of $mib MiB with $pattern, images on $storage,
# compressed with $codec (none: not), $runs checkpoint/restore cycles.
workload() {
	mib=$1 pattern=$2 storage=$3 codec=$4
	local dir need avail from hwm0 args=()
	dir=$(storage_dir "$storage")
	img="$dir/cryo-bench.$$.img"
	[ "$codec" = none ] || args+=("--compress=$codec")
	[ "$sync" = 1 ] || args+=(--no-sync)
	log "== $mib MiB $pattern -> $storage${args[*]:+ (${args[*]})}"

	# memhog, then its image, then the restored memhog and the image (on
	# tmpfs) are in memory at once; the image is gone before the next run.
	need=$((mib + MEM_MARGIN_MIB))
	[ "$storage" = tmpfs ] && need=$((need + mib))
	avail=$(mem_avail_mib)
	if [ "$avail" -lt "$need" ]; then
		log "  skipped: needs $need MiB of available memory, has $avail"
		row "$mib" "$pattern" "$storage" "$codec" 0 skipped - - - - - - "skipped: memory"
		return 0
	fi
	# the slow file system was sized for the largest target
	if { [ "$storage" = disk ] && [ "$(disk_avail_mib "$dir")" -lt $((mib + 1024)) ]; } ||
		{ [ "$storage" = slow ] && [ "$(disk_avail_mib "$dir")" -lt $((mib + 64)) ]; }; then
		log "  skipped: not enough room in $dir"
		row "$mib" "$pattern" "$storage" "$codec" 0 skipped - - - - - - "skipped: disk"
		return 0
	fi

	target_log="$work/memhog.log"
	start_target "$BIN/memhog" -m "$mib" -p "$pattern" &
	hog=$!
	orig_pid=$hog
	wait_for_line '^READY' 0 "$READY_TIMEOUT_S" || die "memhog did not get ready"
	hwm0=$(hwm_kib "$hog")

	for run in $(seq "$runs"); do
		from=$(stat -c %s "$target_log")
		warm_mib=$(warm_size $(($(present_bytes "$mib" "$pattern") / 1048576)))
		if ! cryo_checkpoint "$hog" "$img" "${args[@]}"; then
			log "  run $run: cryo checkpoint failed"
			failures=$((failures + 1))
			row "$mib" "$pattern" "$storage" "$codec" "$run" checkpoint - - - - - - \
				"FAIL: checkpoint failed"
			hog=""
			rm -f "$img"
			return 0
		fi
		hog=""
		log "$(printf '  run %d checkpoint   %7.3f s   cryo RSS %6d KiB, frozen %.1f ms, image %d MiB' \
			"$run" "$ck_secs" "$ck_rss_kib" "$ck_frozen_ms" $((ck_image_bytes / 1048576)))"
		row "$mib" "$pattern" "$storage" "$codec" "$run" checkpoint "$ck_secs" "$ck_frozen_ms" \
			"$ck_image_bytes" "$(present_bytes "$mib" "$pattern")" "$ck_rss_kib" - ok
		if [ "$storage" != tmpfs ]; then
			drop_cache "$img"
			if ! restore_phase restore-cold 0 "$from" "$hwm0"; then
				[ -n "$hog" ] && { kill -KILL "$hog" 2>/dev/null || true; }
				[ -n "$hog" ] && wait_gone "$hog"
				hog=""
				rm -f "$img"
				return 0
			fi
			kill -KILL "$hog"
			wait_gone "$hog"
			hog=""
		fi
		if ! restore_phase restore 1 "$from" "$hwm0"; then
			[ -n "$hog" ] && { kill -KILL "$hog" 2>/dev/null || true; }
			[ -n "$hog" ] && wait_gone "$hog"
			hog=""
			rm -f "$img"
			return 0
		fi
	done
	img=""

	# The final check also reads every page never written.
	from=$(stat -c %s "$target_log")
	if verify_target "$hog" TERM "$from"; then
		log "  final check (untouched pages read zero too): PASS"
	else
		log "  final check: $verdict"
		failures=$((failures + 1))
		row "$mib" "$pattern" "$storage" "$codec" "$runs" final - - - - - - "$verdict"
	fi
	wait_gone "$hog"
	hog=""
}

report() {
	local mode=$1
	awk -F'\t' -v mode="$mode" -v runs="$runs" -v sync="$sync" -v warm="$warm" -v failures="$failures" \
		-v cryo="$cryo_id" -v date="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
		-v bounds_file="$work/bounds.vars" -v bounds_mib="$bounds_mib" \
		-f bench/report.awk "$work/rows.tsv"
}

main() {
	parse_args "$@"
	[ -x "$CRYO" ] || die "$CRYO not built (run make first)"
	trap cleanup EXIT
	trap 'exit 130' INT TERM
	work=$(mktemp -d /tmp/cryo-bench.XXXXXX)
	cryo_id=$(cryo_identity)
	log "== cryo: $cryo_id"
	: >"$work/rows.tsv"
	bench_build
	local avail
	avail=$(mem_avail_mib)
	[ "$avail" -ge $((2 * bounds_mib + MEM_MARGIN_MIB)) ] ||
		die "bounds need $((2 * bounds_mib + MEM_MARGIN_MIB)) MiB available, have $avail"

	local dirs=() s max_mib=0
	for s in $sizes; do [ "$s" -gt "$max_mib" ] && max_mib=$s; done
	case " $storages " in *" slow "*) slow_setup "$max_mib" ;; esac
	for s in $storages; do
		dirs+=("$s=$(storage_dir "$s")")
	done
	log "== bounds ($bounds_mib MiB files; best of several rounds)"
	local nocodec=()
	[ -n "$codecs" ] || nocodec=(--no-codecs)
	"$BIN/bounds" --mib "$bounds_mib" "${nocodec[@]}" --vars "${dirs[@]}" >"$work/bounds.vars"
	report bounds | while IFS= read -r l; do log "$l"; done

	local mib pattern storage codec_storage
	for mib in $sizes; do
		for pattern in $patterns; do
			for storage in $storages; do
				workload "$mib" "$pattern" "$storage" none
			done
		done
		# compression: to the slowest storage measured
		codec_storage=tmpfs
		case " $storages " in *" disk "*) codec_storage=disk ;; esac
		case " $storages " in *" slow "*) codec_storage=slow ;; esac
		for codec in $codecs; do
			workload "$mib" text "$codec_storage" "$codec"
		done
	done

	if [ "$json" = 1 ]; then
		report json
		report table >&2
	else
		report table
	fi
	[ "$failures" -eq 0 ] || die "$failures failure(s): the figures of failed runs are void"
	log "== done"
}

main "$@"
