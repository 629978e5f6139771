#!/usr/bin/env bash
# Who gets in, end to end: bucket policies with aws:sourceVpce, aws:VpcSourceIp and aws:SourceIp
# on each path, account principals that delegate to identity policies,
# endpoint policies from the guide (also two endpoints with different policies for two
# subnets), explicit deny over allow, IAM users on EC2 and S3, and bad signatures. Every 403
# names who denied it (x-vpcsim-denied-by). Object tags with the AWS CLI, and a bucket policy on
# s3:ExistingObjectTag. A bucket policy requiring conditional writes (s3:if-none-match).
#
#   a 10.0.1.10 ── vpce-11bb22cc ──┐
#   b 10.0.2.10 ── igw (203.0.113.20) ──┴── aws: S3 stub (open-bucket, my-secure-bucket)
source "$(dirname "$0")/lib.sh"
# The demo lab and a user "reader" without identity policy (allowed nothing of its own).
READER_KEYS=(AWS_ACCESS_KEY_ID=AKIAREADERNOPOLICY01 AWS_SECRET_ACCESS_KEY=readerSecretKeyWithoutAnyPolicy0000)
{ cat "$ROOT/netns/demo.toml"; printf '\n[[user]]\nname = "reader"\naccess_key = "%s"\nsecret_key = "%s"\n' \
    "${READER_KEYS[0]#*=}" "${READER_KEYS[1]#*=}"; } > "$WORK/demo-reader.toml"
lab_up "$WORK/demo-reader.toml" ac

# expect_status NS URL CODE [DENIED_BY]
expect_status() {
    local h code by
    h=$(get_headers "$1" "$2") || fail "$1 -> $2: request failed"
    code=$(status_line "$h" | cut -d' ' -f2)
    by=$(header x-vpcsim-denied-by <<< "$h")
    [ "$code" = "$3" ] || fail "$1 -> $2: $code, expected $3 (denied by '$by')"
    [ "$by" = "${4:-}" ] || fail "$1 -> $2: denied by '$by', expected '${4:-}'"
    ok "$1 -> $2: $code${4:+ denied by $4}"
}

# The guide's "Restricting Access to a Specific Endpoint" (naming this lab's endpoint).
expect_status a http://54.123.170.5/my-secure-bucket/hello.txt 200
expect_status b http://54.123.170.5/my-secure-bucket/hello.txt 403 bucket-policy:Access-to-specific-VPCE-only
expect_status c http://54.123.170.5/my-secure-bucket/hello.txt 200
expect_status c http://54.123.165.7/my-secure-bucket/hello.txt 403 bucket-policy:Access-to-specific-VPCE-only
# Anonymous callers may read open-bucket but not write it.
code=$(in_ns a curl -s -o /dev/null -w '%{http_code}' -T /etc/hostname http://54.123.170.5/open-bucket/x)
[ "$code" = 403 ] || fail "anonymous PUT to open-bucket answered $code"
ok "anonymous PUT to open-bucket: 403"

# The guide's endpoint policy "Restricting Access to a Specific Bucket".
awsx ec2 modify-vpc-endpoint --vpc-endpoint-id vpce-11bb22cc --policy-document '{
  "Statement": [{"Sid": "Access-to-specific-bucket-only", "Principal": "*",
    "Action": ["s3:GetObject", "s3:PutObject"], "Effect": "Allow",
    "Resource": ["arn:aws:s3:::my-secure-bucket", "arn:aws:s3:::my-secure-bucket/*"]}]}' >/dev/null
expect_status a http://54.123.170.5/open-bucket/hello.txt 403 endpoint-policy
expect_status b http://54.123.170.5/open-bucket/hello.txt 200
expect_status a http://54.123.170.5/my-secure-bucket/hello.txt 200
# S3 User Guide, "Troubleshoot access denied (403 Forbidden) errors": a same-account request
# gets "User: <arn> is not authorized to perform: <action> on resource: "<arn>" because no VPC
# endpoint policy allows the <action> action"; the CLI in the subnet shows it.
if AWS_CA_BUNDLE="$STATE/tls/ca.pem" in_ns a "$AWS_BIN" s3api get-object --bucket open-bucket \
    --key hello.txt "$WORK/hello.out" > "$WORK/denied.out" 2>&1; then fail "open-bucket through the endpoint"; fi
