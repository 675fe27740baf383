#!/usr/bin/env bash
#
# tests/errors.sh: cryo's error paths, one line per check:
#   ok - NAME | not ok - NAME: why | skip - NAME: why
# and last "N passed, N failed" (", N skipped" if any). Exit status 1 if any
# check failed. tests/run.sh runs it and counts every check.
#
# What is checked (exit codes as documented in include/cryo.h):
#   usage        --help of each command exits 0 and prints usage; unknown
#                options and commands exit 64
#   process      no such PID -> 67 (one line naming the PID); another user's
#                process -> 68
#   checkpoint   an unsupported descriptor (a socket) -> 69 naming the fd;
#                injected faults; an unwritable output -> 73; each time the
#                target stays running, untraced, unstopped, and no image or
#                temporary file is left in the output directory
#   image        missing -> 66; empty, truncated, bit-flipped, wrong version,
#                wrong architecture -> 65, never a crash, never a process
#   restore      injected faults -> 74 naming the phase, nothing left behind;
#                the image's PID taken -> 71 naming the PID and its owner;
#                then the same image restores fine
#
# Environment: CRYO, TESTBIN as for run.sh; RESTORE_FAULTS and
# CHECKPOINT_FAULTS override the fault points below; CRYO_TEST_USER the
# unprivileged user for the permission check (created if missing).

set -u
# shellcheck source=tests/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Fault points (CRYO_FAULT=<point>) walked by the checks. Keep in step with
# the fault_point() calls in src/ (and docs/cryo.1).
RESTORE_FAULTS=${RESTORE_FAULTS:-"restore:tree restore:files restore:memory restore:resume"}
CHECKPOINT_FAULTS=${CHECKPOINT_FAULTS:-"checkpoint:collect checkpoint:write"}

FLIP_COUNT=20				# bit flips, spread over the image
TEST_USER=${CRYO_TEST_USER:-cryotest}
CRC_TOOL=$TESTS_DIR/crc32c.py

# Unique command names for this run's helper programs (15 chars max), so
# that counting processes by name sees no one else's.
TGT_COMM=cryoerr$$
SOCK_COMM=cryosock$$
UFFD_COMM=cryouffd$$
HOG_COMM=pidhog

NPASS=0 NFAIL=0 NSKIP=0
WHY=""
WORK=""

# ------------------------------------------------------------------ output

# skip_checks N WHY: count N checks as skipped.
skip_checks() {
	echo "skip - $1 checks: $2"
	NSKIP=$((NSKIP + $1))
}

# ------------------------------------------------------------- expectations

# want_rc RC...: $CRYO_RC must be one of RC; never a crash or an undocumented
# code. Sets WHY and returns 1 otherwise.
want_rc() {
	local r
	for r in "$@"; do [ "$CRYO_RC" = "$r" ] && return 0; done
	case $CRYO_RC in
	124) WHY="cryo timed out (${CRYO_TIMEOUT}s)" ;;
	134 | 139 | 13[0-9] | 1[4-9][0-9]) WHY="cryo crashed: exit $CRYO_RC (signal $((CRYO_RC - 128)))" ;;
	*) WHY="exit $CRYO_RC, want $*$(is_documented_rc "$CRYO_RC" || echo ' (not a documented code)')" ;;
	esac
	return 1
}

# want_msg REGEX WHAT: cryo's stderr matches the extended REGEX (no case).
want_msg() {
	grep -Eqi -- "$1" "$LAST_CRYO_ERR" && return 0
	WHY="the message does not mention $2: '$(head -n 1 "$LAST_CRYO_ERR")'"
	return 1
}

# ---------------------------------------------------------------- helpers

