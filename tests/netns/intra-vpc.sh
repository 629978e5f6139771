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
