#!/usr/bin/env bash
# The default lab's acceptance lines (DESIGN.md, "The default lab").
#
#   a 10.0.1.10 ─┐                        ┌─ aws: 54.123.160.0/19 (S3 us-east-1) ...
#   b 10.0.2.10 ─┼── vpcsim forwarder ────┤
#   c 10.0.3.10 ─┘                        └─ internet: 198.51.100.10 (echo)
#   a: 0/0 igw, pl vpce   b: 0/0 igw   c: 54.123.165.0/24 igw, pl vpce
source "$(dirname "$0")/lib.sh"
lab_up "$ROOT/netns/demo.toml" d

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
