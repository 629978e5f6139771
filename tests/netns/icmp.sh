#!/usr/bin/env bash
# ICMP errors come back along their flow (RFC 5508), a 3000-byte ping's fragments follow their
# first fragment (and a NAT gateway drops ICMP fragments, as on AWS), martian destinations
# stay in the VPC, and only a NAT is a hop: a ping with TTL 1 crosses the endpoint and the
# internet gateway (the VPC router does not decrement the TTL), not the NAT gateway.
#
#   a 10.0.1.10 ── pl -> vpce ─────────────── aws: 54.123.170.5 (no UDP port 9: unreachable)
#   b 10.0.2.10 ── 0/0 -> igw (203.0.113.20) ─ internet: 198.51.100.10 (no UDP port 9)
#   d 10.0.4.10 ── 0/0 -> nat (203.0.113.40) ─┘
#   c 10.0.3.10 ── no route to the internet: nothing comes back
#
# A UDP socket learns that nobody listens (ECONNREFUSED) only from the port-unreachable error
# the remote kernel sends, quoting the datagram as it arrived (from the public IP, the NAT's
# address and port, or the private IP through the endpoint).
source "$(dirname "$0")/lib.sh"
lab_up "$ROOT/netns/demo.toml" icmp

# udp_answer NS HOST: sends to HOST:9 a few times; prints "refused" or "timeout".
udp_answer() {
    in_ns "$1" "$PY" - "$2" <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1)
s.connect((sys.argv[1], 9))
for _ in range(3):
    s.send(b"x")
    try:
        s.recv(16)
    except ConnectionRefusedError:
        print("refused")
        break
    except socket.timeout:
        pass
else:
    print("timeout")
PY
}

for path in "b 198.51.100.10 internet gateway" "d 198.51.100.10 NAT gateway" "a 54.123.170.5 endpoint"; do
    read -r ns host how <<< "$path"
    got=$(udp_answer "$ns" "$host")
    [ "$got" = refused ] || fail "$ns -> $host:9 through the $how: $got, expected ECONNREFUSED"
    ok "$ns -> udp $host:9 through the $how: the port-unreachable error reaches the socket"
done
# The other way (RFC 5508 REQ-3): an instance's own port unreachable, about an answer that came
# in through the internet gateway or the NAT gateway, goes out translated, so the internet host's
# connected socket learns of it. The instance sends from port 5555 and closes the socket after
# the first answer; the host answers again a second later.
for path in "b internet gateway" "d NAT gateway"; do
    read -r ns how <<< "$path"
    in_ns internet "$PY" - > "$WORK/responder.out" <<'PY' &
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("198.51.100.10", 7777))
s.settimeout(10)
_, peer = s.recvfrom(16)
s.connect(peer)
s.send(b"1")
time.sleep(1)
s.send(b"2")
s.settimeout(3)
try:
    s.recv(16)
    print("answered")
except ConnectionRefusedError:
    print("refused")
except socket.timeout:
    print("timeout")
PY
    responder=$!
    sleep 0.5
    in_ns "$ns" "$PY" - <<'PY' || fail "$ns: no first answer from the internet host"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 5555))
s.settimeout(5)
s.sendto(b"0", ("198.51.100.10", 7777))
s.recv(16)
s.close()
PY
    wait "$responder"
    got=$(cat "$WORK/responder.out")
    [ "$got" = refused ] || fail "$ns's port unreachable through the $how: the internet host got $got, expected ECONNREFUSED"
    ok "$ns's own port unreachable goes out through the $how translated: the internet host's socket is refused"
done

got=$(udp_answer c 198.51.100.10)
[ "$got" = timeout ] || fail "c has no route to the internet, yet: $got"
ok "c -> udp 198.51.100.10:9: no route, no answer"

# Pings of 3000 bytes leave (and come back) in three fragments each.
in_ns a ping -c 1 -W 3 -s 3000 198.51.100.10 >/dev/null || fail "a: 3000-byte ping through the internet gateway"
in_ns a ping -c 1 -W 3 -s 3000 54.123.170.5 >/dev/null || fail "a: 3000-byte ping through the endpoint"
ok "a -> 3000-byte pings through the internet gateway and the endpoint: every fragment follows its first"
in_ns d ping -c 1 -W 3 -s 100 198.51.100.10 >/dev/null || fail "d: a small ping through the NAT gateway"
if in_ns d ping -c 1 -W 2 -s 3000 198.51.100.10 >/dev/null; then
    fail "d: a fragmented ping crossed the NAT gateway"
fi
ok "d -> a 3000-byte ping through the NAT gateway is dropped (it forwards UDP fragments only)"

# count REASON: a drop counter from vpcsim status.
count() { "$VPCSIM" status "$LAB" --json | grep -A1 "\"$1\"" | tail -n1 | tr -dc 0-9; }
before=$(count martian)
in_ns a "$PY" - <<'PY'
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
for dst in ("255.255.255.255", "239.1.2.3", "169.254.169.254"):
    s.sendto(b"x", (dst, 9))
PY
for _ in $(seq 50); do [ "$(count martian)" -ge $((before + 3)) ] && break; sleep 0.1; done
[ "$(count martian)" -ge $((before + 3)) ] || fail "martian drops: $(count martian), expected $((before + 3))"
ok "a -> broadcast, multicast, link-local: dropped as martian, not sent to the internet gateway"

# TTL: the VPC router, the internet gateway and an endpoint leave it alone ("those
# intermediate VPC gateways are not decrementing the TTL values"); a NAT gateway is a hop.
in_ns a ping -c 1 -W 3 -t 1 54.123.170.5 >/dev/null || fail "a: a TTL-1 ping through the endpoint"
in_ns b ping -c 1 -W 3 -t 1 198.51.100.10 >/dev/null || fail "b: a TTL-1 ping through the internet gateway"
ok "a, b -> TTL-1 pings through the endpoint and the internet gateway: no hop on the way"
before=$(count ttl_exceeded)
if out=$(in_ns d ping -c 1 -W 2 -t 1 198.51.100.10 2>&1); then
    fail "d: a TTL-1 ping crossed the NAT gateway"
fi
# RFC 792: the hop that drops it answers Time Exceeded, from the NAT gateway's private IP.
grep -q "From 10.0.2.40 .*Time to live exceeded" <<< "$out" || fail "d: no time exceeded from the NAT gateway: $out"
[ "$(count ttl_exceeded)" -ge $((before + 1)) ] || fail "ttl_exceeded drops: $(count ttl_exceeded), expected $((before + 1))"
in_ns d ping -c 1 -W 3 -t 2 198.51.100.10 >/dev/null || fail "d: a TTL-2 ping through the NAT gateway"
ok "d -> a TTL-1 ping is dropped at the NAT gateway (ttl_exceeded) with a Time Exceeded from 10.0.2.40, a TTL-2 one gets through"
