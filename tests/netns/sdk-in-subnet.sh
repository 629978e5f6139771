#!/usr/bin/env bash
# The real AWS CLI inside a subnet, unchanged: it resolves my-secure-bucket.s3.amazonaws.com with
# the VPC resolver, speaks HTTPS (the lab CA via AWS_CA_BUNDLE), uploads 30 MB as a multipart
# upload through the endpoint, and downloads it back identical. From subnet b (public path) the
# bucket's endpoint-only policy refuses the same calls.
#
#   a ── DNS 10.0.0.2 ── HTTPS 443 ── vpce-11bb22cc ── aws: S3 stub (lab CA certificate)
source "$(dirname "$0")/lib.sh"
lab_up "$ROOT/netns/demo.toml" sk

export AWS_CA_BUNDLE="$STATE/tls/ca.pem"
[ -s "$AWS_CA_BUNDLE" ] || fail "no lab CA at $AWS_CA_BUNDLE"
head -c 30000000 /dev/urandom > "$WORK/obj"
in_ns a "$AWS_BIN" s3 cp --only-show-errors "$WORK/obj" s3://my-secure-bucket/obj || fail "aws s3 cp up"
in_ns a "$AWS_BIN" s3 cp --only-show-errors s3://my-secure-bucket/obj "$WORK/back" || fail "aws s3 cp down"
cmp -s "$WORK/obj" "$WORK/back" || fail "the object came back different"
etag=$(in_ns a "$AWS_BIN" s3api head-object --bucket my-secure-bucket --key obj --query ETag --output text)
case "$etag" in *-*) ;; *) fail "not a multipart ETag: $etag" ;; esac
ok "aws s3 cp in demo-a: 30 MB multipart over HTTPS through the endpoint, identical (ETag $etag)"
h=$(in_ns a curl -s --cacert "$AWS_CA_BUNDLE" -D - -o /dev/null https://open-bucket.s3.amazonaws.com/hello.txt)
echo "$h" | grep -qi "x-vpcsim-vpce: vpce-11bb22cc" || fail "https by name not through the endpoint: $h"
ok "curl --cacert https://open-bucket.s3.amazonaws.com/ through the endpoint"
if in_ns b "$AWS_BIN" s3 ls s3://my-secure-bucket > "$WORK/ls.out" 2>&1; then fail "b listed my-secure-bucket"; fi
grep -q AccessDenied "$WORK/ls.out" || fail "b: $(cat "$WORK/ls.out")"
ok "the same CLI in demo-b is refused by the bucket policy"
