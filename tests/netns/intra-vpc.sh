#!/usr/bin/env bash
# TCP between subnets over the local route: iperf3 from a to b, both directions, and the
# server sees the client's private address (no NAT inside the VPC).
#
#   a 10.0.1.10 ── local (10.0.0.0/16) ── b 10.0.2.10 (iperf3 -s)
source "$(dirname "$0")/lib.sh"
lab_up "$ROOT/netns/demo.toml" v

in_ns b iperf3 -s -1 -B 10.0.2.10 --logfile "$WORK/server.log" &
for _ in $(seq 100); do in_ns b ss -ltn | grep >/dev/null -c ':5201' && break; sleep 0.05; done
in_ns a iperf3 -c 10.0.2.10 -n 20M -J > "$WORK/client.json" || fail "iperf3 a -> b"
wait
grep -q "\"sum_received\"" "$WORK/client.json" || fail "no iperf3 result"
grep -q "Accepted connection from 10.0.1.10" "$WORK/server.log" || fail "server did not see 10.0.1.10: $(cat "$WORK/server.log")"
ok "a -> b: 20 MB over TCP, the server saw 10.0.1.10"
# A host address with no instance is dropped (no_instance).
expect_unreachable a http://10.0.2.99/

# To another instance's *public* IP: out through the internet gateway and back in, as in AWS
# (the internet namespace sends the lab's public IPs back), arriving from a's public IP. So b's
# default security group, which admits its members by their private IPs, refuses it until a
# rule admits 203.0.113.10 (EC2: a rule naming a security group matches traffic over private
# addresses only).
#
#   a 10.0.1.10 ── igw (203.0.113.10) ── internet ── igw (203.0.113.20) ── b 10.0.2.10
in_ns b python3 -m http.server 8080 --bind 10.0.2.10 > "$WORK/http.log" 2>&1 &
echo $! > "$WORK/http.pid"
for _ in $(seq 100); do in_ns b ss -ltn | grep >/dev/null -c ':8080' && break; sleep 0.05; done
sg_ingress() { "$VPCSIM" status "$LAB" --json | grep -A1 '"sg_ingress"' | tail -n1 | tr -dc 0-9; }
before=$(sg_ingress)
if in_ns a curl -s -m 3 -o /dev/null http://203.0.113.20:8080/; then
    fail "b's public IP was reached from a's public IP without a rule admitting it"
fi
[ "$(sg_ingress)" -gt "$before" ] || fail "the hairpin packet was not refused by b's security group"
awsx ec2 authorize-security-group-ingress --group-id sg-111bbb22 --protocol tcp --port 8080 \
    --cidr 203.0.113.10/32 >/dev/null
in_ns a curl -sf -m 10 -o /dev/null http://203.0.113.20:8080/ || fail "a -> b's public IP"
grep -q '^203.0.113.10 ' "$WORK/http.log" || fail "b did not see a's public IP: $(cat "$WORK/http.log")"
ok "a -> b's public IP: out through the internet gateway and back, b saw 203.0.113.10"

# Security-group connection tracking inside the VPC (EC2 user guide, "Security group connection
# tracking"): b alone in a group that allows all traffic in from and out to 0.0.0.0/0 does not
# track its flows, so revoking its inbound rule cuts c's open connection at the next packet
# ("An untracked flow of traffic is immediately interrupted if the rule that enables the flow
# is removed or modified"), as it would one from the internet. c's side (the default group)
# is tracked: b's answers would still reach it.
#
#   c 10.0.3.10 ── local ── b 10.0.2.10 (echo on 9000; group "open": all in, all out)
open=$(awsx ec2 create-security-group --group-name open --description open --vpc-id vpc-111bbb22 \
    --query GroupId --output text)
all='IpProtocol=-1,IpRanges=[{CidrIp=0.0.0.0/0}]'
awsx ec2 authorize-security-group-ingress --group-id "$open" --ip-permissions "$all" >/dev/null
awsx ec2 modify-instance-attribute --instance-id i-0b0b0b0b --groups "$open"
in_ns b "$PY" -c '
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.0.2.10", 9000))
s.listen()
while True:  # until the cleanup kills it (lib.sh: a pid file of a process gone fails it)
    c, _ = s.accept()
    while (d := c.recv(100)):
        c.sendall(d)
' > "$WORK/echo.log" 2>&1 &
echo $! > "$WORK/echo.pid"
for _ in $(seq 100); do in_ns b ss -ltn | grep >/dev/null -c ':9000' && break; sleep 0.05; done
in_ns c "$PY" - "$WORK" <<'PY' > "$WORK/echoc.out" 2>&1 &
import os, socket, sys, time
work = sys.argv[1]
s = socket.create_connection(("10.0.2.10", 9000), timeout=5)
s.sendall(b"one")
print(s.recv(10).decode(), flush=True)
open(f"{work}/echoc.ready", "w").close()
for _ in range(600):
    if os.path.exists(f"{work}/echoc.go"):
        break
    time.sleep(0.05)
s.settimeout(3)
s.sendall(b"two")
try:
    print(s.recv(10).decode() or "closed")
except socket.timeout:
    print("timeout")
except ConnectionResetError:
    print("reset")
PY
echo $! > "$WORK/echoc.pid"
for _ in $(seq 100); do [ -e "$WORK/echoc.ready" ] && break; sleep 0.05; done
[ -e "$WORK/echoc.ready" ] || fail "c -> b:9000: no connection: $(cat "$WORK/echoc.out")"
before=$(drop_count sg_ingress)
awsx ec2 revoke-security-group-ingress --group-id "$open" --ip-permissions "$all" >/dev/null
touch "$WORK/echoc.go"
wait "$(cat "$WORK/echoc.pid")" || true
rm -f "$WORK/echoc.pid"
[ "$(cat "$WORK/echoc.out")" = $'one\ntimeout' ] \
    || fail "c's untracked connection to b after the revoke: $(cat "$WORK/echoc.out")"
[ "$(drop_count sg_ingress)" -gt "$before" ] || fail "the cut segments were not counted as sg_ingress"
ok "revoking b's all-traffic inbound rule cuts c's open connection to it at once (sg_ingress)"
