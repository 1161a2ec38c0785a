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

.PHONY: all deps check unit e2e fuzz clean kernel lint format install uninstall dist man deb FORCE
all: deps $(BUILD)/msb $(BUILD)/initrd.cpio $(BUILD)/vmlinux

deps:
	@scripts/deps.sh

$(BUILD)/obj/%.o: %.c | deps
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

# What this msb is (src/cli/release.c): the release version, the commit, and the
# Ed25519 key `msb self update` trusts (TRUST_KEY, a PEM public key). A stamp holds
# them, so the object is rebuilt when one changes and only then.
ifndef RELEASE_VERSION
RELEASE_VERSION := $(shell scripts/version.sh)
endif
ifndef RELEASE_COMMIT
RELEASE_COMMIT  := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
endif
TRUST_KEY       ?= keys/release-ed25519.pub
# RELEASE_TESTING=1: the release obeys MSB_TEST_UPDATE_KILL (the tests' kill points).
RELEASE_TESTING ?= 0
# release_cc VERSION,OUT: compile release.c into OUT; the key's bytes come from
# scripts/keybytes.sh, which refuses anything but an Ed25519 public key.
release_cc = key=$$(scripts/keybytes.sh $(TRUST_KEY)) && \
	$(CC) $(ALL_CFLAGS) -DMSB_RELEASE_VERSION='"$(1)"' -DMSB_RELEASE_COMMIT='"$(RELEASE_COMMIT)"' \
	-DMSB_RELEASE_KEY="$$key" -DMSB_RELEASE_TESTING=$(RELEASE_TESTING) -c src/cli/release.c -o $(2)

# write_stamp FILE,TEXT: FILE holds TEXT, rewritten (so newer) only when TEXT changes.
write_stamp = @mkdir -p $(dir $(1)); echo '$(2)' | cmp -s - $(1) 2>/dev/null || echo '$(2)' > $(1)
$(BUILD)/release.stamp: FORCE
	$(call write_stamp,$@,$(RELEASE_VERSION) $(RELEASE_COMMIT) $(TRUST_KEY) $(RELEASE_TESTING))
$(BUILD)/obj/src/cli/release.o: src/cli/release.c $(BUILD)/release.stamp $(TRUST_KEY) | deps
	@mkdir -p $(dir $@)
	$(call release_cc,$(RELEASE_VERSION),$@)
FORCE:

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

# make install [PREFIX=/usr/local] [DESTDIR=]: the FHS layout. The installed msb finds
# its guest files in ../lib/msb/ relative to itself (msb_lib_file()).
PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
LIBDIR  ?= $(PREFIX)/lib/msb
DOCDIR  ?= $(PREFIX)/share/doc/msb
MANDIR  ?= $(PREFIX)/share/man
SHAREDIR ?= $(PREFIX)/share
COMPLETIONS := $(BUILD)/completions/msb.bash $(BUILD)/completions/_msb $(BUILD)/completions/msb.fish

# msb(1), from msb's own --help texts; the completion scripts, from msb completion.
$(BUILD)/msb.1: $(BUILD)/msb scripts/mkman.sh
	scripts/mkman.sh $(BUILD)/msb $@
$(BUILD)/completions/msb.bash: $(BUILD)/msb
	@mkdir -p $(dir $@)
	$(BUILD)/msb completion bash > $@
$(BUILD)/completions/_msb: $(BUILD)/msb
	@mkdir -p $(dir $@)
	$(BUILD)/msb completion zsh > $@
$(BUILD)/completions/msb.fish: $(BUILD)/msb
	@mkdir -p $(dir $@)
	$(BUILD)/msb completion fish > $@
man: $(BUILD)/msb.1

