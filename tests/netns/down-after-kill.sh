#!/usr/bin/env bash
# `up --fresh` of a running lab is refused and moves nothing, and so is another lab on its state
# dir; of two `up`s of a lab at once one wins and the other changes nothing; after `kill -9`,
# `up --fresh` on a busy API port moves nothing, and a resumed or fresh `up` reattaches without
# the crashed run's stray addresses and routes, keeping the crashed run's log as <lab>.log.1;
# `vpcsim down` after `kill -9` of the daemon leaves no namespace, no /etc/netns entry, no file
# in /run/vpcsim, and an unchanged root namespace (addresses, routes, links); a world.json that
# is valid JSON but names a route table that does not exist is refused, naming the file and the
# field, and changes nothing; after the crash, an `up` over a namespace that is not the crashed
# run's is refused and leaves it and the crashed run's log as they were.
#
#   lab t<pid>k (the default lab): a b c d aws internet, state in $STATE
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
# Another lab on the running lab's state dir, with --fresh: refused before anything moves.
OTHER="${LAB}o"
sed "0,/^name = .*/s//name = \"$OTHER\"/" "$ROOT/netns/demo.toml" > "$WORK/other.toml"
if out=$("$VPCSIM" up "$WORK/other.toml" --detach --fresh --state-dir "$STATE" \
    --api-listen "127.0.0.1:$((20000 + ($$ + 7) % 20000))" 2>&1); then
    "$VPCSIM" down "$OTHER" >/dev/null 2>&1
    fail "another lab came up on a running lab's state dir"
fi
grep -q "state dir $STATE is in use by lab $LAB" <<< "$out" || fail "not 'in use': $out"
[ -e "$STATE/world.json" ] || fail "the running lab's state dir was moved: $(ls -d "$STATE"*)"
! ls -d "$STATE".old-* >/dev/null 2>&1 || fail "a state dir was moved aside"
if ip netns list | grep >/dev/null -c "^$OTHER-"; then fail "the other lab made namespaces"; fi
! ls /run/vpcsim/"$OTHER".* >/dev/null 2>&1 || fail "left: $(ls /run/vpcsim/"$OTHER".*)"
"$VPCSIM" status "$LAB" >/dev/null || fail "the running lab is lost"
ok "another lab on a running lab's state dir: refused, nothing moved"
# A lab name is checked as `up` checks it: a file name is not a lab.
if out=$("$VPCSIM" down "$WORK/$LAB.toml" 2>&1); then fail "down of a file name succeeded: $out"; fi
grep -q "invalid lab name" <<< "$out" || fail "not 'invalid lab name': $out"
if "$VPCSIM" down '' >/dev/null 2>&1; then fail "down '' succeeded"; fi
ok "down of a file name or '': refused"
kill_daemon
# After the crash, `up` takes over the crashed run's namespaces only: another lab's namespace
# whose name this run's world also makes (subnet `z-a` of this lab and subnet `a` of a lab
# named `<lab>-z` are both `<lab>-z-a`) is refused, as on a first `up`, and left as it was.
FOREIGN="$LAB-z-a"; OWN_NS+=("$FOREIGN"); ip netns add "$FOREIGN"
sed -e 's/^name = "d"$/name = "z-a"/' -e 's/^subnet = "d"$/subnet = "z-a"/' \
    "$WORK/$LAB.toml" > "$WORK/za.toml"
grep -q '^name = "z-a"' "$WORK/za.toml" || fail "no subnet z-a in the test's lab file"
if out=$("$VPCSIM" up "$WORK/za.toml" --detach --fresh --state-dir "$WORK/za-state" \
    --api-listen "$API" 2>&1); then
    fail "up over another lab's namespace succeeded"
fi
grep -q "namespace $FOREIGN already exists and is not this lab's" <<< "$out" || fail "not refused: $out"
[ -z "$(ip -n "$FOREIGN" -o link show dev vpcsim0 2>/dev/null)" ] || fail "$FOREIGN got a TUN device"
[ -e "/run/vpcsim/$LAB.json" ] || fail "the crashed run's record was lost"
grep -q "ready:" "/run/vpcsim/$LAB.log" || fail "the crashed run's log was moved: $(ls /run/vpcsim/"$LAB".*)"
grep -q "not this lab's" "/run/vpcsim/$LAB.log.failed" || fail "no log of the failed up"
ip netns del "$FOREIGN"
ok "after a crash, up over another lab's namespace: refused, the namespace untouched"
# `--fresh` on a busy API port fails before the state dir is moved.
BUSY=$((20000 + ($$ + 11) % 20000))
"$PY" -c "import socket, time
s = socket.socket(); s.bind(('127.0.0.1', $BUSY)); s.listen(); time.sleep(120)" &
echo $! > "$WORK/busy.pid"
for _ in $(seq 100); do ss -ltn | grep >/dev/null -c "127.0.0.1:$BUSY " && break; sleep 0.05; done
if out=$("$VPCSIM" up "$WORK/$LAB.toml" --fresh --state-dir "$STATE" --api-listen "127.0.0.1:$BUSY" 2>&1); then
    fail "up on a busy port succeeded"
