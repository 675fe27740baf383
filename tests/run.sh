#!/usr/bin/env bash
#
# tests/run.sh: cryo's test suite (`make test` runs it, so does CI).
#
# What it runs:
#   - unit test binaries in $UNITBIN (default: build/unit/*), exit 0 = pass;
#   - every test program in $TESTBIN (default: build/tests/*) and every real
#     program of tests/real/*.sh, in every flavour:
#       kill        checkpoint --kill, restore, compare, SIGTERM, verdict
#       leave       checkpoint (left running: must not be traced or stopped),
#                   kill -9, restore, compare, SIGTERM, verdict
#       twice       checkpoint --kill, restore, checkpoint --kill again,
#                   restore again, compare with the original, SIGTERM, verdict
#       compressed  like kill with --compress (skipped if cryo lacks it)
#   - tests/errors.sh (error paths), each of its checks counted; so are
#     tests/robust.sh, tests/perms.sh (an unprivileged user) and tests/scenarios.sh.
#
# Test program protocol: started in its own session with cwd = a fresh
# directory (exported as TEST_DIR), stdin /dev/null, stdout+stderr appended
# to $TEST_DIR/out; prints READY once its state is built, waits for SIGTERM,
# then prints PASS or "FAIL: why" and exits. Lines starting "# " are
# comments. "Compare" means: same PID, PGID, SID, run state, thread IDs and
# /proc/PID/maps line for line, for the process and all its descendants.
#
# Usage: tests/run.sh [--quick] [--flavour NAME[,NAME]] [-j N] [--keep]
#                     [--list] [NAME-FILTER...]
# Environment: CRYO (build/cryo), TESTBIN (build/tests), UNITBIN
# (TESTBIN/../unit), CRYO_TIMEOUT (120 s per cryo command).
#
# The last line is "N passed, N failed" (", N skipped" if any); the exit
# status is 1 if anything failed.

set -u
# shellcheck source=tests/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ALL_FLAVOURS="kill leave twice compressed"
UNITBIN=$(abs_path "${UNITBIN:-$(dirname "$TESTBIN")/unit}")

usage() {
	sed -n '/^# Usage:/,/^# (TESTBIN/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
	exit "${1:-0}"
}

# ------------------------------------------------------------------ options

JOBS=1
KEEP=0
LIST=0
FLAVOURS=$ALL_FLAVOURS
FILTERS=()

parse_args() {
	local f
	while [ $# -gt 0 ]; do
		case $1 in
		--quick) FLAVOURS="kill" ;;
		--flavour | --flavor)
			[ $# -ge 2 ] || usage 64
			FLAVOURS=${2//,/ }
			shift
			;;
		--flavour=* | --flavor=*) f=${1#*=}; FLAVOURS=${f//,/ } ;;
		-j) [ $# -ge 2 ] || usage 64; JOBS=$2; shift ;;
		-j*) JOBS=${1#-j} ;;
		--keep) KEEP=1 ;;
		--list) LIST=1 ;;
		-h | --help) usage 0 ;;
		--) shift; FILTERS+=("$@"); break ;;
		-*) echo "run.sh: unknown option $1" >&2; usage 64 ;;
		*) FILTERS+=("$1") ;;
		esac
		shift
	done
	case $JOBS in '' | *[!0-9]* | 0) echo "run.sh: -j wants a positive number" >&2; exit 64 ;; esac
	for f in $FLAVOURS; do
		case " $ALL_FLAVOURS " in *" $f "*) ;; *) echo "run.sh: unknown flavour $f (have: $ALL_FLAVOURS)" >&2; exit 64 ;; esac
	done
}

