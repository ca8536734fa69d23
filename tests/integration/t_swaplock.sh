#!/bin/bash
# t_swaplock: the lock of tools/fusezram-swap is root's alone (issue 11,
# item 5).
#
# start and stop hold a lock so that one runs at a time.  It was
# /run/lock/fusezram-swap.lock, opened with '9>' in that world-writable
# directory: any user could open the file (0644) and hold a flock on it,
# and every start and stop then waited 900 s and failed (so swapoff was
# skipped at shutdown); a symlink planted there was followed, and its
# target created or truncated as root.
#
# 'fusezram-swap stop' runs with nothing to stop (its mount point under the
# test's directory), a stand-in flock first on PATH recording which file
# it is asked to lock.  With the default lock directory: that file is a
# regular file, not a symlink, owned by root, mode 0600, in a directory
# owned by root, mode 0700, not a symlink, under directories no one else
# may write (or sticky); user nobody can neither open it nor lock it.  A
# symlink nobody plants at the old path (when that path is free) is left
# alone.  With FUSEZRAM_SWAP_LOCKDIR under the test's directory: the same,
# there; then a symlink at the lock file (to an existing file, and to a
# missing one), a symlink as the lock directory, a lock directory of
# nobody's, one of mode 0777, and a lock file of mode 0644 are each
# refused: exit 1, a message naming the lock, and no symlink target
# created or changed.
#
# Cleanup: /run/fusezram (the default lock directory) and
# /run/lock/fusezram-swap.lock (the old lock) are removed if they were not
# there before the test; the symlink planted at the old path likewise.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
fz_require getopt setpriv flock stat readlink timeout
id nobody >/dev/null 2>&1 || fz_skip "no user 'nobody' to try the lock as"

FZSWAP=$FZ_ROOT/tools/fusezram-swap
[ -x "$FZSWAP" ] || fz_fail "$FZSWAP is missing or not executable"
DEF_DIR=/run/fusezram
DEF_LOCK=$DEF_DIR/swap.lock
OLD_LOCK=/run/lock/fusezram-swap.lock
NOBODY_GROUP=$(id -gn nobody)

CONF=$FZ_TMP/swap.conf
printf 'mountpoint = %s\n' "$FZ_TMP/swap" >"$CONF"

# Whatever the tool makes at the default paths goes when the test ends.
if [ ! -e "$DEF_DIR" ] && [ ! -L "$DEF_DIR" ]; then
	fz_defer "rm -f -- '$DEF_LOCK' && { [ ! -d '$DEF_DIR' ] || rmdir -- '$DEF_DIR'; }"
fi
if [ ! -e "$OLD_LOCK" ] && [ ! -L "$OLD_LOCK" ]; then
	fz_defer "rm -f -- '$OLD_LOCK'"
	OLD_FREE=1
else
	fz_log "note: $OLD_LOCK exists: no symlink planted there"
	OLD_FREE=0
fi

# The stand-in flock: it writes the file behind its fd argument to
# $FZ_TMP/locked, then runs the real flock.
mkdir "$FZ_TMP/spy"
cat >"$FZ_TMP/spy/flock" <<EOF
#!/bin/sh
for a; do :; done
case \$a in
''|*[!0-9]*) ;;
*) readlink "/proc/self/fd/\$a" >>"$FZ_TMP/locked" ;;
esac
exec $(command -v flock) "\$@"
EOF
chmod 0755 "$FZ_TMP/spy/flock"

# as_nobody CMD... - run CMD as user nobody, with no other groups.
as_nobody() { setpriv --reuid=nobody --regid="$NOBODY_GROUP" --clear-groups -- "$@"; }

# stop LOCKDIR - 'fusezram-swap stop' with the stand-in flock, and
# FUSEZRAM_SWAP_LOCKDIR=LOCKDIR (none if empty).  Sets RC and LOCKED (the
# file it locked, or empty); output in $FZ_TMP/out and $FZ_TMP/err.
stop() {
	local -a env=(env -u FUSEZRAM_SWAP_LOCKDIR)
	[ -z "$1" ] || env=(env FUSEZRAM_SWAP_LOCKDIR="$1")
	rm -f "$FZ_TMP/locked"
	RC=0
	fz_run 60 "${env[@]}" PATH="$FZ_TMP/spy:$PATH" "$FZSWAP" --config "$CONF" stop \
		>"$FZ_TMP/out" 2>"$FZ_TMP/err" || RC=$?
	LOCKED=$(tail -n 1 "$FZ_TMP/locked" 2>/dev/null) || LOCKED=""
	sed 's/^/    /' "$FZ_TMP/out" "$FZ_TMP/err" >&2
}

