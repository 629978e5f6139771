#!/usr/bin/env bash
# The internet gateway carries at most 1500 bytes per IP packet, jumbo frames (9001) work inside
# the VPC. EC2 user guide: "traffic is limited to a maximum MTU of 1500 in the following cases:
# Traffic over an internet gateway ... If packets are over 1500 bytes, they are fragmented, or
# they are dropped if the Don't Fragment flag is set in the IP header"; the VPC guide's path MTU
# discovery: the device "drops the packet, and then returns [...] Destination Unreachable:
# Fragmentation Needed and Don't Fragment was Set (Type 3, Code 4)".
#
#   a 10.0.1.10 (mtu 9001) ── local ──────────── c 10.0.3.10 (mtu 9001): 9001 passes
#   a, b (mtu 9001) ── 0/0 -> igw, 1500 ───────── internet: 198.51.100.10 (mtu 9001)
#   b 10.0.2.10 (203.0.113.20) ── igw, 1500 ───── aws: S3 stub 54.123.170.5 (mtu 9001)
#
# Every namespace but d is set to MTU 9001, so both ends of a TCP connection through the gateway
# offer an MSS of 8961 and only path MTU discovery brings it down to 1500.
source "$(dirname "$0")/lib.sh"
lab_up "$ROOT/netns/demo.toml" mtu

for ns in a b c internet aws; do in_ns "$ns" ip link set vpcsim0 mtu 9001; done
# count REASON: a drop counter from vpcsim status (0 if it has none such).
count() {
    local n
    n=$({ "$VPCSIM" status "$LAB" --json | grep -A1 "\"$1\"" || true; } | tail -n1 | tr -dc 0-9)
    echo "${n:-0}"
}
before=$(count mtu)

# Without DF: cut into fragments at the gateway, both ways (the host's 8028-byte reply too).
in_ns b ping -c 2 -W 3 -M dont -s 8000 198.51.100.10 >/dev/null \
    || fail "b: an 8000-byte ping without DF through the internet gateway"
ok "b -> 8000-byte ping without DF through the internet gateway: fragmented, answered"

# With DF: dropped, and b learns the path MTU from the Fragmentation Needed.
if out=$(in_ns b ping -c 2 -W 2 -M do -s 8000 198.51.100.10 2>&1); then
    fail "b: an 8000-byte DF ping crossed the internet gateway: $out"
fi
grep -q "mtu = 1500" <<< "$out" || fail "b: no Fragmentation Needed (mtu = 1500): $out"
route=$(in_ns b ip route get 198.51.100.10)
grep -q "mtu 1500" <<< "$route" || fail "b: no path MTU learnt: $route"
[ "$(count mtu)" -ge $((before + 1)) ] || fail "mtu drops: $(count mtu), expected > $before"
ok "b -> 8000-byte DF ping: Fragmentation Needed (mtu = 1500), path MTU cached, counted as mtu"

# TCP through the gateway, with an MSS of 8961 on both ends: a's TSO superpackets are refused,
# a learns 1500 and the upload completes.
in_ns internet "$PY" - > "$WORK/sink.out" <<'PY' &
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("198.51.100.10", 7070))
s.listen(1)
s.settimeout(20)
c, _ = s.accept()
n = 0
while True:
    b = c.recv(65536)
    if not b:
        break
    n += len(b)
print(n)
PY
sink=$!
sleep 0.5
in_ns a "$PY" - <<'PY' || fail "a: upload to the internet host"
import socket
s = socket.create_connection(("198.51.100.10", 7070), timeout=20)
s.sendall(b"x" * 4_000_000)
s.close()
PY
wait "$sink"
[ "$(cat "$WORK/sink.out")" = 4000000 ] || fail "the internet host got $(cat "$WORK/sink.out") bytes"
route=$(in_ns a ip route get 198.51.100.10)
grep -q "mtu 1500" <<< "$route" || fail "a: no path MTU learnt by TCP: $route"
ok "a -> 4 MB over TCP to the internet host with MTU 9001: path MTU discovery, a caches mtu 1500"

# A large object from S3 through the internet gateway: the stub's superpackets are refused on
# their way in, the Fragmentation Needed goes to it from b's public IP.
head -c 3000000 /dev/urandom > "$WORK/big.bin"
want=$(sha256sum < "$WORK/big.bin" | cut -d' ' -f1)
s3_put_admin open-bucket big.bin "$WORK/big.bin"
got=$(in_ns b curl -s -m 30 http://54.123.170.5/open-bucket/big.bin | sha256sum | cut -d' ' -f1)
[ "$got" = "$want" ] || fail "b: GET of 3 MB through the internet gateway: sha256 $got"
route=$(in_ns aws ip route get 203.0.113.20)
grep -q "mtu 1500" <<< "$route" || fail "aws: no path MTU learnt towards b's public IP: $route"
ok "b -> 3 MB GET from S3 through the internet gateway with MTU 9001: sha256 matches, S3 learnt mtu 1500"

# Inside the VPC jumbo frames pass: a -> c, 8000 bytes with DF.
in_ns a ping -c 2 -W 3 -M do -s 8000 10.0.3.10 >/dev/null || fail "a -> c: an 8000-byte DF ping"
ok "a -> c: 8000-byte DF ping on the local route"
grep -qE "^ *mtu +[1-9]" <<< "$("$VPCSIM" status "$LAB")" || fail "vpcsim status shows no mtu drops"
ok "vpcsim status: mtu $(count mtu)"