# selected NAME: does NAME pass the positional filters (substring match)?
selected() {
	local f
	[ ${#FILTERS[@]} -eq 0 ] && return 0
	for f in "${FILTERS[@]}"; do
		case $1 in *"$f"*) return 0 ;; esac
	done
	return 1
}

# ------------------------------------------------------- real-program hooks
#
# A tests/real/NAME.sh file calls `real_test NAME` and defines:
#   NAME_start    runs in TEST_DIR (child of the runner); ends with
#                 `real_exec CMD...` (exec in its own session)
#   NAME_ready    true once the program has built its state (polled)
#   NAME_count    prints how far the program got (e.g. lines of its log)
#   NAME_verify   after the program was stopped with SIGTERM: checks its
#                 output; prints "FAIL: why" and returns 1 on failure
# The runner appends "LABEL COUNT" lines to $TEST_DIR/marks at: flavour,
# pre (before each checkpoint), post (after it), restored (after each
# restore), so that NAME_verify (see real_check_steps) knows where the
# checkpoints were.

REAL_TESTS=()
real_test() { REAL_TESTS+=("$1"); }

# real_check_steps LOG: the first field of the lines of LOG must go 1, 2, 3...
# with no gap, no repetition, no restart. Exception, in the leave flavour
# only: the original ran on after its checkpoint, so the restored program
# repeats once from N+1, N being the count at checkpoint (between the "pre"
# and "post" marks of the first checkpoint).
real_check_steps() {
	local log=$1 marks=$TEST_DIR/marks lo hi flavour
	flavour=$(awk '$1 == "flavour" { print $2 }' "$marks")
	lo=$(awk '$1 == "pre" { print $2; exit }' "$marks")
	hi=$(awk '$1 == "post" { print $2; exit }' "$marks")
	awk -v rewind="$([ "$flavour" = leave ] && echo 1 || echo 0)" -v lo="${lo:-0}" -v hi="${hi:-0}" '
		function fail(msg) { print "FAIL: " FILENAME " line " NR ": " msg; bad = 1; exit 1 }
		{
			if ($1 !~ /^[0-9]+$/) fail("not a step number: " $0)
			n = $1 + 0
			if (n == want) { want++; next }
			if (rewind && !rewound && n <= want - 1 && n - 1 >= lo && n - 1 <= hi) {
				rewound = 1; want = n + 1; next
			}
			fail("step " n ", expected " want (want > 1 && n < want ? " (repetition or restart)" : " (gap)"))
		}
		BEGIN { want = 1 }
		END { if (!bad && NR == 0) { print "FAIL: " FILENAME " is empty"; exit 1 } }
	' "$log"
}

real_log_lines() {
	local n=0
	[ -f "$TEST_DIR/$1" ] && n=$(wc -l <"$TEST_DIR/$1")
	echo $((n))
}

load_real_tests() {
	local f
	for f in "$TESTS_DIR"/real/*.sh; do
		[ -f "$f" ] || continue
		# shellcheck disable=SC1090
		. "$f"
	done
}

# ------------------------------------------------- one checkpoint/restore case
#
# A case runs in its own subshell; its state is in these C_ globals:
#   C_KIND prog|real  C_NAME  C_FLAV  C_DIR (TEST_DIR)  C_PID  C_COMM
#   C_CHILD  1 while C_PID is still the process we started (our child)
#   C_TREE   descendants seen before the last checkpoint
#   C_STEP   what we were doing; C_WHY why it failed; C_DIFF a diff file
#   C_RESTORED the NAME_count after the last restore (real programs)

# fail WHY...: record why the current step failed; returns 1.
fail() {
	C_WHY="$*"
	return 1
}
step() { C_STEP=$1; }

mark() {
	[ "$C_KIND" = real ] || return 0
	echo "$1 $("${C_NAME}_count")" >>"$C_DIR/marks"
}

_real_ready_check() {
	proc_alive "$C_PID" || { _RR_DEAD=1; return 0; }
	"${C_NAME}_ready"
}

case_start() {
	step "start"
	if [ "$C_KIND" = prog ]; then
		start_prog "$C_DIR" "$TESTBIN/$C_NAME"
	else
		echo "flavour $C_FLAV" >"$C_DIR/marks"
		start_func "$C_DIR" "${C_NAME}_start"
	fi
	C_PID=$STARTED_PID
	C_CHILD=1
	track_pid "$C_PID"

	step "wait for READY"
	if [ "$C_KIND" = prog ]; then
		wait_line "$C_DIR/out" '^(READY|FAIL)' "$WAIT_TIMEOUT" "$C_PID"
		case $? in
		1) fail "no READY within ${WAIT_TIMEOUT}s" || return 1 ;;
		2) fail "the program exited before READY" || return 1 ;;
		esac
		grep -q '^FAIL' "$C_DIR/out" && { fail "the program failed before READY: $(grep -m1 '^FAIL' "$C_DIR/out")"; return 1; }
	else
		_RR_DEAD=0
		poll "$WAIT_TIMEOUT" _real_ready_check || { fail "not ready within ${WAIT_TIMEOUT}s"; return 1; }
		[ "$_RR_DEAD" = 0 ] || { fail "the program exited before it was ready"; return 1; }
	fi
	C_COMM=$(proc_comm "$C_PID")
	track_pid "$C_PID" "$C_COMM"
	return 0
}

# case_checkpoint IMG MODE N: checkpoint number N, MODE kill or leave. The
# first one also takes the snapshot every restore is compared with.
case_checkpoint() {
	local img=$1 mode=$2 n=$3 p why scope tracer
	local -a args

	step "checkpoint #$n"
	# scope_pid*, scope_pgid*, scope_sid*: checkpointed with --pid, or
	# --pgid/--sid of the group or session the program leads
	scope=
	case $C_NAME in scope_pid*) scope=pid ;; scope_pgid*) scope=pgid ;; scope_sid*) scope=sid ;; esac
	C_TREE=$( { proc_descendants "$C_PID"
		    case $scope in pgid | sid) proc_members "$scope" "$C_PID" ;; esac; } |
		sort -un | grep -vx "$C_PID")
	for p in $C_TREE; do track_pid "$p"; done
	mark pre
	[ "$n" = 1 ] && snapshot "$C_PID" "$C_TREECMP" >"$C_DIR/before"
	args=(checkpoint "$C_PID" -o "$img")
	[ -n "$scope" ] && args+=("--$scope")
	[ "$mode" = kill ] && args+=(--kill)
	[ "$C_FLAV" = compressed ] && args+=(--compress)
	run_cryo "$C_DIR" "checkpoint$n" "${args[@]}"
	[ "$CRYO_RC" = 0 ] || { fail "cryo ${args[*]} exited $CRYO_RC"; return 1; }
	[ -s "$img" ] || { fail "cryo exited 0 but $img is missing or empty"; return 1; }
	mark post

	if [ "$mode" = leave ]; then
		step "checkpoint #$n left it running"
		why=$(proc_free_running "$C_PID") || { fail "$why"; return 1; }
		for p in $C_TREE; do
			# one that has exited since (a short-lived child) has no tracer to show
			tracer=$(proc_tracer "$p") || continue
			[ "$tracer" = 0 ] || { fail "descendant $p is still traced (by $tracer)"; return 1; }
		done
		step "kill -9 the original"
		# the whole tree, as it is now: orphans would hold their PIDs
		# shellcheck disable=SC2046,SC2086
		kill -KILL "$C_PID" $(proc_descendants "$C_PID") $C_TREE 2>/dev/null
	fi

	step "wait for the original to disappear (#$n)"
	if [ "$C_CHILD" = 1 ]; then
		reap_child "$C_PID" || { fail "process $C_PID still there ${GONE_TIMEOUT}s after it should have died"; return 1; }
		C_CHILD=0
	else
		wait_gone "$C_PID" || { fail "process $C_PID still there ${GONE_TIMEOUT}s after it should have died"; return 1; }
	fi
	for p in $C_TREE; do
		wait_gone "$p" || { fail "descendant $p ($(proc_comm "$p")) still there ${GONE_TIMEOUT}s after the checkpoint"; return 1; }
	done
	return 0
}

# case_restore IMG N: restore number N, then compare with the original.
case_restore() {
	local img=$1 n=$2 got
	step "restore #$n"
	run_cryo "$C_DIR" "restore$n" restore "$img" --detach
	[ "$CRYO_RC" = 0 ] || { fail "cryo restore $img --detach exited $CRYO_RC"; return 1; }
	got=$(cat "$LAST_CRYO_OUT")
	[[ $got =~ ^[0-9]+$ ]] || { fail "cryo restore --detach printed '${got:0:80}', not a PID"; return 1; }
	[ "$got" = "$C_PID" ] || { fail "restored as PID $got, the original was $C_PID"; return 1; }
	proc_alive "$C_PID" || { fail "restored process $C_PID is not running (state ${PS_STATE:-gone})"; return 1; }

	step "compare with the original (#$n)"
	snapshot "$C_PID" "$C_TREECMP" >"$C_DIR/after$n"
	if ! diff -u "$C_DIR/before" "$C_DIR/after$n" >"$C_DIR/diff$n"; then
		C_DIFF=$C_DIR/diff$n
		fail "the restored process differs from the original (PIDs, PGID/SID, state, threads or maps)"
		return 1
	fi
	mark restored
	[ "$C_KIND" = real ] && C_RESTORED=$("${C_NAME}_count")
	return 0
}

_real_progress_check() {
	proc_alive "$C_PID" || { _RP_DEAD=1; return 0; }
	[ "$("${C_NAME}_count")" -ge $((C_RESTORED + _RP_NEED)) ]
}

# case_progress NEED: a real program must make NEED steps after a restore.
case_progress() {
	_RP_DEAD=0 _RP_NEED=$1
	poll "$WAIT_TIMEOUT" _real_progress_check || { fail "fewer than $1 steps within ${WAIT_TIMEOUT}s after the restore (at $("${C_NAME}_count"), restored at $C_RESTORED)"; return 1; }
	[ "$_RP_DEAD" = 0 ] || { fail "the restored program died"; return 1; }
	return 0
}

# case_finish: SIGTERM, the verdict, and the process must go away.
case_finish() {
	local verdict p why kids
	if [ "$C_KIND" = prog ]; then
		step "SIGTERM and verdict"
		kill -TERM "$C_PID" 2>/dev/null
		wait_line "$C_DIR/out" '^(PASS|FAIL)' "$WAIT_TIMEOUT" "$C_PID"
		case $? in
		1) fail "no PASS/FAIL within ${WAIT_TIMEOUT}s of SIGTERM" || return 1 ;;
		2) fail "the restored program died without a verdict" || return 1 ;;
		esac
		verdict=$(grep -m1 -E '^(PASS|FAIL)' "$C_DIR/out")
		[ "$verdict" = PASS ] || { fail "the program says: $verdict"; return 1; }
		step "exit after the verdict"
		wait_gone "$C_PID" || { fail "still running ${GONE_TIMEOUT}s after its verdict"; return 1; }
	else
		step "progress after the restore"
		case_progress 5 || return 1
		step "stop with SIGTERM"
		kids=$(proc_descendants "$C_PID")
		kill -TERM "$C_PID" 2>/dev/null
		wait_gone "$C_PID" || { fail "still running ${GONE_TIMEOUT}s after SIGTERM"; return 1; }
		# its children (bash's sleep) are orphans now; the rest of the
		# test's processes go in case_cleanup
		for p in $kids; do kill -TERM "$p" 2>/dev/null; done
		step "verify the output"
		why=$("${C_NAME}_verify") || { fail "${why:-verifier failed}"; return 1; }
	fi
	return 0
}

# case_body: the flavour's sequence of steps.
case_body() {
	case_start || return 1
	case $C_FLAV in
	kill | compressed)
		case_checkpoint "$C_DIR/img1" kill 1 && case_restore "$C_DIR/img1" 1 || return 1
		;;
	leave)
		case_checkpoint "$C_DIR/img1" leave 1 && case_restore "$C_DIR/img1" 1 || return 1
		;;
	twice)
		case_checkpoint "$C_DIR/img1" kill 1 && case_restore "$C_DIR/img1" 1 || return 1
		# let the restored process run a little before the second round
		if [ "$C_KIND" = real ]; then
			step "progress between the two rounds"
			case_progress 2 || return 1
		else
			sleep 0.2
		fi
		case_checkpoint "$C_DIR/img2" kill 2 && case_restore "$C_DIR/img2" 2 || return 1
		;;
	esac
	case_finish
}

# case_cleanup: end whatever this case started that is still there: every
# process carrying TEST_DIR=C_DIR in its environment, whatever its PID.
case_cleanup() {
	[ "${C_CHILD:-0}" = 1 ] && kill -KILL "$C_PID" 2>/dev/null
	kill_test_procs "$C_DIR"
}

# report_failure LABEL: the compact diagnosis of a failed case.
report_failure() {
	local d
	echo "not ok - $1: $C_STEP: $C_WHY"
	if [ -n "${LAST_CRYO_ERR:-}" ] && [ -s "$LAST_CRYO_ERR" ]; then
		echo "  cryo stderr (${LAST_CRYO_ERR##*/}):"
		tail_of "$LAST_CRYO_ERR" 20
	fi
	if [ -n "${C_DIFF:-}" ] && [ -s "$C_DIFF" ]; then
		echo "  differences (- original, + restored), ${C_DIFF##*/}:"
		grep -E '^[-+@]' "$C_DIFF" | grep -vE '^(\+\+\+|---) ' | head -n 40 | sed 's/^/    | /'
	fi
	echo "  program output (out), last lines:"
	tail_of "$C_DIR/out" 15
	if [ -n "${C_PID:-}" ] && d=$(dmesg 2>/dev/null | grep -E "\[$C_PID\]|pid $C_PID\b" | tail -n 3) && [ -n "$d" ]; then
		echo "  kernel log:"
		printf '%s\n' "$d" | sed 's/^/    | /'
	fi
	echo "  kept: $C_DIR"
}

