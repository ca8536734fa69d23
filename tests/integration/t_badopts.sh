#!/bin/bash
# t_badopts: a bad option value makes fusezram exit non-zero with one line
# on stderr naming the bad value, and nothing is mounted; -h lists the
# fusezram options; -V prints the version.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
fz_require_fuse

mnt=$FZ_TMP/mnt
mkdir "$mnt"
# Should a bad value be accepted, the daemon detaches: unmount it then.
fz__register "fuse|$mnt||-"

# expect_bad NEEDLE... -- ARGS... - run fusezram ARGS (without -f, as a
# user would); expect a non-zero exit, exactly one line on stderr containing
# every NEEDLE, and nothing mounted.
expect_bad() {
	local needles=() rc=0 line
	while [ "$1" != -- ]; do
		needles+=("$1")
		shift
	done
	shift
	timeout 30 "$FUSEZRAM" "$@" >"$FZ_TMP/out" 2>"$FZ_TMP/err" || rc=$?
	[ "$rc" -ne 124 ] || fz_fail "fusezram $*: still running after 30 s"
	if fz_is_mounted "$mnt"; then
		fz_undo_now
		fz_fail "fusezram $*: mounted (exit $rc), expected a refusal"
	fi
	[ "$rc" -ne 0 ] || fz_fail "fusezram $*: exit status 0, expected non-zero"
	[ "$(wc -l <"$FZ_TMP/err")" -eq 1 ] ||
		fz_fail "fusezram $*: stderr is not one line: $(cat "$FZ_TMP/err")"
	line=$(cat "$FZ_TMP/err")
	for n in "${needles[@]}"; do
		grep -qiF -- "$n" <<<"$line" ||
			fz_fail "fusezram $*: stderr does not mention '$n': $line"
	done
	if pid=$(fz__find_daemon "$mnt"); then
		fz_fail "fusezram $*: a daemon (pid $pid) is still running for $mnt"
	fi
	fz_log "refused (exit $rc): fusezram $*: $line"
}

# Undo the accidental mount at once (the trap would too, later).
fz_undo_now() { fz__undo_match fuse "$mnt" || :; fz__register "fuse|$mnt||-"; }

expect_bad disksize banana -- -o disksize=banana "$mnt"
expect_bad disksize 0 -- -o disksize=0 "$mnt"
expect_bad disksize 1X -- -o disksize=1X "$mnt"
expect_bad disksize -1 -- -o disksize=-1 "$mnt"
expect_bad disksize 4096Q -- -o disksize=4096Q "$mnt"
expect_bad comp_algorithm nosuch -- -o comp_algorithm=nosuch "$mnt"
expect_bad comp_algorithm nosuch -- -o disksize=1M,comp_algorithm=nosuch "$mnt"
# lz4's level is its acceleration, 1 to 65537.
expect_bad comp_level 65538 -- -o comp_level=65538 "$mnt"
expect_bad comp_level 0 -- -o comp_algorithm=lz4,comp_level=0 "$mnt"
expect_bad comp_level 999 -- -o comp_algorithm=zstd,comp_level=999 "$mnt"
expect_bad comp_level 999 -- -o comp_algorithm=lz4hc,comp_level=999 "$mnt"
expect_bad comp_level banana -- -o comp_level=banana "$mnt"
expect_bad mem_limit x -- -o mem_limit=x "$mnt"
expect_bad mem_limit 5Z -- -o mem_limit=5Z "$mnt"
expect_bad threads banana -- -o threads=banana "$mnt"
expect_bad reserve 17M -- -o reserve=17M "$mnt"
expect_bad reserve lots -- -o reserve=lots "$mnt"
# max_read is a mount option: a plain byte count, one page to 1 MiB.
expect_bad max_read 64K -- -o max_read=64K "$mnt"
expect_bad max_read 100 -- -o max_read=100 "$mnt"
expect_bad max_read 2097152 -- -o max_read=2097152 "$mnt"
expect_bad nosuchopt -- -o nosuchopt=1 "$mnt"
expect_bad mount -- -o disksize=1M
expect_bad "$FZ_TMP/nonexistent" -- "$FZ_TMP/nonexistent"

# -h: usage with our options, exit 0, nothing mounted.
rc=0
timeout 30 "$FUSEZRAM" -h >"$FZ_TMP/help" 2>&1 || rc=$?
fz_expect_eq "exit status of fusezram -h" "$rc" 0
for opt in disksize comp_algorithm comp_level mem_limit reserve; do
	grep -qF -- "$opt" "$FZ_TMP/help" || fz_fail "fusezram -h does not mention $opt: $(cat "$FZ_TMP/help")"
done

# -V: a version, exit 0.
rc=0
timeout 30 "$FUSEZRAM" -V >"$FZ_TMP/version" 2>&1 || rc=$?
fz_expect_eq "exit status of fusezram -V" "$rc" 0
grep -qE '[0-9]+\.[0-9]+' "$FZ_TMP/version" || fz_fail "fusezram -V prints no version: $(cat "$FZ_TMP/version")"
want=$(sed -n 's/^VERSION[[:space:]]*:=[[:space:]]*//p' "$FZ_ROOT/Makefile" 2>/dev/null || :)
if [ -n "$want" ]; then
	grep -qF -- "$want" "$FZ_TMP/version" ||
		fz_fail "fusezram -V does not print the Makefile's VERSION $want: $(cat "$FZ_TMP/version")"
fi
fz_log "version: $(head -n 1 "$FZ_TMP/version")"

fz_is_mounted "$mnt" && fz_fail "something is mounted at $mnt after -h / -V"
fz_log "ok"
