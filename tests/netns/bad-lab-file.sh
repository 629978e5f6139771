#!/usr/bin/env bash
# A bad lab file is refused with the line and the field, before anything is created; so is a
# control API address off the loopback. A build that fails at the object store, or later at the
# namespaces, saves nothing; `down` removes the log of a failed `up --detach`.
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
# A bucket name S3 keeps for itself: "Bucket names must not start with the prefix amzn-s3-demo-".
sed "0,/^name = .*/s//name = \"$LAB\"/" "$ROOT/netns/demo.toml" > "$WORK/reserved.toml"
printf '\n[[bucket]]\nname = "amzn-s3-demo-bucket"\n' >> "$WORK/reserved.toml"
line=$(grep -n 'name = "amzn-s3-demo-bucket"' "$WORK/reserved.toml" | cut -d: -f1)
if out=$("$VPCSIM" up "$WORK/reserved.toml" --detach 2>&1); then fail "a reserved bucket name came up"; fi
grep -q "reserved.toml:$line: bucket\[3\].name" <<< "$out" || fail "no line/field: $out"
grep -q "must not start with the prefix amzn-s3-demo-" <<< "$out" || fail "not the guide's rule: $out"
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
ok "refused: $out"
# A build that fails while making the lab's buckets saves no world: the next `up` starts over
# and makes them, instead of resuming a world whose buckets never were.
mkdir -p "$WORK/state/s3"; : > "$WORK/state/s3/buckets"
if out=$("$VPCSIM" up "$WORK/good.toml" --detach --api-listen "127.0.0.1:$((20000 + $$ % 20000))" \
    --state-dir "$WORK/state" 2>&1); then
    fail "a lab came up without its object store"
fi
[ ! -e "$WORK/state/world.json" ] || fail "a failed build saved its world"
if ip netns list | grep >/dev/null -c "^$LAB-"; then fail "namespaces left after a failed build"; fi
rm "$WORK/state/s3/buckets"
"$VPCSIM" up "$WORK/good.toml" --detach --api-listen "127.0.0.1:$((20000 + $$ % 20000))" \
    --state-dir "$WORK/state" >/dev/null || fail "up after the failed build"
body=$(ip netns exec "$LAB-a" curl -s -m 10 http://54.123.170.5/open-bucket/hello.txt)
[ "$body" = "Hello from open-bucket" ] || fail "open-bucket after the failed build: '$body'"
"$VPCSIM" down "$LAB" >/dev/null
LAB=""
ok "a build that failed at the object store saved nothing; the next up made the buckets"
# A first build that fails at the namespaces (here: /etc/netns/<lab>-b is a file, so subnet b's
# directory cannot be made) leaves no saved world and no object store: the next `up` starts from
# the lab file, it does not resume a world that never ran.
LAB="t$$bad"
OWN_FILES+=("/etc/netns/$LAB-b"); mkdir -p /etc/netns; : > "/etc/netns/$LAB-b"
if out=$("$VPCSIM" up "$WORK/good.toml" --detach --api-listen "127.0.0.1:$((20000 + $$ % 20000))" \
    --state-dir "$WORK/state3" 2>&1); then
    fail "a lab came up without subnet b's /etc/netns entry"
fi
grep -q "/etc/netns/$LAB-b" <<< "$out" || fail "not the namespace error: $out"
[ ! -e "$WORK/state3/world.json" ] || fail "a failed build saved its world"
[ ! -e "$WORK/state3/s3" ] || fail "a failed build left its object store"
if ip netns list | grep >/dev/null -c "^$LAB-"; then fail "namespaces left after a failed build"; fi
[ -e "/run/vpcsim/$LAB.log" ] || fail "no log of the failed up"
"$VPCSIM" down "$LAB" | grep >/dev/null -c "not up" || fail "down of a lab that never came up"
! ls /run/vpcsim/"$LAB".* >/dev/null 2>&1 || fail "left in /run/vpcsim: $(ls /run/vpcsim/"$LAB".*)"
ok "a build that failed at the namespaces saved nothing; down removed its log"
rm "/etc/netns/$LAB-b"
out=$("$VPCSIM" up "$WORK/good.toml" --detach --api-listen "127.0.0.1:$((20000 + $$ % 20000))" \
    --state-dir "$WORK/state3") || fail "up after the failed build"
if grep -q "resumed" <<< "$out"; then fail "the failed build's world was resumed: $out"; fi
body=$(ip netns exec "$LAB-a" curl -s -m 10 http://54.123.170.5/open-bucket/hello.txt)
[ "$body" = "Hello from open-bucket" ] || fail "open-bucket after the failed build: '$body'"
"$VPCSIM" down "$LAB" >/dev/null
LAB=""
ok "the next up started from the lab file"
