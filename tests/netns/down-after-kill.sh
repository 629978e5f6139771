#!/usr/bin/env bash
# `up --fresh` of a running lab is refused and moves nothing; `vpcsim down` after `kill -9` of
# the daemon leaves no namespace, no /etc/netns entry, and an unchanged root namespace
# (addresses, routes, links).
source "$(dirname "$0")/lib.sh"
ip -o addr > "$WORK/addr.before"; ip route > "$WORK/route.before"; ip -o link > "$WORK/link.before"
lab_up "$ROOT/netns/demo.toml" k
for ns in a b c aws internet; do ip netns list | grep >/dev/null -cw "$LAB-$ns" || fail "no namespace $LAB-$ns"; done
# `up --fresh` of a lab that is up is refused before it moves the state dir or touches the log.
cp "/run/vpcsim/$LAB.log" "$WORK/log.before"
if out=$("$VPCSIM" up "$WORK/$LAB.toml" --detach --fresh --state-dir "$STATE" 2>&1); then
    fail "a second up --fresh of a running lab succeeded"
fi
grep -q "is already up" <<< "$out" || fail "not 'already up': $out"
[ -e "$STATE/world.json" ] || fail "the running lab's state dir was moved: $(ls -d "$STATE"*)"
cmp -s "/run/vpcsim/$LAB.log" "$WORK/log.before" || fail "the running lab's log was rewritten"
ok "up --fresh of a running lab: refused, state and log untouched"
pid=$(sed -n 's/.*"pid": \([0-9]*\).*/\1/p' "/run/vpcsim/$LAB.json")
kill -9 "$pid"
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
"$VPCSIM" down "$LAB" | grep >/dev/null -c removed || fail "down did not find the lab"
"$VPCSIM" down "$LAB" | grep >/dev/null -c "not up" || fail "down is not idempotent"
if ip netns list | grep >/dev/null -c "^$LAB-"; then fail "namespaces left: $(ip netns list | grep "^$LAB-")"; fi
if ls /etc/netns 2>/dev/null | grep >/dev/null -c "^$LAB-"; then fail "/etc/netns entries left"; fi
[ ! -e "/run/vpcsim/$LAB.json" ] || fail "run record left"
ip -o addr | diff "$WORK/addr.before" - || fail "root addresses changed"
ip route | diff "$WORK/route.before" - || fail "root routes changed"
ip -o link | diff "$WORK/link.before" - || fail "root links changed"
LAB=""
ok "kill -9 then down: nothing left, root namespace unchanged"