grep -qF 'User: arn:aws:iam::123456789012:user/admin is not authorized to perform: s3:GetObject on resource: "arn:aws:s3:::open-bucket/hello.txt" because no VPC endpoint policy allows the s3:GetObject action' \
    "$WORK/denied.out" || fail "the endpoint policy's AccessDenied message: $(cat "$WORK/denied.out")"
ok "aws s3api get-object in a: AccessDenied names the VPC endpoint policy"
awsx ec2 describe-vpc-endpoints --query 'VpcEndpoints[0].PolicyDocument' --output text | grep >/dev/null -c Access-to-specific-bucket-only \
    || fail "describe-vpc-endpoints does not show the policy"
awsx ec2 modify-vpc-endpoint --vpc-endpoint-id vpce-11bb22cc --reset-policy >/dev/null
expect_status a http://54.123.170.5/open-bucket/hello.txt 200

# The guide: "you can use different route tables to enforce different access policies from
# different subnets to the same service". Subnet c's table moves to a second endpoint to S3 whose
# policy allows only my-secure-bucket; subnet a keeps vpce-11bb22cc and its full access.
awsx ec2 modify-vpc-endpoint --vpc-endpoint-id vpce-11bb22cc \
    --remove-route-table-ids rtb-0c0c0c0c >/dev/null
second=$(awsx ec2 create-vpc-endpoint --vpc-id vpc-111bbb22 \
    --service-name com.amazonaws.us-east-1.s3 --route-table-ids rtb-0c0c0c0c \
    --query VpcEndpoint.VpcEndpointId --output text --policy-document '{
  "Statement": [{"Sid": "Access-to-specific-bucket-only", "Principal": "*",
    "Action": ["s3:GetObject", "s3:PutObject"], "Effect": "Allow",
    "Resource": ["arn:aws:s3:::my-secure-bucket", "arn:aws:s3:::my-secure-bucket/*"]}]}')
[[ "$second" == vpce-* ]] || fail "create-vpc-endpoint for rtb-0c0c0c0c answered '$second'"
vpce_c=$(get_headers c http://54.123.170.5/open-bucket/hello.txt | header x-vpcsim-vpce)
[ "$vpce_c" = "$second" ] || fail "c reaches S3 through '$vpce_c', expected $second"
ok "c reaches S3 through its own endpoint $second"
expect_status a http://54.123.170.5/open-bucket/hello.txt 200
expect_status c http://54.123.170.5/open-bucket/hello.txt 403 endpoint-policy
# my-secure-bucket's policy admits vpce-11bb22cc only: c's endpoint policy allows the bucket,
# its bucket policy does not allow c's endpoint.
expect_status a http://54.123.170.5/my-secure-bucket/hello.txt 200
expect_status c http://54.123.170.5/my-secure-bucket/hello.txt 403 bucket-policy:Access-to-specific-VPCE-only
awsx ec2 delete-vpc-endpoints --vpc-endpoint-ids "$second" >/dev/null
awsx ec2 modify-vpc-endpoint --vpc-endpoint-id vpce-11bb22cc \
    --add-route-table-ids rtb-0c0c0c0c >/dev/null
expect_status c http://54.123.170.5/open-bucket/hello.txt 200
expect_status c http://54.123.170.5/my-secure-bucket/hello.txt 200

# The guide's "Enabling Access to the Amazon Linux AMI Repositories" endpoint policy.
awsx ec2 modify-vpc-endpoint --vpc-endpoint-id vpce-11bb22cc --policy-document '{
  "Statement": [{"Sid": "AmazonLinuxAMIRepositoryAccess", "Principal": "*", "Action": ["s3:GetObject"],
    "Effect": "Allow",
    "Resource": ["arn:aws:s3:::packages.*.amazonaws.com/*", "arn:aws:s3:::repo.*.amazonaws.com/*"]}]}' >/dev/null
expect_status a http://packages.us-east-1.amazonaws.com.s3.amazonaws.com/repodata/repomd.xml 200
expect_status a http://54.123.170.5/repo.us-east-1.amazonaws.com/repodata/repomd.xml 200
expect_status a http://54.123.170.5/open-bucket/hello.txt 403 endpoint-policy
awsx ec2 modify-vpc-endpoint --vpc-endpoint-id vpce-11bb22cc --reset-policy >/dev/null

