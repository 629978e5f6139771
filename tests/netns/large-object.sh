#!/usr/bin/env bash
# A 100 MB PUT then GET through the endpoint: identical sha256, and the object is on disk.
#
#   a 10.0.1.10 ── pl-1a2b3c4d -> vpce-11bb22cc ── aws: S3 stub (my-secure-bucket)
source "$(dirname "$0")/lib.sh"
lab_up "$ROOT/netns/demo.toml" l

head -c 100000000 /dev/urandom > "$WORK/big.bin"
want=$(sha256sum < "$WORK/big.bin" | cut -d' ' -f1)
code=$(in_ns a curl -s -m 300 -T "$WORK/big.bin" -o /dev/null -w '%{http_code}' \
    http://54.123.170.5/my-secure-bucket/big.bin)
[ "$code" = 200 ] || fail "PUT answered $code"
got=$(in_ns a curl -s -m 300 http://54.123.170.5/my-secure-bucket/big.bin | sha256sum | cut -d' ' -f1)
[ "$got" = "$want" ] || fail "sha256 differs: $got != $want"
ok "100 MB PUT + GET through the endpoint: sha256 $want"
# Acknowledged means durable: the daemon is killed, the object is still there after a restart.
kill_daemon
"$VPCSIM" down "$LAB" >/dev/null
"$VPCSIM" up "$WORK/$LAB.toml" --detach --api-listen "$API" --state-dir "$STATE" >/dev/null || fail "restart"
got=$(in_ns a curl -s -m 300 http://54.123.170.5/my-secure-bucket/big.bin | sha256sum | cut -d' ' -f1)
[ "$got" = "$want" ] || fail "after kill -9: sha256 $got"
ok "the object survived kill -9"
