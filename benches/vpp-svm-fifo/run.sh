#!/bin/sh
# Runs the VPP svm_fifo harness under the machine-wide benchmark lock.
# Usage: ./run.sh [grow|first100] [runs] [target_secs_per_run]   (default: grow 5 0.7)
set -eu
cd "$(dirname "$0")"
[ -x ./harness ] || ./build.sh
exec flock /tmp/cargo.lock ./harness "${1:-grow}" "${2:-5}" "${3:-0.7}"
