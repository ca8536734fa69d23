# fusezram - see README.md and man/fusezram.8
#
# Targets: all (default), check, check-unit, check-sanitize, check-integration,
# bench, install, uninstall, clean, deps (install Debian build/test packages).

VERSION     := 0.1.0
PREFIX      ?= /usr/local
BINDIR      ?= $(PREFIX)/bin
SBINDIR     ?= $(PREFIX)/sbin
MANDIR      ?= $(PREFIX)/share/man
DESTDIR     ?=
PKG_CONFIG  ?= pkg-config
CC          ?= cc

WARN := -Wall -Wextra -Wshadow -Wvla -Wundef -Wstrict-prototypes \
	-Wmissing-prototypes -Wpointer-arith -Wwrite-strings
ifeq ($(CI),true)
WARN += -Werror
endif

CFLAGS   ?= -O2 -g
ALL_CFLAGS = -std=gnu11 $(WARN) -D_FILE_OFFSET_BITS=64 -D_GNU_SOURCE \
	-DFUSEZRAM_VERSION='"$(VERSION)"' -pthread -I. $(CFLAGS)

COMP_CFLAGS := $(shell $(PKG_CONFIG) --cflags liblz4 libzstd 2>/dev/null)
COMP_LIBS   := $(shell $(PKG_CONFIG) --libs liblz4 libzstd 2>/dev/null)
FUSE_CFLAGS := $(shell $(PKG_CONFIG) --cflags fuse3 2>/dev/null)
FUSE_LIBS   := $(shell $(PKG_CONFIG) --libs fuse3 2>/dev/null)
URING_CFLAGS := $(shell $(PKG_CONFIG) --cflags liburing 2>/dev/null)
URING_LIBS   := $(shell $(PKG_CONFIG) --libs liburing 2>/dev/null)
CHECK_CFLAGS := $(shell $(PKG_CONFIG) --cflags check 2>/dev/null)
CHECK_LIBS   := $(shell $(PKG_CONFIG) --libs check 2>/dev/null)