# build_helpers: compile the helper programs into $WORK/bin:
#   $TGT_COMM   READY, pause() until SIGTERM, PASS (the test protocol)
#   $SOCK_COMM  the same, holding a socket at fd 42 (unsupported by cryo)
#   $UFFD_COMM  the same, with 96 MiB registered with its own userfaultfd
#               for write protection (unsupported; pre-copy registers areas
#               too, and must tell its own from the program's)
#   pidhog      a copy of sleep(1), to hold a PID under a known name
build_helpers() {
	mkdir -p "$WORK/bin"
	cat >"$WORK/bin/target.c" <<'EOF'
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>

static volatile sig_atomic_t got_term;
static void on_term(int sig) { (void)sig; got_term = 1; }

int main(void)
{
	struct sigaction sa = { .sa_handler = on_term };

	sigaction(SIGTERM, &sa, NULL);
#ifdef WITH_SOCKET
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0 || dup2(sv[0], 42) < 0) {
		printf("FAIL: socketpair\n");
		return 1;
	}
	close(sv[0]);
	close(sv[1]);
#endif
#ifdef WITH_UFFD
	size_t len = 96 << 20;
	char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int uffd = syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { .range = { (unsigned long)m, len },
				       .mode = UFFDIO_REGISTER_MODE_WP };

	if (m == MAP_FAILED || uffd < 0 || ioctl(uffd, UFFDIO_API, &api) < 0 ||
	    (memset(m, 1, len), ioctl(uffd, UFFDIO_REGISTER, &reg) < 0)) {
		printf("FAIL: userfaultfd\n");
		return 1;
	}
#endif
	printf("READY\n");
	fflush(stdout);
	while (!got_term)
		pause();
	printf("PASS\n");
	return 0;
}
EOF
	cc -O1 -o "$WORK/bin/$TGT_COMM" "$WORK/bin/target.c" &&
		cc -O1 -DWITH_SOCKET -o "$WORK/bin/$SOCK_COMM" "$WORK/bin/target.c" &&
		cc -O1 -DWITH_UFFD -o "$WORK/bin/$UFFD_COMM" "$WORK/bin/target.c" &&
		cp "$(command -v sleep)" "$WORK/bin/$HOG_COMM"
}

# start_helper COMM: start $WORK/bin/COMM in a fresh directory, like the
# runner starts test programs, and wait for READY. Sets HELPER_PID and
# HELPER_DIR; returns 1 (with WHY) if it does not get ready.
start_helper() {
	HELPER_DIR=$(mktemp -d "$WORK/$1.XXXXXX")
	track_dir "$HELPER_DIR"
	start_prog "$HELPER_DIR" "$WORK/bin/$1"
	HELPER_PID=$STARTED_PID
	track_pid "$HELPER_PID"
	if ! wait_line "$HELPER_DIR/out" '^READY' "$WAIT_TIMEOUT" "$HELPER_PID"; then
		WHY="helper $1 did not get ready"
		return 1
	fi
	track_pid "$HELPER_PID" "$1"
}

# stop_helper PID DIR: SIGTERM; it must say PASS and exit (it is our child,
# unless it was restored: then init reaps it).
stop_helper() {
	kill -TERM "$1" 2>/dev/null
	if ! wait_line "$2/out" '^(PASS|FAIL)' "$WAIT_TIMEOUT" "$1"; then
		WHY="no PASS after SIGTERM (out: $(tail -n 2 "$2/out" | tr '\n' ' '))"
		kill -KILL "$1" 2>/dev/null
		wait "$1" 2>/dev/null
		return 1
	fi
	wait "$1" 2>/dev/null
	wait_gone "$1" || { WHY="process $1 still there after its verdict"; return 1; }
	grep -q '^PASS' "$2/out" || { WHY="it says $(grep -m1 '^FAIL' "$2/out")"; return 1; }
	return 0
}

# kill_restored PID: a restore that should have failed created PID: end it.
kill_restored() {
	kill_if "$1" "$TGT_COMM" KILL
	wait_gone "$1" 5
}