install: $(BUILD)/msb $(BUILD)/vmlinux $(BUILD)/initrd.cpio $(BUILD)/msb.1 $(COMPLETIONS)
	install -D -m 0644 $(BUILD)/vmlinux $(DESTDIR)$(LIBDIR)/vmlinux
	install -D -m 0644 $(BUILD)/initrd.cpio $(DESTDIR)$(LIBDIR)/initrd.cpio
	install -D -m 0644 README.md $(DESTDIR)$(DOCDIR)/README.md
	install -D -m 0644 -t $(DESTDIR)$(DOCDIR)/docs docs/*.md
	install -D -m 0644 $(BUILD)/msb.1 $(DESTDIR)$(MANDIR)/man1/msb.1
	install -D -m 0644 $(BUILD)/completions/msb.bash $(DESTDIR)$(SHAREDIR)/bash-completion/completions/msb
	install -D -m 0644 $(BUILD)/completions/_msb $(DESTDIR)$(SHAREDIR)/zsh/vendor-completions/_msb
	install -D -m 0644 $(BUILD)/completions/msb.fish $(DESTDIR)$(SHAREDIR)/fish/vendor_completions.d/msb.fish
	install -D -m 0755 $(BUILD)/msb $(DESTDIR)$(BINDIR)/msb
uninstall:
	rm -f $(DESTDIR)$(BINDIR)/msb $(DESTDIR)$(LIBDIR)/vmlinux $(DESTDIR)$(LIBDIR)/initrd.cpio
	rm -f $(DESTDIR)$(MANDIR)/man1/msb.1 $(DESTDIR)$(SHAREDIR)/bash-completion/completions/msb \
		$(DESTDIR)$(SHAREDIR)/zsh/vendor-completions/_msb \
		$(DESTDIR)$(SHAREDIR)/fish/vendor_completions.d/msb.fish
	rm -rf $(DESTDIR)$(DOCDIR)
	-rmdir $(DESTDIR)$(LIBDIR) 2>/dev/null

# make dist: $(DISTDIR)/msb-VERSION-linux-ARCH.tar.gz and its .sha256 (sha256sum -c
# format). Inside, one directory in the ~/.microsandbox layout: bin/msb and
# lib/{vmlinux,initrd.cpio}, which msb finds as ../lib/ relative to itself;
# scripts/setup.sh --tarball installs it. Reproducible: sorted, owner 0, the mtime of
# the last commit. Its msb is this build's, linked with DIST_VERSION and TRUST_KEY.
#
# With SIGNING_KEY (an Ed25519 private key, PEM) DISTDIR becomes an update channel:
# latest-linux-ARCH.json names the tarball, its sha256 and size, and .json.sig is its
# signature, which the release's msb and the ones before it (msb self update) check
# against TRUST_KEY. A key that does not match TRUST_KEY is refused.
DISTDIR      ?= $(BUILD)
DIST_VERSION ?= $(RELEASE_VERSION)
DIST_ARCH    ?= $(shell uname -m)
DIST_NAME    := msb-$(DIST_VERSION)-linux-$(DIST_ARCH)
DIST_TAR     := $(DISTDIR)/$(DIST_NAME).tar.gz
DIST_OBJ     := $(BUILD)/dist/$(DIST_VERSION)-$(notdir $(basename $(TRUST_KEY)))-$(RELEASE_TESTING)
DIST_MANIFEST := $(DISTDIR)/latest-linux-$(DIST_ARCH).json
dist: $(DIST_TAR)
ifneq ($(SIGNING_KEY),)
	@pub=$$(openssl pkey -in $(SIGNING_KEY) -pubout) && trust=$$(openssl pkey -pubin -in $(TRUST_KEY)) && \
		[ -n "$$pub" ] && [ "$$pub" = "$$trust" ] || \
		{ echo "make dist: SIGNING_KEY $(SIGNING_KEY) is not the private half of TRUST_KEY $(TRUST_KEY)" >&2; exit 1; }
	printf '{"name":"msb","version":"%s","commit":"%s","arch":"%s","tarball":"%s","sha256":"%s","size":%s}\n' \
		'$(DIST_VERSION)' '$(RELEASE_COMMIT)' '$(DIST_ARCH)' '$(DIST_NAME).tar.gz' \
		"$$(sha256sum < $(DIST_TAR) | cut -d' ' -f1)" "$$(stat -c %s $(DIST_TAR))" > $(DIST_MANIFEST).tmp
	openssl pkeyutl -sign -inkey $(SIGNING_KEY) -rawin -in $(DIST_MANIFEST).tmp -out $(DIST_MANIFEST).sig.tmp
	mv -f $(DIST_MANIFEST).sig.tmp $(DIST_MANIFEST).sig
	mv -f $(DIST_MANIFEST).tmp $(DIST_MANIFEST)
endif
	@echo "$(DIST_TAR)"
$(DIST_OBJ)/release.stamp: FORCE
	$(call write_stamp,$@,$(DIST_VERSION) $(RELEASE_COMMIT) $(TRUST_KEY) $(RELEASE_TESTING))
$(DIST_OBJ)/release.o: src/cli/release.c $(DIST_OBJ)/release.stamp $(TRUST_KEY) | deps
	@mkdir -p $(dir $@)
	$(call release_cc,$(DIST_VERSION),$@)
# The build's objects in the build's order, this release.o in its place: with the
# build's version and key, the same bytes as $(BUILD)/msb.
DIST_LINK := $(patsubst $(BUILD)/obj/src/cli/release.o,$(DIST_OBJ)/release.o,$(CLI_OBJ))
$(DIST_OBJ)/msb: $(DIST_LINK) $(BUILD)/libmsb.a
	$(CC) $(ALL_LDFLAGS) -o $@ $(DIST_LINK) $(BUILD)/libmsb.a $(LIBS)
$(DIST_TAR): $(DIST_OBJ)/msb $(BUILD)/vmlinux $(BUILD)/initrd.cpio README.md FORCE
	@rm -rf $(BUILD)/dist-stage && mkdir -p $(BUILD)/dist-stage $(DISTDIR)
	install -D -m 0755 $(DIST_OBJ)/msb $(BUILD)/dist-stage/$(DIST_NAME)/bin/msb
	install -D -m 0644 -t $(BUILD)/dist-stage/$(DIST_NAME)/lib $(BUILD)/vmlinux $(BUILD)/initrd.cpio
	install -D -m 0644 README.md $(BUILD)/dist-stage/$(DIST_NAME)/README.md
	tar -C $(BUILD)/dist-stage --sort=name --owner=0 --group=0 --numeric-owner \
		--mtime=@$$(git log -1 --format=%ct 2>/dev/null || date +%s) -cf - $(DIST_NAME) | \
		gzip -n -$(DIST_GZIP) > $@.tmp
	mv -f $@.tmp $@
	cd $(DISTDIR) && sha256sum $(DIST_NAME).tar.gz > $(DIST_NAME).tar.gz.sha256.tmp && \
		mv -f $(DIST_NAME).tar.gz.sha256.tmp $(DIST_NAME).tar.gz.sha256
	@rm -rf $(BUILD)/dist-stage
DIST_GZIP ?= 9

# make deb: $(DISTDIR)/msb_VERSION_ARCH.deb, the make install tree under /usr. Its
# Depends: the libraries msb links (dpkg-shlibdeps) and the programs it runs (QEMU,
# qemu-img, tar2sqfs, mkfs.ext4), so `apt-get install ./msb_*.deb` is all a Debian 12
# host needs. The version is the release's with - as + (0.1.0-gabc -> 0.1.0+gabc).
DEB_VERSION  ?= $(subst -,+,$(RELEASE_VERSION))
DEB_ARCH     ?= $(shell dpkg --print-architecture 2>/dev/null || echo amd64)
DEB_FILE     := $(DISTDIR)/msb_$(DEB_VERSION)_$(DEB_ARCH).deb
DEB_STAGE    := $(BUILD)/deb-stage
DEB_RUNTIME  := qemu-system-x86 (>= 1:7.2), qemu-utils, squashfs-tools-ng, e2fsprogs
deb: $(DEB_FILE)
	@echo "$(DEB_FILE)"
$(DEB_FILE): $(BUILD)/msb $(BUILD)/vmlinux $(BUILD)/initrd.cpio $(BUILD)/msb.1 $(COMPLETIONS) FORCE
	@rm -rf $(DEB_STAGE) && mkdir -p $(DEB_STAGE)/DEBIAN $(DEB_STAGE)/shlibs/debian $(DISTDIR)
	$(MAKE) --no-print-directory -s install DESTDIR=$(abspath $(DEB_STAGE))/root PREFIX=/usr
	install -m 0644 packaging/copyright $(DEB_STAGE)/root/usr/share/doc/msb/copyright
	gzip -n -9 $(DEB_STAGE)/root/usr/share/man/man1/msb.1
	printf 'Source: msb\n\nPackage: msb\nArchitecture: any\n' > $(DEB_STAGE)/shlibs/debian/control
	cd $(DEB_STAGE)/shlibs && dpkg-shlibdeps -O -e$(abspath $(DEB_STAGE))/root/usr/bin/msb 2>/dev/null | \
		sed -n 's/^shlibs:Depends=//p' > ../shlibs.txt
	test -s $(DEB_STAGE)/shlibs.txt || { echo "make deb: dpkg-shlibdeps found no libraries" >&2; exit 1; }
	mv $(DEB_STAGE)/root/* $(DEB_STAGE)/ && rmdir $(DEB_STAGE)/root && rm -rf $(DEB_STAGE)/shlibs
	{ echo 'Package: msb'; echo 'Version: $(DEB_VERSION)'; echo 'Architecture: $(DEB_ARCH)'; \
	  echo 'Maintainer: msb developers <msb@microsandbox.dev>'; \
	  echo "Installed-Size: $$(du -sk --exclude=DEBIAN $(DEB_STAGE) | cut -f1)"; \
	  echo "Depends: $$(cat $(DEB_STAGE)/shlibs.txt), $(DEB_RUNTIME)"; \
	  echo 'Recommends: libsecret-tools'; \
	  echo 'Section: admin'; echo 'Priority: optional'; \
	  echo 'Description: run untrusted code in hardware-isolated microVMs'; \
	  echo ' msb runs AI agents'"'"' tools, user scripts and CI jobs inside microVMs made'; \
	  echo ' from ordinary OCI images, with a docker-like command line and no daemon.'; \
	  echo ' Each sandbox is a real VM with its own Linux kernel (KVM, or TCG emulation).'; \
	} > $(DEB_STAGE)/DEBIAN/control
	rm -f $(DEB_STAGE)/shlibs.txt
	cd $(DEB_STAGE) && find usr -type f | LC_ALL=C sort | xargs md5sum > DEBIAN/md5sums
	dpkg-deb --root-owner-group -Zxz --build $(DEB_STAGE) $@.tmp > /dev/null
	mv -f $@.tmp $@
	@rm -rf $(DEB_STAGE)

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(AGENT_OBJ:.o=.d)
-include tests/tests.mk

clean:
	rm -rf build build-san
