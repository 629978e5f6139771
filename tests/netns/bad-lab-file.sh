#!/usr/bin/env bash
# A bad lab file is refused with the line and the field, before anything is created (a route
# to a prefix list, a VPC over S3's range, an internet host named like a bucket, an endpoint
# policy that is not JSON, two prefix lists for one region, another region's list in a rule);
# so is a control API address off the loopback. A build that fails at the object store, or later at the
# namespaces, saves nothing; `down` removes the log of a failed `up --detach`.
source "$(dirname "$0")/lib.sh"
# The refusals below get a state dir in $WORK and a port of their own: if one broke and the lab
# came up, it would not write /var/lib/vpcsim/<lab> nor take a user's default port 4599.
REFUSE=(--state-dir "$WORK/refused-state" --api-listen "127.0.0.1:$((20000 + ($$ + 7) % 20000))")
LAB="t$$bad"; [ -z "${VPCSIM_TEST_LABS:-}" ] || echo "$LAB" >> "$VPCSIM_TEST_LABS"
sed "0,/^name = .*/s//name = \"$LAB\"/" "$ROOT/netns/demo.toml" > "$WORK/bad.toml"
printf '\n[[route_table]]\nid = "rtb-0e0e0e0e"\nvpc = "vpc-111bbb22"\nroutes = [{ destination = "pl-1a2b3c4d", target = "vpce-11bb22cc" }]\n' >> "$WORK/bad.toml"
line=$(grep -n 'destination = "pl-1a2b3c4d"' "$WORK/bad.toml" | cut -d: -f1)
if out=$("$VPCSIM" up "$WORK/bad.toml" --detach "${REFUSE[@]}" 2>&1); then fail "a bad lab file came up"; fi
grep -q "bad.toml:$line: route_table\[4\].routes\[0\].destination" <<< "$out" || fail "no line/field: $out"
grep -q "You can only add an endpoint route by associating a route table with an endpoint" <<< "$out" \
    || fail "not the guide's sentence: $out"
