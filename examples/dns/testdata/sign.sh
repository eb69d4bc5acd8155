#!/bin/sh
# Re-creates zones/signed.test.zone (NSEC) and zones/nsec3.test.zone (NSEC3:
# no opt-out, 0 iterations, empty salt, as RFC 9276 asks) from unsigned/,
# with BIND's dnssec-keygen and dnssec-signzone (Debian's bind9-dnsutils,
# 9.18). New keys every run: the private keys live only in a temporary
# directory, deleted on exit; only the signed zones are kept. The
# signatures are valid from 2026-01-01 to 2036-12-31, so the tests do not
# rot. See README.md.
set -eu
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# sign ZONE ALGORITHM [dnssec-signzone options...]
sign() {
	zone=$1
	alg=$2
	shift 2
	cp "unsigned/$zone.unsigned" "$tmp/$zone"
	# The delegated child's key, made only for the DS record of
	# deleg.ZONE, which is appended to the zone before it is signed.
	child=$(dnssec-keygen -q -K "$tmp" -a "$alg" "deleg.$zone")
	dnssec-dsfromkey -2 "$tmp/$child.key" >>"$tmp/$zone"
	# A key-signing key and a zone-signing key; -x signs the DNSKEY
	# RRset with the KSK alone, the rest with the ZSK alone.
	dnssec-keygen -q -K "$tmp" -a "$alg" -f KSK "$zone" >/dev/null
	dnssec-keygen -q -K "$tmp" -a "$alg" "$zone" >/dev/null
	dnssec-signzone -q -S -x -K "$tmp" -d "$tmp" -N keep \
		-s 20260101000000 -e 20361231235959 \
		-o "$zone" -f "zones/$zone.zone" "$@" "$tmp/$zone"
}

sign signed.test RSASHA256
sign nsec3.test ECDSAP256SHA256 -3 - -H 0
