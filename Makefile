# SPDX-License-Identifier: Apache-2.0
# msb build: `make` builds everything, `make check` runs the whole test suite.

BUILD    ?= build
CC       ?= cc
MUSL_CC  ?= musl-gcc
PKGS     := jansson libcurl libarchive sqlite3 openssl libnghttp2

WARN     := -Wall -Wextra -Wshadow -Wformat=2 -Wmissing-prototypes -Wno-format-nonliteral
HARDEN   := -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fPIE
CFLAGS   ?= -O2 -g
ifeq ($(CI),true)
WARN     += -Werror
endif
ifeq ($(SANITIZE),1)
CFLAGS   := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
LDFLAGS  += -fsanitize=address,undefined
HARDEN   := -fstack-protector-strong -fPIE
BUILD    := build-san
endif
ALL_CFLAGS  = -std=gnu11 $(WARN) $(HARDEN) $(CFLAGS) -Isrc -MMD -MP
ALL_LDFLAGS = -pie -Wl,-z,relro,-z,now $(LDFLAGS)
LIBS        = $(shell pkg-config --libs $(PKGS) 2>/dev/null || echo -ljansson -lcurl -larchive -lsqlite3 -lssl -lcrypto -lnghttp2) -lpthread

# Code shared by msb and agentd (must build with musl too).
SHARED_SRC := src/proto/proto.c src/util/buf.c src/util/conn.c src/util/fs.c src/util/text.c
LIB_SRC    := $(SHARED_SRC) \
              $(foreach d,util vm sandbox supervisor image store net,$(wildcard src/$(d)/*.c))
LIB_SRC    := $(sort $(LIB_SRC))
CLI_SRC    := $(wildcard src/cli/*.c)
AGENT_SRC  := $(wildcard src/agent/*.c) $(SHARED_SRC)

LIB_OBJ    := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
CLI_OBJ    := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
AGENT_OBJ  := $(AGENT_SRC:%.c=$(BUILD)/agent-obj/%.o)

.PHONY: all deps check unit e2e fuzz clean kernel lint format install
all: deps $(BUILD)/msb $(BUILD)/initrd.cpio $(BUILD)/vmlinux

deps:
	@scripts/deps.sh

$(BUILD)/obj/%.o: %.c | deps
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/libmsb.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/msb: $(CLI_OBJ) $(BUILD)/libmsb.a
	$(CC) $(ALL_LDFLAGS) -o $@ $(CLI_OBJ) $(BUILD)/libmsb.a $(LIBS)

# agentd: static musl binary, PID 1 of every guest.
$(BUILD)/agent-obj/%.o: %.c | deps
	@mkdir -p $(dir $@)
	$(MUSL_CC) -std=gnu11 $(WARN) -Os -g0 -fstack-protector-strong -Isrc -MMD -MP -c $< -o $@

$(BUILD)/agentd: $(AGENT_OBJ)
	$(MUSL_CC) -static -s -o $@ $^

$(BUILD)/initrd.cpio: $(BUILD)/agentd scripts/mkinitrd.sh
	scripts/mkinitrd.sh $(BUILD)/agentd $@

# The kernel build is cached outside the tree (kernel/build.sh); this only copies it.
$(BUILD)/vmlinux: kernel/msb.config kernel/build.sh | deps
	kernel/build.sh $(BUILD)
kernel: $(BUILD)/vmlinux

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(AGENT_OBJ:.o=.d)
-include tests/tests.mk

clean:
	rm -rf build build-san
