#!/usr/bin/env bash
# The guide's "Example: An Endpoint Route in a Route Table", before and after the endpoint.
#
#   before 10.0.1.10 (10.0.0.0/16 local, 0.0.0.0/0 igw)            ─┐
#   after  10.0.2.10 (the same, plus pl-1a2b3c4d -> vpce-11bb22cc) ─┴─ forwarder ─ aws / internet
source "$(dirname "$0")/lib.sh"
lab_up "$ROOT/netns/guide-example-1.toml" g1

# "Any traffic from the subnet that's destined for another AWS service uses the Internet gateway."
expect_path before http://54.123.170.5/example-bucket/hello.txt 203.0.113.10
# "Now, any traffic from the subnet that's destined for Amazon S3 in the same region goes to the
# endpoint, and does not go to the Internet gateway."
expect_path after http://54.123.170.5/example-bucket/hello.txt 10.0.2.10 vpce-11bb22cc
# "All other Internet traffic goes to your Internet gateway, including [...] Amazon S3 in other
# regions."
expect_path after http://54.231.170.5/oregon-bucket/hello.txt 203.0.113.20
[ "$(in_ns after curl -s -m 5 http://198.51.100.10/)" = 203.0.113.20 ] || fail "internet via igw"
ok "after -> internet through the IGW"