# check_lock LOCK - LOCK is root's alone, and nobody can neither open nor
# lock it.
check_lock() {
	local lock=$1 d st
	{ [ -f "$lock" ] && [ ! -L "$lock" ]; } || fz_fail "lock $lock is not a regular file"
	fz_expect_eq "owner, group and mode of $lock" "$(stat -c '%u %g %a' -- "$lock")" "0 0 600"
	d=${lock%/*}
	{ [ -d "$d" ] && [ ! -L "$d" ]; } || fz_fail "lock directory $d is not a directory"
	fz_expect_eq "owner and mode of $d" "$(stat -c '%u %a' -- "$d")" "0 700"
	while d=${d%/*}; [ -n "$d" ]; do
		[ ! -L "$d" ] || fz_fail "$d, above the lock $lock, is a symlink"
		st=$(stat -c '%u %a' -- "$d")
		[ "${st%% *}" = 0 ] || fz_fail "$d, above the lock $lock, is not root's ($st)"
		if ((8#${st#* } & 8#022)) && ! ((8#${st#* } & 8#1000)); then
			fz_fail "$d, above the lock $lock, may be written by others ($st)"
		fi
	done
	# shellcheck disable=SC2016 # for the inner shell
	if as_nobody bash -c 'exec 3<"$1"' _ "$lock" 2>"$FZ_TMP/nerr"; then
		fz_fail "user nobody opened the lock $lock"
	fi
	fz_log "nobody opening $lock: $(cat "$FZ_TMP/nerr")"
	if as_nobody timeout 10 flock -n -s "$lock" true 2>"$FZ_TMP/nerr"; then
		fz_fail "user nobody locked the lock $lock"
	fi
	fz_log "nobody locking $lock: $(cat "$FZ_TMP/nerr")"
}

# ---------------------------------------------------------------------------
# The default lock, and a symlink planted at the old one.

printf 'precious\n' >"$FZ_TMP/victim"
chmod 0644 "$FZ_TMP/victim"
if [ "$OLD_FREE" = 1 ]; then
	as_nobody ln -s "$FZ_TMP/victim" "$OLD_LOCK" || fz_fail "nobody could not plant $OLD_LOCK"
fi
stop ""
fz_expect_eq "stop with the default lock: exit status" "$RC" 0
grep -q 'nothing to stop' "$FZ_TMP/out" || fz_fail "stop: no 'nothing to stop'"
[ -n "$LOCKED" ] || fz_fail "stop took no lock (the stand-in flock saw no file)"
fz_log "stop locked $LOCKED"
fz_expect_eq "victim of the symlink at $OLD_LOCK" "$(cat "$FZ_TMP/victim")" precious
check_lock "$LOCKED"
fz_expect_eq "the default lock" "$LOCKED" "$DEF_LOCK"
if [ "$OLD_FREE" = 1 ]; then
	[ -L "$OLD_LOCK" ] || fz_fail "the symlink at $OLD_LOCK was replaced"
	rm -f -- "$OLD_LOCK"
fi

# ---------------------------------------------------------------------------
# A lock directory of the test's own, then tampered with.

LD=$FZ_TMP/lockdir
stop "$LD"
fz_expect_eq "stop with FUSEZRAM_SWAP_LOCKDIR: exit status" "$RC" 0
fz_expect_eq "the lock with FUSEZRAM_SWAP_LOCKDIR" "$LOCKED" "$LD/swap.lock"
check_lock "$LOCKED"

# refused WHAT - stop was refused: exit 1, the message names the lock, and
# no file was locked.
refused() {
	fz_expect_eq "stop with $1: exit status" "$RC" 1
	grep -q "$LD" "$FZ_TMP/err" || fz_fail "stop with $1: the message does not name $LD"
	[ -z "$LOCKED" ] || fz_fail "stop with $1 locked $LOCKED"
}

rm -f -- "$LD/swap.lock"
ln -s "$FZ_TMP/victim" "$LD/swap.lock"
stop "$LD"
refused "the lock file a symlink to a file"
fz_expect_eq "the symlink's target" "$(cat "$FZ_TMP/victim")" precious
fz_expect_eq "the symlink's target's mode" "$(stat -c %a "$FZ_TMP/victim")" 644

rm -f -- "$LD/swap.lock"
ln -s "$FZ_TMP/made" "$LD/swap.lock"
stop "$LD"
refused "the lock file a symlink to nothing"
[ ! -e "$FZ_TMP/made" ] || fz_fail "stop created $FZ_TMP/made through the symlink $LD/swap.lock"
rm -f -- "$LD/swap.lock"

mv -- "$LD" "$FZ_TMP/real"
ln -s "$FZ_TMP/real" "$LD"
stop "$LD"
refused "the lock directory a symlink"
rm -f -- "$LD"
mv -- "$FZ_TMP/real" "$LD"

chown nobody "$LD"
stop "$LD"
refused "the lock directory nobody's"
chown root "$LD"

chmod 0777 "$LD"
stop "$LD"
refused "the lock directory mode 0777"
chmod 0700 "$LD"

touch "$LD/swap.lock"
chmod 0644 "$LD/swap.lock"
stop "$LD"
refused "the lock file mode 0644"
rm -f -- "$LD/swap.lock"

stop "$LD"
fz_expect_eq "stop with the lock directory restored: exit status" "$RC" 0
check_lock "$LD/swap.lock"
fz_log "ok"
