#!/usr/bin/env bash
# NAT: the private subnet d reaches the internet and S3 through the NAT gateway in b, showing
# the gateway's Elastic IP; the guide's longest-prefix rule holds for NAT routes as for the
# internet gateway; Elastic IPs, NAT gateways and NAT instances through the real AWS CLI.
#
#   d 10.0.4.10 ── 0.0.0.0/0 -> nat-0b0b0b0b (in b: 10.0.2.40, EIP 203.0.113.40) ── b's table:
#                  0.0.0.0/0 -> igw ── internet (198.51.100.10) / aws (S3)
source "$(dirname "$0")/lib.sh"
lab_up "$ROOT/netns/demo.toml" nat

# The issue's acceptance line: `ip netns exec demo-d curl -s http://198.51.100.10/` prints the
# NAT gateway's public IP.
seen=$(in_ns d curl -s -m 10 http://198.51.100.10/)
[ "$seen" = 203.0.113.40 ] || fail "d -> internet: the host saw '$seen', expected 203.0.113.40"
ok "d -> http://198.51.100.10/: the internet sees the NAT gateway's 203.0.113.40"
# A NAT gateway answers a segment of a connection it does not know with an RST (AWS: "When a
# connection times out, a NAT gateway returns an RST packet to any resources behind the NAT
# gateway that attempt to continue the connection"). Its table is lost here by restarting the
# daemon (the kernel's sockets live on), which stands for the 350 s idle timeout.
in_ns d "$PY" - "$WORK" <<'PY' > "$WORK/natrst.out" 2>&1 &
import os, socket, sys, time
work = sys.argv[1]
s = socket.create_connection(("198.51.100.10", 80), timeout=10)
open(f"{work}/natrst.ready", "w").close()
for _ in range(600):
    if os.path.exists(f"{work}/natrst.go"):
        break
    time.sleep(0.05)
s.sendall(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
try:
    data = s.recv(100)
    print("answered" if data else "closed")
except ConnectionResetError:
    print("reset")
except socket.timeout:
    print("timeout")
PY
echo $! > "$WORK/natrst.pid"
for _ in $(seq 100); do [ -e "$WORK/natrst.ready" ] && break; sleep 0.05; done
[ -e "$WORK/natrst.ready" ] || fail "no connection through the NAT gateway"
kill_daemon
"$VPCSIM" up "$WORK/$LAB.toml" --detach --api-listen "$API" --state-dir "$STATE" >/dev/null \
    || fail "did not resume"
touch "$WORK/natrst.go"
wait "$(cat "$WORK/natrst.pid")" || true
rm -f "$WORK/natrst.pid"
[ "$(cat "$WORK/natrst.out")" = reset ] || fail "a forgotten connection: $(cat "$WORK/natrst.out")"
"$VPCSIM" status "$LAB" --json | grep -A1 '"nat_reset"' | tail -n1 | grep >/dev/null -cv '^ *0$' \
    || fail "nat_reset not counted"
ok "the NAT gateway resets a connection it no longer knows (nat_reset)"

expect_path d http://open-bucket.s3.amazonaws.com/hello.txt 203.0.113.40
# The AWS CLI in d, unchanged (names through the VPC resolver, HTTPS with the lab CA), through
# the NAT gateway.
[ "$(AWS_CA_BUNDLE="$STATE/tls/ca.pem" in_ns d "$AWS_BIN" s3 cp s3://open-bucket/hello.txt - --region us-east-1)" \
    = "Hello from open-bucket" ] || fail "aws s3 cp in d through the NAT gateway"
ok "aws s3 cp s3://open-bucket/hello.txt - in d, through the NAT gateway"
# A private instance has no public IP of its own: nothing reaches it from outside.
if in_ns internet curl -s -m 3 -o /dev/null http://203.0.113.40:80/; then
    fail "the internet opened a connection through the NAT gateway"
fi
ok "nothing comes in through the NAT gateway unasked"

# The endpoint in d's table: S3 now goes through the endpoint (prefix list beats 0.0.0.0/0).
awsx ec2 modify-vpc-endpoint --vpc-endpoint-id vpce-11bb22cc --add-route-table-ids rtb-0d0d0d0d >/dev/null
expect_path d http://54.123.170.5/open-bucket/hello.txt 10.0.4.10 vpce-11bb22cc
# A more specific route to the NAT beats the prefix-list route, as for an internet gateway
# (the guide's example 2, with a NAT).
awsx ec2 create-route --route-table-id rtb-0d0d0d0d --destination-cidr-block 54.123.165.0/24 \
    --nat-gateway-id nat-0b0b0b0b >/dev/null
expect_path d http://54.123.165.7/open-bucket/hello.txt 203.0.113.40
expect_path d http://54.123.170.5/open-bucket/hello.txt 10.0.4.10 vpce-11bb22cc
awsx ec2 describe-route-tables --route-table-ids rtb-0d0d0d0d \
    --query "RouteTables[0].Routes[?DestinationCidrBlock=='54.123.165.0/24'].NatGatewayId" \
    --output text | grep >/dev/null -cx nat-0b0b0b0b || fail "describe-route-tables: no NatGatewayId"
ok "describe-route-tables shows the NAT route"

# Elastic IPs and a second NAT gateway through the CLI, in subnet a.
alloc=$(awsx ec2 allocate-address --domain vpc --query AllocationId --output text)
eip=$(awsx ec2 describe-addresses --allocation-ids "$alloc" --query 'Addresses[0].PublicIp' --output text)
nat=$(awsx ec2 create-nat-gateway --subnet-id subnet-0a0a0a0a --allocation-id "$alloc" \
    --query NatGateway.NatGatewayId --output text)
[ "$(awsx ec2 describe-nat-gateways --nat-gateway-ids "$nat" --query 'NatGateways[0].State' --output text)" = available ] \
    || fail "describe-nat-gateways: $nat is not available"
expect_error InvalidIPAddress.InUse ec2 release-address --allocation-id "$alloc"
awsx ec2 replace-route --route-table-id rtb-0d0d0d0d --destination-cidr-block 0.0.0.0/0 --nat-gateway-id "$nat"
seen=$(in_ns d curl -s -m 10 http://198.51.100.10/)
[ "$seen" = "$eip" ] || fail "through $nat the internet saw '$seen', expected $eip"
ok "allocate-address + create-nat-gateway in a: the internet sees $eip"

# A connection through a NAT gateway is reset when the gateway goes away; the route then is a
# blackhole.
in_ns d curl -sS -m 30 "http://198.51.100.10/stream?seconds=20" -o /dev/null 2> "$WORK/st.err" &
st=$!
sleep 1
awsx ec2 delete-nat-gateway --nat-gateway-id "$nat" >/dev/null
rc=0; wait $st || rc=$?
[ "$rc" = 56 ] || fail "the stream through the deleted NAT ended with $rc, expected 56: $(cat "$WORK/st.err")"
ok "delete-nat-gateway resets the connections through it: $(cat "$WORK/st.err")"
awsx ec2 describe-route-tables --route-table-ids rtb-0d0d0d0d \
    --query "RouteTables[0].Routes[?DestinationCidrBlock=='0.0.0.0/0'].State" --output text \
    | grep >/dev/null -cx blackhole || fail "the route to the deleted NAT gateway is not a blackhole"
expect_unreachable d http://198.51.100.10/
awsx ec2 release-address --allocation-id "$alloc"

# A NAT instance: the instance in b, once its source/destination check is off.
awsx ec2 replace-route --route-table-id rtb-0d0d0d0d --destination-cidr-block 0.0.0.0/0 --instance-id i-0b0b0b0b
expect_unreachable d http://198.51.100.10/
awsx ec2 modify-instance-attribute --instance-id i-0b0b0b0b --no-source-dest-check
seen=$(in_ns d curl -s -m 10 http://198.51.100.10/)
[ "$seen" = 203.0.113.20 ] || fail "through the NAT instance the internet saw '$seen'"
ok "NAT instance i-0b0b0b0b (source/dest check off): the internet sees 203.0.113.20"
st=$("$VPCSIM" status "$LAB")
grep -Eq "source_dest_check +[1-9]" <<< "$st" || fail "status: no source_dest_check drop: $st"
ok "vpcsim status counts the source/destination-check drops"

# An Elastic IP as an instance's public IP: associate-address replaces a's 203.0.113.10, which
# EC2 assigned at launch; after disassociate-address a has a new public IP of EC2's (EC2 User
# Guide: "If you disassociate an EIP from the instance, the instance is automatically assigned a
# new public IP address within a few minutes"; the lab assigns it at once). d, launched without
# one, is left without.
alloc=$(awsx ec2 allocate-address --domain vpc --query AllocationId --output text)
eip=$(awsx ec2 describe-addresses --allocation-ids "$alloc" --query 'Addresses[0].PublicIp' --output text)
assoc=$(awsx ec2 associate-address --allocation-id "$alloc" --instance-id i-0a0a0a0a --query AssociationId --output text)
public_of() {
    awsx ec2 describe-instances --instance-ids "$1" --output text \
        --query 'Reservations[0].Instances[0].[PublicIpAddress, NetworkInterfaces[0].Association.IpOwnerId]'
}
[ "$(public_of i-0a0a0a0a)" = "$eip"$'\t'123456789012 ] || fail "describe-instances: $(public_of i-0a0a0a0a), expected $eip"
seen=$(in_ns a curl -s -m 10 http://198.51.100.10/)
[ "$seen" = "$eip" ] || fail "a with Elastic IP $eip: the internet saw '$seen'"
ok "associate-address: a's traffic to the internet leaves as $eip"
expect_error Resource.AlreadyAssociated ec2 associate-address --allocation-id "$alloc" --instance-id i-0c0c0c0c
awsx ec2 disassociate-address --association-id "$assoc"
read -r new owner <<< "$(public_of i-0a0a0a0a)"
[ "$owner" = amazon ] && [ "$new" != None ] && [ "$new" != "$eip" ] && [ "$new" != 203.0.113.10 ] \
    || fail "after disassociate-address a has '$new' (owner '$owner'), expected a new address of amazon's"
seen=$(in_ns a curl -s -m 10 http://198.51.100.10/)
[ "$seen" = "$new" ] || fail "a after disassociate-address: the internet saw '$seen', expected $new"
[ "$(awsx ec2 describe-addresses --allocation-ids "$alloc" --query 'Addresses[0].InstanceId' --output text)" = None ] \
    || fail "describe-addresses: $alloc still names an instance"
ok "disassociate-address: a gets the new public IP $new (owner amazon), and the internet sees it"
assoc=$(awsx ec2 associate-address --allocation-id "$alloc" --instance-id i-0d0d0d0d --query AssociationId --output text)
awsx ec2 disassociate-address --association-id "$assoc"
[ "$(public_of i-0d0d0d0d)" = $'None\tNone' ] || fail "d after disassociate-address: $(public_of i-0d0d0d0d)"
ok "disassociate-address: d, launched without a public IP, has none"
awsx ec2 release-address --allocation-id "$alloc"
expect_error InvalidAllocationID.NotFound ec2 describe-addresses --allocation-ids "$alloc"
ok "release-address"
