#!/usr/bin/env bash
# The control plane through the real AWS CLI: the guide's endpoint rules as AWS errors (each
# changing nothing), a live ModifyVpcEndpoint that moves subnet b onto the endpoint (a running
# download through the internet gateway is reset, an unrelated connection survives), and
# DeleteVpcEndpoints.
#
#   b 10.0.2.10 ── 0.0.0.0/0 igw ──────────────┐
#        (after modify: pl-1a2b3c4d -> vpce) ──┴── aws: S3 stub;  internet: 198.51.100.10
source "$(dirname "$0")/lib.sh"
lab_up "$ROOT/netns/demo.toml" cp

pl=$(awsx ec2 describe-prefix-lists --region us-east-1)
grep -q '"PrefixListId": "pl-1a2b3c4d"' <<< "$pl" || fail "no pl-1a2b3c4d: $pl"
grep -q '"54.123.160.0/19"' <<< "$pl" || fail "no 54.123.160.0/19: $pl"
ok "describe-prefix-lists: pl-1a2b3c4d 54.123.160.0/19"
[ "$(awsx ec2 get-managed-prefix-list-entries --prefix-list-id pl-1a2b3c4d --query 'Entries[].Cidr' --output text)" = 54.123.160.0/19 ] \
    || fail "get-managed-prefix-list-entries"
[ "$(awsx ec2 describe-managed-prefix-lists --query 'PrefixLists[].[PrefixListName,OwnerId]' --output text)" = "$(printf 'com.amazonaws.us-east-1.s3\tAWS')" ] \
    || fail "describe-managed-prefix-lists: $(awsx ec2 describe-managed-prefix-lists)"
ok "get-managed-prefix-list-entries and describe-managed-prefix-lists"

before=$(awsx ec2 describe-route-tables; awsx ec2 describe-vpc-endpoints)
# From the guide: "you cannot have multiple endpoints to the same service in a single route table"
expect_error RouteAlreadyExists ec2 create-vpc-endpoint --vpc-id vpc-111bbb22 \
    --service-name com.amazonaws.us-east-1.s3 --route-table-ids rtb-0a0a0a0a
# "You cannot explicitly add, modify, or delete an endpoint route in your route table"
expect_error InvalidParameterValue ec2 create-route --route-table-id rtb-0b0b0b0b \
    --destination-prefix-list-id pl-1a2b3c4d --gateway-id vpce-11bb22cc
# "You cannot create an endpoint between a VPC and an AWS service in a different region."
expect_error InvalidServiceName ec2 create-vpc-endpoint --vpc-id vpc-111bbb22 \
    --service-name com.amazonaws.us-west-2.s3 --route-table-ids rtb-0b0b0b0b
expect_error InvalidServiceName ec2 create-vpc-endpoint --vpc-id vpc-111bbb22 \
    --service-name com.amazonaws.us-east-1.nosuchservice --route-table-ids rtb-0b0b0b0b
expect_error InvalidPolicyDocument ec2 create-vpc-endpoint --vpc-id vpc-111bbb22 \
    --service-name com.amazonaws.us-east-1.s3 --route-table-ids rtb-0b0b0b0b --policy-document 'not json'
expect_error InvalidPolicyDocument ec2 modify-vpc-endpoint --vpc-endpoint-id vpce-11bb22cc \
    --policy-document '{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}'
expect_error InvalidVpcEndpointId.NotFound ec2 modify-vpc-endpoint --vpc-endpoint-id vpce-00000000 --reset-policy
expect_error InvalidVpcEndpointId.Malformed ec2 modify-vpc-endpoint --vpc-endpoint-id vpce-xyz --reset-policy
expect_error InvalidRouteTableID.NotFound ec2 modify-vpc-endpoint --vpc-endpoint-id vpce-11bb22cc \
    --add-route-table-ids rtb-00000000
expect_error InvalidVpcID.NotFound ec2 create-vpc-endpoint --vpc-id vpc-00000000 \
    --service-name com.amazonaws.us-east-1.s3
expect_error InvalidParameterValue ec2 replace-route --route-table-id rtb-0a0a0a0a \
    --destination-prefix-list-id pl-1a2b3c4d --gateway-id igw-1a2b3c4d
expect_error InvalidParameterValue ec2 delete-route --route-table-id rtb-0a0a0a0a \
    --destination-prefix-list-id pl-1a2b3c4d
expect_error InvalidRouteTableId.Malformed ec2 modify-vpc-endpoint --vpc-endpoint-id vpce-11bb22cc \
    --add-route-table-ids not-a-table
expect_error InvalidVpcID.Malformed ec2 create-vpc-endpoint --vpc-id vpc-zz \
    --service-name com.amazonaws.us-east-1.s3
