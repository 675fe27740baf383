#!/usr/bin/env bash
#
# tests/perms.sh: cryo used by an unprivileged user, through a copy of cryo
# given cap_checkpoint_restore with setcap (the supported setup, see
# docs/security.md). One line per check:
#   ok - NAME | not ok - NAME: why | skip - NAME: why
# and last "N passed, N failed" (", N skipped" if any); exit status 1 if
# any check failed. tests/run.sh runs it and counts every check.
#
# Needs root (it creates a user, removed at the end, and runs setcap).
# What is checked, as that user:
#   own          checkpoint --kill + restore of the user's own test programs
#                (one thread, several threads): same PID, the program's own
#                checks PASS, no capability left in the restored process
#   mode         images are 0600: a new one, an overwritten 0644 one, and
#                the temporary name of an interrupted checkpoint (umask 0)
#   env          the privileged copy ignores CRYO_FAULT (secure_getenv)
#   root-target  checkpoint of a root process: 68, one line naming the
#                process, no file created, the target running untouched
#   other-target the same for a process of another user (nobody)
#   suid-target  the same for the user's own setuid-root program
#   root-image   restore of an image root made (chmod'ed readable): 68
#   forged-*     the user's own image rewritten to claim uid 0, root's
#                capabilities, another gid (CRCs recomputed): 68
#   plain        without the capability, restore fails with 68 naming it
#
# Environment: CRYO, TESTBIN as for run.sh.

set -u
# shellcheck source=tests/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

IMAGE_TOOL=$TESTS_DIR/robust/image.py
TEST_USER=cryoperm$$
OWN_PROGS="sys_pause threads"
NPASS=0 NFAIL=0 NSKIP=0
WHY=""
WORK=""
USER_MADE=0
TRACK_FILE=""

# ------------------------------------------------------------------ output

finish() {
	if [ "$NSKIP" -gt 0 ]; then
		echo "$NPASS passed, $NFAIL failed, $NSKIP skipped"
	else
		echo "$NPASS passed, $NFAIL failed"
	fi
	[ "$NFAIL" = 0 ]
}

want_rc() {
	local r
	for r in "$@"; do [ "$CRYO_RC" = "$r" ] && return 0; done
	case $CRYO_RC in
	124) WHY="cryo timed out (${CRYO_TIMEOUT}s)" ;;
	13[0-9] | 1[4-9][0-9]) WHY="cryo crashed: exit $CRYO_RC (signal $((CRYO_RC - 128)))" ;;
	*) WHY="exit $CRYO_RC, want $*$(is_documented_rc "$CRYO_RC" || echo ' (not a documented code)')" ;;
	esac
	return 1
}

# want_refusal REGEX WHAT: exit 68 with exactly one line that matches REGEX.
want_refusal() {
	want_rc 68 || return 1
	[ "$(wc -l <"$LAST_CRYO_ERR")" = 1 ] ||
		{ WHY="$(wc -l <"$LAST_CRYO_ERR") lines on stderr, want one"; return 1; }
	grep -Eqi -- "$1" "$LAST_CRYO_ERR" ||
		{ WHY="the message does not name $2: '$(head -n 1 "$LAST_CRYO_ERR")'"; return 1; }
}

# ------------------------------------------------------------------ setup

