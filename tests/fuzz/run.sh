#!/bin/bash
# Build the libFuzzer targets, seed them with small real images, and fuzz
# each for a bounded time. Fails on any crash, hang, leak or sanitizer report.
#   tests/fuzz/run.sh [SECONDS_PER_TARGET]        (default 100)
#   FUZZ_TARGETS="image validate inspect"         which targets (default all)
#   FUZZ_FLAGS=-use_value_profile=1               more libFuzzer options
#
# Targets (tests/fuzz/fuzz_*.c): image (the image reader), validate (restore
# phase 10, the validator), inspect (cryo inspect, text and JSON). Seeds:
# tests/fuzz/tiny.c (a libc-free process tree: a few pages) checkpointed
# plain, lz4 and zstd, and the test programs threads, shmem and procfds
# (zstd), each in both input modes (fuzz_common.h); the regression inputs of
# tests/fuzz/regress/ run first, one by one.
# Prints, per target, the number of inputs executed ("executed N"), and a
# total.
set -eu
cd "$(dirname "$0")/../.."
SECONDS_TO_RUN=${1:-100}
TARGETS=${FUZZ_TARGETS:-"image validate inspect"}
FUZZ_FLAGS=${FUZZ_FLAGS:-}	# more libFuzzer options, e.g. -use_value_profile=1
OUT=build/fuzz
CFLAGS="-std=gnu11 -g -O1 -D_GNU_SOURCE -Iinclude -Isrc -fno-omit-frame-pointer"
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
mkdir -p "$OUT/obj"
[ -f build/restorer.bin ] || { echo "fuzz: build cryo first (make)"; exit 1; }

# libcryo without the checkpoint side, instrumented for coverage
objs=()
for src in src/util/*.c src/image/*.c src/kernel/*.c src/restore/*.c; do
	obj=$OUT/obj/$(echo "${src%.c}" | tr / _).o
	if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || [ -n "$(find src include -name '*.h' -newer "$obj")" ]; then
		clang $CFLAGS $SAN -fsanitize=fuzzer-no-link -c "$src" -o "$obj"
	fi
	objs+=("$obj")
done
clang -c -DRESTORER_BIN='"build/restorer.bin"' src/restore/restorer-blob.S -o "$OUT/obj/blob.o"
objs+=("$OUT/obj/blob.o")
for t in $TARGETS; do
	clang $CFLAGS $SAN -fsanitize=fuzzer "tests/fuzz/fuzz_$t.c" "${objs[@]}" \
		-lzstd -llz4 -lpthread -o "$OUT/fuzz_$t"
done

work=$(mktemp -d /tmp/cryo-fuzz.XXXXXX)
tiny_pid=""
cleanup() {
	# the seed program, if a checkpoint failed to kill it (by PID, its comm checked)
	if [ -n "$tiny_pid" ] && [ "$(cat "/proc/$tiny_pid/comm" 2>/dev/null)" = tiny ]; then
		kill -9 "$tiny_pid"
	fi
	rm -rf "$work"
}
trap cleanup EXIT
seeds=$work/seeds
mkdir -p "$seeds" "$work/run"
gcc -static -nostdlib -O1 -fno-stack-protector -mgeneral-regs-only -fcf-protection=none \
	-Wall -Wextra -Werror tests/fuzz/tiny.c -o "$work/tiny"
# not a group leader (no job control here): setsid execs in place, $! is the program
(cd "$work/run" && exec setsid "$work/tiny" >out 2>&1 </dev/null 3>&- 251>&- 255>&-) &
tiny_pid=$!
disown "$tiny_pid"	# no job notice when --kill ends it
for _ in $(seq 100); do grep -qs READY "$work/run/out" && break; sleep 0.1; done
build/cryo checkpoint "$tiny_pid" -o "$work/plain.cryo" >/dev/null
build/cryo checkpoint "$tiny_pid" -o "$work/lz4.cryo" --compress=lz4 >/dev/null
build/cryo checkpoint "$tiny_pid" -o "$work/zstd.cryo" --compress=zstd --kill >/dev/null
tiny_pid=""
for img in plain lz4 zstd; do
	for mode in 0 1; do
		{ printf "\\x0$mode"; cat "$work/$img.cryo"; } >"$seeds/tiny-$img-$mode"
	done
done
# richer state for the validator: threads, shared memory, /proc and pidfd
# descriptors (test programs, zstd: ~50-60 KB each); skipped if one fails
for prog in threads shmem procfds; do
	[ -x "build/tests/$prog" ] || continue
	mkdir -p "$work/$prog"
	(cd "$work/$prog" && TEST_DIR=$work/$prog exec setsid "$OLDPWD/build/tests/$prog" \
		>out 2>&1 </dev/null 3>&- 251>&- 255>&-) &
	pid=$!
	disown "$pid"
	for _ in $(seq 100); do grep -qs READY "$work/$prog/out" && break; sleep 0.1; done
	if ! build/cryo checkpoint "$pid" -o "$work/$prog.cryo" --compress=zstd:19 --kill >/dev/null; then
		[ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$prog" ] && kill -9 "$pid"
		continue
	fi
	for mode in 0 1; do
		{ printf "\\x0$mode"; cat "$work/$prog.cryo"; } >"$seeds/$prog-$mode"
	done
done
max_len=$(( $(stat -c %s "$seeds"/* | sort -n | tail -n 1) + 4096 ))

total=0
status=0
for t in $TARGETS; do
	corpus=$work/corpus-$t
	mkdir -p "$corpus"
	cp "$seeds"/* "$corpus/"
	# every regression input alone first: a fixed bug stays fixed
	if ls tests/fuzz/regress/* >/dev/null 2>&1; then
		if ! "$OUT/fuzz_$t" -runs=1 tests/fuzz/regress/* >"$work/regress-$t.log" 2>&1; then
			echo "fuzz $t: a regression input fails again:"
			grep -E "ERROR|SUMMARY|Running" "$work/regress-$t.log" | tail -n 5
			status=1
			continue
		fi
	fi
	log=$work/fuzz-$t.log
	(cd "$work" && "$OLDPWD/$OUT/fuzz_$t" -max_len="$max_len" -max_total_time="$SECONDS_TO_RUN" \
		-timeout=10 -rss_limit_mb=2048 -print_final_stats=1 $FUZZ_FLAGS \
		-artifact_prefix="$work/$t-" "$corpus") >"$log" 2>&1 || true
	n=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	echo "fuzz $t: executed ${n:-0} inputs in ${SECONDS_TO_RUN}s, corpus $(ls "$corpus" | wc -l)"
	total=$((total + ${n:-0}))
	if ls "$work/$t-"* >/dev/null 2>&1 || grep -qE "^==[0-9]+==ERROR|runtime error|SUMMARY:" "$log"; then
		echo "fuzz $t: found a problem:"
		grep -E "ERROR|runtime error|SUMMARY|#[0-9]+ .* in " "$log" | head -n 20
		mkdir -p "$OUT/findings"
		cp "$work/$t-"* "$OUT/findings/" 2>/dev/null || true
		echo "fuzz $t: inputs kept in $OUT/findings/"
		status=1
	fi
done
echo "fuzz: executed $total inputs in total"
[ "$status" = 0 ] && echo "fuzz: no crash, hang, leak or sanitizer report"
exit "$status"
