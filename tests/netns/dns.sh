#!/usr/bin/env bash
# The VPC resolver (10.0.0.2, the VPC's base + 2), reached through the data plane: S3 names of
# every region resolve into that region's range and take the path the route table gives them;
# with DNS support off, nothing answers, and every query dropped is counted (`dns_disabled`).
#
#   a 10.0.1.10 ── /etc/netns/<lab>-a/resolv.conf: nameserver 10.0.0.2 ── aws: resolver, S3
source "$(dirname "$0")/lib.sh"
lab_up "$ROOT/netns/demo.toml" dn

grep -q "nameserver 10.0.0.2" "/etc/netns/$LAB-a/resolv.conf" || fail "no resolv.conf"
in_range() { # in_range IP CIDR-prefix
    case "$1" in "$2"*) return 0 ;; *) return 1 ;; esac
}
for name in s3.amazonaws.com s3-external-1.amazonaws.com open-bucket.s3.amazonaws.com \
    open-bucket.s3.us-east-1.amazonaws.com s3-us-east-1.amazonaws.com s3.dualstack.us-east-1.amazonaws.com; do
    ip=$(in_ns a getent hosts "$name" | awk '{print $1}')
    # us-east-1: 54.123.160.0/19 (the guide's range)
    in_range "$ip" 54.123. || fail "$name -> '$ip'"
done
ok "us-east-1 S3 names resolve into 54.123.160.0/19"
ip=$(in_ns a getent hosts my-bucket.s3.us-west-2.amazonaws.com | awk '{print $1}')
in_range "$ip" 54.231. || fail "us-west-2 -> $ip"
ip=$(in_ns a getent hosts s3.eu-west-1.amazonaws.com | awk '{print $1}')
in_range "$ip" 52.218. || fail "eu-west-1 -> $ip"
ok "other regions resolve into their own ranges"
for name in s3-fips.us-east-1.amazonaws.com open-bucket.s3-fips.us-east-1.amazonaws.com \
    open-bucket.s3-fips.dualstack.us-east-1.amazonaws.com; do
    ip=$(in_ns a getent hosts "$name" | awk '{print $1}')
    in_range "$ip" 54.123. || fail "$name -> '$ip'"
done
if in_ns a getent hosts s3-fips.eu-west-1.amazonaws.com >/dev/null; then fail "FIPS in eu-west-1"; fi
ok "FIPS names where AWS has them"
# Instance hostnames, forward and reverse ("Amazon EC2 instance hostname types": us-east-1).
[ "$(in_ns a getent hosts ip-10-0-2-10.ec2.internal | awk '{print $1}')" = 10.0.2.10 ] ||
    fail "ip-10-0-2-10.ec2.internal"
[ "$(in_ns b getent hosts 10.0.1.10 | awk '{print $2}')" = ip-10-0-1-10.ec2.internal ] ||
    fail "PTR of 10.0.1.10"
if in_ns a getent hosts ip-10-0-1-99.ec2.internal >/dev/null; then fail "no such instance"; fi
ok "instance hostnames and their PTRs"
# The search domain of AWS's default DHCP options: the short name resolves.
[ "$(in_ns c getent hosts ip-10-0-2-10 | awk '{print $1}')" = 10.0.2.10 ] ||
    fail "ip-10-0-2-10 (search ec2.internal)"
ok "short instance names through the search domain"
if in_ns a getent hosts www.example.com >/dev/null; then fail "www.example.com resolved"; fi
ok "unknown names: NXDOMAIN"
# The same resolver at the Amazon DNS server's link-local address (ModifyVpcAttribute: "queries
# to the Amazon provided DNS server at the 169.254.169.253 IP address, or the reserved IP
# address at the base of the VPC network range "plus two" succeed"), over UDP and TCP, from c
# too, whose route table has no default route; the answer comes from the address asked.
ip=$(in_ns c dig +short +time=3 +tries=2 @169.254.169.253 open-bucket.s3.amazonaws.com A)
in_range "$ip" 54.123. || fail "169.254.169.253 over UDP: '$ip'"
[ "$(in_ns a dig +short +tcp +time=3 +tries=2 @169.254.169.253 ip-10-0-2-10.ec2.internal A)" = 10.0.2.10 ] ||
    fail "169.254.169.253 over TCP"
