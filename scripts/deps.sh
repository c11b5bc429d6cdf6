#!/bin/sh
# Installs the Debian packages walls needs to build, test and benchmark,
# if any is missing. Needs root (or sudo) only when something is missing.
set -eu
# libc6-dev and libseccomp-dev also hold the archives (libc.a, libseccomp.a)
# that the install test links a fully static program with. Open MPI is
# for libwalls-mpi, which is built only when it is found.
packages="cmake make gcc libc6-dev binutils pkg-config check libglib2.0-dev libuv1-dev g++ libtbb-dev clang libclang-rt-14-dev libseccomp-dev libhttp-parser-dev curl wrk redis-tools python3 python3-redis liblua5.4-dev libopenmpi-dev openmpi-bin"
missing=""
for p in $packages; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "walls: installing$missing" >&2
if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "walls: please install as root:$missing" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