CORE_SRCS := $(sort $(wildcard store/*.c) $(wildcard compressors/*.c))
UNIT_SRCS := $(sort $(wildcard tests/unit/*.c))
BENCH_SRCS := $(sort $(wildcard bench/*.c))

# Build variants: objects live in build/<variant>/.
B := build/release
SAN_FLAGS  := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
	-fno-sanitize-recover=undefined
TSAN_FLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=thread

.PHONY: all check check-unit check-sanitize check-tsan check-integration \
	bench install uninstall clean deps man-check run test layering-check stress

all: fusezram

fusezram: $(B)/fusezram.o $(B)/fz_ring.o $(CORE_SRCS:%.c=$(B)/%.o)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(FUSE_LIBS) $(URING_LIBS) $(COMP_LIBS)

$(B)/fusezram.o: fusezram.c fz_ring.h $(wildcard store/*.h compressors/*.h) | $(B)
	$(CC) $(ALL_CFLAGS) $(FUSE_CFLAGS) $(COMP_CFLAGS) -c -o $@ $<

# The FUSE transport: glue, like fusezram.c (bench/nullfs links it too).
$(B)/fz_ring.o: fz_ring.c fz_ring.h | $(B)
	$(CC) $(ALL_CFLAGS) $(FUSE_CFLAGS) $(URING_CFLAGS) -c -o $@ $<

# Core objects never see FUSE_CFLAGS: nothing under store/ or compressors/
# may include a FUSE header (enforced by the layering check below).
$(B)/%.o: %.c $(wildcard store/*.h compressors/*.h) | $(B)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(COMP_CFLAGS) -c -o $@ $<

$(B):
	@mkdir -p $(B)/store $(B)/compressors $(B)/tests/unit $(B)/bench

# Unit tests, one binary per variant, linked without libfuse.
define unit_variant
build/$(1)/check_fusezram: $(CORE_SRCS) $(UNIT_SRCS) $(wildcard store/*.h compressors/*.h tests/unit/*.h)
	@mkdir -p build/$(1)
	$$(CC) -std=gnu11 $$(WARN) -D_FILE_OFFSET_BITS=64 -D_GNU_SOURCE -pthread -I. \
		$(2) $$(COMP_CFLAGS) $$(CHECK_CFLAGS) -o $$@ $$(CORE_SRCS) $$(UNIT_SRCS) \
		$$(COMP_LIBS) $$(CHECK_LIBS) -lm $$(UNIT_WRAP)
endef
# tests/unit/tu_malloc.c counts the heap allocations of the binary's code.
UNIT_WRAP := -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc \
	-Wl,--wrap=aligned_alloc,--wrap=posix_memalign
$(eval $(call unit_variant,unit,$(CFLAGS)))
$(eval $(call unit_variant,asan,$(SAN_FLAGS)))
$(eval $(call unit_variant,tsan,$(TSAN_FLAGS)))

# No FUSE header in the core; fusezram.c reaches only store/zr_dev.h and
# store/zr_store.h of the project's headers; the unit tests link without
# libfuse.  The self-test plants a violation of each rule in a copy and
# checks that the check fails on it.
layering-check: build/unit/check_fusezram
	@bash scripts/layering-check.sh . build/unit/check_fusezram
	@bash scripts/layering-selftest.sh

check-unit: build/unit/check_fusezram layering-check
	CK_DEFAULT_TIMEOUT=120 build/unit/check_fusezram

check-sanitize: build/asan/check_fusezram
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		CK_FORK=no CK_DEFAULT_TIMEOUT=600 build/asan/check_fusezram

check-tsan: build/tsan/check_fusezram
	TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 CK_FORK=no \
		CK_DEFAULT_TIMEOUT=600 build/tsan/check_fusezram

MANPAGES := $(sort $(wildcard man/*.[1-8]))

man-check:
	@for m in $(MANPAGES); do \
		out=$$(groff -man -ww -z $$m 2>&1); \
		if [ -n "$$out" ]; then echo "$$m: $$out" >&2; exit 1; fi; \
	done; echo "man pages render cleanly: $(MANPAGES)"

# Helpers the integration tests and benchmarks run (no FUSE, no store).
build/hog: tests/integration/hog.c
	@mkdir -p build
	$(CC) -std=gnu11 $(WARN) -D_GNU_SOURCE -O2 -o $@ $<

# LD_PRELOAD library for t_populate_fail: madvise refuses to pre-fault.
build/madvise_shim.so: tests/integration/madvise_shim.c
	@mkdir -p build
	$(CC) -std=gnu11 $(WARN) -D_GNU_SOURCE -O2 -shared -fPIC -o $@ $<

# LD_PRELOAD library for t_ring_faults: liburing's submissions fail.
build/uring_shim.so: tests/integration/uring_shim.c
	@mkdir -p build
	$(CC) -std=gnu11 $(WARN) -D_GNU_SOURCE -O2 -shared -fPIC $(URING_CFLAGS) -o $@ $< -ldl

# A FUSE file system whose file fails reads or writes on demand: the
# failing backing file of t_wb_faults.
build/failfs: tests/integration/failfs.c
	@mkdir -p build
	$(CC) -std=gnu11 $(WARN) -D_FILE_OFFSET_BITS=64 -D_GNU_SOURCE -O2 \
		$(FUSE_CFLAGS) -o $@ $< $(FUSE_LIBS)

check-integration: fusezram build/hog build/madvise_shim.so build/uring_shim.so build/failfs
	bash tests/integration/run.sh

check: check-unit check-sanitize check-tsan man-check check-integration

bench: fusezram build/hog
	bash bench/run.sh

# Long swap-pressure and fault runs (the quick variants are in check).
stress: fusezram build/hog
	bash bench/stress.sh

deps:
	bash scripts/deps.sh

# The README's two commands.
MNT ?= /mnt/fusezram
run: deps
	$(MAKE) all
	bash scripts/mount-default.sh $(MNT)

test: deps
	$(MAKE) check

SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system

install: fusezram
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man5 \
		$(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)/etc/fusezram
	install -m 0755 fusezram $(DESTDIR)$(BINDIR)/fusezram
	install -m 0755 tools/fzramctl tools/fusezram-swap $(DESTDIR)$(SBINDIR)/
	sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@BINDIR@|$(BINDIR)|g' \
		tools/fusezram-swap.service >$(DESTDIR)$(SYSTEMDUNITDIR)/fusezram-swap.service
	chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/fusezram-swap.service
	[ -e $(DESTDIR)/etc/fusezram/swap.conf ] || \
		install -m 0644 tools/swap.conf.example $(DESTDIR)/etc/fusezram/swap.conf
	install -m 0644 man/fusezram.8 man/fzramctl.8 man/fusezram-swap.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 0644 man/fusezram-swap.conf.5 $(DESTDIR)$(MANDIR)/man5/

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/fusezram $(DESTDIR)$(SBINDIR)/fzramctl \
		$(DESTDIR)$(SBINDIR)/fusezram-swap \
		$(DESTDIR)$(SYSTEMDUNITDIR)/fusezram-swap.service \
		$(DESTDIR)$(MANDIR)/man8/fusezram.8 $(DESTDIR)$(MANDIR)/man8/fzramctl.8 \
		$(DESTDIR)$(MANDIR)/man8/fusezram-swap.8 \
		$(DESTDIR)$(MANDIR)/man5/fusezram-swap.conf.5
	@echo "kept /etc/fusezram/swap.conf (settings); remove it by hand if unwanted"

clean:
	rm -rf build fusezram