# run_cr_case KIND NAME FLAVOUR RESFILE: one checkpoint/restore case.
run_cr_case() {
	local label t0 rc
	C_KIND=$1 C_NAME=$2 C_FLAV=$3
	C_PID="" C_COMM="" C_CHILD=0 C_TREE="" C_STEP="" C_WHY="" C_DIFF="" C_RESTORED=0
	C_TREECMP=1
	[ "$C_KIND" = real ] && C_TREECMP=0	# real programs fork short-lived helpers
	LAST_CRYO_ERR=""
	label="$C_NAME [$C_FLAV]"
	[ "$C_KIND" = real ] && label="real/$label"

	C_DIR=$(mktemp -d "${TMPDIR:-/tmp}/cryo-test.$C_NAME.$C_FLAV.XXXXXX") || { echo "not ok - $label: mktemp failed"; echo "0 1 0" >"$4"; return; }
	TEST_DIR=$C_DIR	# for the hooks; not exported: only the program has it
	track_dir "$C_DIR"
	now_ms
	t0=$NOW_MS
	case_body
	rc=$?
	case_cleanup
	echo "DONE $C_DIR" >>"$TRACK_FILE"
	now_ms
	if [ $rc = 0 ]; then
		printf 'ok - %s %d.%03ds\n' "$label" $(((NOW_MS - t0) / 1000)) $(((NOW_MS - t0) % 1000))
		[ "$KEEP" = 1 ] && echo "  kept: $C_DIR" || rm -rf "$C_DIR"
		echo "1 0 0" >"$4"
	else
		report_failure "$label"
		echo "0 1 0" >"$4"
	fi
}

