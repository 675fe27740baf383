#!/usr/bin/env bash
#
# tests/robust.sh: cryo against hostile images, crashes, full disks and
# repetition, one line per check:
#   ok - NAME | not ok - NAME: why | skip - NAME: why
# and last "N passed, N failed" (", N skipped" if any). Exit status 1 if any
# check failed. tests/run.sh runs it (like errors.sh) and counts every check.
#
# Usage: tests/robust.sh [corrupt|crash|restore-fault|durability|soak]...
#   (no argument: all of them, the soak in its short form)
#
# What is checked:
#   corrupt        images of real test programs (threads: one process with
#                  threads; tree: three processes, pipes, zombies; files,
#                  compressed: every kind of descriptor; threads with
#                  --pre-copy: pre-copy data and drop lists) are corrupted
#                  systematically by tests/robust/walk.py (variants made by
#                  tests/robust/image.py): a bit flipped in every section
#                  (header and payload) and in the header, index and footer;
#                  truncation at every section boundary and inside; length,
#                  count, offset, size and type fields rewritten to zero,
#                  huge and all-ones values with the CRCs recomputed (so the
#                  structure checks must catch them); values inside the
#                  tables rewritten with CRCs recomputed (VMA end < start or
#                  outside user space, fd 2^31, 0 threads, string offsets
#                  past the table, page runs outside their area, PID 0 or
#                  above pid_max...). For every variant `cryo inspect` and
#                  `cryo restore --detach` must exit with a documented code
#                  (65 for corruption; never a crash, a timeout or 70), name
#                  the image, and leave no process (the image's PIDs stay
#                  free). The walk runs again with the sanitizer build
#                  ($CRYO_SAN): no sanitizer report. Documented codes other
#                  than 65 for table values are printed as "# note:" lines.
#   crash          for every checkpoint:* fault point, cryo SIGKILLs itself
#                  there (CRYO_FAULT=POINT:kill) while checkpointing
#                  build/tests/threads with --kill (and --pre-copy for the
#                  checkpoint:precopy-* points): the target runs on (not
#                  stopped, not traced, all its threads), says PASS at
#                  SIGTERM; no file has the image's name, or, overwriting an
#                  older image, the older one is intact; after
#                  checkpoint:committed the image is complete instead
#   restore-fault  for every restore:* point, CRYO_FAULT=POINT (exit 74,
#                  the message names the phase) and POINT:kill (137), on
#                  an image of build/tests/tree (and build/tests/files: a
#                  deleted file recreated through a temporary): within 5 s no
#                  task of the image is left, no .cryo-restore.* temporary
#                  and no resurrected deleted file; then the same image
#                  restores and the program says PASS
#   durability     checkpoint --kill of a process holding 64 MiB into an
#                  8 MiB tmpfs: exit 73, the target runs on and says PASS,
#                  nothing is left on the tmpfs (plain and compressed)
#   soak           threads and tree checkpointed (--kill) and restored
#                  SOAK_CYCLES times (default 20) in a row: same PIDs and
#                  TIDs, same maps, same descriptor numbers after every
#                  cycle, PASS at the end; and SOAK_SAN_CYCLES (3) cycles
#                  with $CRYO_SAN and LeakSanitizer: no report
#
# Environment: CRYO, TESTBIN as for run.sh; CRYO_SAN (build-san/cryo; the
# sanitizer walks are skipped without it: make SAN=1 all); SOAK_CYCLES,
# SOAK_SAN_CYCLES; WALK_MAX (1500) and WALK_SAN_MAX (500) variants per image;
# WALK_SEED (1).
#
# The script makes itself a child subreaper (PR_SET_CHILD_SUBREAPER, through
# python3) so that the orphans a detached restore or a failed one leaves are
# reaped at once, not up to 2 s later by this VM's PID 1.

set -u
# shellcheck source=tests/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [ -z "${ROBUST_SUBREAPER:-}" ]; then
	export ROBUST_SUBREAPER=1
	exec "$PYTHON" -c '
import ctypes, os, sys
try:
    ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)	# PR_SET_CHILD_SUBREAPER
except Exception:
    pass
os.execv("/bin/bash", ["bash"] + sys.argv[1:])
' "${BASH_SOURCE[0]}" "$@"
	# not reached unless exec failed: go on without
fi

