#!/bin/sh
# Builds ./harness against an already-built VPP 26.10 (../shared/tools/vpp/setup.sh; no VPP
# rebuild). VPP_DIR: that build's directory, by default ../vpp-anchor beside the repository.
# Local only: CI has no VPP.
set -eu
cd "$(dirname "$0")"
VPP="${VPP_DIR:-$(cd ../../.. && pwd)/vpp-anchor}"
LIB=$VPP/build/lib/x86_64-linux-gnu
CFLAGS="-O3 -march=native -g -Wall -Wno-address-of-packed-member -pthread"
set -x
gcc $CFLAGS \
  -I"$VPP/vpp-src/src" -I"$VPP/build/CMakeFiles" \
  -o harness harness.c \
  -L"$LIB" -Wl,-rpath,"$LIB" -lsvm -lvppinfra -ldl -lpthread