# ------------------------------------------------------ unit tests, errors.sh

run_unit_case() {
	local name=$1 res=$2
	CRYO_TIMEOUT=300 run_cmd "$RUN_DIR" "unit.$name" "$UNITBIN/$name"
	if [ "$CRYO_RC" = 0 ]; then
		echo "ok - unit/$name"
		echo "1 0 0" >"$res"
	else
		echo "not ok - unit/$name: exited $CRYO_RC$([ "$CRYO_RC" = 124 ] && echo ' (timed out)')"
		echo "  stdout, last lines:"
		tail_of "$LAST_CRYO_OUT" 20
		echo "  stderr, last lines:"
		tail_of "$LAST_CRYO_ERR" 20
		echo "0 1 0" >"$res"
	fi
}

# run_script_suite NAME: run tests/NAME.sh, its ok/not ok lines shown
# indented as they come; it ends with "N passed, N failed[, N skipped]",
# left in SUITE_COUNTS as "P F S" (a suite that did not end so counts one
# failure).
run_script_suite() {
	local name=$1 log ep last
	log=$RUN_DIR/$name.log
	: >"$log"
	echo "# $name.sh"
	bash "$TESTS_DIR/$name.sh" >"$log" 2>&1 &
	ep=$!
	track_pid "$ep" bash TERM	# on interrupt, TERM: it cleans up after itself
	tail -n +1 -f --pid="$ep" "$log" | sed -u 's/^/  /'
	wait "$ep"
	last=$(tail -n 1 "$log")
	if [[ $last =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed(,\ ([0-9]+)\ skipped)?$ ]]; then
		SUITE_COUNTS="${BASH_REMATCH[1]} ${BASH_REMATCH[2]} ${BASH_REMATCH[4]:-0}"
	else
		echo "not ok - $name.sh: did not end with its totals"
		SUITE_COUNTS="0 1 0"
	fi
}

