# shellcheck shell=bash
# shellcheck disable=SC2034  # globals (CRYO_RC, PROC_CHILDREN...) are set for the sourcing script
#
# tests/lib.sh: helpers shared by tests/run.sh, tests/errors.sh and the
# real-program hooks in tests/real/*.sh. Source it; it defines functions and
# a few settings and runs nothing else.
#
# Conventions:
#  - Every process a script starts is registered with track_pid; on exit or
#    interrupt, kill_tracked ends the ones still alive, by PID, after checking
#    that /proc/PID/comm is still what was registered (no pkill, no killall).
#  - Time is measured with $EPOCHREALTIME (no fork); polling sleeps 50 ms.
#  - "gone" means /proc/PID no longer exists at all (a zombie is not gone).

export LC_ALL=C

TESTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$TESTS_DIR/.." && pwd)

# Defaults, overridable from the environment. Relative paths are taken from
# the repository root (that is where `make test` runs), then made absolute.
abs_path() {
	case $1 in
	/*) printf '%s\n' "$1" ;;
	*) if [ -e "$1" ]; then printf '%s/%s\n' "$PWD" "$1"; else printf '%s/%s\n' "$REPO_DIR" "$1"; fi ;;
	esac
}
CRYO=$(abs_path "${CRYO:-build/cryo}")
TESTBIN=$(abs_path "${TESTBIN:-build/tests}")
export CRYO TESTBIN
CRYO_TIMEOUT=${CRYO_TIMEOUT:-120}	# seconds any single cryo command may take
WAIT_TIMEOUT=${WAIT_TIMEOUT:-30}	# READY and verdict
GONE_TIMEOUT=${GONE_TIMEOUT:-10}	# process disappearance (PID 1 reaps late)

# The documented exit codes of cryo (0 and 64..74).
CRYO_EXIT_CODES="0 64 65 66 67 68 69 70 71 72 73 74"

# python3: the system one when present (python3 on PATH is a pyenv shim).
if [ -x /usr/bin/python3 ]; then PYTHON=/usr/bin/python3; else PYTHON=$(command -v python3 || echo python3); fi
export PYTHON

# ---------------------------------------------------------------- time

# now_ms: milliseconds since the epoch, into $NOW_MS (no fork).
now_ms() {
	local t=${EPOCHREALTIME//[.,]/}
	NOW_MS=$((10#$t / 1000))
}

# poll TIMEOUT_S CMD...: run CMD every 50 ms until it succeeds (return 0) or
# TIMEOUT_S seconds pass (return 1).
poll() {
	local timeout=$1 deadline
	shift
	now_ms
	deadline=$((NOW_MS + timeout * 1000))
	while :; do
		"$@" && return 0
		now_ms
		[ "$NOW_MS" -ge "$deadline" ] && return 1
		sleep 0.05
	done
}

# ---------------------------------------------------------------- /proc

# proc_stat PID: parse /proc/PID/stat into PS_STATE PS_PPID PS_PGID PS_SID.
# Returns 1 if the process does not exist. The comm field may hold spaces or
# parentheses, so everything up to the last ") " is skipped.
proc_stat() {
	local line rest
	{ read -r line <"/proc/$1/stat"; } 2>/dev/null || return 1
	rest=${line##*) }
	# shellcheck disable=SC2086
	set -- $rest
	PS_STATE=$1 PS_PPID=$2 PS_PGID=$3 PS_SID=$4
}

# proc_members pgid|sid ID: the processes of a process group or session.
proc_members() {
	local p id
	for p in /proc/[0-9]*; do
		p=${p#/proc/}
		proc_stat "$p" || continue
		id=$PS_SID
		[ "$1" = pgid ] && id=$PS_PGID
		[ "$id" = "$2" ] && echo "$p"
	done
	return 0
}

proc_exists() { [ -e "/proc/$1" ]; }
proc_gone() { ! [ -e "/proc/$1" ]; }

# proc_alive PID: exists and is not a zombie (or dead).
proc_alive() {
	proc_stat "$1" || return 1
	case $PS_STATE in Z | X | x) return 1 ;; esac
	return 0
}
proc_dead() { ! proc_alive "$1"; }

# proc_comm PID: print the command name (empty if gone).
proc_comm() {
	local c=""
	{ read -r c <"/proc/$1/comm"; } 2>/dev/null
	printf '%s\n' "$c"
}

# proc_tracer PID: print TracerPid from /proc/PID/status.
proc_tracer() {
	local k v
	while read -r k v; do
		[ "$k" = "TracerPid:" ] && { printf '%s\n' "$v"; return 0; }
	done <"/proc/$1/status" 2>/dev/null
	return 1
}

# proc_free_running PID: alive, not traced, not stopped; else prints why and
# returns 1. What a target must look like after a checkpoint that left it
# running, or after any failed checkpoint.
proc_free_running() {
	local tracer
	if ! proc_alive "$1"; then
		echo "process $1 is not running (state ${PS_STATE:-gone})"
		return 1
	fi
	case $PS_STATE in
	t | T) echo "process $1 is stopped (state $PS_STATE)"; return 1 ;;
	esac
	tracer=$(proc_tracer "$1")
	if [ "${tracer:-0}" != 0 ]; then
		echo "process $1 is still traced (TracerPid $tracer)"
		return 1
	fi
	return 0
}

# proc_children PID: print the PIDs whose parent is PID, sorted.
# proc_children_arr PID: the same into the array PROC_CHILDREN, without
# forking (so that the caller's own subshells do not show up).
# proc_descendants PID: print all descendants of PID (not PID itself), sorted.
# There is no /proc/PID/task/TID/children on this kernel, so scan /proc.
_proc_parent_map() {
	local f line rest pid
	for f in /proc/[0-9]*/stat; do
		{ read -r line <"$f"; } 2>/dev/null || continue
		pid=${line%% *}
		rest=${line##*) }
		# shellcheck disable=SC2086
		set -- $rest
		_KIDS_OF[$2]+=" $pid"
	done
}
proc_children() {
	local -a _KIDS_OF=()
	_proc_parent_map
	# shellcheck disable=SC2086
	[ -n "${_KIDS_OF[$1]:-}" ] && printf '%s\n' ${_KIDS_OF[$1]} | sort -n
	return 0
}
proc_children_arr() {
	local -a _KIDS_OF=()
	_proc_parent_map
	# shellcheck disable=SC2206
	PROC_CHILDREN=(${_KIDS_OF[$1]:-})
}
proc_descendants() {
	local -a _KIDS_OF=() queue out
	local p c
	_proc_parent_map
	queue=("$1")
	out=()
	while [ ${#queue[@]} -gt 0 ]; do
		p=${queue[0]}
		queue=("${queue[@]:1}")
		for c in ${_KIDS_OF[$p]:-}; do
			out+=("$c")
			queue+=("$c")
		done
	done
	[ ${#out[@]} -gt 0 ] && printf '%s\n' "${out[@]}" | sort -n
	return 0
}

# pids_with_comm COMM: print the PIDs whose comm is COMM.
pids_with_comm() {
	local f c pid
	for f in /proc/[0-9]*/comm; do
		{ read -r c <"$f"; } 2>/dev/null || continue
		[ "$c" = "$1" ] || continue
		pid=${f#/proc/}
		printf '%s\n' "${pid%/comm}"
	done
}

# free_pid: print a PID that no process or thread uses now, high in the range.
free_pid() {
	local max p
	read -r max </proc/sys/kernel/pid_max
	for ((p = max - 7; p > 300; p -= 13)); do
		[ -e "/proc/$p" ] || { echo "$p"; return 0; }
	done
	return 1
}

# wait_gone PID [TIMEOUT]: until /proc/PID disappears. For a process that is
# not our child (init reaps it, up to ~2 s late here).
wait_gone() { poll "${2:-$GONE_TIMEOUT}" proc_gone "$1"; }

# reap_child PID [TIMEOUT]: for a child of this shell: wait until it is dead
# (zombie or already reaped by bash), collect it with `wait` (never blocks:
# it is dead), then until /proc/PID is gone. Returns 1 if it did not die.
reap_child() {
	local t=${2:-$GONE_TIMEOUT}
	poll "$t" proc_dead "$1" || return 1
	wait "$1" 2>/dev/null
	wait_gone "$1" "$t"
}

# masked_maps PID: /proc/PID/maps with whitespace normalised, and the inode
# replaced by '*' where it cannot survive a restore: deleted files, /dev/zero
# shared mappings, memfd and SysV shared memory.
masked_maps() {
	# /proc/PID/maps is read in pieces (and, since 6.17, under per-area
	# locks): a program that remaps while it runs (mem_precopy) can show a
	# line twice or not at all in one read, even in two reads in a row (seen
	# once in CI). Read until three reads in a row agree.
	local prev="" cur i same=0
	for i in $(seq 20); do
		cur=$(masked_maps_once "$1")
		if [ "$i" -gt 1 ] && [ "$cur" = "$prev" ]; then
			same=$((same + 1))
			[ "$same" -ge 2 ] && break
		else
			same=0
		fi
		prev=$cur
	done
	[ -z "$cur" ] || printf '%s\n' "$cur"
}

# masked_maps_once PID: one read of it.
masked_maps_once() {
	awk '{
		path = ""
		if (NF >= 6) { path = $0; sub(/^[^ ]+ +[^ ]+ +[^ ]+ +[^ ]+ +[^ ]+ +/, "", path) }
		ino = $5
		if (path ~ / \(deleted\)$/ || path ~ /^\/dev\/zero/ || path ~ /^\/memfd:/ || path ~ /^\/SYSV/)
			ino = "*"
		print $1, $2, $3, $4, ino, path
	}' "/proc/$1/maps" 2>/dev/null
}

# state_class STATE: the part of a task state a restore must preserve.
state_class() {
	case $1 in
	T) echo stopped ;;
	t) echo traced ;;
	Z) echo zombie ;;
	*) echo running ;;
	esac
}

# snapshot ROOT TREE: what must be identical before and after a restore, as
# text: for ROOT (and, if TREE=1, every descendant) the PID, parent (not for
# ROOT: a detached restore reparents it), PGID, SID, run state, comm, thread
# IDs, and the masked maps.
snapshot() {
	local root=$1 tree=$2 p ppid t
	local -a pids tids
	pids=("$root")
	[ "$tree" = 1 ] && mapfile -t -O 1 pids < <(proc_descendants "$root")
	for p in "${pids[@]}"; do
		if ! proc_stat "$p"; then
			echo "== pid $p: gone"
			continue
		fi
		ppid=$PS_PPID
		[ "$p" = "$root" ] && ppid=-
		echo "== pid $p ppid $ppid pgid $PS_PGID sid $PS_SID $(state_class "$PS_STATE") comm $(proc_comm "$p")"
		tids=()
		for t in /proc/"$p"/task/[0-9]*; do tids+=("${t##*/}"); done
		echo "threads: $(printf '%s\n' "${tids[@]}" | sort -n | tr '\n' ' ')"
		masked_maps "$p"
	done
}

# ---------------------------------------------------------------- processes

# procs_of_test DIR: print the PIDs of the processes whose environment holds
# TEST_DIR=DIR exactly: the test's program, anything it forked, and the same
# after a restore (the environment is part of the restored memory). A test
# directory is a fresh mktemp name, so this never matches anyone else's.
procs_of_test() {
	local f pid
	[ -n "$1" ] || return 0
	for f in $(grep -lzxF -- "TEST_DIR=$1" /proc/[0-9]*/environ 2>/dev/null); do
		pid=${f#/proc/}
		pid=${pid%/environ}
		[ "$pid" = "$BASHPID" ] || [ "$pid" = $$ ] || echo "$pid"
	done
}

# kill_test_procs DIR: SIGKILL every process of the test in DIR (see
# procs_of_test), twice (a dying parent may have been forking), then wait
# until they are gone.
kill_test_procs() {
	local p pids
	pids=$(procs_of_test "$1")
	[ -n "$pids" ] || return 0
	# shellcheck disable=SC2086
	kill -KILL $pids 2>/dev/null
	pids="$pids $(procs_of_test "$1")"
	# shellcheck disable=SC2086
	kill -KILL $pids 2>/dev/null
	for p in $pids; do
		wait "$p" 2>/dev/null
		wait_gone "$p" 3
	done
	return 0
}

# Registry of what a script started, in $TRACK_FILE: "PID COMM [SIGNAL]"
# lines for processes, "DIR path" lines for test directories. kill_tracked
# ends the processes still alive whose comm still matches (with SIGNAL,
# default KILL), and every process of the registered test directories.
TRACK_FILE=${TRACK_FILE:-}
# track_pid PID [COMM [SIGNAL]]: COMM defaults to the current one.
track_pid() {
	local comm=${2:-}
	[ -n "$TRACK_FILE" ] || return 0
	[ -n "$comm" ] || comm=$(proc_comm "$1")
	printf '%s %s %s\n' "$1" "$comm" "${3:-KILL}" >>"$TRACK_FILE"
}
track_dir() {
	[ -n "$TRACK_FILE" ] || return 0
	printf 'DIR %s\n' "$1" >>"$TRACK_FILE"
}

# kill_if PID COMM [SIGNAL]: signal PID only if it exists and its comm is COMM.
kill_if() {
	[ -n "$1" ] || return 1
	[ "$(proc_comm "$1")" = "$2" ] || return 1
	kill -"${3:-KILL}" "$1" 2>/dev/null
}

kill_tracked() {
	local pid comm sig killed=""
	[ -n "$TRACK_FILE" ] && [ -f "$TRACK_FILE" ] || return 0
	while read -r pid comm sig; do
		case $pid in DIR | DONE) continue ;; esac
		kill_if "$pid" "$comm" "${sig:-KILL}" && killed+=" $pid"
	done <"$TRACK_FILE"
	while read -r pid comm sig; do
		[ "$pid" = DIR ] && kill_test_procs "$comm"
	done <"$TRACK_FILE"
	for pid in $killed; do
		wait "$pid" 2>/dev/null
		wait_gone "$pid" 3
	done
	return 0
}

# run_cmd DIR LABEL CMD...: run CMD under a timeout, stdin from /dev/null,
# output in DIR/cryo.LABEL.out and DIR/cryo.LABEL.err (also named by
# $LAST_CRYO_OUT and $LAST_CRYO_ERR); the exit status in $CRYO_RC (124 =
# timed out). It runs in the background and is waited for, so that an
# interrupt is handled at once. run_cryo DIR LABEL ARGS... runs "$CRYO ARGS...".
# The environment (CRYO_FAULT...) is passed on.
run_cmd() {
	local dir=$1 label=$2 p
	shift 2
	LAST_CRYO_ERR=$dir/cryo.$label.err
	LAST_CRYO_OUT=$dir/cryo.$label.out
	timeout -k 5 "$CRYO_TIMEOUT" "$@" </dev/null >"$LAST_CRYO_OUT" 2>"$LAST_CRYO_ERR" &
	p=$!
	track_pid "$p" timeout TERM	# timeout(1) passes TERM on to cryo
	wait "$p"
	CRYO_RC=$?
	return 0
}
run_cryo() {
	local dir=$1 label=$2
	shift 2
	run_cmd "$dir" "$label" "$CRYO" "$@"
}

# is_documented_rc RC: one of cryo's documented exit codes.
is_documented_rc() {
	case " $CRYO_EXIT_CODES " in *" $1 "*) return 0 ;; esac
	return 1
}

