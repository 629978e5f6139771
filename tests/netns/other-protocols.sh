#!/usr/bin/env bash
# Protocols other than TCP, UDP and ICMP: "For protocols other than TCP, UDP, or ICMP, only the
# IP address and protocol number is tracked. If your instance sends traffic to another host
# (host B), and host B initiates the same type of traffic to your instance [...] within 600
# seconds [...], your instance accepts it regardless of inbound security group rules." A NAT
# gateway translates TCP, UDP and ICMP only.
#
#   b 10.0.2.10 ── 0/0 -> igw (203.0.113.20) ─ internet: 198.51.100.10 (answers protocol 47)
#   d 10.0.4.10 ── 0/0 -> nat (203.0.113.40) ─┘
#
# Every instance has its VPC's default group: all traffic out, in only from the group. Raw
# sockets of protocol 47 (GRE's number; no GRE device needed) on both sides.
source "$(dirname "$0")/lib.sh"
lab_up "$ROOT/netns/demo.toml" proto

# The internet host: answers each protocol-47 packet to its sender, and sends one protocol-50
# packet to 203.0.113.20 first (nobody asked for it: the default group refuses it).
in_ns internet "$PY" - > "$WORK/host.out" <<'PY' &
import socket
esp = socket.socket(socket.AF_INET, socket.SOCK_RAW, 50)
esp.sendto(b"unasked", ("203.0.113.20", 0))
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 47)
s.settimeout(20)
seen = []
try:
    while True:
        pkt, (peer, _) = s.recvfrom(2048)
        body = pkt[(pkt[0] & 15) * 4:]
        seen.append(peer)
        print(peer, body.decode(errors="replace"), flush=True)
        s.sendto(b"pong:" + body, (peer, 0))
except socket.timeout:
    pass
PY
echo $! > "$WORK/host.pid"

# send NS PROTO: sends "ping" with that protocol to the internet host; prints the first answer
# of the same protocol, or "timeout"; also prints "esp" if a protocol-50 packet arrived.
send() {
    in_ns "$1" "$PY" - "$2" <<'PY'
import socket, sys, select
proto = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, proto)
esp = socket.socket(socket.AF_INET, socket.SOCK_RAW, 50)
for _ in range(3):
    s.sendto(b"ping", ("198.51.100.10", 0))
    r, _, _ = select.select([s], [], [], 1)
    if r:
        pkt, (peer, _) = s.recvfrom(2048)
        print(peer, pkt[(pkt[0] & 15) * 4:].decode(errors="replace"))
        break
else:
    print("timeout")
esp.setblocking(False)
try:
    esp.recv(2048)
    print("esp")
except BlockingIOError:
    pass
PY
}

sleep 0.5
got=$(send b 47)
[ "$(status_line "$got")" = "198.51.100.10 pong:ping" ] || fail "b -> protocol 47 through the internet gateway: '$got', expected the host's answer"
ok "b -> protocol 47 out through the internet gateway; the answer comes back (tracked by address and protocol)"
grep -q "^203.0.113.20 ping$" "$WORK/host.out" || fail "the host saw: $(cat "$WORK/host.out")"
ok "the internet host saw b's public IP"
! grep -q esp <<< "$got" || fail "an unsolicited protocol-50 packet reached b"
ok "an unsolicited protocol-50 packet from the internet is refused by the default group"
got=$(send d 47)
[ "$got" = timeout ] || fail "d -> protocol 47 through the NAT gateway: '$got', expected nothing"
! grep -q "^203.0.113.40 " "$WORK/host.out" || fail "protocol 47 left through the NAT gateway"
ok "d -> protocol 47: the NAT gateway translates TCP, UDP and ICMP only"
grep -qE "^ *nat_protocol +[1-9]" <<< "$("$VPCSIM" status "$LAB")" || fail "no nat_protocol drop counted"
ok "counted as nat_protocol"
status=$("$VPCSIM" status "$LAB")
grep -qE "^ *sg_ingress +[1-9]" <<< "$status" || fail "no sg_ingress drop counted: $status"
ok "the refused packet is a counted sg_ingress drop"