CRYO_SAN=$(abs_path "${CRYO_SAN:-build-san/cryo}")
CRYO_TIMEOUT=${ROBUST_CRYO_TIMEOUT:-30}
SOAK_CYCLES=${SOAK_CYCLES:-20}
SOAK_SAN_CYCLES=${SOAK_SAN_CYCLES:-3}
WALK_MAX=${WALK_MAX:-1500}
WALK_SAN_MAX=${WALK_SAN_MAX:-500}
WALK_SEED=${WALK_SEED:-1}
SAN_OPTS="abort_on_error=0:detect_leaks=1"
SAN_RE='AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:|==[0-9]+==ERROR'
ROBUST_DIR=$TESTS_DIR/robust
ALL_GROUPS="corrupt crash restore-fault durability soak"

NPASS=0 NFAIL=0 NSKIP=0
WHY=""
WORK=""
MOUNTS=()

# ------------------------------------------------------------------ output

# check (lib.sh) ends whatever a check started, by its test directory:
# see end_check.
note() { echo "# note: $*"; }

# new_dir NAME: a fresh directory for the current check, in CHECK_DIR (its
# processes are ended and, if the check passed, it is removed by end_check).
new_dir() {
	CHECK_DIR=$(mktemp -d "$WORK/$1.XXXXXX") || return 1
	track_dir "$CHECK_DIR"
}

# end_check RC: end every process of the check (they carry
# TEST_DIR=CHECK_DIR, or CRYO_ROBUST_TAG=CHECK_DIR for what cryo forked),
# remove its directory if it passed.
end_check() {
	umount_all
	[ -n "${CHECK_DIR:-}" ] || return 0
	kill_test_procs "$CHECK_DIR"
	kill_tagged "$CHECK_DIR"
	if [ "$1" != 1 ]; then
		rm -rf "$CHECK_DIR"
		CHECK_DIR=""
	fi
}

# ------------------------------------------------------------- expectations

want_rc() {
	local r
	for r in "$@"; do [ "$CRYO_RC" = "$r" ] && return 0; done
	case $CRYO_RC in
	124) WHY="cryo timed out (${CRYO_TIMEOUT}s)" ;;
	13[0-9] | 1[4-9][0-9]) WHY="cryo exited $CRYO_RC (signal $((CRYO_RC - 128))), want $*" ;;
	*) WHY="exit $CRYO_RC, want $*$(is_documented_rc "$CRYO_RC" || echo ' (not a documented code)')" ;;
	esac
	return 1
}

want_msg() {
	grep -Eqi -- "$1" "$LAST_CRYO_ERR" && return 0
	WHY="the message does not mention $2: '$(head -n 1 "$LAST_CRYO_ERR")'"
	return 1
}

# no_san_report FILE...: no sanitizer report in the files; else WHY.
no_san_report() {
	local f line
	for f in "$@"; do
		[ -f "$f" ] || continue
		line=$(grep -m1 -E "$SAN_RE" "$f") || continue
		WHY="sanitizer report in ${f##*/}: $line"
		return 1
	done
	return 0
}

# ---------------------------------------------------------------- processes

# procs_tagged TAG: PIDs of the processes whose environment holds
# CRYO_ROBUST_TAG=TAG (every cryo command of a check runs with its tag, so
# anything cryo forked and left behind has it).
procs_tagged() {
	local f pid
	# shellcheck disable=SC2013	# /proc/N/environ: no spaces in the names
	for f in $(grep -lzxF -- "CRYO_ROBUST_TAG=$1" /proc/[0-9]*/environ 2>/dev/null); do
		pid=${f#/proc/}
		pid=${pid%/environ}
		[ "$pid" = "$BASHPID" ] || [ "$pid" = $$ ] || echo "$pid"
	done
}

kill_tagged() {
	local p pids
	pids=$(procs_tagged "$1")
	[ -n "$pids" ] || return 0
	# shellcheck disable=SC2086
	kill -KILL $pids 2>/dev/null
	for p in $pids; do wait_gone "$p" 3; done
}

# tagged_cryo DIR LABEL ARGS...: run_cryo with the check's tag.
tagged_cryo() {
	local dir=$1 label=$2
	shift 2
	run_cmd "$dir" "$label" env CRYO_ROBUST_TAG="$dir" "$CRYO" "$@"
}

# run_killable DIR LABEL CMD...: run_cmd, for a command that may die of a
# signal (CRYO_FAULT=POINT:kill): an inner shell turns the death into an
# exit status (128+N), so that this shell prints no job notice.
run_killable() {
	local dir=$1 label=$2
	shift 2
	run_cmd "$dir" "$label" bash -c '"$@"; exit $?' killable "$@"
}

# start_target PROG DIR [ARGS...]: start PROG (a path) like the runner does,
# wait for READY. Sets T_PID. Returns 1 with WHY.
start_target() {
	local prog=$1 dir=$2
	shift 2
	start_prog "$dir" "$prog" "$@"
	T_PID=$STARTED_PID
	track_pid "$T_PID"
	wait_line "$dir/out" '^(READY|FAIL)' "$WAIT_TIMEOUT" "$T_PID"
	case $? in
	1) WHY="${prog##*/} did not get ready within ${WAIT_TIMEOUT}s"; return 1 ;;
	2) WHY="${prog##*/} exited before READY: $(tail -n 2 "$dir/out" | tr '\n' ' ')"; return 1 ;;
	esac
	if grep -q '^FAIL' "$dir/out"; then
		WHY="${prog##*/} failed before READY: $(grep -m1 '^FAIL' "$dir/out")"
		return 1
	fi
	track_pid "$T_PID" "$(proc_comm "$T_PID")"
	return 0
}

