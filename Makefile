# cryo build. `make` builds build/cryo and build/libcryo.a; `make test` runs
# the whole suite; `make demo` runs the checkpoint -> kill -> restore demo.
# SAN=1 builds cryo with ASan/UBSan into build-san/ (the freestanding
# restorer is always built without sanitizers: it runs with no libc).

CC      ?= gcc
BUILD   ?= build
CFLAGS_COMMON := -std=gnu11 -g -O2 -Wall -Wextra -Werror -Iinclude -Isrc -D_GNU_SOURCE
ifeq ($(SAN),1)
BUILD   := build-san
CFLAGS_COMMON += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS_SAN := -fsanitize=address,undefined
endif
CFLAGS  := $(CFLAGS_COMMON) $(EXTRA_CFLAGS)
LDLIBS  := -lzstd -llz4 -lpthread

LIB_SRCS := $(wildcard src/util/*.c src/image/*.c src/kernel/*.c src/dump/*.c src/restore/*.c)
CLI_SRCS := $(wildcard src/cli/*.c)
RESTORER_SRCS := $(wildcard src/restorer/*.c)
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o) $(BUILD)/src/restore/restorer-blob.o
CLI_OBJS := $(CLI_SRCS:%.c=$(BUILD)/%.o)

# The restorer runs after the process image it came from is unmapped: no
# libc, no stack protector, position independent, one flat blob.
RESTORER_CFLAGS := -std=gnu11 -O2 -g -Wall -Wextra -Werror -Isrc -ffreestanding -fno-builtin \
	-fPIE -fno-stack-protector -fno-asynchronous-unwind-tables -fno-unwind-tables \
	-fcf-protection=none -fno-jump-tables -nostdlib -fvisibility=hidden -mgeneral-regs-only

TEST_SRCS := $(wildcard tests/progs/*.c)
TEST_BINS := $(TEST_SRCS:tests/progs/%.c=$(BUILD)/tests/%)
UNIT_SRCS := $(wildcard tests/unit/*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/unit/%)

.PHONY: all deps test test-san fuzz demo bench clean check-restorer
all: $(BUILD)/cryo $(BUILD)/libcryo.a tests

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/restorer/%.o: src/restorer/%.c
	@mkdir -p $(dir $@)
	$(CC) $(RESTORER_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/restorer.elf: $(RESTORER_SRCS:src/restorer/%.c=$(BUILD)/restorer/%.o) src/restorer/restorer.lds
	$(LD) -nostdlib -static -T src/restorer/restorer.lds -o $@ $(filter %.o,$^)
	@# The blob is copied anywhere and run in place: it must need no relocation.
	@if readelf -r $@ | grep -q 'R_X86_64'; then echo "restorer needs relocations" >&2; exit 1; fi

$(BUILD)/restorer.bin: $(BUILD)/restorer.elf
	objcopy -O binary $< $@

$(BUILD)/src/restore/restorer-blob.o: src/restore/restorer-blob.S $(BUILD)/restorer.bin
	@mkdir -p $(dir $@)
	$(CC) -c -DRESTORER_BIN='"$(BUILD)/restorer.bin"' $< -o $@

$(BUILD)/libcryo.a: $(LIB_OBJS)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/cryo: $(CLI_OBJS) $(BUILD)/libcryo.a
	$(CC) $(LDFLAGS_SAN) -o $@ $^ $(LDLIBS)

# Test programs are built without sanitizers: they are the targets.
tests: $(TEST_BINS) $(UNIT_BINS)
$(BUILD)/tests/%: tests/progs/%.c tests/progs/testlib.h
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O1 -g -Wall -Wextra -Werror -D_GNU_SOURCE -mavx2 \
		$(if $(findstring static,$*),-static,) -o $@ $< -lpthread -lm
$(BUILD)/unit/%: tests/unit/%.c $(BUILD)/libcryo.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS_SAN) -o $@ $< $(BUILD)/libcryo.a $(LDLIBS)

deps:
	@scripts/install-deps.sh

# The whole suite, then the kill flavour again with cryo built with
# ASan/UBSan (its test programs are the same unsanitized targets).
test: deps all
	tests/run.sh
	$(MAKE) test-san
	tests/fuzz/run.sh 100

# The kill flavour of everything, and the compressed one of the programs
# that use restore's decompression threads (src/restore/unpack.c).
test-san: deps
	$(MAKE) SAN=1 all
	CRYO=build-san/cryo TESTBIN=build-san/tests tests/run.sh --quick
	CRYO=build-san/cryo TESTBIN=build-san/tests tests/run.sh --flavour compressed \
		mem_big mem_precopy threads_top_tids

# libFuzzer on the image reader, the restore validator (phase 10) and cryo
# inspect, seeded with small real images; FUZZ_SECONDS per target.
fuzz: deps all
	tests/fuzz/run.sh $(or $(FUZZ_SECONDS),300)

demo: deps all
	demo/demo.sh

bench: deps all
	bench/run.sh

clean:
	rm -rf build build-san

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