# "You cannot tag an endpoint."
expect_error InvalidParameterValue ec2 create-tags --resources vpce-11bb22cc --tags Key=a,Value=b
after=$(awsx ec2 describe-route-tables; awsx ec2 describe-vpc-endpoints)
[ "$before" = "$after" ] || fail "a refused call changed something"
ok "every refused call left route tables and endpoints unchanged"
# Security groups by name are for a default VPC only (botocore: "[Default VPC]"); the lab's VPCs
# are nondefault ones. A launch that names groups is refused, never run with the default group.
before=$(awsx ec2 describe-instances; awsx ec2 describe-security-groups)
expect_error InvalidParameterCombination ec2 run-instances --image-id ami-12345678 \
    --subnet-id subnet-0a0a0a0a --security-groups default
expect_error InvalidParameterCombination ec2 run-instances --image-id ami-12345678 \
    --subnet-id subnet-0a0a0a0a --security-groups no-such-group
expect_error VPCIdNotSpecified ec2 authorize-security-group-ingress --group-name default \
    --protocol tcp --port 22 --cidr 10.9.0.0/16
expect_error VPCIdNotSpecified ec2 describe-security-groups --group-names default
after=$(awsx ec2 describe-instances; awsx ec2 describe-security-groups)
[ "$before" = "$after" ] || fail "a refused group-name call changed something"
[ "$(awsx ec2 describe-security-groups --filters Name=group-name,Values=default --query 'SecurityGroups[].GroupId' --output text)" = sg-111bbb22 ] \
    || fail "the group-name filter"
ok "group names: refused outside a default VPC, nothing launched; the group-name filter works"
# A route table of another VPC cannot take the endpoint.
vpc2=$(awsx ec2 create-vpc --cidr-block 10.1.0.0/16 --query Vpc.VpcId --output text)
rtb2=$(awsx ec2 create-route-table --vpc-id "$vpc2" --query RouteTable.RouteTableId --output text)
expect_error InvalidParameterValue ec2 modify-vpc-endpoint --vpc-endpoint-id vpce-11bb22cc --add-route-table-ids "$rtb2"
awsx ec2 delete-route-table --route-table-id "$rtb2"
awsx ec2 delete-vpc --vpc-id "$vpc2"
awsx ec2 describe-vpcs --vpc-ids "$vpc2" >/dev/null 2>&1 && fail "deleted VPC still described"
ok "create-vpc / create-route-table / delete round trip"
# Unsigned and badly signed requests.
code=$(curl -s -o /dev/null -w '%{http_code}' -d 'Action=DescribeVpcs&Version=2016-11-15' "http://$API/")
[ "$code" = 401 ] || fail "unsigned EC2 call answered $code"
# EC2's answers, not the lab's reasons: an unknown key and a wrong secret are 401 AuthFailure
# "AWS was not able to validate the provided access credentials"; a clock 20 minutes off is
# 400 RequestExpired "Request has expired.".
for who in "AWS_ACCESS_KEY_ID=AKIAXXXXXXXXXXXXXXXX" "AWS_SECRET_ACCESS_KEY=wrong"; do
    if out=$(env "$who" "$AWS_BIN" --endpoint-url "http://$API" ec2 describe-vpcs 2>&1); then
        fail "$who: describe-vpcs succeeded"
    fi
    grep -q "(AuthFailure) when calling the DescribeVpcs operation: AWS was not able to validate the provided access credentials$" <<< "$out" \
        || fail "$who: $out"
done
ok "an unknown key and a wrong secret: AuthFailure, EC2's sentence"
skewed=$("$PY" - "$API" <<'PY'
import datetime, sys, urllib.error, urllib.request
import botocore.auth, botocore.awsrequest, botocore.credentials
creds = botocore.credentials.Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
late = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) - datetime.timedelta(minutes=20)
botocore.auth.get_current_datetime = lambda: late
req = botocore.awsrequest.AWSRequest(method="POST", url=f"http://{sys.argv[1]}/",
    headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    data="Action=DescribeVpcs&Version=2016-11-15")
botocore.auth.SigV4Auth(creds, "ec2", "us-east-1").add_auth(req)
try:
    body = req.body if isinstance(req.body, bytes) else req.body.encode()
    urllib.request.urlopen(urllib.request.Request(req.url, data=body, headers=dict(req.headers)))
    print("200")
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode())
PY
)
[[ "$skewed" == "400 "*"<Code>RequestExpired</Code><Message>Request has expired.</Message>"* ]] \
    || fail "a request signed 20 minutes ago: $skewed"
ok "a clock 20 minutes off: 400 RequestExpired \"Request has expired.\""

