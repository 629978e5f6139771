#!/usr/bin/env bash
# boto3 builds a new subnet with an instance and an endpoint association: the subnet's
# namespace and TUN exist as soon as the call returns, its traffic takes the endpoint, and
# deleting it removes the namespace. boto3's paginators and the CLI's --max-results,
# --page-size, --max-items and --starting-token see every route table, endpoint and prefix list
# once, in pages of the size asked. A subnet whose namespace is taken is refused.
#
#   new subnet e 10.0.5.0/24 (namespace <lab>-subnet-…) ── pl -> vpce ── aws
source "$(dirname "$0")/lib.sh"
lab_up "$ROOT/netns/demo.toml" bo
ip netns list | awk '{print $1}' | grep "^$LAB-" | sort > "$WORK/ns.before"

"$PY" - "$API" > "$WORK/ids" <<'PY'
import sys, boto3
ec2 = boto3.client("ec2", endpoint_url=f"http://{sys.argv[1]}", region_name="us-east-1")
rt = ec2.create_route_table(VpcId="vpc-111bbb22", ClientToken="boto3-subnet-rt")["RouteTable"]["RouteTableId"]
# A retry with the same ClientToken (an SDK's after a lost answer) makes no second table.
again = ec2.create_route_table(VpcId="vpc-111bbb22", ClientToken="boto3-subnet-rt")
assert again["RouteTable"]["RouteTableId"] == rt, again
assert again["ClientToken"] == "boto3-subnet-rt", again
tables = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": ["vpc-111bbb22"]}])
assert len(tables["RouteTables"]) == 5, tables
sn = ec2.create_subnet(VpcId="vpc-111bbb22", CidrBlock="10.0.5.0/24")["Subnet"]["SubnetId"]
ec2.associate_route_table(RouteTableId=rt, SubnetId=sn)
ec2.modify_vpc_endpoint(VpcEndpointId="vpce-11bb22cc", AddRouteTableIds=[rt])
inst = ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1, SubnetId=sn,
                         PrivateIpAddress="10.0.5.10", ClientToken="boto3-subnet-i")["Instances"][0]["InstanceId"]
# "The client token is included in the response when you describe the instance".
seen = ec2.describe_instances(Filters=[{"Name": "client-token", "Values": ["boto3-subnet-i"]}])
assert [i["InstanceId"] for r in seen["Reservations"] for i in r["Instances"]] == [inst], seen
assert seen["Reservations"][0]["Instances"][0]["ClientToken"] == "boto3-subnet-i", seen
routes = ec2.describe_route_tables(RouteTableIds=[rt])["RouteTables"][0]["Routes"]
assert any(r.get("DestinationPrefixListId") == "pl-1a2b3c4d" and r["GatewayId"] == "vpce-11bb22cc"
           and r["Origin"] == "CreateRoute" and r["State"] == "active" for r in routes), routes
try:
    ec2.create_route(RouteTableId=rt, DestinationPrefixListId="pl-1a2b3c4d", GatewayId="vpce-11bb22cc")
    raise SystemExit("a manual prefix-list route was accepted")
except ec2.exceptions.ClientError as e:
    print("refused:", e.response["Error"]["Code"], file=sys.stderr)
