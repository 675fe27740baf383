#!/bin/bash
# Build the libFuzzer target for the image reader and cryo inspect, seed it
# with real images made by checkpointing test programs, and fuzz for a
# bounded time. Fails on any crash, hang or sanitizer report.
#   tests/fuzz/run.sh [SECONDS]        (default 60)
set -eu
cd "$(dirname "$0")/../.."
SECONDS_TO_RUN=${1:-60}
OUT=build/fuzz
mkdir -p "$OUT"
clang -std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Iinclude -Isrc \
	tests/fuzz/fuzz_image.c src/image/image.c src/image/crc32c.c src/image/strtab.c \
	src/image/inspect.c src/util/util.c -o "$OUT/fuzz_image"

corpus=$(mktemp -d /tmp/cryo-fuzz.XXXXXX)
trap 'rm -rf "$corpus"' EXIT
# seeds: small real images (a single process, and a tree), in both modes
for prog in static_counter_static tree; do
	[ -x "build/tests/$prog" ] || continue
	# not a group leader (no job control here): setsid execs in place, $! is the program
	(cd "$corpus" && exec setsid "$OLDPWD/build/tests/$prog" >out 2>&1 </dev/null 3>&- 251>&- 255>&-) &
	pid=$!
	for _ in $(seq 50); do grep -qs READY "$corpus/out" && break; sleep 0.1; done
	build/cryo checkpoint "$pid" -o "$corpus/$prog.cryo" --kill >/dev/null 2>&1 || kill -9 "$pid"
	wait "$pid" 2>/dev/null || true
	rm -f "$corpus/out" "$corpus/shared.txt"
	[ -f "$corpus/$prog.cryo" ] || continue
	for mode in 0 1; do
		{ printf "\\x0$mode"; cat "$corpus/$prog.cryo"; } >"$corpus/seed-$prog-$mode"
	done
	rm -f "$corpus/$prog.cryo"
done
echo "fuzzing the image reader for ${SECONDS_TO_RUN}s with $(ls "$corpus" | wc -l) seeds"
"$OUT/fuzz_image" -max_len=262144 -max_total_time="$SECONDS_TO_RUN" -timeout=10 \
	-print_final_stats=1 "$corpus" 2>&1 | grep -E "stat::number_of_executed_units|ERROR|SUMMARY|crash-|Done" || true
# libFuzzer writes crash-*/timeout-*/leak-* files on findings
if ls crash-* timeout-* leak-* oom-* >/dev/null 2>&1; then
	echo "fuzzing found a problem: $(ls crash-* timeout-* leak-* oom-* 2>/dev/null)"
	exit 1
fi
echo "fuzz: no crash, hang or sanitizer report"