# The shell-script suites (error paths, robustness, permissions, scenarios),
# their counts added into the totals.
run_errors_case() {
	local res=$1 name p=0 f=0 s=0 dp df ds
	for name in errors robust perms scenarios; do
		run_script_suite "$name"
		read -r dp df ds <<<"$SUITE_COUNTS"
		p=$((p + dp)) f=$((f + df)) s=$((s + ds))
	done
	echo "$p $f $s" >"$res"
}

# ------------------------------------------------------------------ driver

NPASS=0 NFAIL=0 NSKIP=0
RUN_DIR=""
CASE_PIDS=()

# cleanup: on exit or interrupt, end every process still there that we
# started (by PID, see kill_tracked), remove the directories of cases that
# did not finish (finished ones are removed or reported by the case), and
# the run's own directory.
cleanup() {
	local tag dir
	trap - EXIT INT TERM
	disown -a 2>/dev/null	# no job notices for what we kill now
	kill_tracked
	if [ -n "$RUN_DIR" ] && [ -f "$TRACK_FILE" ]; then
		while read -r tag dir; do
			[ "$tag" = DIR ] || continue
			grep -qxF "DONE $dir" "$TRACK_FILE" || rm -rf "$dir"
		done <"$TRACK_FILE"
	fi
	[ -n "$RUN_DIR" ] && rm -rf "$RUN_DIR"
}

