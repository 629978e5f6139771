#!/usr/bin/env bash
# A bad lab file is refused with the line and the field, before anything is created; so is a
# control API address off the loopback.
source "$(dirname "$0")/lib.sh"
LAB="t$$bad"; [ -z "${VPCSIM_TEST_LABS:-}" ] || echo "$LAB" >> "$VPCSIM_TEST_LABS"
sed "0,/^name = .*/s//name = \"$LAB\"/" "$ROOT/netns/demo.toml" > "$WORK/bad.toml"
printf '\n[[route_table]]\nid = "rtb-0e0e0e0e"\nvpc = "vpc-111bbb22"\nroutes = [{ destination = "pl-1a2b3c4d", target = "vpce-11bb22cc" }]\n' >> "$WORK/bad.toml"
line=$(grep -n 'destination = "pl-1a2b3c4d"' "$WORK/bad.toml" | cut -d: -f1)
if out=$("$VPCSIM" up "$WORK/bad.toml" --detach 2>&1); then fail "a bad lab file came up"; fi
grep -q "bad.toml:$line: route_table\[4\].routes\[0\].destination" <<< "$out" || fail "no line/field: $out"
grep -q "You can only add an endpoint route by associating a route table with an endpoint" <<< "$out" \
    || fail "not the guide's sentence: $out"
if ip netns list | grep >/dev/null -c "^$LAB-"; then fail "namespaces were created"; fi
ok "refused: $out"
# The control API listens on the loopback only: any other address is refused, before anything
# is created.
sed "0,/^name = .*/s//name = \"$LAB\"/" "$ROOT/netns/demo.toml" > "$WORK/good.toml"
if out=$("$VPCSIM" up "$WORK/good.toml" --detach --api-listen 0.0.0.0:4599 \
    --state-dir "$WORK/state" 2>&1); then
    fail "a lab came up with its API on 0.0.0.0"
fi
grep -q "loopback address only" <<< "$out" || fail "not the loopback error: $out"
if ip netns list | grep >/dev/null -c "^$LAB-"; then fail "namespaces were created"; fi
[ ! -e "/run/vpcsim/$LAB.json" ] && [ ! -e "$WORK/state" ] || fail "a run record or state was made"
LAB=""
ok "refused: $out"
