#!/usr/bin/env bash
# The default lab's acceptance lines (../shared/DESIGN.md, "The default lab"); the user's own
# files in /etc/netns/<ns>/ (a hosts file in a, a resolv.conf in b made before `up`) are used,
# kept by `up` and `down`, and a's resolver still answers next to them.
#
#   a 10.0.1.10 ─┐                        ┌─ aws: 54.123.160.0/19 (S3 us-east-1) ...
#   b 10.0.2.10 ─┼── vpcsim forwarder ────┤
#   c 10.0.3.10 ─┘                        └─ internet: 198.51.100.10 (echo)
#   a: 0/0 igw, pl vpce   b: 0/0 igw   c: 54.123.165.0/24 igw, pl vpce
source "$(dirname "$0")/lib.sh"
# The name lab_up gives the lab.
pre="${VPCSIM_TEST_PREFIX:-t}$$d"
OWN_DIRS+=("/etc/netns/$pre-a" "/etc/netns/$pre-b")
OWN_FILES+=("/etc/netns/$pre-a/hosts" "/etc/netns/$pre-b/resolv.conf")
mkdir -p "/etc/netns/$pre-b"
printf 'nameserver 10.0.0.2\noptions timeout:2\n' > "/etc/netns/$pre-b/resolv.conf"
lab_up "$ROOT/netns/demo.toml" d
[ "$LAB" = "$pre" ] || fail "lab $LAB, expected $pre"
[ "$(cat "/etc/netns/$LAB-b/resolv.conf")" = "$(printf 'nameserver 10.0.0.2\noptions timeout:2')" ] \
    || fail "up overwrote the user's resolv.conf of b: $(cat "/etc/netns/$LAB-b/resolv.conf")"
cat "/run/vpcsim/$LAB.log" "$WORK/up.err" | grep -q "keeping your own resolv.conf" \
    || fail "no warning about b's resolv.conf"
ok "up keeps the user's /etc/netns/$LAB-b/resolv.conf, with a warning"
printf '198.51.100.10 my-echo\n' > "/etc/netns/$LAB-a/hosts"
[ "$(in_ns a getent hosts my-echo | awk '{print $1}')" = 198.51.100.10 ] || fail "a's own hosts file"
[ "$(in_ns a getent hosts check-ip | awk '{print $1}')" = 198.51.100.10 ] || fail "a's resolver"
[ "$(in_ns b getent hosts check-ip | awk '{print $1}')" = 198.51.100.10 ] || fail "b's resolv.conf"
ok "a's own hosts file and the VPC resolver side by side"

expect_path a http://54.123.170.5/open-bucket/hello.txt 10.0.1.10 vpce-11bb22cc
h=$(get_headers a http://54.123.170.5/open-bucket/hello.txt)
[ "$(header x-vpcsim-vpc <<< "$h")" = vpc-111bbb22 ] || fail "x-vpcsim-vpc missing"
expect_path b http://54.123.170.5/open-bucket/hello.txt 203.0.113.20
expect_path c http://54.123.165.7/open-bucket/hello.txt 203.0.113.30
expect_path c http://54.123.170.5/open-bucket/hello.txt 10.0.3.10 vpce-11bb22cc
expect_unreachable c http://198.51.100.10/
[ "$(in_ns a curl -s -m 5 http://198.51.100.10/)" = 203.0.113.10 ] || fail "echo host from a"
ok "a -> 198.51.100.10: the internet sees 203.0.113.10"
body=$(in_ns a curl -s -m 5 http://54.123.170.5/open-bucket/hello.txt)
[ "$body" = "Hello from open-bucket" ] || fail "object body: $body"
# Virtual-hosted style, as SDKs send it.
in_ns a curl -s -m 5 -H "Host: open-bucket.s3.amazonaws.com" http://54.123.170.5/hello.txt | grep >/dev/null -c "Hello from open-bucket" \
    || fail "virtual-hosted-style GET"
ok "virtual-hosted-style GET"
# Missing key and bucket: S3's XML errors.
in_ns a curl -s -m 5 http://54.123.170.5/open-bucket/nope | grep >/dev/null -c "<Code>NoSuchKey</Code>" || fail "NoSuchKey"
in_ns a curl -s -m 5 http://54.123.170.5/no-such-bucket/x | grep >/dev/null -c "<Code>NoSuchBucket</Code>" || fail "NoSuchBucket"
ok "S3 errors"
# The drop counters saw c's packets to the internet.
"$VPCSIM" status "$LAB" --json | grep -A1 '"no_route"' | tail -n1 | grep >/dev/null -cv '^ *0$' || fail "no_route not counted"
ok "vpcsim status counts the no-route drops"
# The internet reaches AWS's public ranges, as the real internet can, and S3 answers it.
h=$(get_headers internet http://54.123.170.5/open-bucket/hello.txt) || fail "internet -> S3"
grep -qi "x-vpcsim-source-ip: 198.51.100.10" <<< "$h" || fail "internet -> S3: $h"
ok "the internet host reaches S3 (source 198.51.100.10)"
# `down` removes what vpcsim wrote in /etc/netns and nothing of the user's.
"$VPCSIM" down "$LAB" >/dev/null
[ "$(cat "/etc/netns/$LAB-a/hosts" 2>&1)" = "198.51.100.10 my-echo" ] || fail "down removed a's hosts file"
[ ! -e "/etc/netns/$LAB-a/resolv.conf" ] || fail "down left vpcsim's resolv.conf of a"
[ "$(cat "/etc/netns/$LAB-b/resolv.conf" 2>&1)" = "$(printf 'nameserver 10.0.0.2\noptions timeout:2')" ] \
    || fail "down removed the user's resolv.conf of b"
for ns in c d aws internet; do [ ! -e "/etc/netns/$LAB-$ns" ] || fail "down left /etc/netns/$LAB-$ns"; done
LAB=""
ok "down: the user's files in /etc/netns stay, vpcsim's are gone"