cleanup() {
	kill_tracked
	[ "$USER_MADE" = 1 ] && userdel "$TEST_USER" >/dev/null 2>&1
	[ -n "$WORK" ] && rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

as_user() { setpriv --reuid="$TEST_USER" --regid="$TEST_USER" --init-groups -- "$@"; }
# ucryo LABEL ARGS...: the privileged copy of cryo, run by the test user
ucryo() {
	local label=$1
	shift
	run_cmd "$WORK" "$label" setpriv --reuid="$TEST_USER" --regid="$TEST_USER" --init-groups \
		-- "$UCRYO" "$@"
}

setup() {
	[ "$(id -u)" = 0 ] || { WHY="not root (the test creates a user and runs setcap)"; return 2; }
	command -v setcap >/dev/null || { WHY="setcap missing (package libcap2-bin)"; return 2; }
	command -v useradd >/dev/null && command -v setpriv >/dev/null ||
		{ WHY="useradd or setpriv missing"; return 2; }
	WORK=$(mktemp -d /tmp/cryo-perms.XXXXXX) || { WHY="mktemp"; return 1; }
	TRACK_FILE=$WORK/track
	: >"$TRACK_FILE"
	useradd --system --no-create-home --user-group --shell /usr/sbin/nologin "$TEST_USER" ||
		{ WHY="cannot create user $TEST_USER"; return 1; }
	USER_MADE=1
	TUID=$(id -u "$TEST_USER")
	# bin/: root's, readable by all; u/: the user's own
	chmod 755 "$WORK"
	mkdir -p "$WORK/bin" "$WORK/u" "$WORK/root"
	cp "$CRYO" "$WORK/bin/cryo" && cp "$CRYO" "$WORK/bin/cryo-plain" || { WHY="copy cryo"; return 1; }
	for p in $OWN_PROGS; do
		cp "$TESTBIN/$p" "$WORK/bin/" || { WHY="no test program $TESTBIN/$p"; return 1; }
	done
	cp "$TESTBIN/sys_pause" "$WORK/bin/suid_pause" && chmod 4755 "$WORK/bin/suid_pause"
	chmod 755 "$WORK/bin" && chown "$TEST_USER:" "$WORK/u" && chmod 700 "$WORK/u" &&
		chmod 700 "$WORK/root"
	setcap cap_checkpoint_restore+ep "$WORK/bin/cryo" ||
		{ WHY="setcap failed (a filesystem without extended attributes?)"; return 2; }
	UCRYO=$WORK/bin/cryo
	as_user test -x "$UCRYO" || { WHY="$TEST_USER cannot run $UCRYO"; return 1; }
	return 0
}

# start_user DIR PROG: start a test program as the user (its PID in STARTED_PID).
start_user() {
	# the program's output file is the user's: restore reopens it as the user
	as_user touch "$1/out" || { WHY="cannot create $1/out"; return 1; }
	start_prog "$1" setpriv --reuid="$TEST_USER" --regid="$TEST_USER" --init-groups -- "$2"
	track_pid "$STARTED_PID" "$(basename "$2" | cut -c1-15)"
	wait_line "$1/out" '^READY$' "$WAIT_TIMEOUT" "$STARTED_PID" ||
		{ WHY="$2 did not get READY"; return 1; }
}

# verdict DIR PID: SIGTERM, then the program must say PASS and be gone.
verdict() {
	kill -TERM "$2"
	wait_line "$1/out" '^(PASS|FAIL)' "$WAIT_TIMEOUT" "$2"
	grep -q '^PASS' "$1/out" || { WHY="verdict: $(grep -E '^(PASS|FAIL)' "$1/out" || echo none)"; return 1; }
	wait_gone "$2" || { WHY="process $2 still there after its verdict"; return 1; }
}

mode_of() { stat -c '%a %U' "$1"; }

# ------------------------------------------------------------------ checks

# own PROG: checkpoint --kill, restore --detach, same PID, PASS, no capability.
chk_own() {
	local prog=$1 dir=$WORK/u/$1 pid caps st
	as_user mkdir -p "$dir" || { WHY="mkdir $dir"; return 1; }
	start_user "$dir" "$WORK/bin/$prog" || return 1
	pid=$STARTED_PID
	ucryo "ck.$prog" checkpoint "$pid" -o "$dir/img" --kill
	want_rc 0 || return 1
	reap_child "$pid" || { WHY="process $pid did not die after --kill"; return 1; }
	[ "$(mode_of "$dir/img")" = "600 $TEST_USER" ] ||
		{ WHY="image mode and owner $(mode_of "$dir/img"), want 600 $TEST_USER"; return 1; }
	ucryo "rs.$prog" restore "$dir/img" --detach
	want_rc 0 || return 1
	[ "$(cat "$LAST_CRYO_OUT")" = "$pid" ] ||
		{ WHY="restored PID '$(cat "$LAST_CRYO_OUT")', want $pid"; kill -9 "$pid"; return 1; }
	track_pid "$pid" "$(proc_comm "$pid")"
	st=$(grep -E '^(Uid|CapPrm|CapEff|CapAmb)' "/proc/$pid/status" | tr -s '\t ' ' ')
	caps=$(grep -c ' 0000000000000000$' <<<"$st")
	[ "$caps" = 3 ] && grep -q "^Uid: $TUID $TUID $TUID $TUID$" <<<"$st" ||
		{ WHY="restored credentials: $(tr '\n' ';' <<<"$st")"; kill -9 "$pid"; return 1; }
	verdict "$dir" "$pid"
}

# mode: an existing 0644 image is replaced by a 0600 one; the temporary file
# of a checkpoint killed while writing (root's cryo, umask 0) is 0600 too.
chk_mode() {
	local dir=$WORK/u/mode pid tmp
	as_user mkdir -p "$dir" && as_user sh -c "umask 0; echo old >'$dir/img'; chmod 644 '$dir/img'" ||
		{ WHY="cannot prepare $dir"; return 1; }
	start_user "$dir" "$WORK/bin/sys_pause" || return 1
	pid=$STARTED_PID
	run_cmd "$WORK" mode setpriv --reuid="$TEST_USER" --regid="$TEST_USER" --init-groups -- \
		sh -c "umask 0; exec '$UCRYO' checkpoint $pid -o '$dir/img'"
	want_rc 0 || return 1
	[ "$(mode_of "$dir/img")" = "600 $TEST_USER" ] ||
		{ WHY="overwritten image: $(mode_of "$dir/img"), want 600 $TEST_USER"; return 1; }
	run_cmd "$WORK" modetmp env CRYO_FAULT=checkpoint:write:kill sh -c \
		"umask 0; '$CRYO' checkpoint $pid -o '$WORK/root/img'; exit \$?"
	tmp=$(find "$WORK/root" -name '.img.tmp.*' | head -n 1)
	[ -n "$tmp" ] || { WHY="no temporary file left by the killed checkpoint (rc $CRYO_RC)"; return 1; }
	[ "$(stat -c %a "$tmp")" = 600 ] || { WHY="temporary file mode $(stat -c %a "$tmp")"; return 1; }
	rm -f "$tmp"
	WHY=$(proc_free_running "$pid") || return 1
	verdict "$dir" "$pid"
}

# env: CRYO_FAULT makes root's cryo fail, never the privileged copy.
chk_env() {
	local dir=$WORK/u/env pid
	as_user mkdir -p "$dir" || { WHY="mkdir $dir"; return 1; }
	start_user "$dir" "$WORK/bin/sys_pause" || return 1
	pid=$STARTED_PID
	run_cmd "$WORK" env env CRYO_FAULT=checkpoint:collect setpriv --reuid="$TEST_USER" \
		--regid="$TEST_USER" --init-groups -- "$UCRYO" checkpoint "$pid" -o "$dir/img"
	want_rc 0 || { WHY="$WHY (CRYO_FAULT obeyed?)"; return 1; }
	WHY=$(proc_free_running "$pid") || return 1
	verdict "$dir" "$pid"
}

# refused_target DIR PID WHAT: the user's checkpoint of PID fails with 68,
# names it, creates nothing, leaves it running.
refused_target() {
	local dir=$1 pid=$2
	ucryo "ref.$pid" checkpoint "$pid" -o "$dir/img"
	want_refusal "process $pid: .*uid 0" "the process and uid 0" || return 1
	[ -z "$(ls -A "$dir")" ] || { WHY="left in the output directory: $(ls -A "$dir" | tr '\n' ' ')"; return 1; }
	WHY=$(proc_free_running "$pid") || return 1
}

chk_root_target() {
	local dir=$WORK/u/rt rdir=$WORK/root/rt pid
	mkdir -p "$rdir" && as_user mkdir -p "$dir" || { WHY="mkdir"; return 1; }
	start_prog "$rdir" "$WORK/bin/sys_pause"
	pid=$STARTED_PID
	track_pid "$pid" sys_pause
	wait_line "$rdir/out" '^READY$' "$WAIT_TIMEOUT" "$pid" || { WHY="no READY"; return 1; }
	refused_target "$dir" "$pid" || return 1
	verdict "$rdir" "$pid"
}

# another user's process (nobody's): refused as well
chk_other_target() {
	local dir=$WORK/u/ot odir=$WORK/root/ot pid nobody
	nobody=$(id -u nobody 2>/dev/null) || { WHY="no user nobody"; return 2; }
	mkdir -p "$odir" && chown nobody "$odir" && chmod 755 "$WORK/root" &&
		as_user mkdir -p "$dir" || { WHY="mkdir"; return 1; }
	start_prog "$odir" setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups -- \
		"$WORK/bin/sys_pause"
	pid=$STARTED_PID
	track_pid "$pid" sys_pause
	wait_line "$odir/out" '^READY$' "$WAIT_TIMEOUT" "$pid" || { WHY="no READY"; return 1; }
	ucryo "ref.$pid" checkpoint "$pid" -o "$dir/img"
	want_refusal "process $pid: .*uid $nobody" "the process and uid $nobody" || return 1
	[ -z "$(ls -A "$dir")" ] || { WHY="left in the output directory: $(ls -A "$dir" | tr '\n' ' ')"; return 1; }
	WHY=$(proc_free_running "$pid") || return 1
	chmod 700 "$WORK/root"
	verdict "$odir" "$pid"
}

chk_suid_target() {
	local dir=$WORK/u/st pid
	as_user mkdir -p "$dir" || { WHY="mkdir"; return 1; }
	start_user "$dir" "$WORK/bin/suid_pause" || return 1
	pid=$STARTED_PID
	grep -q "^Uid:.*[[:space:]]0[[:space:]]" "/proc/$pid/status" ||
		{ WHY="the setuid program did not run as root (nosuid mount?)"; kill -9 "$pid"; return 2; }
	as_user mkdir -p "$dir/out.d"
	refused_target "$dir/out.d" "$pid" || return 1
	verdict "$dir" "$pid"
}

# root-image: root checkpoints its own program; the user may read the image.
chk_root_image() {
	local rdir=$WORK/root/ri pid
	mkdir -p "$rdir" && chmod 755 "$WORK/root" "$rdir" || { WHY="mkdir"; return 1; }
	start_prog "$rdir" "$WORK/bin/sys_pause"
	pid=$STARTED_PID
	track_pid "$pid" sys_pause
	wait_line "$rdir/out" '^READY$' "$WAIT_TIMEOUT" "$pid" || { WHY="no READY"; return 1; }
	run_cryo "$WORK" rootimg checkpoint "$pid" -o "$rdir/img" --kill
	want_rc 0 || return 1
	reap_child "$pid"
	chmod 644 "$rdir/img"
	ucryo rootimg-rs restore "$rdir/img" --detach
	want_refusal "image .*img: task $pid: .*uid 0 " "the image, task and uid" || return 1
	proc_gone "$pid" || { WHY="process $pid exists after the refusal"; return 1; }
	chmod 700 "$WORK/root"
}

# forged NAME REGEX FIELD=VALUE...: the user's own image (from chk_own),
# rewritten with valid CRCs, is refused naming the credential.
chk_forged() {
	local name=$1 re=$2 src=$WORK/u/sys_pause/img out=$WORK/u/forged-$1 pid
	shift 2
	[ -f "$src" ] || { WHY="no image from the own check"; return 2; }
	"$PYTHON" "$IMAGE_TOOL" set-task "$src" "$out" "$@" && chown "$TEST_USER:" "$out" ||
		{ WHY="image.py set-task failed"; return 1; }
	pid=$("$PYTHON" "$IMAGE_TOOL" pids "$out" | head -n 1)
	wait_gone "$pid" || { WHY="PID $pid is in use before the restore"; return 1; }
	ucryo "forged.$name" restore "$out" --detach
	want_refusal "image .*forged-$name: task $pid: .*$re" "the image, task and credential" || return 1
	proc_gone "$pid" || { WHY="process $pid exists after the refusal"; return 1; }
}

# plain: the same binary without the capability cannot restore; it says so.
chk_plain() {
	local src=$WORK/u/sys_pause/img
	[ -f "$src" ] || { WHY="no image from the own check"; return 2; }
	run_cmd "$WORK" plain setpriv --reuid="$TEST_USER" --regid="$TEST_USER" --init-groups -- \
		"$WORK/bin/cryo-plain" restore "$src" --detach
	want_refusal "CAP_CHECKPOINT_RESTORE" "the capability it needs"
}

# ------------------------------------------------------------------ main

WHY=""
setup
rc=$?
if [ "$rc" != 0 ]; then
	if [ "$rc" = 2 ]; then
		echo "skip - every permission check: $WHY"
		NSKIP=$((NSKIP + 1))
	else
		echo "not ok - setup: $WHY"
		NFAIL=$((NFAIL + 1))
	fi
	finish
	exit
fi
for p in $OWN_PROGS; do
	check "own $p: checkpoint, kill, restore by the user" chk_own "$p"
done
check "mode: new, overwritten and temporary images are 0600" chk_mode
check "env: the privileged cryo ignores CRYO_FAULT" chk_env
check "root-target: a root process is refused (68), untouched" chk_root_target
check "other-target: another user's process is refused (68), untouched" chk_other_target
check "suid-target: a setuid-root process is refused (68), untouched" chk_suid_target
check "root-image: an image made by root is refused (68)" chk_root_image
check "forged-uid: an image claiming uid 0 is refused (68)" \
	chk_forged uid "real uid 0 " uid0=0 uid1=0 uid2=0 uid3=0
check "forged-caps: an image claiming capabilities is refused (68)" \
	chk_forged caps "capabilities 0x1fffeffffff" cap_prm=0x1fffeffffff cap_eff=0x1fffeffffff
check "forged-gid: an image claiming gid 0 is refused (68)" \
	chk_forged gid "effective gid 0 " gid1=0
check "forged-bnd: an image with another bounding set is refused (68)" \
	chk_forged bnd "bounding set" cap_bnd=0xff
check "plain: without the capability, restore fails cleanly" chk_plain
finish