# The guide: "The Amazon Linux AMI repositories are Amazon S3 buckets in each region", AWS's,
# not the lab account's: not listed, not deleted or written by the admin, their name taken; a
# data-perimeter endpoint policy (s3:ResourceAccount, the bucket owner's account) blocks them.
awsx s3api list-buckets --query 'Buckets[].Name' > "$WORK/buckets.json"
grep -q open-bucket "$WORK/buckets.json" && ! grep -q amazonaws.com "$WORK/buckets.json" \
    || fail "list-buckets: $(cat "$WORK/buckets.json")"
ok "list-buckets: the lab's buckets, not AWS's repositories"
if awsx s3 rb --force s3://repo.us-east-1.amazonaws.com > "$WORK/rb.out" 2>&1; then
    fail "the admin removed AWS's repository bucket"
fi
grep -q AccessDenied "$WORK/rb.out" || fail "aws s3 rb: $(cat "$WORK/rb.out")"
expect_error AccessDenied s3api delete-bucket --bucket repo.us-east-1.amazonaws.com
expect_error AccessDenied s3api put-object --bucket packages.us-east-1.amazonaws.com --key repodata/evil.txt
expect_error BucketAlreadyExists s3api create-bucket --bucket packages.us-east-1.amazonaws.com
expect_status a http://54.123.170.5/repo.us-east-1.amazonaws.com/repodata/repomd.xml 200
expect_status a http://54.123.170.5/packages.us-east-1.amazonaws.com/repodata/evil.txt 403 implicit
awsx ec2 modify-vpc-endpoint --vpc-endpoint-id vpce-11bb22cc --policy-document '{
  "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "*",
    "Condition": {"StringEquals": {"s3:ResourceAccount": "123456789012"}}}]}' >/dev/null
expect_status a http://54.123.170.5/open-bucket/hello.txt 200
expect_status a http://packages.us-east-1.amazonaws.com.s3.amazonaws.com/repodata/repomd.xml 403 endpoint-policy
awsx ec2 modify-vpc-endpoint --vpc-endpoint-id vpce-11bb22cc --reset-policy >/dev/null

