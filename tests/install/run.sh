#!/bin/sh
# run.sh - installs the built tree into a temporary prefix and builds
# programs against that prefix the ways its users do, then runs them:
#
#   1. CMake: find_package(walls), linking walls::walls and
#      walls::walls_static;
#   2. pkg-config: `--cflags --libs walls` (shared; must need libwalls.so)
#      and `--static --cflags --libs walls` (must not need it);
#   3. a fully static program (-static) with the --static flags;
#   4. the example program of the README, exactly as written there,
#      compiled with -Wall -Wextra -Werror.
#
# Every consumer runs in both ways the fork server starts: forked by
# walls_init() and re-executed (a thread runs before the first pool).
# Every failure is reported; the test fails if any step failed. The prefix
# lives under the build directory and is removed at the end.
#
#   run.sh BUILD_DIR SOURCE_DIR CMAKE_COMMAND C_COMPILER LIBDIR
set -u
build=$1
src=$2
cmake=$3
cc=$4
libdirname=$5

here=$src/tests/install
work=$build/install-test
prefix=$work/prefix
libdir=$prefix/$libdirname
failures=0

skip() {
    echo "install test: skipped: $*"
    exit 77
}
fail() {
    echo "install test: FAILED: $*" >&2
    failures=$((failures + 1))
}

command -v pkg-config >/dev/null 2>&1 || skip "pkg-config not found (Debian: pkg-config)"
command -v readelf >/dev/null 2>&1 || skip "readelf not found (Debian: binutils)"
for archive in libc.a libseccomp.a; do
    case $("$cc" -print-file-name=$archive) in
    /*) ;;
    *) skip "$archive not found, a fully static program cannot be linked (Debian: libc6-dev, libseccomp-dev)" ;;
    esac
done

rm -rf "$work"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work"
unset LD_LIBRARY_PATH

# needs FILE LIBRARY yes|no: whether FILE names LIBRARY among the shared
# libraries it needs.
needs() {
    if readelf -d "$1" | grep -q "NEEDED.*\[$2\\."; then
        found=yes
    else
        found=no
    fi
    [ "$found" = "$3" ] || fail "$1: needs $2: '$found', expected '$3'"
}

# run_both PROGRAM: runs it with the fork server forked, then re-executed.
run_both() {
    for mode in fork thread; do
        echo "-- $1 $mode"
        "$1" $mode || fail "$1 $mode exited with status $?"
    done
}

echo "== installing into $prefix"
if ! "$cmake" --install "$build" --prefix "$prefix" >"$work/install.log" 2>&1; then
    cat "$work/install.log"
    echo "install test: FAILED: cmake --install" >&2
    exit 1
fi

echo "== CMake: find_package(walls), walls::walls and walls::walls_static"
if "$cmake" -S "$here/cmake" -B "$work/cmake" -DCMAKE_C_COMPILER="$cc" \
        -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$work/cmake.log" 2>&1 &&
    "$cmake" --build "$work/cmake" >>"$work/cmake.log" 2>&1; then
    found=$(sed -n 's/^walls_DIR:PATH=//p' "$work/cmake/CMakeCache.txt")
    case $found in
    "$prefix"/*) ;;
    *) fail "find_package(walls) found '$found', not the package under $prefix" ;;
    esac
    needs "$work/cmake/consumer" libwalls yes
    # libseccomp is the shared library's own business.
    needs "$work/cmake/consumer" libseccomp no
    needs "$work/cmake/consumer_static" libwalls no
    run_both "$work/cmake/consumer"
    run_both "$work/cmake/consumer_static"
else
    cat "$work/cmake.log"
    fail "the CMake consumer did not build"
fi

PKG_CONFIG_PATH=$libdir/pkgconfig
export PKG_CONFIG_PATH
echo "== pkg-config --libs walls: $(pkg-config --libs walls)"
echo "== pkg-config --static --libs walls: $(pkg-config --static --libs walls)"
pcdir=$(cd "$(pkg-config --variable=libdir walls)" 2>/dev/null && pwd -P)
[ "$pcdir" = "$(cd "$libdir" && pwd -P)" ] ||
    fail "pkg-config found walls.pc with libdir '$pcdir', not $libdir"

# shellcheck disable=SC2046
if "$cc" -Wall -Wextra -o "$work/pc_shared" "$here/consumer.c" \
        $(pkg-config --cflags --libs walls) -Wl,-rpath,"$libdir"; then
    needs "$work/pc_shared" libwalls yes
    run_both "$work/pc_shared"
else
    fail "pkg-config --cflags --libs walls: the program did not build"
fi

# shellcheck disable=SC2046
if "$cc" -Wall -Wextra -o "$work/pc_static" "$here/consumer.c" \
        $(pkg-config --static --cflags --libs walls); then
    needs "$work/pc_static" libwalls no
    run_both "$work/pc_static"
else
    fail "pkg-config --static --cflags --libs walls: the program did not build"
fi

echo "== fully static: -static with pkg-config --static"
# glibc warns that dlopen() in a static program needs its shared libraries
# at run time; walls only opens modules a task function lives in.
# shellcheck disable=SC2046
if "$cc" -static -Wall -Wextra -o "$work/full_static" "$here/consumer.c" \
        $(pkg-config --static --cflags --libs walls); then
    if readelf -d "$work/full_static" | grep -q NEEDED; then
        fail "the -static program needs shared libraries"
    fi
    run_both "$work/full_static"
else
    fail "the -static program did not build"
fi

echo "== the README's example"
awk '/^## Using the library/ { s = 1; next }
     s == 1 && /^```c$/ { s = 2; next }
     s == 2 && /^```$/ { exit }
     s == 2 { print }' "$src/README.md" >"$work/readme_example.c"
if ! [ -s "$work/readme_example.c" ]; then
    fail "no C example found under '## Using the library' in README.md"
# shellcheck disable=SC2046
elif "$cc" -Wall -Wextra -Werror -o "$work/readme_example" "$work/readme_example.c" \
        $(pkg-config --cflags --libs walls) -Wl,-rpath,"$libdir"; then
    out=$("$work/readme_example")
    status=$?
    echo "$out"
    [ $status -eq 0 ] || fail "the README's example exited with status $status"
    case $out in
    *49*) ;;
    *) fail "the README's example did not print 49 (7 squared)" ;;
    esac
else
    fail "the README's example did not compile with -Wall -Wextra -Werror"
fi

if [ $failures -ne 0 ]; then
    echo "install test: $failures failures" >&2
    exit 1
fi
echo "install test: all passed"