# finish_target PID DIR: SIGTERM; it must say PASS and go away.
finish_target() {
	kill -TERM "$1" 2>/dev/null
	if ! wait_line "$2/out" '^(PASS|FAIL)' "$WAIT_TIMEOUT" "$1"; then
		WHY="no PASS after SIGTERM (out: $(tail -n 2 "$2/out" | tr '\n' ' '))"
		return 1
	fi
	wait "$1" 2>/dev/null
	wait_gone "$1" || { WHY="process $1 still there ${GONE_TIMEOUT}s after its verdict"; return 1; }
	grep -q '^PASS' "$2/out" || { WHY="the program says: $(grep -m1 '^FAIL' "$2/out")"; return 1; }
	return 0
}

# tree_tasks ROOT: ROOT, its descendants and all their threads, one a line.
tree_tasks() {
	local p t
	for p in "$1" $(proc_descendants "$1"); do
		for t in /proc/"$p"/task/[0-9]*; do
			[ -e "$t" ] && echo "${t##*/}"
		done
	done | sort -n
}

# threads_free PID: every thread of PID is alive, not stopped, not traced.
# Sets WHY.
threads_free() {
	local t st tr n=0
	for t in /proc/"$1"/task/[0-9]*; do
		[ -e "$t" ] || continue
		n=$((n + 1))
		st=$(awk '/^State:/ { print $2 }' "$t/status" 2>/dev/null)
		tr=$(awk '/^TracerPid:/ { print $2 }' "$t/status" 2>/dev/null)
		case $st in
		t | T) WHY="thread ${t##*/} is stopped (state $st)"; return 1 ;;
		Z | X | "") WHY="thread ${t##*/} is dead (state ${st:-gone})"; return 1 ;;
		esac
		[ "${tr:-0}" = 0 ] || { WHY="thread ${t##*/} is still traced (TracerPid $tr)"; return 1; }
	done
	[ "$n" -gt 0 ] || { WHY="process $1 is gone"; return 1; }
	return 0
}

# all_gone PID...: none of the PIDs exists (zombies included).
all_gone() {
	local p
	for p in "$@"; do [ -e "/proc/$p" ] && return 1; done
	return 0
}

# describe PID...: "PID(comm,state)" of those that exist.
describe() {
	local p desc=""
	for p in "$@"; do
		proc_stat "$p" && desc+=" $p($(proc_comm "$p"),$PS_STATE)"
	done
	echo "${desc# }"
}