# close_extra_fds: close every descriptor above 2 of this shell, so that a
# program exec'd next starts with 0, 1 and 2 only (whatever the runner
# inherited, a CI pipe or a terminal's, must not end up in an image).
close_extra_fds() {
	local f fd
	for f in /proc/self/fd/*; do
		fd=${f##*/}
		[ "$fd" -gt 2 ] 2>/dev/null && eval "exec $fd>&-" 2>/dev/null
	done
	return 0
}

# start_prog DIR CMD...: start CMD in its own session with cwd DIR, TEST_DIR
# exported, stdin /dev/null, stdout+stderr appended to DIR/out, all signal
# dispositions at their defaults, no other descriptor open. setsid and env exec in place (the subshell
# is not a group leader, so setsid does not fork): $STARTED_PID is CMD's PID.
# It is our child: when it dies, bash reaps it (see reap_child).
start_prog() {
	local dir=$1
	shift
	(
		cd "$dir" || exit 127
		export TEST_DIR=$dir
		close_extra_fds
		exec setsid env --default-signal "$@"
	) </dev/null >>"$dir/out" 2>&1 &
	STARTED_PID=$!
	disown "$STARTED_PID"	# no "Killed" job notices; bash still reaps it
}

# start_func DIR FUNCTION: same, but the child runs a shell function (a
# real-program hook), which must end with `real_exec CMD...`.
real_exec() { exec setsid env --default-signal "$@"; }
start_func() {
	local dir=$1 fn=$2
	(
		cd "$dir" || exit 127
		export TEST_DIR=$dir
		close_extra_fds
		"$fn"
		exit 127	# the hook did not exec
	) </dev/null >>"$dir/out" 2>&1 &
	STARTED_PID=$!
	disown "$STARTED_PID"	# no "Killed" job notices; bash still reaps it
}