# A big object for a download that is still running when the route changes.
head -c 300000000 /dev/zero > "$WORK/big.bin"
s3_put_admin open-bucket big.bin "$WORK/big.bin"
rm -f "$WORK/big.bin"
expect_path b http://54.123.170.5/open-bucket/hello.txt 203.0.113.20
in_ns b curl -sS --limit-rate 20M -o /dev/null http://54.123.170.5/open-bucket/big.bin 2> "$WORK/dl.err" &
dl=$!
in_ns b curl -s -m 30 "http://198.51.100.10/stream?seconds=4" > "$WORK/stream.out" &
st=$!
sleep 1
awsx ec2 modify-vpc-endpoint --vpc-endpoint-id vpce-11bb22cc --add-route-table-ids rtb-0b0b0b0b \
    | grep >/dev/null -c '"Return": true' || fail "modify-vpc-endpoint"
# The answer comes after the data plane uses the change.
expect_path b http://54.123.170.5/open-bucket/hello.txt 10.0.2.10 vpce-11bb22cc
rc=0; wait $dl || rc=$?
[ "$rc" = 56 ] || fail "the download through the IGW ended with $rc, expected 56 (reset): $(cat "$WORK/dl.err")"
grep -q "Connection reset by peer" "$WORK/dl.err" || fail "not a reset: $(cat "$WORK/dl.err")"
ok "the running download was reset: $(cat "$WORK/dl.err")"
rc=0; wait $st || rc=$?
[ "$rc" = 0 ] && [ "$(wc -l < "$WORK/stream.out")" = 40 ] \
    || fail "the unrelated connection broke: rc $rc, $(wc -l < "$WORK/stream.out") lines"
ok "the connection to the internet host survived the change"
awsx ec2 describe-route-tables --route-table-ids rtb-0b0b0b0b | grep >/dev/null -c '"DestinationPrefixListId": "pl-1a2b3c4d"' \
    || fail "no endpoint route in rtb-0b0b0b0b"
ok "describe-route-tables shows the endpoint route"

# Back: remove the association.
awsx ec2 modify-vpc-endpoint --vpc-endpoint-id vpce-11bb22cc --remove-route-table-ids rtb-0b0b0b0b >/dev/null
expect_path b http://54.123.170.5/open-bucket/hello.txt 203.0.113.20

# AWS changes S3's range: the prefix list no longer holds 54.123.170.5. A download from a to it
# (through the endpoint) is reset; S3 answers on the new range through the endpoint.
in_ns a curl -s --limit-rate 20M -o /dev/null http://54.123.170.5/open-bucket/big.bin 2> "$WORK/dl.err" &
dl=$!
sleep 1
"$VPCSIM" prefix-list pl-1a2b3c4d 54.123.176.0/20 --lab "$LAB" | grep >/dev/null -c ok || fail "prefix-list change"
rc=0; wait $dl || rc=$?
[ "$rc" = 56 ] || fail "download across a prefix-list change ended with $rc, expected 56"
# The remote side is reset too: S3's socket of that download is gone (the RST is written
# before the aws namespace loses the address it is sent to).
for _ in $(seq 30); do
    left=$(in_ns aws ss -Htn state established | grep -c "54.123.170.5:80 *10.0.1.10:" || true)
    [ "$left" = 0 ] && break; sleep 0.1
done
[ "$left" = 0 ] || fail "S3 still has the moved connection open: $(in_ns aws ss -Htn state established)"
awsx ec2 describe-prefix-lists | grep >/dev/null -c '"54.123.176.0/20"' || fail "describe-prefix-lists does not show the change"
expect_path a http://54.123.180.5/open-bucket/hello.txt 10.0.1.10 vpce-11bb22cc
"$VPCSIM" prefix-list pl-1a2b3c4d 54.123.160.0/19 --lab "$LAB" >/dev/null
ok "a prefix-list change resets the flows it moves, on both sides"
# A service's list holds public ranges only: the VPC's own, a private or reserved block, the
# lab's internet hosts or another region's list are refused, and nothing changes.
for bad in 10.0.1.0/24 0.0.0.0/0 127.0.0.0/8 198.51.100.0/24 54.231.160.0/19; do
    if out=$("$VPCSIM" prefix-list pl-1a2b3c4d "$bad" --lab "$LAB" 2>&1); then fail "prefix-list $bad accepted: $out"; fi
    grep -q "cannot hold $bad" <<< "$out" || fail "prefix-list $bad: $out"
done
expect_path a http://54.123.170.5/open-bucket/hello.txt 10.0.1.10 vpce-11bb22cc
"$VPCSIM" prefix-list pl-1a2b3c4d 54.123.176.0/20 --lab "$LAB" | grep >/dev/null -c ok || fail "a good change after refused ones"
"$VPCSIM" prefix-list pl-1a2b3c4d 54.123.160.0/19 --lab "$LAB" >/dev/null
ok "prefix-list refuses the VPC's, private, reserved, the internet hosts' and another list's CIDRs; nothing changes"