# make_image PROG DIR IMG [CHECKPOINT-ARGS...]: start PROG in DIR,
# checkpoint it with --kill into IMG, wait until its tasks are gone.
# Sets IMG_PIDS (every PID and TID) and IMG_ROOT. Returns 1 with WHY.
make_image() {
	local prog=$1 dir=$2 img=$3 tasks
	shift 3
	start_target "$prog" "$dir" || return 1
	IMG_ROOT=$T_PID
	tasks=$(tree_tasks "$T_PID")
	tagged_cryo "$dir" "make-image" checkpoint "$T_PID" -o "$img" --kill "$@"
	want_rc 0 || { WHY="checkpoint of ${prog##*/}: $WHY"; return 1; }
	[ -s "$img" ] || { WHY="checkpoint exited 0 but $img is missing"; return 1; }
	reap_child "$T_PID" 5
	# shellcheck disable=SC2086
	poll "$GONE_TIMEOUT" all_gone $tasks || { WHY="tasks still there after checkpoint --kill: $(describe $tasks)"; return 1; }
	mapfile -t IMG_PIDS < <("$PYTHON" "$ROBUST_DIR/image.py" pids "$img")
	[ ${#IMG_PIDS[@]} -gt 0 ] || { WHY="tests/robust/image.py cannot read $img"; return 1; }
	return 0
}

# fault_points PREFIX: the fault points cryo lists that start with PREFIX.
fault_points() {
	CRYO_FAULT=list "$CRYO" check 2>/dev/null | grep -E "^$1:[a-z_-]+$"
}

# -------------------------------------------------------------- 1. corrupt

# walk NAME CRYOBIN MAX IMG TESTDIR [ENV...]: the corruption walk of one
# image; its ok/not ok lines are the checks (counted here).
walk() {
	local name=$1 bin=$2 max=$3 img=$4 tdir=$5 out line p f s
	shift 5
	out=$WORK/walk.$name.log
	mkdir -p "$WORK/walk.$name"
	track_dir "$WORK/walk.$name"
	# in the background, so that an interrupt is handled at once
	env "$@" "$PYTHON" "$ROBUST_DIR/walk.py" --cryo "$bin" --image "$img" --label "corrupt $name" \
		--work "$WORK/walk.$name" --test-dir "$tdir" --seed "$WALK_SEED" --max "$max" \
		--tag "$WORK/walk.$name" >"$out" 2>&1 &
	track_pid "$!" "$(basename "$PYTHON")" TERM
	wait "$!"
	p=0 f=0 s=0
	while IFS= read -r line; do
		case $line in
		"# counts "*) read -r p f s <<<"${line#\# counts }" ;;
		*) printf '%s\n' "$line" ;;
		esac
	done <"$out"
	if ! grep -q '^# counts ' "$out"; then
		echo "not ok - corrupt $name: walk.py did not finish: $(tail -n 3 "$out" | tr '\n' ' ')"
		f=$((f + 1))
	fi
	NPASS=$((NPASS + p)) NFAIL=$((NFAIL + f)) NSKIP=$((NSKIP + s))
	kill_tagged "$WORK/walk.$name"
	rm -rf "$WORK/walk.$name"
}

chk_corrupt_image() {
	local name=$1 prog=$2
	shift 2
	[ -x "$prog" ] || { WHY="$prog is missing"; return 2; }
	CORRUPT_DIR=$WORK/image.$name
	IMG_PIDS=()
	mkdir -p "$CORRUPT_DIR"
	track_dir "$CORRUPT_DIR"
	make_image "$prog" "$CORRUPT_DIR" "$CORRUPT_DIR/$name.img" "$@" || return 1
	run_cryo "$CORRUPT_DIR" inspect-good inspect "$CORRUPT_DIR/$name.img"
	want_rc 0 || { WHY="inspect of the unmodified image: $WHY"; return 1; }
	return 0
}