if ip netns list | grep >/dev/null -c "^$LAB-"; then fail "namespaces were created"; fi
ok "refused: $out"
# A bucket name S3 keeps for itself: "Bucket names must not start with the prefix amzn-s3-demo-".
sed "0,/^name = .*/s//name = \"$LAB\"/" "$ROOT/netns/demo.toml" > "$WORK/reserved.toml"
printf '\n[[bucket]]\nname = "amzn-s3-demo-bucket"\n' >> "$WORK/reserved.toml"
line=$(grep -n 'name = "amzn-s3-demo-bucket"' "$WORK/reserved.toml" | cut -d: -f1)
if out=$("$VPCSIM" up "$WORK/reserved.toml" --detach "${REFUSE[@]}" 2>&1); then fail "a reserved bucket name came up"; fi
grep -q "reserved.toml:$line: bucket\[3\].name" <<< "$out" || fail "no line/field: $out"
grep -q "must not start with the prefix amzn-s3-demo-" <<< "$out" || fail "not the guide's rule: $out"
if ip netns list | grep >/dev/null -c "^$LAB-"; then fail "namespaces were created"; fi
ok "refused: $out"
# More refusals, each naming its line and field and creating nothing: a VPC over the lab's S3
# range, an internet host named like a bucket (the resolver would have answered it for S3),
# an endpoint policy that is not JSON, a second prefix list for one region, a rule naming
# another region's prefix list.
refuse() { # refuse FIELD TEXT: TEXT appended to the default lab is refused naming FIELD
    sed "0,/^name = .*/s//name = \"$LAB\"/" "$ROOT/netns/demo.toml" > "$WORK/bad2.toml"
    printf '\n%s\n' "$2" >> "$WORK/bad2.toml"
    local line; line=$(grep -n "^$3" "$WORK/bad2.toml" | tail -1 | cut -d: -f1)
    if out=$("$VPCSIM" up "$WORK/bad2.toml" --detach "${REFUSE[@]}" 2>&1); then fail "came up: $2"; fi
    grep -qF "bad2.toml:$line: $1: " <<< "$out" || fail "not bad2.toml:$line: $1: $out"
    if ip netns list | grep >/dev/null -c "^$LAB-"; then fail "namespaces were created"; fi
    [ ! -e "/run/vpcsim/$LAB.json" ] || fail "a run record was made"
    ok "refused: $out"
}
refuse "vpc[1].cidr" $'[[vpc]]\nid = "vpc-0f0f0f0f"\ncidr = "54.123.160.0/20"' 'cidr = "54.123.160.0/20"'
refuse "internet_host[1].name" $'[[internet_host]]\nname = "open-bucket.s3.amazonaws.com"\nip = "198.51.100.77"' 'name = "open-bucket'
refuse "endpoint[1].policy" $'[[endpoint]]\nid = "vpce-22cc33dd"\nvpc = "vpc-111bbb22"\nservice = "com.amazonaws.us-east-1.s3"\npolicy = "{not json"' 'policy = "{not json"'
refuse "prefix_list[1].name" $'[[prefix_list]]\nid = "pl-1a2b3c4d"\nname = "com.amazonaws.us-east-1.s3"\ncidrs = ["54.123.160.0/19"]\n[[prefix_list]]\nid = "pl-1a2b3c4d"\nname = "com.amazonaws.us-east-1.s3"\ncidrs = ["54.123.176.0/20"]' 'name = "com.amazonaws.us-east-1.s3"'
refuse "security_group[0].egress[0].destination" $'[[security_group]]\nid = "sg-0a0a0a0a"\nname = "x"\nvpc = "vpc-111bbb22"\negress = [{ protocol = "tcp", ports = "443", destination = "pl-68a54001" }]' 'egress = '
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
ok "the next up started from the lab file"
# `vpcsim prefix-list` ends its answer with a newline; a range given twice is refused.
"$VPCSIM" prefix-list pl-1a2b3c4d 54.123.160.0/19 --lab "$LAB" > "$WORK/pl.out"
[ "$(od -An -c "$WORK/pl.out" | tr -d ' ')" = 'ok\n' ] || fail "prefix-list answered: $(od -c "$WORK/pl.out")"
if out=$("$VPCSIM" prefix-list pl-1a2b3c4d 54.123.160.0/19 54.123.170.5/19 --lab "$LAB" 2>&1); then
    fail "a prefix list with a range twice was accepted: $out"
fi
grep -q "lists 54.123.160.0/19 twice" <<< "$out" || fail "not the duplicate: $out"
ok "prefix-list: 'ok' and a newline; a range twice refused"
"$VPCSIM" down "$LAB" >/dev/null
LAB=""
# An `up` that fails because a namespace of the lab exists already (not the lab's) leaves no
# state dir it made, and `down` says it removed the failed up's log.
LAB="t$$bad"
ip netns add "$LAB-c"; OWN_NS+=("$LAB-c")
if out=$("$VPCSIM" up "$WORK/good.toml" --detach --api-listen "127.0.0.1:$((20000 + $$ % 20000))" \
    --state-dir "$WORK/state5" 2>&1); then
    fail "a lab came up over an existing namespace $LAB-c"
fi
grep -q "namespace $LAB-c already exists" <<< "$out" || fail "not the namespace error: $out"
[ ! -e "$WORK/state5" ] || fail "the failed up left its state dir: $(ls -A "$WORK/state5")"
out=$("$VPCSIM" down "$LAB")
grep -q "is not up; removed the log of its failed up: /run/vpcsim/$LAB.log" <<< "$out" || fail "down: $out"
ip netns list | grep >/dev/null -cw "$LAB-c" || fail "down removed a namespace not the lab's"
LAB=""
ok "an up over an existing namespace left no state dir; down: $out"
