#!/usr/bin/env bash
# boto3 builds a new subnet with an instance and an endpoint association: the subnet's
# namespace and TUN exist as soon as the call returns, its traffic takes the endpoint, and
# deleting it removes the namespace.
#
#   new subnet e 10.0.5.0/24 (namespace <lab>-subnet-…) ── pl -> vpce ── aws
source "$(dirname "$0")/lib.sh"
lab_up "$ROOT/netns/demo.toml" bo
ip netns list | awk '{print $1}' | grep "^$LAB-" | sort > "$WORK/ns.before"

"$PY" - "$API" > "$WORK/ids" <<'PY'
import sys, boto3
ec2 = boto3.client("ec2", endpoint_url=f"http://{sys.argv[1]}", region_name="us-east-1")
rt = ec2.create_route_table(VpcId="vpc-111bbb22")["RouteTable"]["RouteTableId"]
sn = ec2.create_subnet(VpcId="vpc-111bbb22", CidrBlock="10.0.5.0/24")["Subnet"]["SubnetId"]
ec2.associate_route_table(RouteTableId=rt, SubnetId=sn)
ec2.modify_vpc_endpoint(VpcEndpointId="vpce-11bb22cc", AddRouteTableIds=[rt])
inst = ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1, SubnetId=sn,
                         PrivateIpAddress="10.0.5.10")["Instances"][0]["InstanceId"]
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
ec2.terminate_instances(InstanceIds=[sys.argv[3]])
ec2.delete_subnet(SubnetId=sys.argv[2])
PY
ip netns list | grep >/dev/null -cw "$ns" && fail "namespace $ns left after delete-subnet"
ok "delete-subnet removed $ns"