corrupt_checks() {
	local name prog args t0
	local -a images=("threads $TESTBIN/threads" "tree $TESTBIN/tree"
		"threads-precopy $TESTBIN/threads --pre-copy")
	if "$CRYO" checkpoint --help 2>&1 | grep -q -- --compress; then
		if [ -x "$TESTBIN/files" ]; then
			images+=("files-zstd $TESTBIN/files --compress")
		else
			images+=("threads-zstd $TESTBIN/threads --compress")
		fi
	else
		echo "skip - corrupt compressed image: $CRYO checkpoint has no --compress"
		NSKIP=$((NSKIP + 1))
	fi
	for args in "${images[@]}"; do
		# shellcheck disable=SC2086
		set -- $args
		name=$1 prog=$2
		shift 2
		check "corrupt $name: checkpoint ${prog##*/}${*:+ $*} for the walk, inspect exits 0" \
			chk_corrupt_image "$name" "$prog" "$@"
		if [ ! -s "$CORRUPT_DIR/$name.img" ] || [ ${#IMG_PIDS[@]} -eq 0 ]; then
			kill_test_procs "$CORRUPT_DIR"
			echo "skip - corrupt $name: no image"
			NSKIP=$((NSKIP + 1))
			continue
		fi
		now_ms
		t0=$NOW_MS
		walk "$name" "$CRYO" "$WALK_MAX" "$CORRUPT_DIR/$name.img" "$CORRUPT_DIR"
		if [ -x "$CRYO_SAN" ]; then
			walk "$name [san]" "$CRYO_SAN" "$WALK_SAN_MAX" "$CORRUPT_DIR/$name.img" "$CORRUPT_DIR" \
				ASAN_OPTIONS="$SAN_OPTS" UBSAN_OPTIONS=print_stacktrace=1
		else
			echo "skip - corrupt $name [san]: no $CRYO_SAN (make SAN=1 all)"
			NSKIP=$((NSKIP + 1))
		fi
		now_ms
		echo "# corrupt $name: $(((NOW_MS - t0) / 1000)).$(((NOW_MS - t0) % 1000 / 100))s"
		kill_test_procs "$CORRUPT_DIR"
		rm -rf "$CORRUPT_DIR"
	done
}

# ---------------------------------------------------------------- 2. crash

# chk_ckpt_crash POINT MODE: MODE fresh (no file at the image's name before)
# or overwrite (an older image there).
chk_ckpt_crash() {
	local point=$1 mode=$2 d img sha0="" sha1 n0 n1 left
	local -a extra
	new_dir crash || return 1
	d=$CHECK_DIR
	mkdir "$d/images"
	img=$d/images/img
	start_target "$TESTBIN/threads" "$d" || return 1
	n0=$(find /proc/"$T_PID"/task -mindepth 1 -maxdepth 1 | wc -l)
	if [ "$mode" = overwrite ]; then
		tagged_cryo "$d" older checkpoint "$T_PID" -o "$img" --leave-running
		want_rc 0 || { WHY="the older image: $WHY"; return 1; }
		sha0=$(sha256sum <"$img")
		threads_free "$T_PID" || { WHY="after the older image: $WHY"; return 1; }
	fi
	# the target is small: the pre-copy points are only reached when asked for
	case $point in checkpoint:precopy*) extra=(--pre-copy) ;; *) extra=() ;; esac
	run_killable "$d" crash env CRYO_ROBUST_TAG="$d" CRYO_FAULT="$point:kill" "$CRYO" \
		checkpoint "$T_PID" -o "$img" --kill "${extra[@]}"
	want_rc 137 || return 1
	# the kernel detaches a dead tracer's tracees: give the threads a moment
	poll 3 threads_free "$T_PID" || { WHY="target after the crash: $WHY"; return 1; }
	n1=$(find /proc/"$T_PID"/task -mindepth 1 -maxdepth 1 | wc -l)
	[ "$n1" = "$n0" ] || { WHY="the target had $n0 threads, now $n1"; return 1; }
	if [ "$point" = checkpoint:committed ]; then
		[ -f "$img" ] || { WHY="no image after the commit"; return 1; }
		run_cryo "$d" inspect inspect "$img"
		want_rc 0 || { WHY="inspect of the committed image: $WHY"; return 1; }
		[ "$mode" = fresh ] || [ "$(sha256sum <"$img")" != "$sha0" ] ||
			{ WHY="the image was committed but still is the older one"; return 1; }
	elif [ "$mode" = overwrite ]; then
		[ -f "$img" ] || { WHY="the older image is gone"; return 1; }
		sha1=$(sha256sum <"$img")
		[ "$sha1" = "$sha0" ] || { WHY="the older image was changed"; return 1; }
	else
		[ ! -e "$img" ] || { WHY="a file has the image's name ($(stat -c %s "$img") bytes)"; return 1; }
	fi
	left=$(find "$d/images" -mindepth 1 -maxdepth 1 ! -name img -printf '%f ')
	[ -z "$left" ] || note "crash at $point ($mode): left in the output directory: $left(the documented temporary of an interrupted checkpoint)"
	finish_target "$T_PID" "$d"
}

crash_checks() {
	local p mode points what
	points=$(fault_points checkpoint)
	if [ -z "$points" ]; then
		echo "skip - crash checks: CRYO_FAULT=list $CRYO check lists no checkpoint:* point"
		NSKIP=$((NSKIP + 1))
		return
	fi
	for p in $points; do
		for mode in fresh overwrite; do
			if [ "$p" = checkpoint:committed ]; then what="image complete"
			elif [ $mode = fresh ]; then what="no image"
			else what="older image intact"; fi
			check "crash: CRYO_FAULT=$p:kill checkpoint --kill ($mode image): target runs on, $what" \
				chk_ckpt_crash "$p" "$mode"
		done
	done
}

