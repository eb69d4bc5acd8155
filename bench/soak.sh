#!/usr/bin/env bash
# Soaks the frame rings: TestRingSoak for a long run (default 10 minutes)
# — an HTTP unikernel under keep-alive clients and clients that open a new
# connection per request, every body checked, then the guest's frame
# counts compared with the monitor's (no frame lost or duplicated).
#
# Usage: bench/soak.sh [DURATION]   (a Go duration, default 10m)
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${1:-10m}
ATOLL_SOAK=$dur go test -count=1 -timeout 0 -run '^TestRingSoak$' -v ./cmd/atoll