# wait_line FILE REGEX TIMEOUT PID: until a line of FILE matches the extended
# REGEX (return 0), PID dies (return 2) or TIMEOUT s pass (return 1).
_wait_line_check() {
	grep -Eq -- "$2" "$1" 2>/dev/null && return 0
	proc_alive "$3" || { grep -Eq -- "$2" "$1" 2>/dev/null && return 0; _WL_DEAD=1; return 0; }
	return 1
}
wait_line() {
	_WL_DEAD=0
	poll "$3" _wait_line_check "$1" "$2" "$4" || return 1
	[ "$_WL_DEAD" = 1 ] && return 2
	return 0
}

# tail_of FILE [N]: the last N lines of FILE, indented, or a note.
tail_of() {
	if [ -s "$1" ]; then
		tail -n "${2:-15}" "$1" | sed 's/^/    | /'
	else
		echo "    (empty)"
	fi
}

# ------------------------------------------- check lists (errors.sh, perms.sh)

# check NAME FUNCTION ARGS...: run one check; FUNCTION returns 0 (ok), 1
# (not ok, reason in $WHY) or 2 (skipped, reason in $WHY). The caller sets
# NPASS, NFAIL, NSKIP to 0 and prints their totals at the end. A suite that
# gives each check a directory (robust.sh: CHECK_DIR, end_check) has it
# ended after the check, and named if the check failed and kept it.
check() {
	local name=$1 rc
	shift
	WHY="" CHECK_DIR=""
	LAST_CRYO_ERR=""
	"$@"
	rc=$?
	if declare -F end_check >/dev/null; then
		end_check "$rc"
	fi
	case $rc in
	0)
		echo "ok - $name"
		NPASS=$((NPASS + 1))
		;;
	2)
		echo "skip - $name: $WHY"
		NSKIP=$((NSKIP + 1))
		;;
	*)
		echo "not ok - $name: ${WHY:-failed}"
		if [ -n "$LAST_CRYO_ERR" ] && [ -s "$LAST_CRYO_ERR" ]; then
			head -n 5 "$LAST_CRYO_ERR" | sed 's/^/    cryo: /'
		fi
		[ -n "$CHECK_DIR" ] && echo "    kept: $CHECK_DIR"
		NFAIL=$((NFAIL + 1))
		;;
	esac
	return 0
}