# find_strays: processes a failed cryo command may have left behind, into
# STRAYS: children of this shell, processes named like the image's task,
# and orphaned cryo processes (parent init).
_find_strays() {
	local p
	STRAYS=()
	proc_children_arr $$
	for p in "${PROC_CHILDREN[@]}"; do
		[ "$p" = "${KEEP_PID:-}" ] || STRAYS+=("$p")
	done
	for p in $(pids_with_comm "$TGT_COMM") $(pids_with_comm cryo); do
		[ "$p" = "${KEEP_PID:-}" ] && continue
		proc_stat "$p" || continue
		# a dead task that init has yet to reap (it does so up to ~2 s late) runs nothing
		[ "$PS_STATE" = Z ] && continue
		[ "$PS_PPID" = 1 ] || [ "$PS_PPID" = $$ ] || [ "$(proc_comm "$p")" = "$TGT_COMM" ] || continue
		STRAYS+=("$p")
	done
	[ ${#STRAYS[@]} -eq 0 ]
}

# nothing_left PID [TIMEOUT]: after a failed restore of an image of PID:
# within TIMEOUT s (default 0: at once) no PID, no stray process.
nothing_left() {
	local t=${2:-0} p desc=""
	if ! poll "$t" proc_gone "$1"; then
		WHY="a process $1 ($(proc_comm "$1"), state $(proc_stat "$1" && echo "$PS_STATE")) exists after the failed restore"
		kill_restored "$1"
		return 1
	fi
	if ! poll "$t" _find_strays; then
		for p in "${STRAYS[@]}"; do desc+=" $p($(proc_comm "$p"))"; done
		WHY="stray processes left:$desc"
		return 1
	fi
	return 0
}

# also_nothing_left TIMEOUT: after a check already failed (WHY set), clean
# up what the failed restore left and add it to WHY.
also_nothing_left() {
	local w=$WHY
	if nothing_left "$IMG_PID" "$1"; then WHY=$w; else WHY="$w; also: $WHY"; fi
}

# ------------------------------------------------------------ usage checks

chk_help() {
	run_cryo "$WORK" help "$@" --help
	want_rc 0 || return 1
	grep -qi usage "$LAST_CRYO_OUT" || { WHY="no usage on stdout"; return 1; }
}

chk_usage_error() {
	run_cryo "$WORK" usage "$@"
	want_rc 64
}

usage_checks() {
	local c
	check "cryo --help" chk_help
	for c in checkpoint restore inspect check; do
		check "cryo $c --help" chk_help "$c"
	done
	check "cryo --no-such-option -> 64" chk_usage_error --no-such-option
	check "cryo checkpoint unknown option -> 64" chk_usage_error checkpoint 1 -o "$WORK/x.img" --no-such-option
	check "cryo restore unknown option -> 64" chk_usage_error restore "$WORK/x.img" --no-such-option
	check "cryo inspect unknown option -> 64" chk_usage_error inspect "$WORK/x.img" --no-such-option
	check "cryo check unknown option -> 64" chk_usage_error check --no-such-option
	check "cryo no-such-command -> 64" chk_usage_error no-such-command
	check "cryo with no arguments -> 64" chk_usage_error
	check "cryo checkpoint without a PID -> 64" chk_usage_error checkpoint
	check "cryo checkpoint abc -> 64" chk_usage_error checkpoint abc -o "$WORK/x.img"
	check "cryo restore without an image -> 64" chk_usage_error restore
	check "cryo checkpoint --pre-copy=sometimes -> 64" chk_usage_error checkpoint 1 \
		-o "$WORK/x.img" --pre-copy=sometimes
	for c in zstd:0 zstd:20 zstd:-51 zstd: zstd:1x brotli; do
		check "cryo checkpoint --compress=$c -> 64" chk_usage_error checkpoint 1 \
			-o "$WORK/x.img" --compress="$c"
	done
	[ -e "$WORK/x.img" ] && echo "# note: a usage error left $WORK/x.img behind"
}

# ---------------------------------------------------------- process checks

chk_no_such_process() {
	local pid nlines
	pid=$(free_pid) || { WHY="no free PID found"; return 2; }
	run_cryo "$WORK" nosuch checkpoint "$pid" -o "$WORK/nosuch.img"
	want_rc 67 || return 1
	nlines=$(grep -c . "$LAST_CRYO_ERR")
	[ "$nlines" = 1 ] || { WHY="$nlines lines on stderr, want one"; return 1; }
	want_msg "(^|[^0-9])$pid([^0-9]|$)" "PID $pid" || return 1
	[ -e "$WORK/nosuch.img" ] && { WHY="an image was written"; return 1; }
	return 0
}

# chk_other_user PID: checkpoint a root process as an unprivileged user.
chk_other_user() {
	local pid=$1 udir why
	if [ "$(id -u)" != 0 ]; then
		# unprivileged already: try PID 1, if it is not ours
		[ "$(stat -c %u /proc/1)" != "$(id -u)" ] || { WHY="not root and PID 1 is ours"; return 2; }
		run_cryo "$WORK" perm checkpoint 1 -o "$WORK/perm.img"
		want_rc 68
		return
	fi
	command -v setpriv >/dev/null || { WHY="no setpriv"; return 2; }
	if ! id "$TEST_USER" >/dev/null 2>&1; then
		useradd --system --no-create-home --shell /usr/sbin/nologin "$TEST_USER" >/dev/null 2>&1 ||
			{ WHY="cannot create user $TEST_USER"; return 2; }
	fi
	udir=$WORK/perm
	mkdir -p "$udir" && chown "$TEST_USER" "$udir" && chmod 711 "$WORK" ||
		{ WHY="cannot prepare $udir"; return 2; }
	setpriv --reuid="$TEST_USER" --regid="$TEST_USER" --init-groups -- test -x "$CRYO" ||
		{ WHY="$TEST_USER cannot run $CRYO"; return 2; }
	run_cmd "$WORK" perm setpriv --reuid="$TEST_USER" --regid="$TEST_USER" --init-groups -- \
		"$CRYO" checkpoint "$pid" -o "$udir/img"
	want_rc 68 || return 1
	why=$(proc_free_running "$pid") || { WHY="target after the refusal: $why"; return 1; }
	[ -z "$(ls -A "$udir")" ] || { WHY="files left in the output directory: $(ls -A "$udir" | tr '\n' ' ')"; return 1; }
	return 0
}

# ------------------------------------------------------- checkpoint failures

# chk_ckpt_fails PID NAME WANT_RCS MSG_REGEX MSG_WHAT [ENV...] -- ARGS...:
# checkpoint PID into an empty directory with ARGS (and environment ENV);
# it must fail with one of WANT_RCS ("69" or "65 70"), say MSG_REGEX, leave
# the target running, untraced and not stopped, and leave no file behind.
chk_ckpt_fails() {
	local pid=$1 name=$2 want=$3 re=$4 what=$5 dir why
	local -a envs=()
	shift 5
	while [ $# -gt 0 ] && [ "$1" != -- ]; do envs+=("$1"); shift; done
	shift
	dir=$WORK/ckpt.$name
	mkdir -p "$dir"
	run_cmd "$WORK" "ckpt.$name" env "${envs[@]}" "$CRYO" checkpoint "$pid" -o "$dir/img" "$@"
	# shellcheck disable=SC2086	# WANT_RCS is a list
	want_rc $want || return 1
	want_msg "$re" "$what" || return 1
	why=$(proc_free_running "$pid") || { WHY="target after the failure: $why"; return 1; }
	[ -z "$(ls -A "$dir")" ] || { WHY="left in the output directory: $(ls -A "$dir" | tr '\n' ' ')"; return 1; }
	return 0
}

chk_ckpt_unwritable() {
	local pid=$1 why
	run_cryo "$WORK" unwritable checkpoint "$pid" -o "$WORK/no/such/dir/img" --kill
	want_rc 73 || return 1
	why=$(proc_free_running "$pid") || { WHY="target after the failure: $why"; return 1; }
	return 0
}

chk_stop_helper() { stop_helper "$@"; }

checkpoint_checks() {
	local tpid tdir spid sdir p
	if ! start_helper "$TGT_COMM"; then
		check "start a target" false
		return
	fi
	tpid=$HELPER_PID tdir=$HELPER_DIR

	check "checkpoint a process of another user -> 68" chk_other_user "$tpid"

	if start_helper "$SOCK_COMM"; then
		spid=$HELPER_PID sdir=$HELPER_DIR
		check "checkpoint a socket holder -> 69, names fd 42, target untouched" \
			chk_ckpt_fails "$spid" sock 69 '(fd|descriptor|socket)[^0-9]*42([^0-9]|$)|(^|[^0-9])42[^0-9]*(fd|descriptor|socket)' "fd 42" --
		check "checkpoint --kill a socket holder -> 69, target survives" \
			chk_ckpt_fails "$spid" sockkill 69 '(^|[^0-9])42([^0-9]|$)' "fd 42" -- --kill
		check "socket holder still works after the failed checkpoints" chk_stop_helper "$spid" "$sdir"
	else
		check "start the socket holder" false
	fi
	if start_helper "$UFFD_COMM"; then
		check "checkpoint --pre-copy of memory registered with the program's userfaultfd -> 69, target untouched" \
			chk_ckpt_fails "$HELPER_PID" uffd 69 'registered with userfaultfd' "the area" -- --pre-copy --kill
		check "userfaultfd user still works after the failed checkpoint" chk_stop_helper "$HELPER_PID" "$HELPER_DIR"
	else
		check "start the userfaultfd user" false
	fi

	for p in $CHECKPOINT_FAULTS; do
		check "checkpoint --kill with CRYO_FAULT=$p fails, target survives" \
			chk_ckpt_fails "$tpid" "fault.${p//:/_}" "65 66 67 68 69 70 71 72 73 74" "${p#*:}" "phase ${p#*:}" CRYO_FAULT="$p" -- --kill
	done
	check "checkpoint --kill into a missing directory -> 73, target survives" chk_ckpt_unwritable "$tpid"
	check "target still works after the failed checkpoints" chk_stop_helper "$tpid" "$tdir"
}

# ------------------------------------------------------------ scope checks

chk_ckpt_own_scope() {
	# in a session of its own: under CI the runner's session may be 0 (its
	# leader lives in another PID namespace), which names no session at all
	# shellcheck disable=SC2016
	run_cmd "$WORK" ownsid setsid -w sh -c 'exec "$0" checkpoint "$$" --sid -o "$1"' \
		"$CRYO" "$WORK/ownsid.img"
	want_rc 64 || return 1
	want_msg 'cryo itself is in session' "that cryo is in that session" || return 1
	[ ! -e "$WORK/ownsid.img" ] || { WHY="an image was written"; return 1; }
}

chk_ckpt_no_group() {
	local id=4194000
	while [ -e "/proc/$id" ] || [ -n "$(proc_members pgid "$id")" ]; do id=$((id + 1)); done
	run_cryo "$WORK" nogroup checkpoint "$id" --pgid -o "$WORK/nogroup.img"
	want_rc 67 || return 1
	want_msg "process group $id" "the group $id"
}

# --pid of a process with a child, --pgid of a group whose member has a
# child in another group: refused (the child could not be restored), the
# targets untouched; scopes that name cryo's own session or nobody.
scope_checks() {
	local dir bpid p
	dir=$(mktemp -d "$WORK/scope.XXXXXX")
	track_dir "$dir"
	# not a group leader here (no job control): setsid execs in place, $! is the shell
	setsid bash -c 'sleep 1000 & set -m; sleep 1001 & echo READY >"$0"; wait' "$dir/out" \
		</dev/null >/dev/null 2>&1 3>&- &
	bpid=$!
	track_pid "$bpid"
	if ! wait_line "$dir/out" '^READY' "$WAIT_TIMEOUT" "$bpid"; then
		check "start a shell with two children" false
	else
		for p in $(proc_descendants "$bpid"); do track_pid "$p"; done
		check "checkpoint --pid of a process with children -> 69, names a child" \
			chk_ckpt_fails "$bpid" pidscope 69 'has child process' "the child" -- --pid
		check "checkpoint --pgid, a member has a child in another group -> 69" \
			chk_ckpt_fails "$bpid" pgidscope 69 'not in the process group' \
			"the child outside the group" -- --pgid
		# shellcheck disable=SC2046
		kill -KILL $(proc_descendants "$bpid") "$bpid" 2>/dev/null
		wait "$bpid" 2>/dev/null
	fi
	check "checkpoint --sid of cryo's own session -> 64" chk_ckpt_own_scope
	check "checkpoint --pgid of a group without processes -> 67" chk_ckpt_no_group
}

# ------------------------------------------------------------ image checks

# chk_bad_image IMG WANT [REGEX WHAT]: restoring IMG fails with WANT, the
# message names the image (and matches REGEX), no process is created, no
# stray left. IMG_PID is the PID in the good image (absent now).
chk_bad_image() {
	local img=$1 want=$2 base wait=0
	run_cryo "$WORK" badimg restore "$img" --detach
	# page data is checked as it is read into place, once the tasks exist:
	# they are killed, and PID 1 reaps them up to ~2 s late
	grep -q "(Z\{0,1\}PAGES)" "$LAST_CRYO_ERR" 2>/dev/null && wait=5
	want_rc "$want" || { also_nothing_left "$wait"; return 1; }
	nothing_left "$IMG_PID" "$wait" || return 1
	base=${img##*/}
	want_msg "$base" "the image ($base)" || return 1
	[ $# -ge 4 ] && { want_msg "$3" "$4" || return 1; }
	return 0
}

chk_inspect_bad() {
	run_cryo "$WORK" inspect inspect "$1"
	want_rc "$2"
}

chk_crc_tool() {
	"$PYTHON" "$CRC_TOOL" selftest >/dev/null || { WHY="crc32c.py selftest fails"; return 1; }
	WHY=$("$PYTHON" "$CRC_TOOL" checkhdr "$1") || return 1
}

# chk_newer_minor IMG: a newer minor version must still restore.
chk_newer_minor() {
	local img=$1 got
	run_cryo "$WORK" minor restore "$img" --detach
	got=$(cat "$LAST_CRYO_OUT")
	if [ "$CRYO_RC" = 0 ]; then
		kill_restored "$IMG_PID"
		[ "$got" = "$IMG_PID" ] || { WHY="restored as '$got', want $IMG_PID"; return 1; }
		return 0
	fi
	want_rc 0
}

# mutated NAME: a fresh copy of the good image, $WORK/NAME.img.
mutated() {
	cp "$GOOD_IMG" "$WORK/$1.img"
	echo "$WORK/$1.img"
}

image_corruption_checks() {
	local size img i off bit major
	size=$(stat -c %s "$GOOD_IMG")

	check "restore a missing image -> 66" chk_bad_image "$WORK/missing.img" 66
	check "inspect a missing image -> 66" chk_inspect_bad "$WORK/missing.img" 66
	: >"$WORK/empty.img"
	check "restore an empty image -> 65" chk_bad_image "$WORK/empty.img" 65
	check "inspect an empty image -> 65" chk_inspect_bad "$WORK/empty.img" 65
	for i in 1 4096 $((size / 2)) $((size - 1)); do
		img=$(mutated "trunc$i")
		truncate -s "$i" "$img"
		check "restore an image truncated to $i bytes -> 65" chk_bad_image "$img" 65
	done

	check "header CRC recomputed by tests/crc32c.py matches the image" chk_crc_tool "$GOOD_IMG"
	major=$("$PYTHON" "$CRC_TOOL" get "$GOOD_IMG" 8 2)
	img=$(mutated version)
	"$PYTHON" "$CRC_TOOL" set "$img" 8 2 $((major + 1)) && "$PYTHON" "$CRC_TOOL" fixhdr "$img"
	check "restore an image of version $((major + 1)).x -> 65, says version" chk_bad_image "$img" 65 version "version"
	img=$(mutated arch)
	"$PYTHON" "$CRC_TOOL" set "$img" 16 4 183 && "$PYTHON" "$CRC_TOOL" fixhdr "$img"	# EM_AARCH64
	check "restore an image of another architecture -> 65, says architecture" chk_bad_image "$img" 65 'arch' "the architecture"
	img=$(mutated minor)
	"$PYTHON" "$CRC_TOOL" set "$img" 10 2 $(($("$PYTHON" "$CRC_TOOL" get "$GOOD_IMG" 10 2) + 1)) && "$PYTHON" "$CRC_TOOL" fixhdr "$img"
	check "restore an image of a newer minor version works" chk_newer_minor "$img"

	for ((i = 0; i < FLIP_COUNT; i++)); do
		off=$(((size - 1) * i / (FLIP_COUNT - 1)))
		bit=$((i % 8))
		img=$(mutated "flip$i")
		"$PYTHON" "$CRC_TOOL" flip "$img" "$off" "$bit"
		check "restore with bit $bit flipped at offset $off/$size -> 65" chk_bad_image "$img" 65
		rm -f "$img"
	done
}

# chk_restore_fault POINT: CRYO_FAULT=POINT restore -> 74, names the phase,
# nothing left after a little while.
chk_restore_fault() {
	local p=$1
	run_cmd "$WORK" "fault.${p//:/_}" env CRYO_FAULT="$p" "$CRYO" restore "$GOOD_IMG" --detach
	want_rc 74 || { also_nothing_left 5; return 1; }
	want_msg "${p#*:}" "the phase (${p#*:})" || { also_nothing_left 5; return 1; }
	nothing_left "$IMG_PID" 5
}

# occupy_pid PID: start pidhog with exactly PID (ns_last_pid = PID-1, then
# fork; retried, other processes may fork in between). Sets HOG_PID.
occupy_pid() {
	local pid=$1
	HOG_PID=""
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		{ echo $((pid - 1)) >/proc/sys/kernel/ns_last_pid; } 2>/dev/null || return 2
		"$WORK/bin/$HOG_COMM" 600 </dev/null >/dev/null 2>&1 &
		HOG_PID=$!
		disown "$HOG_PID"
		track_pid "$HOG_PID"
		if [ "$HOG_PID" = "$pid" ]; then
			poll 5 _comm_is "$pid" "$HOG_COMM" && { track_pid "$pid" "$HOG_COMM"; return 0; }
		fi
		kill -KILL "$HOG_PID" 2>/dev/null
		wait "$HOG_PID" 2>/dev/null
		HOG_PID=""
	done
	return 1
}
_comm_is() { [ "$(proc_comm "$1")" = "$2" ]; }

chk_pid_in_use() {
	occupy_pid "$IMG_PID"
	case $? in
	1) WHY="could not get PID $IMG_PID for the occupier"; return 2 ;;
	2) WHY="cannot write /proc/sys/kernel/ns_last_pid"; return 2 ;;
	esac
	run_cryo "$WORK" inuse restore "$GOOD_IMG" --detach
	KEEP_PID=$IMG_PID
	want_rc 71 || { KEEP_PID=""; return 1; }
	want_msg "(^|[^0-9])$IMG_PID([^0-9]|$)" "PID $IMG_PID" || { KEEP_PID=""; return 1; }
	want_msg "$HOG_COMM" "the occupier's name ($HOG_COMM)" || { KEEP_PID=""; return 1; }
	[ "$(proc_comm "$IMG_PID")" = "$HOG_COMM" ] || { WHY="PID $IMG_PID is no longer the occupier"; KEEP_PID=""; return 1; }
	if ! poll 0 _find_strays; then
		WHY="processes appeared: ${STRAYS[*]}"
		KEEP_PID=""
		return 1
	fi
	KEEP_PID=""
	return 0
}

chk_free_hog() {
	[ -n "${HOG_PID:-}" ] || { WHY="no occupier"; return 2; }
	kill -KILL "$HOG_PID"
	wait "$HOG_PID" 2>/dev/null
	wait_gone "$HOG_PID" || { WHY="the occupier did not go away"; return 1; }
}

# chk_restore_works: the good image restores (same PID) and says PASS.
chk_restore_works() {
	local got
	run_cryo "$WORK" good restore "$GOOD_IMG" --detach
	want_rc 0 || return 1
	got=$(cat "$LAST_CRYO_OUT")
	[ "$got" = "$IMG_PID" ] || { WHY="restored as '$got', want $IMG_PID"; kill_restored "$IMG_PID"; return 1; }
	track_pid "$IMG_PID" "$TGT_COMM"
	stop_helper "$IMG_PID" "$IMG_DIR"
}

chk_make_image() {
	run_cryo "$WORK" good-ckpt checkpoint "$IMG_PID" -o "$GOOD_IMG" --kill
	want_rc 0 || return 1
	[ -s "$GOOD_IMG" ] || { WHY="exit 0 but no image"; return 1; }
	reap_child "$IMG_PID" || { WHY="target $IMG_PID still alive after checkpoint --kill"; return 1; }
}

image_checks() {
	local p n_image_checks
	n_image_checks=$((2 + 2 + 4 + 4 + FLIP_COUNT + $(wc -w <<<"$RESTORE_FAULTS") + 3))
	if ! start_helper "$TGT_COMM"; then
		check "start a target for the image checks" false
		skip_checks "$n_image_checks" "no target"
		return
	fi
	IMG_PID=$HELPER_PID IMG_DIR=$HELPER_DIR
	GOOD_IMG=$WORK/good.img
	check "checkpoint --kill a target for the image checks" chk_make_image
	if [ ! -s "$GOOD_IMG" ] || proc_exists "$IMG_PID"; then
		kill -KILL "$IMG_PID" 2>/dev/null
		reap_child "$IMG_PID"
		skip_checks "$n_image_checks" "no image"
		return
	fi

	image_corruption_checks
	for p in $RESTORE_FAULTS; do
		check "restore with CRYO_FAULT=$p -> 74, names the phase, nothing left" chk_restore_fault "$p"
	done
	check "restore while PID $IMG_PID is taken -> 71, names PID and owner, creates nothing" chk_pid_in_use
	check "free PID $IMG_PID again" chk_free_hog
	check "then the same image restores and the target says PASS" chk_restore_works
}

# note_unknown_faults: if cryo lists its fault points, say which we miss.
note_unknown_faults() {
	local p
	run_cmd "$WORK" faultlist env CRYO_FAULT=list "$CRYO" check
	[ "$CRYO_RC" = 0 ] || return 0
	for p in $(grep -Eo '\b(checkpoint|restore):[a-z_-]+' "$LAST_CRYO_OUT" "$LAST_CRYO_ERR" | sed 's/^[^:]*:\([a-z]*:\)/\1/' | sort -u); do
		case " $RESTORE_FAULTS $CHECKPOINT_FAULTS " in
		*" $p "*) ;;
		*) echo "# note: cryo lists fault point $p, not walked by errors.sh" ;;
		esac
	done
}

# ------------------------------------------------------------------ main

# cleanup: end what is left (by PID), remove the work directory unless a
# check failed (then say where it is: before the totals, which stay last).
cleanup() {
	trap - EXIT INT TERM
	kill_tracked
	if [ -n "$WORK" ] && [ -d "$WORK" ]; then
		if [ "$NFAIL" = 0 ]; then rm -rf "$WORK"; else echo "# kept: $WORK"; fi
	fi
}

main() {
	WORK=$(mktemp -d "${TMPDIR:-/tmp}/cryo-errors.XXXXXX") || exit 1
	TRACK_FILE=$WORK/pids
	: >"$TRACK_FILE"
	trap cleanup EXIT
	trap 'echo "errors.sh: interrupted"; exit 130' INT TERM

	if [ ! -x "$CRYO" ]; then
		echo "not ok - $CRYO is missing or not executable"
		echo "0 passed, 1 failed"
		exit 1
	fi
	if ! build_helpers >"$WORK/cc.log" 2>&1; then
		echo "not ok - cannot build the helper programs: $(head -n 3 "$WORK/cc.log" | tr '\n' ' ')"
		NFAIL=1
		echo "0 passed, 1 failed"
		exit 1
	fi

	note_unknown_faults
	usage_checks
	check "checkpoint a PID that does not exist -> 67" chk_no_such_process
	checkpoint_checks
	scope_checks
	image_checks

	cleanup
	if [ "$NSKIP" -gt 0 ]; then
		echo "$NPASS passed, $NFAIL failed, $NSKIP skipped"
	else
		echo "$NPASS passed, $NFAIL failed"
	fi
	[ "$NFAIL" = 0 ]
}

main "$@"
