# SPDX-License-Identifier: Apache-2.0
# Test targets, included by the top-level Makefile.
#   make check        unit tests + fuzz corpus replay + end-to-end tests (boot real VMs)
#   make unit         cmocka unit tests only
#   make fuzz         build libFuzzer targets with clang (build-fuzz/) and run each briefly

UNIT_SRC   := $(wildcard tests/unit/test_*.c)
UNIT_BIN   := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
# Agent-side pure code is unit tested on the host too.
UNIT_EXTRA := src/agent/user.c
UNIT_EXTRA_OBJ := $(UNIT_EXTRA:%.c=$(BUILD)/obj/%.o)

FUZZ_SRC   := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_NAMES := $(FUZZ_SRC:tests/fuzz/fuzz_%.c=%)

.SECONDARY: $(UNIT_EXTRA_OBJ)

$(BUILD)/tests/test_%: tests/unit/test_%.c $(BUILD)/libmsb.a $(UNIT_EXTRA_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Wno-missing-prototypes $(ALL_LDFLAGS) -o $@ $< $(UNIT_EXTRA_OBJ) $(BUILD)/libmsb.a $(LIBS) -lcmocka

# Each fuzz target also links against a replay driver, so `make check` runs the
# corpus through it with gcc and the sanitizers of the current build.
$(BUILD)/tests/replay_%: tests/fuzz/fuzz_%.c tests/fuzz/replay.c $(BUILD)/libmsb.a $(UNIT_EXTRA_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Wno-missing-prototypes $(ALL_LDFLAGS) -o $@ $< tests/fuzz/replay.c $(UNIT_EXTRA_OBJ) $(BUILD)/libmsb.a $(LIBS)

# A hostile agentd for the e2e tests: the same sources with -DMSB_AGENT_HOSTILE,
# in its own initramfs (MSB_LIB_DIR=$(BUILD)/tests/hostile). Never shipped.
HOSTILE_DIR := $(BUILD)/tests/hostile
HOSTILE_OBJ := $(AGENT_SRC:%.c=$(BUILD)/hostile-obj/%.o)
$(BUILD)/hostile-obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(MUSL_CC) -std=gnu11 $(WARN) -Os -g0 -DMSB_AGENT_HOSTILE -Isrc -MMD -MP -c $< -o $@
$(HOSTILE_DIR)/agentd: $(HOSTILE_OBJ)
	@mkdir -p $(dir $@)
	$(MUSL_CC) -static -s -o $@ $^
$(HOSTILE_DIR)/initrd.cpio: $(HOSTILE_DIR)/agentd scripts/mkinitrd.sh
	scripts/mkinitrd.sh $< $@
$(HOSTILE_DIR)/vmlinux: $(BUILD)/vmlinux
	@mkdir -p $(dir $@)
	ln -sf ../../vmlinux $@
hostile: $(HOSTILE_DIR)/initrd.cpio $(HOSTILE_DIR)/vmlinux
-include $(HOSTILE_OBJ:.o=.d)

.PHONY: unit fuzz-replay e2e check lint hostile
unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

fuzz-replay: $(FUZZ_NAMES:%=$(BUILD)/tests/replay_%)
	@set -e; for n in $(FUZZ_NAMES); do \
		echo "== replay $$n corpus"; $(BUILD)/tests/replay_$$n tests/fuzz/corpus/$$n; done

# make e2e [E2E="network run"] [E2E_ONLY=REGEX] [LOAD=N]
e2e: all hostile
	@BUILD=$(CURDIR)/$(BUILD) E2E_LOAD=$(LOAD) E2E_ONLY='$(E2E_ONLY)' tests/e2e/run.sh $(E2E)

# Static checks: formatting, clang-tidy (.clang-tidy) and cppcheck.
# cppcheck does not understand __attribute__((cleanup)), so its leak checks are
# off; LeakSanitizer covers leaks at run time in `make SANITIZE=1 check`.
LINT_SRC := $(shell find src tests/unit tests/fuzz -name '*.[ch]' 2>/dev/null)
lint:
	@clang-format --dry-run -Werror $(LINT_SRC)
	@printf '%s\n' $(filter %.c,$(filter src/%,$(LINT_SRC))) | \
		xargs -P $$(nproc) -n 1 sh -c 'clang-tidy -quiet "$$@" -- -Isrc -std=gnu11 -D_GNU_SOURCE 2>/dev/null' tidy
	@cppcheck -q --enable=warning,portability,performance --std=c11 --inline-suppr -Isrc \
		-D__GNUC__ --suppress=missingIncludeSystem --suppress=memleak --suppress=resourceLeak \
		--error-exitcode=1 src
	@echo "lint: clean"

# The VM suites run alone: clang-tidy beside them on two cores only makes their timings noisy.
check: deps-test
	@$(MAKE) --no-print-directory all lint unit fuzz-replay
	@$(MAKE) --no-print-directory e2e

.PHONY: deps-test
deps-test:
	@scripts/deps.sh --test

# Coverage-guided fuzzing: clang + libFuzzer + ASan/UBSan, outside the normal build.
FUZZ_CC      ?= clang
FUZZ_TIME    ?= 60
# sandbox/ and vm/ spawn and boot; only their pure parsers are fuzzed.
FUZZ_LIB_SRC := $(filter-out src/sandbox/% src/supervisor/% src/vm/%,$(LIB_SRC)) src/sandbox/cp.c src/sandbox/diskimg.c \
                $(UNIT_EXTRA)
fuzz: deps-test
	@mkdir -p build-fuzz
	@set -e; for n in $(FUZZ_NAMES); do \
		$(FUZZ_CC) -std=gnu11 -g -O1 -Isrc -fsanitize=fuzzer,address,undefined \
			-o build-fuzz/fuzz_$$n tests/fuzz/fuzz_$$n.c $(FUZZ_LIB_SRC) $(LIBS); \
		mkdir -p build-fuzz/corpus-$$n; \
		echo "== fuzz $$n for $(FUZZ_TIME)s"; \
		build-fuzz/fuzz_$$n -max_total_time=$(FUZZ_TIME) -max_len=65536 \
			build-fuzz/corpus-$$n tests/fuzz/corpus/$$n; \
	done
