#!/bin/sh
# Builds the consumer program with nothing but the flags `pkg-config --cflags conet` gives,
# against an installed conet. Arguments: the install prefix, the C++ compiler, a work dir.
set -eu
prefix=$1 compiler=$2 work=$3
here=$(dirname "$0")
PKG_CONFIG_PATH="$prefix/share/pkgconfig"
export PKG_CONFIG_PATH
cflags=$(pkg-config --cflags conet)
echo "pkg-config --cflags conet: $cflags"
mkdir -p "$work"
# shellcheck disable=SC2086 # the flags are meant to split into words
"$compiler" -std=c++20 $cflags "$here/main.cpp" -o "$work/consumer_pkg_config"
"$work/consumer_pkg_config"
