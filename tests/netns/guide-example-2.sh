#!/usr/bin/env bash
# The guide's "Example: Adjusting Your Route Tables for Endpoints", with and without the more
# specific route to the internet gateway.
#
#   specific 10.0.1.10: 54.123.165.0/24 igw, pl-1a2b3c4d vpce   ─┐
#   private  10.0.2.10: pl-1a2b3c4d vpce only                    ─┴─ forwarder ─ aws / internet
source "$(dirname "$0")/lib.sh"
lab_up "$ROOT/netns/guide-example-2.toml" g2

# "any traffic destined for the 54.123.165.0/24 IP address range continues to use the Internet
# gateway, and does not use the endpoint"
expect_path specific http://54.123.165.7/example-bucket/hello.txt 203.0.113.10
expect_path specific http://54.123.170.5/example-bucket/hello.txt 10.0.1.10 vpce-11bb22cc
# "Now, all traffic to Amazon S3 in the same region uses the endpoint, and the subnet [...] is a
# private subnet."
expect_path private http://54.123.165.7/example-bucket/hello.txt 10.0.2.10 vpce-11bb22cc
expect_path private http://54.123.170.5/example-bucket/hello.txt 10.0.2.10 vpce-11bb22cc
expect_unreachable private http://198.51.100.10/
expect_unreachable specific http://198.51.100.10/