fi
grep -q "binding the control API" <<< "$out" || fail "not the bind error: $out"
[ -e "$STATE/world.json" ] || fail "the state dir was moved: $(ls -d "$STATE"*)"
! ls -d "$STATE".old-* >/dev/null 2>&1 || fail "a state dir was moved aside"
kill "$(cat "$WORK/busy.pid")"; rm "$WORK/busy.pid"
ok "up --fresh on a busy port: refused, state dir in place"
# The crashed run's addresses and routes that the world does not have (as an instance added
# through the API leaves them) are removed when `up` reattaches, resumed or fresh.
strays() {
    ip -n "$LAB-a" addr add 10.0.1.50/32 dev vpcsim0
    ip -n "$LAB-internet" addr add 198.51.100.99/32 dev lo
    ip -n "$LAB-aws" route add local 100.64.0.0/16 dev lo
}
no_strays() {
    ! ip -n "$LAB-a" -o addr show dev vpcsim0 | grep >/dev/null -c "10.0.1.50/" || fail "$1: 10.0.1.50 stayed"
    ip -n "$LAB-a" -o addr show dev vpcsim0 | grep >/dev/null -c "10.0.1.10/32" || fail "$1: 10.0.1.10 lost"
    ! ip -n "$LAB-internet" -o addr show dev lo | grep >/dev/null -c "198.51.100.99/" || fail "$1: 198.51.100.99 stayed"
    ip -n "$LAB-internet" -o addr show dev lo | grep >/dev/null -c "198.51.100.10/32" || fail "$1: the echo host lost"
    ! ip -n "$LAB-aws" route show table local | grep >/dev/null -c "100.64.0.0/16" || fail "$1: the local route stayed"
    ip -n "$LAB-aws" route show table local | grep >/dev/null -c "54.123.160.0/19" || fail "$1: S3's range lost"
    ok "$1: reattached without the crashed run's strays"
}
strays
out=$("$VPCSIM" up "$WORK/$LAB.toml" --detach --api-listen "$API" --state-dir "$STATE") || fail "resume"
grep -q "(resumed, reattached)" <<< "$out" || fail "not resumed and reattached: $out"
no_strays "up (resumed)"
grep -q "ready:" "/run/vpcsim/$LAB.log.1" || fail "the previous run's log was not kept as $LAB.log.1"
ok "the crashed run's log is kept as $LAB.log.1"
kill_daemon
# A resume that fails before `ready:` (here on a damaged bucket record) names the file and
# leaves the crashed lab as it found it: its namespaces, /etc/netns entries and run record, so
# that `down` or the next `up` still find them.
pid_before=$(sed -n 's/.*"pid": \([0-9]*\).*/\1/p' "/run/vpcsim/$LAB.json")
bucket=$(ls "$STATE/s3/buckets" | head -1)
cp "$STATE/s3/buckets/$bucket/bucket.json" "$WORK/bucket.json"
truncate -s 10 "$STATE/s3/buckets/$bucket/bucket.json"
if out=$("$VPCSIM" up "$WORK/$LAB.toml" --detach --api-listen "$API" --state-dir "$STATE" 2>&1); then
    fail "a resume with a damaged bucket record came up"
fi
grep -q "$bucket/bucket.json" <<< "$out" || fail "the damaged file is not named: $out"
for ns in a b c d aws internet; do
    ip netns list | grep >/dev/null -cw "$LAB-$ns" || fail "the failed resume removed $LAB-$ns"
    [ -d "/etc/netns/$LAB-$ns" ] || fail "the failed resume removed /etc/netns/$LAB-$ns"
done
grep -q "\"pid\": $pid_before," "/run/vpcsim/$LAB.json" \
    || fail "the crashed run's record was not kept: $(cat "/run/vpcsim/$LAB.json" 2>&1)"