in_ns a dig +time=3 +tries=2 @169.254.169.253 s3.amazonaws.com A | grep -q "SERVER: 169.254.169.253#53" ||
    fail "the answer does not come from 169.254.169.253"
ok "169.254.169.253 answers like the VPC's base + 2, over UDP and TCP"
# By name, the path is the route table's: a through the endpoint, b through the gateway.
expect_path a http://open-bucket.s3.amazonaws.com/hello.txt 10.0.1.10 vpce-11bb22cc
expect_path b http://open-bucket.s3.amazonaws.com/hello.txt 203.0.113.20
# "All other Internet traffic goes to your Internet gateway, including traffic that's destined
# for [...] Amazon S3 in other regions": a reaches us-west-2's S3 through the gateway.
h=$(get_headers a http://s3.us-west-2.amazonaws.com/)
[ "$(header x-vpcsim-source-ip <<< "$h")" = 203.0.113.10 ] || fail "us-west-2 from a: $h"
ok "a -> s3.us-west-2.amazonaws.com through the internet gateway"
[ "$(in_ns a curl -s -m 5 http://check-ip/)" = 203.0.113.10 ] || fail "check-ip by name"
ok "internet hosts resolve by name"
# DNS support off through the API: the resolver stops answering at once, and the data plane
# counts each query it drops for it in `vpcsim status` (`dns_disabled`).
[ "$(drop_count dns_disabled)" = 0 ] || fail "dns_disabled counted with DNS support on"
awsx ec2 modify-vpc-attribute --vpc-id vpc-111bbb22 --no-enable-dns-support
[ "$(awsx ec2 describe-vpc-attribute --vpc-id vpc-111bbb22 --attribute enableDnsSupport \
    --query EnableDnsSupport.Value)" = false ] || fail "describe-vpc-attribute"
if timeout 20 ip netns exec "$LAB-a" getent hosts s3.amazonaws.com; then fail "answered after modify-vpc-attribute"; fi
if in_ns a dig +short +time=2 +tries=1 @169.254.169.253 s3.amazonaws.com A; then fail "169.254.169.253 answered with DNS support off"; fi
dropped=$(drop_count dns_disabled)
[ "$dropped" -gt 0 ] || fail "queries dropped with DNS support off not counted as dns_disabled"
grep -qE "^ *dns_disabled +$dropped\$" <<< "$("$VPCSIM" status "$LAB")" \
    || fail "vpcsim status does not list dns_disabled $dropped"
ok "DNS support off: $dropped queries counted as dns_disabled"
awsx ec2 modify-vpc-attribute --vpc-id vpc-111bbb22 --enable-dns-support
in_ns a getent hosts s3.amazonaws.com >/dev/null || fail "DNS support back on, no answer"
[ "$(drop_count dns_disabled)" = "$dropped" ] || fail "dns_disabled counted with DNS support back on"
ok "modify-vpc-attribute turns the resolver off and on"
"$VPCSIM" down "$LAB" >/dev/null

# DNS support off: the resolver does not answer.
sed -i 's/^enable_dns_support = true/enable_dns_support = false/' "$WORK/$LAB.toml"
rm -rf "$STATE"; STATE=$(mktemp -d /tmp/vpcsim-state.XXXXXX)
"$VPCSIM" up "$WORK/$LAB.toml" --detach --api-listen "$API" --state-dir "$STATE" >/dev/null || fail "up"
if timeout 20 ip netns exec "$LAB-a" getent hosts s3.amazonaws.com; then fail "answered with DNS support off"; fi
[ "$(drop_count dns_disabled)" -gt 0 ] || fail "lab file with DNS support off: no dns_disabled drop"
ok "enableDnsSupport false: no answer, $(drop_count dns_disabled) queries counted as dns_disabled"
