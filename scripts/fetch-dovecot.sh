#!/bin/sh
# Usage: scripts/fetch-dovecot.sh DESTDIR
#
# Unpacks Debian's dovecot-core package into DESTDIR (without installing it: installing
# would start an IMAP daemon) so that the benchmarks can link Dovecot's own
# seq_range_array from DESTDIR/usr/lib/dovecot/libdovecot.so. The headers come from the
# dovecot-dev package (/usr/include/dovecot); at run time libdovecot.so.0 also needs
# libunwind8. Idempotent: does nothing if the library is already there. When the
# package cannot be fetched (no apt, no network), prints why and exits 0: the
# benchmarks then build without the Dovecot peer.
set -u

dest=${1:-}
if [ -z "$dest" ]; then
    echo "usage: $0 DESTDIR   (e.g. $0 build/bench/_deps/dovecot)" >&2
    exit 2
fi
lib="$dest/usr/lib/dovecot/libdovecot.so"

if [ -e "$lib" ]; then
    echo "fetch-dovecot: $lib already present"
    exit 0
fi

skip() {
    echo "fetch-dovecot: $*; the benchmarks will be built without the Dovecot peer"
    exit 0
}

command -v apt-get >/dev/null 2>&1 || skip "apt-get not found"
command -v dpkg >/dev/null 2>&1 || skip "dpkg not found"

tmp=$(mktemp -d 2>/dev/null) || skip "cannot create a temporary directory"
trap 'rm -rf "$tmp"' EXIT INT TERM

# apt-get download writes into the current directory; run it from the temp dir.
if ! (cd "$tmp" && apt-get download dovecot-core >"$tmp/apt.log" 2>&1); then
    sed 's/^/  /' "$tmp/apt.log" >&2
    skip "'apt-get download dovecot-core' failed (try 'apt-get update' first)"
fi

deb=$(ls "$tmp"/dovecot-core_*.deb 2>/dev/null | head -n 1)
[ -n "$deb" ] || skip "no dovecot-core .deb was downloaded"

mkdir -p "$dest" || skip "cannot create $dest"
dpkg -x "$deb" "$dest" || skip "dpkg -x $deb failed"

if [ ! -e "$lib" ]; then
    skip "the package did not contain usr/lib/dovecot/libdovecot.so"
fi
echo "fetch-dovecot: unpacked $(basename "$deb") into $dest"

if [ ! -e /usr/include/dovecot/seq-range-array.h ]; then
    echo "fetch-dovecot: note: the headers are missing (apt-get install dovecot-dev)"
fi
if ! ldconfig -p 2>/dev/null | grep -q 'libunwind\.so\.8'; then
    echo "fetch-dovecot: note: libdovecot.so.0 needs libunwind8 at run time (apt-get install libunwind8)"
fi
exit 0
