#!/bin/bash
#
# deps.sh - install the Debian packages fusezram needs to build, test and
# benchmark, and only those that are missing.  Each package is checked with
# dpkg-query; if some are missing, runs apt-get update and apt-get install
# for those (as root, or through sudo).  Exit status 0 when everything is
# installed afterwards.
#
# Debian 12 (bookworm) names.  NO_APT_UPDATE=1 skips apt-get update.

set -euo pipefail

packages=(
	# build
	build-essential pkg-config libfuse3-dev liblz4-dev libzstd-dev
	liburing-dev
	# unit tests, man page check
	check groff-base
	# integration tests: fusermount3, losetup/mount/swapon, fallocate,
	# mkfs/fsck, cmp/diff, python3 for lseek and pwrite checks, xxd
	fuse3 mount util-linux e2fsprogs diffutils coreutils findutils procps
	python3 xxd kmod
	# benchmarks
	fio nbdkit libnbd-bin stress-ng
)

missing=()
for p in "${packages[@]}"; do
	status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || :)
	case $status in
	ii*) ;;
	*) missing+=("$p") ;;
	esac
done

if [ "${#missing[@]}" -eq 0 ]; then
	echo "deps: all ${#packages[@]} packages installed"
	exit 0
fi
echo "deps: installing ${missing[*]}"

if [ "$(id -u)" -eq 0 ]; then
	as_root=()
elif command -v sudo >/dev/null 2>&1; then
	as_root=(sudo)
else
	echo "deps: missing packages: ${missing[*]}; run as root (or install sudo) to install them" >&2
	exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
	echo "deps: no apt-get here; install by hand: ${missing[*]}" >&2
	exit 1
fi

if [ "${NO_APT_UPDATE:-0}" != 1 ]; then
	"${as_root[@]}" apt-get update
fi
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
	apt-get install -y --no-install-recommends "${missing[@]}"

# Check again: apt-get can succeed without installing what was asked.
still=()
for p in "${missing[@]}"; do
	status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || :)
	case $status in
	ii*) ;;
	*) still+=("$p") ;;
	esac
done
if [ "${#still[@]}" -ne 0 ]; then
	echo "deps: still missing after apt-get install: ${still[*]}" >&2
	exit 1
fi
echo "deps: installed ${missing[*]}"
