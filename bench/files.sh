#!/usr/bin/env bash
# files.sh: file access natively and under atoll, in one run: reading a
# 100 MB file from the image's packed tree and from a volume, and
# stat + open + close of 10,000 small files in each, with the VM exits.
#
# Usage: bench/files.sh [ROUNDS]   (default 3)
set -euo pipefail
ROUNDS="${1:-3}"
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
TMP="$(mktemp -d /var/tmp/atoll-files.XXXXXX)"
trap 'rm -rf "$TMP"' EXIT
go build -o "$TMP/atoll" ./cmd/atoll
# The guest, as a package that packs its data.
PKG="$TMP/pkg"
mkdir -p "$PKG/small"
cp internal/testguests/fileread/main.go "$PKG/"
printf 'module fileread\n\ngo 1.26\n' > "$PKG/go.mod"
printf 'unikernel fileread\nmemory 512M\nfiles (\n\tbig.bin /data/big.bin\n\tsmall /data/small\n)\n' > "$PKG/atoll.manifest"
head -c 100000000 /dev/urandom > "$PKG/big.bin"
for i in $(seq 0 9999); do echo "file $i" > "$PKG/small/f$i"; done
(cd "$PKG" && CGO_ENABLED=0 go build -o "$TMP/fileread" .)
"$TMP/atoll" build -o "$TMP/fileread.img" "$PKG" >/dev/null
A="$TMP/atoll"
for r in $(seq 1 "$ROUNDS"); do
	echo "== round $r"
	echo "native, read:          $("$TMP/fileread" read "$PKG/big.bin")"
	echo "atoll, read, tree:     $("$A" run "$TMP/fileread.img" -- read /data/big.bin)"
	echo "atoll, read, volume:   $("$A" run --volume "$PKG:/vol:ro" "$TMP/fileread" -- read /vol/big.bin)"
	echo "native, stat:          $("$TMP/fileread" stat "$PKG/small" 10000)"
	echo "atoll, stat, tree:     $("$A" run "$TMP/fileread.img" -- stat /data/small 10000)"
	echo "atoll, stat, volume:   $("$A" run --volume "$PKG:/vol:ro" "$TMP/fileread" -- stat /vol/small 10000)"
done
echo "== VM exits"
for c in "$TMP/fileread.img -- read /data/big.bin" "--volume $PKG:/vol:ro $TMP/fileread -- read /vol/big.bin" \
	"$TMP/fileread.img -- stat /data/small 10000" "--volume $PKG:/vol:ro $TMP/fileread -- stat /vol/small 10000"; do
	# shellcheck disable=SC2086
	echo "atoll run --stats $c" | sed "s#$TMP#\$TMP#g"
	# shellcheck disable=SC2086
	"$A" run --stats $c 2>&1 >/dev/null | head -6
done
