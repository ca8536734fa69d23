#!/bin/bash
# t_badopts: a bad option value makes fusezram exit non-zero with one line
# on stderr naming the bad value, and nothing is mounted; so does a bad
# value of the libfuse options fusezram checks (max_threads, max_write,
# max_background, congestion_threshold), while their limits still mount and
# reach libfuse unchanged; -h lists the fusezram options; -V prints the
# version.
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
# libfuse's numeric options are checked as strictly as ours: a plain
# decimal number within the limits of fusezram(8), named as typed (libfuse
# alone reads " 1", "1G1", "1.5" and "1e99" as 1, "-1" as 4294967295).
# expect_bad_num OPTION VALUE... - each VALUE of OPTION is refused.
expect_bad_num() {
	local opt=$1 v
	shift
	for v in "$@"; do
		expect_bad "$opt" "'$v'" -- -o "$opt=$v" "$mnt"
	done
}
# Not a plain decimal number, or beyond any limit, for every one of them.
junk=('' banana -1 +1 0x10 1e99 1G1 ' 1' '1 ' 1.5 1K 99999999999T
	99999999999999999999 4294967297)
expect_bad_num max_threads "${junk[@]}" 0 1025
expect_bad_num max_write "${junk[@]}" 0 4095 1048577
expect_bad_num max_background "${junk[@]}" 0 65536
expect_bad_num congestion_threshold "${junk[@]}" 0 65536
# libfuse lowers a congestion_threshold above max_background (ours is 64)
# to it without a word.
expect_bad congestion_threshold "'65'" -- -o congestion_threshold=65 "$mnt"
expect_bad congestion_threshold "'17'" -- -o max_background=16,congestion_threshold=17 "$mnt"
expect_bad congestion_threshold "'17'" -- -o congestion_threshold=17,max_background=16 "$mnt"
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

# The limits of those libfuse options mount, and reach libfuse unchanged:
# its -d log shows the INIT reply, ours the worker threads.
# init_value NAME - NAME's value in the INIT reply of the -d log.
init_value() {
	fz_wait_until 10 grep -q "^ *$1=" "$FZ_LOG" ||
		fz_fail "no $1 in the INIT reply of the -d log: $(head -c 500 "$FZ_LOG")"
	sed -n "s/^ *$1=//p" "$FZ_LOG" | head -n 1
}
fz_mount -d -o disksize=4M,max_threads=1,max_write=4096,max_background=1,congestion_threshold=1
grep -q 'max_threads=1 ' "$FZ_LOG" || fz_fail "max_threads=1 not in the -d log: $(head -c 500 "$FZ_LOG")"
fz_expect_eq "max_write=4096" "$(init_value max_write)" 0x00001000
fz_expect_eq "max_background=1" "$(init_value max_background)" 1
fz_expect_eq "congestion_threshold=1" "$(init_value congestion_threshold)" 1
head -c 1M /dev/urandom >"$FZ_TMP/rand"
dd if="$FZ_TMP/rand" of="$FZ_IMG" bs=64K conv=notrunc,fsync status=none ||
	fz_fail "write to $FZ_IMG failed"
dd if="$FZ_IMG" of="$FZ_TMP/back" bs=64K count=16 iflag=direct status=none ||
	fz_fail "read of $FZ_IMG failed"
fz_expect_cmp "round trip through $FZ_IMG" "$FZ_TMP/back" "$FZ_TMP/rand"
fz_umount
fz_mount -d -o disksize=4M,max_threads=1024,max_write=1048576,max_background=65535,congestion_threshold=65535
grep -q 'max_threads=1024 ' "$FZ_LOG" || fz_fail "max_threads=1024 not in the -d log: $(head -c 500 "$FZ_LOG")"
fz_expect_eq "max_write=1048576" "$(init_value max_write)" 0x00100000
fz_expect_eq "max_background=65535" "$(init_value max_background)" 65535
fz_expect_eq "congestion_threshold=65535" "$(init_value congestion_threshold)" 65535
fz_umount
fz_log "ok"