# aws:SourceIp through each path, explicit deny over allow, MalformedPolicy — set with boto3.
"$PY" - "$API" <<'PY'
import json, sys, boto3
s3 = boto3.client("s3", endpoint_url=f"http://{sys.argv[1]}", region_name="us-east-1")
policy = {"Version": "2012-10-17", "Statement": [
    {"Sid": "FromPublicIps", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
     "Resource": "arn:aws:s3:::open-bucket/*", "Condition": {"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}},
    {"Sid": "NoSecrets", "Effect": "Deny", "Principal": "*", "Action": "s3:GetObject",
     "Resource": "arn:aws:s3:::open-bucket/secret*"}]}
s3.put_bucket_policy(Bucket="open-bucket", Policy=json.dumps(policy))
s3.put_object(Bucket="open-bucket", Key="secret.txt", Body=b"no")
assert json.loads(s3.get_bucket_policy(Bucket="open-bucket")["Policy"]) == policy
bad = {"no Principal": {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
       "another bucket": {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                          "Resource": "arn:aws:s3:::my-secure-bucket/*"},
       "another service": {"Effect": "Allow", "Principal": "*", "Action": "ec2:DescribeVpcs",
                           "Resource": "arn:aws:s3:::open-bucket/*"}}
for what, statement in bad.items():
    try:
        s3.put_bucket_policy(Bucket="open-bucket", Policy=json.dumps({"Statement": [statement]}))
        raise SystemExit(f"a bucket policy with {what} was accepted")
    except s3.exceptions.ClientError as e:
        assert e.response["Error"]["Code"] == "MalformedPolicy", (what, e.response)
assert json.loads(s3.get_bucket_policy(Bucket="open-bucket")["Policy"]) == policy
PY
ok "boto3: put/get bucket policy; MalformedPolicy without Principal, for another bucket's resource or another service's action, the policy unchanged"
# From the guide: through an endpoint, aws:SourceIp "is not matched — the statement is ignored".
expect_status b http://54.123.170.5/open-bucket/hello.txt 200
expect_status a http://54.123.170.5/open-bucket/hello.txt 403 implicit
expect_status b http://54.123.170.5/open-bucket/secret.txt 403 bucket-policy:NoSecrets

# Policy variables (Version 2012-10-17): a Deny on the caller's own folder denies the admin
# admin/own.txt, not the object literally named ${aws:username}/own.txt. And S3's own
# MalformedPolicy messages.
"$PY" - "$API" <<'PY'
import json, sys, boto3
s3 = boto3.client("s3", endpoint_url=f"http://{sys.argv[1]}", region_name="us-east-1")
policy = json.loads(s3.get_bucket_policy(Bucket="open-bucket")["Policy"])
policy["Statement"].append({"Sid": "NotOwnFolder", "Effect": "Deny", "Principal": "*",
    "Action": "s3:GetObject", "Resource": "arn:aws:s3:::open-bucket/${aws:username}/*"})
s3.put_bucket_policy(Bucket="open-bucket", Policy=json.dumps(policy))
for key in ["admin/own.txt", "${aws:username}/own.txt"]:
    s3.put_object(Bucket="open-bucket", Key=key, Body=b"own")
try:
    s3.get_object(Bucket="open-bucket", Key="admin/own.txt")
    raise SystemExit("${aws:username} was not substituted")
except s3.exceptions.ClientError as e:
    assert e.response["Error"]["Code"] == "AccessDenied", e.response
assert s3.get_object(Bucket="open-bucket", Key="${aws:username}/own.txt")["Body"].read() == b"own"
ok = {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::open-bucket/*"}
for change, message in [
    ({"Action": "s3:GetObjects"}, "Policy has invalid action"),
    ({"Resource": "*"}, "Policy has invalid resource"),
    ({"Principal": {"AWS": "arn:aws:iam::123456789012:user/nobody"}}, "Invalid principal in policy"),
    ({"Effect": "allow"}, "Invalid effect: allow"),
    ({"Action": "s3:ListBucket"}, "Action does not apply to any resource(s) in statement"),
    ({"Condition": {"StringEquals": {"s3:bogus": "x"}}}, "Policy has an invalid condition key"),
]:
    try:
        s3.put_bucket_policy(Bucket="open-bucket",
                             Policy=json.dumps({"Version": "2012-10-17", "Statement": [{**ok, **change}]}))
        raise SystemExit(f"accepted: {change}")
    except s3.exceptions.ClientError as e:
        assert (e.response["Error"]["Code"], e.response["Error"]["Message"]) == ("MalformedPolicy", message), e.response
PY
ok "boto3: \${aws:username} substituted in a bucket policy's Resource; S3's MalformedPolicy messages"

# The guide's "Restricting Access to a Specific VPC" (aws:sourceVpc), on open-bucket (my-secure-
# bucket's own policy refuses PutBucketPolicy from outside its endpoint: a real lock-out).
"$PY" - "$API" <<'PY'
import json, sys, boto3
s3 = boto3.client("s3", endpoint_url=f"http://{sys.argv[1]}", region_name="us-east-1")
try:
    s3.put_bucket_policy(Bucket="my-secure-bucket", Policy="{}")
    raise SystemExit("my-secure-bucket's policy let the admin in from outside the endpoint")
except s3.exceptions.ClientError as e:
    assert e.response["Error"]["Code"] == "AccessDenied", e.response
s3.put_bucket_policy(Bucket="open-bucket", Policy=json.dumps({
  "Version": "2012-10-17", "Id": "Policy1415115909152", "Statement": [
    {"Sid": "Access-to-specific-VPC-only", "Principal": "*", "Action": "s3:*", "Effect": "Deny",
     "Resource": ["arn:aws:s3:::open-bucket", "arn:aws:s3:::open-bucket/*"],
     "Condition": {"StringNotEquals": {"aws:sourceVpc": "vpc-111bbb22"}}},
    {"Sid": "AnyoneMayRead", "Principal": "*", "Action": "s3:GetObject", "Effect": "Allow",
     "Resource": "arn:aws:s3:::open-bucket/*"}]}))
PY
expect_status c http://54.123.170.5/open-bucket/hello.txt 200
expect_status b http://54.123.170.5/open-bucket/hello.txt 403 bucket-policy:Access-to-specific-VPC-only

# IAM users: the developer may describe but not create endpoints; the admin may.
AWS_ACCESS_KEY_ID=AKIAI44QH8DHBEXAMPLE AWS_SECRET_ACCESS_KEY=je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY \
    awsx ec2 describe-vpcs >/dev/null || fail "developer cannot describe"
AWS_ACCESS_KEY_ID=AKIAI44QH8DHBEXAMPLE AWS_SECRET_ACCESS_KEY=je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY \
    expect_error UnauthorizedOperation ec2 create-vpc-endpoint --vpc-id vpc-111bbb22 \
    --service-name com.amazonaws.us-east-1.s3
# An unknown or missing action is InvalidAction or MissingParameter for the developer too, not
# UnauthorizedOperation: EC2 checks the request before it authorizes it.
"$PY" - "$API" <<'PY' || fail "the developer's unknown action"
import sys, urllib.error, urllib.request
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
creds = Credentials("AKIAI44QH8DHBEXAMPLE", "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY")
# A dry run is answered DryRunOperation with 412 Precondition Failed (as EC2 does) when the
# caller may make the call, UnauthorizedOperation (403) when not.
for body, status, code in [
        ("Action=LaunchRockets&Version=2016-11-15", 400, "InvalidAction"),
        ("Version=2016-11-15", 400, "MissingParameter"),
        ("Action=DescribeVpcs&DryRun=true&Version=2016-11-15", 412, "DryRunOperation"),
        ("Action=CreateVpcEndpoint&VpcId=vpc-111bbb22&ServiceName=com.amazonaws.us-east-1.s3"
         "&DryRun=true&Version=2016-11-15", 403, "UnauthorizedOperation")]:
    req = AWSRequest("POST", f"http://{sys.argv[1]}/", data=body,
                     headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    SigV4Auth(creds, "ec2", "us-east-1").add_auth(req)
    try:
        urllib.request.urlopen(urllib.request.Request(req.url, data=body.encode(),
                                                      headers=dict(req.headers), method="POST"))
        raise SystemExit(f"{body} was answered 200")
    except urllib.error.HTTPError as e:
        text = e.read().decode()
        assert e.code == status and f"<Code>{code}</Code>" in text, (body, e.code, text)
PY
ok "the developer's unknown action: InvalidAction; no action: MissingParameter; dry runs: 412 DryRunOperation, 403 UnauthorizedOperation"
# Explicit deny beats the admin's allow: secret.txt is refused to the admin too.
if awsx s3 cp s3://open-bucket/secret.txt - >/dev/null 2>&1; then fail "explicit deny ignored for admin"; fi
ok "explicit Deny in the bucket policy beats the admin's Allow"
# A wrong secret: SignatureDoesNotMatch, from the control API and from a subnet.
out=$(AWS_SECRET_ACCESS_KEY=wrong awsx s3 ls 2>&1) && fail "bad signature accepted"
grep -q SignatureDoesNotMatch <<< "$out" || fail "bad signature: $out"
ok "a bad signature is SignatureDoesNotMatch"
# aws:VpcSourceIp (IAM: it "matches only if the request originates from the specified IP address
# and it goes through a VPC endpoint"): an instance's private address through the endpoint, in
# the endpoint policy and in a bucket policy; absent through the internet gateway, where
# aws:SourceIp is the public address, and aws:SourceIp absent through the endpoint (the guide).
awsx ec2 modify-vpc-endpoint --vpc-endpoint-id vpce-11bb22cc --policy-document '{
  "Statement": [{"Sid": "FromSubnetA", "Principal": "*", "Action": "s3:GetObject", "Effect": "Allow",
    "Resource": "*", "Condition": {"IpAddress": {"aws:VpcSourceIp": "10.0.1.0/24"}}}]}' >/dev/null
expect_status a http://54.123.170.5/open-bucket/hello.txt 200
expect_status c http://54.123.170.5/open-bucket/hello.txt 403 endpoint-policy
awsx ec2 modify-vpc-endpoint --vpc-endpoint-id vpce-11bb22cc --reset-policy >/dev/null
awsx s3api create-bucket --bucket vpcip-bucket >/dev/null
printf ip > "$WORK/ip"
for key in vpc/k pub/k; do
    awsx s3api put-object --bucket vpcip-bucket --key "$key" --body "$WORK/ip" >/dev/null
done
awsx s3api put-bucket-policy --bucket vpcip-bucket --policy '{"Version": "2012-10-17", "Statement": [
  {"Sid": "FromSubnetA", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
   "Resource": "arn:aws:s3:::vpcip-bucket/vpc/*",
   "Condition": {"IpAddress": {"aws:VpcSourceIp": "10.0.1.0/24"}}},
  {"Sid": "FromPublicIps", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
   "Resource": "arn:aws:s3:::vpcip-bucket/pub/*",
   "Condition": {"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}}]}' \
    || fail "put-bucket-policy on aws:VpcSourceIp"
expect_status a http://54.123.170.5/vpcip-bucket/vpc/k 200
expect_status c http://54.123.170.5/vpcip-bucket/vpc/k 403 implicit
expect_status b http://54.123.170.5/vpcip-bucket/vpc/k 403 implicit
expect_status a http://54.123.170.5/vpcip-bucket/pub/k 403 implicit
expect_status b http://54.123.170.5/vpcip-bucket/pub/k 200

# A bucket policy naming the account delegates to it (IAM, "AWS account principals": "This
# delegates authority to the account"): the reader, who has no identity policy, gets nothing
# from it; the developer, whose identity policy allows s3:*, reads. Naming the reader's own ARN,
# or "*", grants it alone. A Deny naming the account denies the admin too.
reader() { env "${READER_KEYS[@]}" "$AWS_BIN" --endpoint-url "http://$API" --output json "$@"; }
developer() {
    AWS_ACCESS_KEY_ID=AKIAI44QH8DHBEXAMPLE AWS_SECRET_ACCESS_KEY=je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY \
        awsx "$@"
}
awsx s3api create-bucket --bucket acct-bucket >/dev/null
printf account > "$WORK/acct"
awsx s3api put-object --bucket acct-bucket --key k --body "$WORK/acct" >/dev/null
get_as() { "$@" s3api get-object --bucket acct-bucket --key k "$WORK/acct.out" > "$WORK/get.out" 2>&1; }
acct_policy() {
    awsx s3api put-bucket-policy --bucket acct-bucket --policy "{\"Version\": \"2012-10-17\", \"Statement\": [
      {\"Sid\": \"S\", \"Effect\": \"$1\", \"Principal\": $2, \"Action\": \"s3:GetObject\",
       \"Resource\": \"arn:aws:s3:::acct-bucket/*\"}]}" || fail "put-bucket-policy $1 $2"
}
for principal in '{"AWS": "123456789012"}' '{"AWS": "arn:aws:iam::123456789012:root"}'; do
    acct_policy Allow "$principal"
    if get_as reader; then fail "the account principal $principal let the reader in"; fi
    grep -q AccessDenied "$WORK/get.out" || fail "reader under $principal: $(cat "$WORK/get.out")"
    get_as developer || fail "the developer refused under $principal: $(cat "$WORK/get.out")"
    get_as awsx || fail "the admin refused under $principal: $(cat "$WORK/get.out")"
    ok "bucket policy Principal $principal: the reader (no identity policy) AccessDenied, developer and admin read"
done
for principal in '{"AWS": "arn:aws:iam::123456789012:user/reader"}' '"*"'; do
    acct_policy Allow "$principal"
    get_as reader || fail "the reader refused under $principal: $(cat "$WORK/get.out")"
    [ "$(cat "$WORK/acct.out")" = account ] || fail "the reader's body under $principal"
    ok "bucket policy Principal $principal: the reader reads by the bucket policy alone"
done
acct_policy Deny '{"AWS": "123456789012"}'
if get_as awsx; then fail "a Deny naming the account let the admin read"; fi
grep -q AccessDenied "$WORK/get.out" || fail "admin under the account's Deny: $(cat "$WORK/get.out")"
ok "a Deny naming the account refuses the admin"
awsx s3api delete-bucket-policy --bucket acct-bucket || fail "delete-bucket-policy"

# Object tags, with the AWS CLI in demo-a (HTTPS, through the endpoint, the admin's keys):
# put-object --tagging, get-object-tagging, head-object's TagCount, put-object-tagging,
# delete-object-tagging; more than 10 tags, or a key beginning with aws:, refused, nothing stored.
# A bucket policy on s3:ExistingObjectTag/public lets anonymous callers read only the objects
# tagged public=yes.
export AWS_CA_BUNDLE="$STATE/tls/ca.pem"
awsx s3api create-bucket --bucket tag-bucket >/dev/null
awsx s3api put-bucket-policy --bucket tag-bucket --policy '{"Version": "2012-10-17", "Statement": [
  {"Sid": "PublicByTag", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
   "Resource": "arn:aws:s3:::tag-bucket/*",
   "Condition": {"StringEquals": {"s3:ExistingObjectTag/public": "yes"}}}]}' \
    || fail "put-bucket-policy on s3:ExistingObjectTag"
s3t() { in_ns a "$AWS_BIN" s3api --output text "$@"; }
anon_code() { in_ns a curl -s -o /dev/null -w '%{http_code}' "http://54.123.170.5/tag-bucket/$1"; }
printf tagged > "$WORK/tagged"
s3t put-object --bucket tag-bucket --key doc --body "$WORK/tagged" --tagging 'team=blue&public=no' \
    > /dev/null || fail "put-object --tagging"
got=$(s3t get-object-tagging --bucket tag-bucket --key doc --query 'TagSet[].[Key,Value]' | sort | tr '\t\n' '=,')
[ "$got" = "public=no,team=blue," ] || fail "get-object-tagging: $got"
[ "$(s3t head-object --bucket tag-bucket --key doc --query TagCount)" = 2 ] || fail "head-object's TagCount"
[ "$(anon_code doc)" = 403 ] || fail "anonymous read of an object tagged public=no: $(anon_code doc)"
ok "aws s3api put-object --tagging, get-object-tagging, head-object TagCount 2; public=no: anonymous 403"
s3t put-object-tagging --bucket tag-bucket --key doc --tagging 'TagSet=[{Key=public,Value=yes}]' \
    || fail "put-object-tagging"
[ "$(s3t head-object --bucket tag-bucket --key doc --query TagCount)" = 1 ] || fail "TagCount after put-object-tagging"
[ "$(anon_code doc)" = 200 ] || fail "anonymous read of an object tagged public=yes: $(anon_code doc)"
[ "$(in_ns a curl -s http://54.123.170.5/tag-bucket/doc)" = tagged ] || fail "anonymous read's body"
ok "aws s3api put-object-tagging public=yes (the CLI's checksum checked): anonymous 200 by s3:ExistingObjectTag"
s3t delete-object-tagging --bucket tag-bucket --key doc || fail "delete-object-tagging"
[ "$(s3t get-object-tagging --bucket tag-bucket --key doc --query 'length(TagSet)')" = 0 ] \
    || fail "tags left after delete-object-tagging"
[ "$(anon_code doc)" = 403 ] || fail "anonymous read after delete-object-tagging: $(anon_code doc)"
ok "aws s3api delete-object-tagging: an empty TagSet, anonymous 403 again"
eleven=$(for i in $(seq 11); do printf 'k%d=v&' "$i"; done)
if s3t put-object --bucket tag-bucket --key eleven --body "$WORK/tagged" --tagging "${eleven%&}" \
    > "$WORK/tag.out" 2>&1; then fail "11 tags accepted by put-object"; fi
grep -q "(BadRequest).*Object tags cannot be greater than 10" "$WORK/tag.out" || fail "11 tags: $(cat "$WORK/tag.out")"
if s3t head-object --bucket tag-bucket --key eleven > /dev/null 2>&1; then fail "put-object with 11 tags stored"; fi
set11=$(for i in $(seq 11); do printf '{Key=k%d,Value=v},' "$i"; done)
if s3t put-object-tagging --bucket tag-bucket --key doc --tagging "TagSet=[${set11%,}]" \
    > "$WORK/tag.out" 2>&1; then fail "11 tags accepted by put-object-tagging"; fi
grep -q "(BadRequest)" "$WORK/tag.out" || fail "put-object-tagging of 11: $(cat "$WORK/tag.out")"
[ "$(s3t get-object-tagging --bucket tag-bucket --key doc --query 'length(TagSet)')" = 0 ] \
    || fail "a refused put-object-tagging changed the tags"
ok "11 tags: put-object and put-object-tagging refused with 400 BadRequest, nothing stored"
# The aws: key prefix is AWS's own ("May not begin with aws:"): S3's 400 InvalidTag, by body and
# by header, and nothing stored.
s3t put-object-tagging --bucket tag-bucket --key doc --tagging 'TagSet=[{Key=team,Value=red}]' \
    || fail "put-object-tagging team=red"
if s3t put-object-tagging --bucket tag-bucket --key doc \
    --tagging 'TagSet=[{Key=aws:cloudformation:stack-name,Value=x}]' > "$WORK/tag.out" 2>&1; then
    fail "an aws: tag key accepted by put-object-tagging"
fi
grep -q "(InvalidTag).*Your TagKey cannot be prefixed with aws:" "$WORK/tag.out" \
    || fail "put-object-tagging aws:: $(cat "$WORK/tag.out")"
[ "$(s3t get-object-tagging --bucket tag-bucket --key doc --query 'TagSet[].[Key,Value]')" = "$(printf 'team\tred')" ] \
    || fail "a refused aws: tag changed the tags"
if s3t put-object --bucket tag-bucket --key reserved --body "$WORK/tagged" --tagging 'aws%3Afoo=1' \
    > "$WORK/tag.out" 2>&1; then fail "an aws: tag key accepted by put-object"; fi
grep -q "(InvalidTag).*Your TagKey cannot be prefixed with aws:" "$WORK/tag.out" \
    || fail "put-object --tagging aws:foo: $(cat "$WORK/tag.out")"
if s3t head-object --bucket tag-bucket --key reserved > /dev/null 2>&1; then fail "put-object with an aws: tag stored"; fi
ok "an aws: tag key: put-object-tagging and put-object --tagging refused with 400 InvalidTag, nothing stored"

# Conditional writes required by a bucket policy (S3 User Guide, "Enforce conditional writes on
# Amazon S3 buckets"), with the AWS CLI in demo-a: a Deny of s3:PutObject when s3:if-none-match is
# Null and s3:ObjectCreationOperation true. `put-object --if-none-match '*'` creates the object
# (and a second one is 412, the key being taken); a put without it is refused by the policy and
# stores nothing; a multipart upload (exempt: s3:ObjectCreationOperation false) still completes
# with --if-none-match. Before, the keys were never set on requests and the Deny never matched.
awsx s3api create-bucket --bucket cond-bucket >/dev/null
awsx s3api put-bucket-policy --bucket cond-bucket --policy '{"Version": "2012-10-17", "Statement": [
  {"Sid": "RequireIfNoneMatch", "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
   "Resource": "arn:aws:s3:::cond-bucket/*",
   "Condition": {"Null": {"s3:if-none-match": "true"}, "Bool": {"s3:ObjectCreationOperation": "true"}}}]}' \
    || fail "put-bucket-policy on s3:if-none-match"
printf first > "$WORK/cond1"
printf second > "$WORK/cond2"
s3t put-object --bucket cond-bucket --key once --body "$WORK/cond1" --if-none-match '*' > /dev/null \
    || fail "put-object --if-none-match '*' refused"
if s3t put-object --bucket cond-bucket --key once --body "$WORK/cond2" --if-none-match '*' \
    > "$WORK/cond.out" 2>&1; then fail "a second put-object --if-none-match '*' overwrote"; fi
grep -q PreconditionFailed "$WORK/cond.out" || fail "second conditional put: $(cat "$WORK/cond.out")"
if s3t put-object --bucket cond-bucket --key plain --body "$WORK/cond2" > "$WORK/cond.out" 2>&1; then
    fail "put-object without --if-none-match accepted under RequireIfNoneMatch"
fi
grep -q AccessDenied "$WORK/cond.out" || fail "unconditional put: $(cat "$WORK/cond.out")"
if s3t head-object --bucket cond-bucket --key plain > /dev/null 2>&1; then fail "a refused put stored"; fi
s3t get-object --bucket cond-bucket --key once "$WORK/cond.get" > /dev/null || fail "get-object once"
[ "$(cat "$WORK/cond.get")" = first ] || fail "the conditional put's object: $(cat "$WORK/cond.get")"
ok "bucket policy requiring If-None-Match: put-object --if-none-match '*' stored, again 412, without it AccessDenied and nothing stored"
upload=$(s3t create-multipart-upload --bucket cond-bucket --key mp --query UploadId) \
    || fail "create-multipart-upload under RequireIfNoneMatch"
etag=$(s3t upload-part --bucket cond-bucket --key mp --upload-id "$upload" --part-number 1 \
    --body "$WORK/cond1" --query ETag) || fail "upload-part under RequireIfNoneMatch"
parts="{\"Parts\": [{\"PartNumber\": 1, \"ETag\": $etag}]}"
if s3t complete-multipart-upload --bucket cond-bucket --key mp --upload-id "$upload" \
    --multipart-upload "$parts" > "$WORK/cond.out" 2>&1; then fail "an unconditional completion accepted"; fi
grep -q AccessDenied "$WORK/cond.out" || fail "unconditional completion: $(cat "$WORK/cond.out")"
s3t complete-multipart-upload --bucket cond-bucket --key mp --upload-id "$upload" \
    --multipart-upload "$parts" --if-none-match '*' > /dev/null || fail "complete-multipart-upload --if-none-match"
s3t head-object --bucket cond-bucket --key mp > /dev/null || fail "the completed upload is missing"
ok "multipart under RequireIfNoneMatch: create and upload-part exempt, complete only with --if-none-match"