# DeleteVpcEndpoints: per-id failures (InvalidVpcEndpoint.NotFound, the bulk code), routes gone at once.
out=$(awsx ec2 delete-vpc-endpoints --vpc-endpoint-ids vpce-11bb22cc vpce-00000000)
grep -q 'InvalidVpcEndpoint.NotFound' <<< "$out" || fail "no unsuccessful item: $out"
awsx ec2 describe-route-tables | grep >/dev/null -c 'pl-1a2b3c4d' && fail "endpoint routes left after delete"
expect_path a http://54.123.170.5/open-bucket/hello.txt 203.0.113.10
ok "delete-vpc-endpoints removed the routes; a now uses the internet gateway"

# MaxResults outside the action's range is EC2's InvalidParameterValue. botocore itself checks
# only a model minimum; DescribeInstances' range is not in the model, so 3 reaches the lab, and
# so does a value above DescribeRouteTables' 100.
if out=$(awsx ec2 describe-instances --max-results 3 2>&1); then fail "--max-results 3 accepted"; fi
grep -q '(InvalidParameterValue).*Value ( 3 ) for parameter maxResults is invalid. Expecting a value greater than 5.' \
    <<< "$out" || fail "describe-instances --max-results 3: $out"
expect_error InvalidParameterValue ec2 describe-route-tables --max-results 101
# "You cannot specify this parameter and the instance IDs parameter in the same request."
expect_error InvalidParameterCombination ec2 describe-instances --instance-ids i-0a0a0a0a --max-results 5
[ "$(awsx ec2 describe-instances --max-results 5 --query 'length(Reservations[].Instances[])')" -ge 4 ] \
    || fail "describe-instances --max-results 5"
ok "MaxResults: out of range refused with EC2's message, not with instance ids; in range answered"

# The primary interface's MAC address (02:…, locally administered), the same after a restart;
# a security group rule's tag, kept in world.json (both checked after kill -9 below).
mac_of() {
    awsx ec2 describe-instances --instance-ids i-0a0a0a0a --output text \
        --query 'Reservations[0].Instances[0].NetworkInterfaces[0].MacAddress'
}
mac=$(mac_of)
[[ "$mac" =~ ^02(:[0-9a-f]{2}){5}$ ]] || fail "MacAddress: '$mac'"
sgr=$(awsx ec2 describe-security-group-rules --filters Name=group-id,Values=sg-111bbb22 --output text \
    --query 'SecurityGroupRules[0].SecurityGroupRuleId')
awsx ec2 create-tags --resources "$sgr" --tags Key=Name,Value=kept
ok "describe-instances: MacAddress $mac; create-tags on $sgr"

# A route change is made durable as a journal record, world.json is not rewritten for it.
awsx ec2 create-route --route-table-id rtb-0c0c0c0c --destination-cidr-block 100.64.7.0/24 \
    --gateway-id igw-1a2b3c4d | grep >/dev/null -c '"Return": true' || fail "create-route"
grep -q '"100.64.7.0/24"' "$STATE/journal.jsonl" || fail "the route change is not in the journal"
grep -q '"100.64.7.0/24"' "$STATE/world.json" && fail "world.json was rewritten for a route change"

# Durable: kill -9, up again (reattach), the world is as last acknowledged and no object is lost.
kill_daemon
"$VPCSIM" up "$WORK/$LAB.toml" --detach --api-listen "$API" --state-dir "$STATE" | grep >/dev/null -c resumed \
    || fail "did not resume"
[ "$(awsx ec2 describe-vpc-endpoints --query 'length(VpcEndpoints)')" = 0 ] || fail "the deleted endpoint is back"
awsx ec2 describe-route-tables --route-table-ids rtb-0c0c0c0c | grep >/dev/null -c '"100.64.7.0/24"' \
    || fail "the journaled route is lost"
[ -e "$STATE/journal.jsonl" ] && fail "the journal was not folded into world.json at start"
grep -q '"100.64.7.0/24"' "$STATE/world.json" || fail "world.json lacks the journaled route"
expect_path a http://54.123.170.5/open-bucket/hello.txt 203.0.113.10
[ "$(in_ns a curl -s http://54.123.170.5/open-bucket/big.bin | wc -c)" = 300000000 ] || fail "object lost"
[ "$(mac_of)" = "$mac" ] || fail "the MAC address changed with the restart: $(mac_of)"
[ "$(awsx ec2 describe-security-group-rules --security-group-rule-ids "$sgr" --output text \
    --query 'SecurityGroupRules[0].Tags[0].Value')" = kept ] || fail "the rule's tag is lost"
ok "after kill -9: every acknowledged change kept, no object lost"