cp "$WORK/bucket.json" "$STATE/s3/buckets/$bucket/bucket.json"
ok "a resume that fails before ready: the file named, the crashed lab left as it was"
# A world.json that is valid JSON but names what does not exist (subnet a's route table) is
# refused as a damaged one is: world.json and the field named, the state dir byte for byte as
# it was, no namespace made or removed; restored, the lab resumes.
snapshot() {
    (cd "$STATE" && find . -print | sort && find . -type f ! -name vpcsim.lock -print0 | sort -z | xargs -0 sha256sum)
}
cp "$STATE/world.json" "$WORK/world.json"
"$PY" - "$STATE/world.json" <<'PY'
import json, sys
path = sys.argv[1]
saved = json.load(open(path))
subnet = next(s for s in saved["world"]["subnets"] if s["name"] == "a")
subnet["route_table"] = "rtb-deadbeef"
json.dump(saved, open(path, "w"))
PY
snapshot > "$WORK/state.before"; ip netns list | sort > "$WORK/netns.before"
if out=$("$VPCSIM" up "$WORK/$LAB.toml" --detach --api-listen "$API" --state-dir "$STATE" 2>&1); then
    fail "a resume with subnet a's route table rtb-deadbeef came up"
fi
grep -q "$STATE/world.json: world.subnets\[0\].route_table (subnet-0a0a0a0a): the routeTable ID 'rtb-deadbeef' does not exist" <<< "$out" \
    || fail "world.json and the field are not named: $out"
snapshot | diff "$WORK/state.before" - || fail "the refused resume changed the state dir"
ip netns list | sort | diff "$WORK/netns.before" - || fail "the refused resume made or removed namespaces"
grep -q "\"pid\": $pid_before," "/run/vpcsim/$LAB.json" || fail "the crashed run's record was not kept"
cp "$WORK/world.json" "$STATE/world.json"
ok "a world.json naming a route table that does not exist: refused, named, nothing changed"
out=$("$VPCSIM" up "$WORK/$LAB.toml" --detach --api-listen "$API" --state-dir "$STATE") \
    || fail "resume after world.json was restored"
grep -q "(resumed, reattached)" <<< "$out" || fail "not resumed and reattached: $out"
ok "world.json restored: the lab resumes"
kill_daemon
strays
"$VPCSIM" up "$WORK/$LAB.toml" --detach --fresh --api-listen "$API" --state-dir "$STATE" >/dev/null \
    || fail "up --fresh after kill -9"
no_strays "up --fresh"
kill_daemon
"$VPCSIM" down "$LAB" | grep >/dev/null -c removed || fail "down did not find the lab"
"$VPCSIM" down "$LAB" | grep >/dev/null -c "not up" || fail "down is not idempotent"
if ip netns list | grep >/dev/null -c "^$LAB-"; then fail "namespaces left: $(ip netns list | grep "^$LAB-")"; fi
if ls /etc/netns 2>/dev/null | grep >/dev/null -c "^$LAB-"; then fail "/etc/netns entries left"; fi
! ls /run/vpcsim/"$LAB".* >/dev/null 2>&1 || fail "left in /run/vpcsim: $(ls /run/vpcsim/"$LAB".*)"
ip -o addr | diff "$WORK/addr.before" - || fail "root addresses changed"
ip route | diff "$WORK/route.before" - || fail "root routes changed"
ip -o link | diff "$WORK/link.before" - || fail "root links changed"
ok "kill -9 then down: nothing left, root namespace unchanged"
# Two `up`s of one lab at once (each with its own port and state dir): one wins, the other is
# refused and changes nothing; `status` and `down` find the winner.
mkdir -p "$WORK/s1" "$WORK/s2"
for i in 1 2; do
    ( if "$VPCSIM" up "$WORK/$LAB.toml" --detach --state-dir "$WORK/s$i" \
        --api-listen "127.0.0.1:$((20000 + ($$ + 20 + i) % 20000))" > "$WORK/race$i" 2>&1
      then echo 0; else echo 1; fi > "$WORK/race$i.rc" ) &
done
wait
won=$(grep -l '^0$' "$WORK"/race?.rc | wc -l)
[ "$won" = 1 ] || fail "$won of two racing ups won: $(cat "$WORK"/race?)"
lost=$(grep -L '^0$' "$WORK"/race?.rc); lost=${lost%.rc}; lost=${lost##*race}
grep -q "is already up" "$WORK/race$lost" || fail "the loser: $(cat "$WORK/race$lost")"
[ ! -e "$WORK/s$lost/world.json" ] || fail "the loser saved a world"
"$VPCSIM" status "$LAB" >/dev/null || fail "status does not find the winner"
"$VPCSIM" down "$LAB" | grep >/dev/null -c removed || fail "down did not find the winner"
if ip netns list | grep >/dev/null -c "^$LAB-"; then fail "namespaces left: $(ip netns list | grep "^$LAB-")"; fi
! ls /run/vpcsim/"$LAB".* >/dev/null 2>&1 || fail "left in /run/vpcsim: $(ls /run/vpcsim/"$LAB".*)"
LAB=""
ok "two ups at once: one lab, found and removed by down"