# add_result RESFILE: add "pass fail skip" counts to the totals.
add_result() {
	local p=0 f=1 s=0
	[ -s "$1" ] && read -r p f s <"$1"
	NPASS=$((NPASS + p)) NFAIL=$((NFAIL + f)) NSKIP=$((NSKIP + s))
}

# Cases are strings "KIND NAME FLAVOUR" (FLAVOUR "-" for unit and errors).
CASES=()

build_case_list() {
	local f name flav n=0 nskip=0
	if [ -d "$UNITBIN" ]; then
		for f in "$UNITBIN"/*; do
			[ -f "$f" ] && [ -x "$f" ] || continue
			name=${f##*/}
			selected "unit/$name" && CASES+=("unit $name -")
		done
	fi
	local -a progs=()
	if [ -d "$TESTBIN" ]; then
		for f in "$TESTBIN"/*; do
			[ -f "$f" ] && [ -x "$f" ] || continue
			name=${f##*/}
			selected "$name" && progs+=("prog $name")
		done
	fi
	for name in "${REAL_TESTS[@]}"; do
		selected "real/$name" && progs+=("real $name")
	done
	for f in "${progs[@]}"; do
		for flav in $FLAVOURS; do
			if [ "$flav" = compressed ] && [ "$HAVE_COMPRESS" = 0 ]; then
				nskip=$((nskip + 1))
				continue
			fi
			CASES+=("$f $flav")
			n=$((n + 1))
		done
	done
	selected errors && CASES+=("errors errors -")
	COMPRESS_SKIPPED=$nskip
}