# -------------------------------------------------------- 3. restore-fault

# restore_left IMG DIR: after a failed restore of IMG (test dir DIR): every
# task of the image gone, nothing tagged, no .cryo-restore.* next to the
# files the image names, no deleted file come back. Sets WHY.
_restore_gone() { all_gone "${IMG_PIDS[@]}" && [ -z "$(procs_tagged "$1")" ] && [ -z "$(procs_of_test "$1")" ]; }
restore_left() {
	local img=$1 d=$2 kind path dir tmp
	if ! poll 5 _restore_gone "$d"; then
		# shellcheck disable=SC2046
		WHY="5 s after the failed restore: left: $(describe "${IMG_PIDS[@]}" $(procs_tagged "$d") $(procs_of_test "$d"))"
		return 1
	fi
	while read -r kind path; do
		dir=${path%/*}
		[ "$kind" = cwd ] && dir=$path
		[ -d "$dir" ] || continue
		tmp=$(find "$dir" -maxdepth 1 -name '.cryo-restore.*' 2>/dev/null | head -n 3 | tr '\n' ' ')
		[ -z "$tmp" ] || { WHY="temporary files left: $tmp"; return 1; }
		if [ "$kind" = fd-4 ] && [ -e "${path% (deleted)}" ]; then
			WHY="the deleted file ${path% (deleted)} exists again"
			return 1
		fi
	done < <("$PYTHON" "$ROBUST_DIR/image.py" paths "$img" | sort -u)
	return 0
}

# chk_restore_fault PROG POINT MODE: MODE error (CRYO_FAULT=POINT) or kill.
chk_restore_fault() {
	local prog=$1 point=$2 mode=$3 d img fault=$2 want=74 got
	[ -x "$prog" ] || { WHY="$prog is missing"; return 2; }
	new_dir "rfault" || return 1
	d=$CHECK_DIR
	img=$d/img
	make_image "$prog" "$d" "$img" || return 1
	[ "$mode" = kill ] && fault=$point:kill want=137
	run_killable "$d" fault env CRYO_ROBUST_TAG="$d" CRYO_FAULT="$fault" "$CRYO" restore "$img" --detach
	# a point inside a restored task (a copy of cryo) kills that task, not
	# the cryo command: then the command reports the death (74)
	[ "$mode" = kill ] && want="137 74"
	# shellcheck disable=SC2086
	if ! want_rc $want; then
		local w=$WHY
		if restore_left "$img" "$d"; then WHY=$w; else WHY="$w; also: $WHY"; fi
		return 1
	fi
	if [ "$mode" = error ]; then
		want_msg "${point#*:}" "the phase (${point#*:})" || return 1
	elif [ "$CRYO_RC" = 74 ]; then
		want_msg "died|killed|signal" "the death of the task" || return 1
		note "$point:kill killed a restored task (a copy of cryo), not the cryo command: exit 74: $(head -n 1 "$LAST_CRYO_ERR")"
	fi
	restore_left "$img" "$d" || return 1
	tagged_cryo "$d" good restore "$img" --detach
	want_rc 0 || { WHY="then the normal restore: $WHY"; return 1; }
	got=$(cat "$LAST_CRYO_OUT")
	[ "$got" = "$IMG_ROOT" ] || { WHY="the normal restore printed '$got', want $IMG_ROOT"; return 1; }
	track_pid "$IMG_ROOT"
	finish_target "$IMG_ROOT" "$d"
}

restore_fault_checks() {
	local p mode prog points
	points=$(fault_points restore)
	if [ -z "$points" ]; then
		echo "skip - restore-fault checks: CRYO_FAULT=list $CRYO check lists no restore:* point"
		NSKIP=$((NSKIP + 1))
		return
	fi
	for prog in tree files; do
		if [ ! -x "$TESTBIN/$prog" ]; then
			[ "$prog" = files ] && continue
		fi
		for p in $points; do
			for mode in error kill; do
				check "restore-fault $prog: CRYO_FAULT=$p$([ $mode = kill ] && echo :kill) -> $(
					[ $mode = kill ] && echo '137 (74 if a restored task died)' || echo '74, names the phase'), nothing left, then restores" \
					chk_restore_fault "$TESTBIN/$prog" "$p" "$mode"
			done
		done
	done
}

# ----------------------------------------------------------- 4. durability

build_hog() {
	[ -x "$WORK/bin/cryohog" ] && return 0
	mkdir -p "$WORK/bin"
	cc -O2 -o "$WORK/bin/cryohog" "$ROBUST_DIR/hog.c" >"$WORK/bin/cc.log" 2>&1
}

umount_all() {
	local m
	for m in "${MOUNTS[@]}"; do
		mountpoint -q "$m" 2>/dev/null && umount "$m" 2>/dev/null
	done
	MOUNTS=()
}

# chk_full_fs [CHECKPOINT-ARGS...]
chk_full_fs() {
	local d small why left
	build_hog || { WHY="cannot build tests/robust/hog.c: $(head -n 2 "$WORK/bin/cc.log" | tr '\n' ' ')"; return 1; }
	new_dir durability || return 1
	d=$CHECK_DIR
	small=$d/small
	mkdir "$small"
	mount -t tmpfs -o size=8m,mode=0755 cryo-robust "$small" 2>"$d/mount.err" ||
		{ WHY="cannot mount a tmpfs: $(head -n 1 "$d/mount.err")"; return 2; }
	MOUNTS+=("$small")
	start_target "$WORK/bin/cryohog" "$d" 64 || { umount_all; return 1; }
	tagged_cryo "$d" full checkpoint "$T_PID" -o "$small/img" --kill "$@"
	if ! want_rc 73; then umount_all; return 1; fi
	why=$(proc_free_running "$T_PID") || { WHY="target after the failure: $why"; umount_all; return 1; }
	threads_free "$T_PID" || { umount_all; return 1; }
	left=$(find "$small" -mindepth 1 -maxdepth 1 -printf '%f ')
	[ -z "$left" ] || { WHY="left on the full file system: $left"; umount_all; return 1; }
	umount_all
	want_msg 'space|ENOSPC' "the cause (no space left)" || return 1
	finish_target "$T_PID" "$d"
}

durability_checks() {
	check "durability: checkpoint --kill of 64 MiB into an 8 MiB tmpfs -> 73, target unharmed, nothing left" chk_full_fs
	if "$CRYO" checkpoint --help 2>&1 | grep -q -- --compress; then
		check "durability: the same with --compress" chk_full_fs --compress
	fi
}

# ----------------------------------------------------------------- 5. soak

# soak_state ROOT: PIDs, PGIDs, SIDs, states, TIDs, maps (lib.sh snapshot),
# and the descriptor numbers of every process of the tree.
soak_state() {
	local p
	snapshot "$1" 1
	for p in "$1" $(proc_descendants "$1"); do
		echo "fds $p: $(ls /proc/"$p"/fd 2>/dev/null | sort -n | tr '\n' ' ')"
	done
}

# chk_soak PROG CYCLES CRYOBIN [ENV...]
chk_soak() {
	local prog=$1 cycles=$2 bin=$3 d img c tasks got errs=()
	shift 3
	new_dir soak || return 1
	d=$CHECK_DIR
	img=$d/img
	start_target "$prog" "$d" || return 1
	soak_state "$T_PID" >"$d/state0"
	tasks=$(tree_tasks "$T_PID")
	for ((c = 1; c <= cycles; c++)); do
		run_cmd "$d" ckpt env CRYO_ROBUST_TAG="$d" "$@" "$bin" checkpoint "$T_PID" -o "$img" --kill
		errs+=("$LAST_CRYO_ERR")
		want_rc 0 || { WHY="cycle $c: checkpoint: $WHY"; return 1; }
		no_san_report "$LAST_CRYO_ERR" || { WHY="cycle $c: checkpoint: $WHY"; return 1; }
		[ "$c" = 1 ] && reap_child "$T_PID" 5
		# shellcheck disable=SC2086
		poll "$GONE_TIMEOUT" all_gone $tasks || { WHY="cycle $c: tasks still there after checkpoint --kill: $(describe $tasks)"; return 1; }
		run_cmd "$d" restore env CRYO_ROBUST_TAG="$d" "$@" "$bin" restore "$img" --detach
		want_rc 0 || { WHY="cycle $c: restore: $WHY"; return 1; }
		no_san_report "$LAST_CRYO_ERR" || { WHY="cycle $c: restore: $WHY"; return 1; }
		got=$(cat "$LAST_CRYO_OUT")
		[ "$got" = "$T_PID" ] || { WHY="cycle $c: restored as '$got', want $T_PID"; return 1; }
		soak_state "$T_PID" >"$d/state$c"
		if ! diff -u "$d/state0" "$d/state$c" >"$d/diff$c"; then
			WHY="cycle $c: the restored tree differs from the original: $(grep -E '^[-+][^-+]' "$d/diff$c" | head -n 4 | tr '\n' ' ')"
			return 1
		fi
		rm -f "$d/state$c" "$d/diff$c"
	done
	finish_target "$T_PID" "$d"
}

soak_checks() {
	local prog
	for prog in threads tree; do
		if [ ! -x "$TESTBIN/$prog" ]; then
			echo "skip - soak $prog: $TESTBIN/$prog is missing"
			NSKIP=$((NSKIP + 1))
			continue
		fi
		check "soak $prog: $SOAK_CYCLES cycles of checkpoint --kill and restore: same IDs, maps and fds, PASS" \
			chk_soak "$TESTBIN/$prog" "$SOAK_CYCLES" "$CRYO"
		if [ -x "$CRYO_SAN" ]; then
			check "soak $prog [san]: $SOAK_SAN_CYCLES cycles with ${CRYO_SAN#"$REPO_DIR"/}, LeakSanitizer on: no report, PASS" \
				chk_soak "$TESTBIN/$prog" "$SOAK_SAN_CYCLES" "$CRYO_SAN" ASAN_OPTIONS="$SAN_OPTS"
		else
			echo "skip - soak $prog [san]: no $CRYO_SAN (make SAN=1 all)"
			NSKIP=$((NSKIP + 1))
		fi
	done
}

# ------------------------------------------------------------------ main

cleanup() {
	local tag dir
	trap - EXIT INT TERM
	umount_all
	kill_tracked
	if [ -n "$WORK" ] && [ -f "$TRACK_FILE" ]; then
		while read -r tag dir; do
			[ "$tag" = DIR ] && kill_tagged "$dir"
		done <"$TRACK_FILE"
	fi
	if [ -n "$WORK" ] && [ -d "$WORK" ]; then
		if [ "$NFAIL" = 0 ]; then rm -rf "$WORK"; else echo "# kept: $WORK"; fi
	fi
}

usage() {
	sed -n '/^# Usage:/,/^#   (no argument/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
	exit "${1:-0}"
}

main() {
	local g t0 groups=""
	for g in "$@"; do
		case $g in
		-h | --help) usage 0 ;;
		corrupt | crash | restore-fault | durability | soak) groups+=" $g" ;;
		*) echo "robust.sh: unknown check group '$g' (have: $ALL_GROUPS)" >&2; usage 64 ;;
		esac
	done
	[ -n "$groups" ] || groups=$ALL_GROUPS

	if [ ! -x "$CRYO" ]; then
		echo "not ok - $CRYO is missing or not executable"
		echo "0 passed, 1 failed"
		exit 1
	fi
	WORK=$(mktemp -d "${TMPDIR:-/tmp}/cryo-robust.XXXXXX") || exit 1
	TRACK_FILE=$WORK/pids
	: >"$TRACK_FILE"
	trap cleanup EXIT
	trap 'echo "robust.sh: interrupted"; exit 130' INT TERM
	echo "# cryo $CRYO, sanitizer build $([ -x "$CRYO_SAN" ] && echo "$CRYO_SAN" || echo none), tests $TESTBIN, groups:$groups"

	for g in $groups; do
		now_ms
		t0=$NOW_MS
		case $g in
		corrupt) corrupt_checks ;;
		crash) crash_checks ;;
		restore-fault) restore_fault_checks ;;
		durability) durability_checks ;;
		soak) soak_checks ;;
		esac
		now_ms
		echo "# $g: $(((NOW_MS - t0) / 1000)).$(((NOW_MS - t0) % 1000 / 100))s"
	done

	cleanup
	if [ "$NSKIP" -gt 0 ]; then
		echo "$NPASS passed, $NFAIL failed, $NSKIP skipped"
	else
		echo "$NPASS passed, $NFAIL failed"
	fi
	[ "$NFAIL" = 0 ]
}

main "$@"