print(sn, inst, rt)
PY
read -r sn inst rt < "$WORK/ids"
# The one namespace that was not there before.
ns=$(ip netns list | awk '{print $1}' | grep "^$LAB-" | sort | comm -13 "$WORK/ns.before" -)
[ -n "$ns" ] || fail "no namespace for the new subnet $sn"
ok "subnet $sn has namespace $ns"
h=$(ip netns exec "$ns" curl -s -m 10 -D - -o /dev/null http://54.123.170.5/open-bucket/hello.txt)
grep -qi "x-vpcsim-source-ip: 10.0.5.10" <<< "$h" || fail "new subnet: $h"
grep -qi "x-vpcsim-vpce: vpce-11bb22cc" <<< "$h" || fail "new subnet not through the endpoint: $h"
ok "the new instance reaches S3 through the endpoint with its private IP"

"$PY" - "$API" "$sn" "$inst" "$rt" <<'PY'
import sys, boto3
ec2 = boto3.client("ec2", endpoint_url=f"http://{sys.argv[1]}", region_name="us-east-1")
first = ec2.terminate_instances(InstanceIds=[sys.argv[3]])["TerminatingInstances"][0]
# As the API Reference's example answers: shutting-down (32), from running (16).
assert first["CurrentState"] == {"Code": 32, "Name": "shutting-down"}, first
assert first["PreviousState"] == {"Code": 16, "Name": "running"}, first
# EC2: terminated instances stay visible for about an hour, so boto3's waiter sees the state,
# and terminating again succeeds ("This operation is idempotent").
ec2.get_waiter("instance_terminated").wait(InstanceIds=[sys.argv[3]],
                                           WaiterConfig={"Delay": 1, "MaxAttempts": 5})
again = ec2.terminate_instances(InstanceIds=[sys.argv[3]])["TerminatingInstances"][0]
assert again["PreviousState"]["Name"] == "terminated", again
ec2.delete_subnet(SubnetId=sys.argv[2])
PY
ip netns list | grep >/dev/null -cw "$ns" && fail "namespace $ns left after delete-subnet"
ok "delete-subnet removed $ns"

# Pagination: boto3's paginators and the CLI's see every route table, endpoint and prefix list
# exactly once, a page of at most the size asked; the route tables' smallest page is 5
# (botocore refuses less before sending), so there are 12 of them, three pages.
"$PY" - "$API" <<'PY' || fail "boto3 paginators"
import sys, boto3
ec2 = boto3.client("ec2", endpoint_url=f"http://{sys.argv[1]}", region_name="us-east-1")
made = [ec2.create_route_table(VpcId="vpc-111bbb22")["RouteTable"]["RouteTableId"]
        for _ in range(7)]
ec2.create_vpc_endpoint(VpcId="vpc-111bbb22", ServiceName="com.amazonaws.us-east-1.s3",
                        RouteTableIds=[made[0]])

def walk(op, key, size, **kw):
    pager = ec2.get_paginator(op).paginate(PaginationConfig={"PageSize": size}, **kw)
    pages = [p[key] for p in pager]
    assert all(len(p) <= size for p in pages), (op, [len(p) for p in pages])
    return pages

def once(op, key, id_key, size, want_pages, **kw):
    everything = [i[id_key] for i in getattr(ec2, op)(**kw)[key]]
    pages = walk(op, key, size, **kw)
    seen = [i[id_key] for p in pages for i in p]
    assert len(pages) == want_pages, (op, size, [len(p) for p in pages])
    assert len(seen) == len(set(seen)), (op, seen)
    assert sorted(seen) == sorted(everything), (op, seen, everything)
    print(f"ok: {op} PageSize {size}: {len(seen)} items in {len(pages)} pages, each once")

once("describe_route_tables", "RouteTables", "RouteTableId", 5, 3)
once("describe_vpc_endpoints", "VpcEndpoints", "VpcEndpointId", 1, 2)
# With a filter, DescribePrefixLists reaches every region's S3 list the lab has.
lists = [{"Name": "prefix-list-name", "Values": ["com.amazonaws.*"]}]
n = len(ec2.describe_prefix_lists(Filters=lists)["PrefixLists"])
assert n >= 3, n
once("describe_prefix_lists", "PrefixLists", "PrefixListId", 1, n, Filters=lists)
once("describe_route_tables", "RouteTables", "RouteTableId", 5, 2,
     Filters=[{"Name": "route-table-id", "Values": made + ["rtb-0a0a0a0a"]}])

for token in ["garbage", ec2.describe_vpcs(MaxResults=5).get("NextToken") or "",
              ec2.describe_prefix_lists(Filters=lists, MaxResults=1)["NextToken"]]:
    try:
        ec2.describe_route_tables(MaxResults=5, NextToken=token)
        raise SystemExit(f"token {token!r} accepted")
    except ec2.exceptions.ClientError as e:
        err = e.response["Error"]
        assert err["Code"] == "InvalidParameterValue" and "NextToken" in err["Message"], err
print("ok: a token that is not DescribeRouteTables' is InvalidParameterValue")
PY

# The CLI: --max-results turns its own paging off, so it sends each NextToken itself.
# jget EXPR: EXPR of the JSON `d` read from stdin.
jget() { "$PY" -c "import json, sys; d = json.load(sys.stdin); print($1)"; }
rt_ids='"\n".join(t["RouteTableId"] for t in d["RouteTables"])'
lines() { tr '\t' '\n' | sort; }
all_rt=$(awsx ec2 describe-route-tables --query 'RouteTables[].RouteTableId' --output text | lines)
seen="" token="" pages=0
while :; do
    out=$(awsx ec2 describe-route-tables --max-results 5 ${token:+--next-token "$token"})
    pages=$((pages + 1))
    [ $pages -le 5 ] || fail "describe-route-tables --max-results 5: no last page"
    page=$(jget "$rt_ids" <<< "$out")
    [ "$(wc -l <<< "$page")" -le 5 ] || fail "a page of more than 5: $page"
    seen+="$page"$'\n'
    token=$(jget 'd.get("NextToken", "")' <<< "$out")
    [ -n "$token" ] || break
done
[ $pages = 3 ] || fail "describe-route-tables --max-results 5: $pages pages"
[ "$(sort <<< "${seen%$'\n'}")" = "$all_rt" ] || fail "--max-results pages: $seen, expected $all_rt"
ok "aws ec2 describe-route-tables --max-results 5 --next-token: 3 pages, every table once"
q='VpcEndpoints[].VpcEndpointId'
eps=$(awsx ec2 describe-vpc-endpoints --page-size 1 --query "$q" --output text | lines)
[ "$eps" = "$(awsx ec2 describe-vpc-endpoints --query "$q" --output text | lines)" ] \
    && [ "$(wc -l <<< "$eps")" = 2 ] || fail "describe-vpc-endpoints --page-size 1: $eps"
ok "aws ec2 describe-vpc-endpoints --page-size 1: both endpoints, once each"
# --max-items cuts inside a page; --starting-token goes on from there.
first=$(awsx ec2 describe-route-tables --page-size 5 --max-items 7)
start=$(jget 'd["NextToken"]' <<< "$first")
rest=$(awsx ec2 describe-route-tables --page-size 5 --starting-token "$start")
both=$(for o in "$first" "$rest"; do jget "$rt_ids" <<< "$o"; done | sort)
[ "$both" = "$all_rt" ] || fail "--max-items 7 then --starting-token: $both, expected $all_rt"
ok "aws ec2 describe-route-tables --max-items 7, then --starting-token: every table once"

# A new subnet whose namespace exists already and is not the lab's (here one made by hand; it
# could be another lab's) is refused, recorded nowhere, and left alone by `vpcsim down`.
foreign="$LAB-zz"
OWN_NS+=("$foreign")
ip netns add "$foreign"
"$PY" - "$API" <<'PY' || fail "CreateSubnet with a taken namespace"
import sys, boto3
ec2 = boto3.client("ec2", endpoint_url=f"http://{sys.argv[1]}", region_name="us-east-1")
tags = [{"ResourceType": "subnet", "Tags": [{"Key": "Name", "Value": "zz"}]}]
try:
    ec2.create_subnet(VpcId="vpc-111bbb22", CidrBlock="10.0.6.0/24", TagSpecifications=tags)
    raise SystemExit("a subnet whose namespace is taken was created")
except ec2.exceptions.ClientError as e:
    err = e.response["Error"]
    assert err["Code"] == "InvalidParameterValue" and "already exists" in err["Message"], err
subnets = ec2.describe_subnets()["Subnets"]
assert not any(s["CidrBlock"] == "10.0.6.0/24" for s in subnets), subnets
PY
grep -q "\"$foreign\"" "/run/vpcsim/$LAB.json" && fail "the run record names $foreign"
"$VPCSIM" down "$LAB" >/dev/null
ip netns list | grep >/dev/null -cw "$foreign" || fail "down removed $foreign, which the lab did not make"
LAB=""
ok "a subnet whose namespace is taken: InvalidParameterValue; down leaves that namespace alone"