# run_case INDEX: run CASES[INDEX] in a background subshell (so an interrupt
# is handled at once); its counts go to $RUN_DIR/res.INDEX, its output to
# stdout (serial) or $RUN_DIR/out.INDEX (parallel, printed when it ends).
run_case() {
	local i=$1 kind name flav res=$RUN_DIR/res.$1
	read -r kind name flav <<<"${CASES[$i]}"
	(
		trap - EXIT INT TERM
		case $kind in
		unit) run_unit_case "$name" "$res" ;;
		errors) run_errors_case "$res" ;;
		*) run_cr_case "$kind" "$name" "$flav" "$res" ;;
		esac
	) &
	CASE_PIDS[$i]=$!
	track_pid "$!"
}

run_serial() {
	local i
	for i in "${!CASES[@]}"; do
		run_case "$i"
		wait "${CASE_PIDS[$i]}"
		add_result "$RUN_DIR/res.$i"
	done
}

run_parallel() {
	local i running
	local -a pending=()
	# errors.sh fiddles with ns_last_pid and counts processes: run it alone,
	# after the rest.
	local errors_i=""
	for i in "${!CASES[@]}"; do
		if [ "${CASES[$i]%% *}" = errors ]; then errors_i=$i; continue; fi
		while :; do
			running=$(jobs -rp | wc -l)
			[ "$running" -lt "$JOBS" ] && break
			wait -n
			flush_parallel pending
		done
		run_case "$i" >"$RUN_DIR/out.$i" 2>&1
		pending+=("$i")
	done
	while [ ${#pending[@]} -gt 0 ]; do
		wait -n
		flush_parallel pending
	done
	if [ -n "$errors_i" ]; then
		run_case "$errors_i"
		wait "${CASE_PIDS[$errors_i]}"
		add_result "$RUN_DIR/res.$errors_i"
	fi
}

# flush_parallel ARRAYNAME: print and count the finished cases of the array.
flush_parallel() {
	local -n _pend=$1
	local -a still=()
	local i
	for i in "${_pend[@]}"; do
		if proc_exists "${CASE_PIDS[$i]}" && [ ! -e "$RUN_DIR/res.$i" ]; then
			still+=("$i")
			continue
		fi
		wait "${CASE_PIDS[$i]}" 2>/dev/null
		cat "$RUN_DIR/out.$i"
		add_result "$RUN_DIR/res.$i"
	done
	_pend=("${still[@]}")
}

main() {
	local c
	parse_args "$@"
	load_real_tests

	HAVE_COMPRESS=0
	[ -x "$CRYO" ] && "$CRYO" checkpoint --help 2>&1 | grep -q -- --compress && HAVE_COMPRESS=1
	build_case_list
	if [ "$LIST" = 1 ]; then
		for c in "${CASES[@]}"; do echo "$c"; done
		exit 0
	fi
	if [ ! -x "$CRYO" ]; then
		echo "run.sh: $CRYO is missing or not executable (run make, or set CRYO)" >&2
		echo "0 passed, 1 failed"
		exit 1
	fi

	RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/cryo-run.XXXXXX") || exit 1
	TRACK_FILE=$RUN_DIR/pids
	: >"$TRACK_FILE"
	trap cleanup EXIT
	trap 'echo "run.sh: interrupted"; exit 130' INT TERM

	echo "# cryo $CRYO, tests $TESTBIN, flavours: $FLAVOURS, ${#CASES[@]} cases, -j $JOBS"
	[ -d "$TESTBIN" ] || echo "# note: $TESTBIN does not exist: no test programs"
	if [ "$COMPRESS_SKIPPED" -gt 0 ]; then
		echo "skip - compressed flavour of $COMPRESS_SKIPPED tests: $CRYO checkpoint --help has no --compress"
		NSKIP=$((NSKIP + COMPRESS_SKIPPED))
	fi

	if [ "$JOBS" = 1 ]; then run_serial; else run_parallel; fi

	if [ "$NSKIP" -gt 0 ]; then
		echo "$NPASS passed, $NFAIL failed, $NSKIP skipped"
	else
		echo "$NPASS passed, $NFAIL failed"
	fi
	[ "$NFAIL" = 0 ]
}

main "$@"
