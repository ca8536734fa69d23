#!/bin/bash
# layering-check.sh [ROOT [UNIT_BINARY]] - the layering the build relies on
# (STYLE.md, "Layout"); exits 1, naming each violation, if it is broken:
#
#  1. nothing under store/ or compressors/ includes a FUSE header;
#  2. of the project's headers, fusezram.c reaches (directly, or through
#     the headers it reaches) only the public headers of the device and of
#     the store: store/zr_dev.h, store/zr_store.h, and the transport's
#     (glue itself): fz_ring.h - no allocator header, no private (_i.h)
#     header, nothing of compressors/;
#  3. the unit-test binary (or object), if given, has no undefined fuse_
#     symbol: it links without libfuse.
#
# ROOT defaults to the current directory.  scripts/layering-selftest.sh
# plants a violation of each rule in a copy and checks that this fails.
set -u

root=${1:-.}
bin=${2:-}
allowed=(store/zr_dev.h store/zr_store.h fz_ring.h)
inc_re='^[[:space:]]*#[[:space:]]*include[[:space:]]*'
fail=0

bad() { echo "layering: $*" >&2; fail=1; }

# 1. No FUSE header in the core.
for f in $(grep -rlE "${inc_re}[<\"](fuse|linux/fuse)" "$root/store" \
	"$root/compressors" 2>/dev/null); do
	bad "${f#"$root"/} includes a FUSE header"
done

# project_includes FILE - the project headers FILE includes, one a line:
# every "quoted" include, and any <store/...> or <compressors/...>.
project_includes() {
	sed -nE "s@${inc_re}\"([^\"]+)\".*@\1@p; s@${inc_re}<((store|compressors|tests)/[^>]+)>.*@\1@p" "$1"
}

# 2. What fusezram.c reaches, transitively.
is_allowed() {
	local a
	for a in "${allowed[@]}"; do [ "$1" = "$a" ] && return 0; done
	return 1
}
declare -A seen=()
queue=(fusezram.c)
while [ "${#queue[@]}" -gt 0 ]; do
	cur=${queue[0]}
	queue=("${queue[@]:1}")
	[ -f "$root/$cur" ] || { bad "${cur} (reached from fusezram.c) not found"; continue; }
	while read -r h; do
		[ -n "$h" ] || continue
		if ! is_allowed "$h"; then
			bad "fusezram.c reaches $h (through $cur): only ${allowed[*]} may be"
			continue
		fi
		if [ -z "${seen[$h]:-}" ]; then
			seen[$h]=1
			queue+=("$h")
		fi
	done < <(project_includes "$root/$cur")
done

# 3. The unit tests link without libfuse.
if [ -n "$bin" ]; then
	if [ ! -e "$bin" ]; then
		bad "$bin not found"
	elif nm -u "$bin" 2>/dev/null | grep -q 'fuse_'; then
		bad "$bin needs libfuse (undefined fuse_ symbols)"
	fi
fi
exit "$fail"
