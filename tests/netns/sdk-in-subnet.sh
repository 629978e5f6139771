#!/usr/bin/env bash
# The real AWS CLI inside a subnet, unchanged: it resolves my-secure-bucket.s3.amazonaws.com with
# the VPC resolver, speaks HTTPS (the lab CA via AWS_CA_BUNDLE), uploads 200 MB as a multipart
# upload through the endpoint, and downloads it back with the same sha256. From subnet b (public path) the
# bucket's endpoint-only policy refuses the same calls.
#
#   a ── DNS 10.0.0.2 ── HTTPS 443 ── vpce-11bb22cc ── aws: S3 stub (lab CA certificate)
source "$(dirname "$0")/lib.sh"
lab_up "$ROOT/netns/demo.toml" sk

export AWS_CA_BUNDLE="$STATE/tls/ca.pem"
[ -s "$AWS_CA_BUNDLE" ] || fail "no lab CA at $AWS_CA_BUNDLE"
head -c 200000000 /dev/urandom > "$WORK/obj"
in_ns a "$AWS_BIN" s3 cp --only-show-errors "$WORK/obj" s3://my-secure-bucket/obj || fail "aws s3 cp up"
in_ns a "$AWS_BIN" s3 cp --only-show-errors s3://my-secure-bucket/obj "$WORK/back" || fail "aws s3 cp down"
[ "$(sha256sum < "$WORK/obj")" = "$(sha256sum < "$WORK/back")" ] || fail "the object came back different"
# One part of it (the CLI's parts are 8 MiB): get-object --part-number.
got=$(in_ns a "$AWS_BIN" s3api get-object --bucket my-secure-bucket --key obj --part-number 2 \
    "$WORK/part2" --query '[PartsCount,ContentLength]' --output text) || fail "get-object --part-number"
[ "$got" = "$(printf '24\t8388608')" ] || fail "part 2: $got"
cmp -s "$WORK/part2" <(dd if="$WORK/obj" bs=8388608 skip=1 count=1 2>/dev/null) || fail "part 2's bytes differ"
ok "aws s3api get-object --part-number 2: the second 8 MiB part of 24"
rm -f "$WORK/obj" "$WORK/back" "$WORK/part2"
in_ns a "$AWS_BIN" s3 ls s3://my-secure-bucket | grep >/dev/null -c " obj$" || fail "aws s3 ls"
[ "$(in_ns a "$AWS_BIN" s3 cp s3://open-bucket/hello.txt - --region us-east-1)" = "Hello from open-bucket" ] \
    || fail "aws s3 cp to stdout"
ok "aws s3 ls and aws s3 cp s3://open-bucket/hello.txt - in demo-a"
# `aws s3 presign` of CLI v1 signs with SigV2 for us-east-1, which buckets made after June 2020
# refuse (400 InvalidRequest), even a public one; with s3.signature_version = s3v4 it works.
url=$("$AWS_BIN" s3 presign s3://open-bucket/hello.txt --region us-east-1)
case "$url" in *AWSAccessKeyId=*) ;; *) fail "not a SigV2 URL: $url" ;; esac
code=$(in_ns a curl -s --cacert "$AWS_CA_BUNDLE" -o "$WORK/v2.xml" -w '%{http_code}' "$url")
[ "$code" = 400 ] && grep -q "<Code>InvalidRequest</Code>" "$WORK/v2.xml" \
    || fail "a SigV2 URL was not refused: $code $(cat "$WORK/v2.xml")"
printf '[default]\ns3 =\n    signature_version = s3v4\n' > "$WORK/aws-config"
url=$(AWS_CONFIG_FILE="$WORK/aws-config" "$AWS_BIN" s3 presign s3://open-bucket/hello.txt --region us-east-1)
[ "$(in_ns a curl -s --cacert "$AWS_CA_BUNDLE" "$url")" = "Hello from open-bucket" ] || fail "a SigV4 presigned URL: $url"
ok "aws s3 presign: SigV2 refused with InvalidRequest, s3v4 works"
# An X-Amz-Expires S3 refuses: 400 AuthorizationQueryParametersError in S3's words.
for case in "604801|X-Amz-Expires must be less than a week (in seconds); that is, the given X-Amz-Expires must be less than 604800 seconds" \
    "-5|X-Amz-Expires must be non-negative"; do
    url=$(AWS_CONFIG_FILE="$WORK/aws-config" "$AWS_BIN" s3 presign s3://open-bucket/hello.txt \
        --region us-east-1 --expires-in="${case%%|*}")
    code=$(in_ns a curl -s --cacert "$AWS_CA_BUNDLE" -o "$WORK/exp.xml" -w '%{http_code}' "$url")
    [ "$code" = 400 ] && grep -qF "<Code>AuthorizationQueryParametersError</Code><Message>${case#*|}</Message>" "$WORK/exp.xml" \
        || fail "X-Amz-Expires=${case%%|*}: $code $(cat "$WORK/exp.xml")"
done
ok "aws s3 presign --expires-in 604801 and -5: 400 AuthorizationQueryParametersError, S3's sentences"
etag=$(in_ns a "$AWS_BIN" s3api head-object --bucket my-secure-bucket --key obj --query ETag --output text)
case "$etag" in *-*) ;; *) fail "not a multipart ETag: $etag" ;; esac
ok "aws s3 cp in demo-a: 200 MB multipart over HTTPS through the endpoint, identical (ETag $etag)"
h=$(in_ns a curl -s --cacert "$AWS_CA_BUNDLE" -D - -o /dev/null https://open-bucket.s3.amazonaws.com/hello.txt)
grep -qi "x-vpcsim-vpce: vpce-11bb22cc" <<< "$h" || fail "https by name not through the endpoint: $h"
ok "curl --cacert https://open-bucket.s3.amazonaws.com/ through the endpoint"
if in_ns b "$AWS_BIN" s3 ls s3://my-secure-bucket > "$WORK/ls.out" 2>&1; then fail "b listed my-secure-bucket"; fi
grep -q AccessDenied "$WORK/ls.out" || fail "b: $(cat "$WORK/ls.out")"
ok "the same CLI in demo-b is refused by the bucket policy"
# Flexible checksums: "Amazon S3 independently calculates a checksum on the server side and
# validates it against the provided value before durably storing the object and its checksum".
# Over HTTPS the CLI sends the SHA-256 as an aws-chunked trailer; get-object in checksum mode
# returns it, and botocore checks the body against it.
head -c 3000000 /dev/urandom > "$WORK/sum"
want=$("$PY" -c 'import base64, hashlib, sys; print(base64.b64encode(hashlib.sha256(open(sys.argv[1], "rb").read()).digest()).decode())' "$WORK/sum")
printf hello > "$WORK/obj.small"
got=$(in_ns a "$AWS_BIN" s3api put-object --bucket my-secure-bucket --key sum --body "$WORK/sum" \
    --checksum-algorithm SHA256 --query ChecksumSHA256 --output text) || fail "put-object with SHA256"
[ "$got" = "$want" ] || fail "put-object's ChecksumSHA256 $got, want $want"
got=$(in_ns a "$AWS_BIN" s3api get-object --bucket my-secure-bucket --key sum --checksum-mode ENABLED \
    "$WORK/sum.back" --query ChecksumSHA256 --output text) || fail "get-object in checksum mode"
[ "$got" = "$want" ] && cmp -s "$WORK/sum" "$WORK/sum.back" || fail "get-object's ChecksumSHA256 $got, want $want"
if in_ns a "$AWS_BIN" s3api put-object --bucket my-secure-bucket --key sum --body "$WORK/obj.small" \
    --checksum-crc32 AAAAAA== > "$WORK/bad.out" 2>&1 < /dev/null; then fail "a wrong CRC32 was stored"; fi
grep -q "BadDigest" "$WORK/bad.out" || fail "wrong CRC32: $(cat "$WORK/bad.out")"
in_ns a "$AWS_BIN" s3api get-object --bucket my-secure-bucket --key sum "$WORK/sum.back" > /dev/null \
    && cmp -s "$WORK/sum" "$WORK/sum.back" || fail "the object changed after a refused put"
ok "aws s3api: a SHA-256 trailer checked, stored and returned; a wrong CRC32 is BadDigest and changes nothing"
# DeleteObjects carries botocore's CRC32 of its body (no Content-MD5): checked, then deleted.
in_ns a "$AWS_BIN" s3api delete-objects --bucket my-secure-bucket --delete 'Objects=[{Key=sum}]' \
    > "$WORK/del.out" || fail "delete-objects: $(cat "$WORK/del.out")"
if in_ns a "$AWS_BIN" s3api head-object --bucket my-secure-bucket --key sum > /dev/null 2>&1; then
    fail "delete-objects left the object"; fi
ok "aws s3api delete-objects with the CLI's flexible checksum"
# Refusals that must keep the object: a DeleteObjects entry naming another version (none is
# simulated), conditional deletes whose ETag is not the object's, and an x-amz-* header that a
# presigned URL did not sign.
printf kept > "$WORK/keep"
in_ns a "$AWS_BIN" s3 cp --only-show-errors "$WORK/keep" s3://my-secure-bucket/keep || fail "cp keep"
kept() {
    [ "$(in_ns a "$AWS_BIN" s3 cp s3://my-secure-bucket/keep -)" = kept ] || fail "keep lost: $1"
}
wrong='"0123456789abcdef0123456789abcdef"'
in_ns a "$AWS_BIN" s3api delete-objects --bucket my-secure-bucket \
    --delete 'Objects=[{Key=keep,VersionId=3HL4kqtJlcpXroDTDmJ}]' > "$WORK/dv.out" \
    || fail "delete-objects with a VersionId: $(cat "$WORK/dv.out")"
grep -q NotImplemented "$WORK/dv.out" || fail "delete-objects with a VersionId: $(cat "$WORK/dv.out")"
kept "delete-objects with another VersionId"
if in_ns a "$AWS_BIN" s3api delete-object --bucket my-secure-bucket --key keep --if-match "$wrong" \
    > "$WORK/cd.out" 2>&1; then fail "delete-object --if-match of another ETag succeeded"; fi
grep -q PreconditionFailed "$WORK/cd.out" || fail "delete-object --if-match: $(cat "$WORK/cd.out")"
in_ns a "$AWS_BIN" s3api delete-objects --bucket my-secure-bucket \
    --delete "Objects=[{Key=keep,ETag=$wrong}]" > "$WORK/ce.out" || fail "delete-objects with an ETag"
grep -q PreconditionFailed "$WORK/ce.out" || fail "delete-objects with an ETag: $(cat "$WORK/ce.out")"
kept "conditional deletes of another ETag"
if in_ns a "$AWS_BIN" s3api delete-object --bucket my-secure-bucket --key keep \
    --expected-bucket-owner 111122223333 > "$WORK/eo.out" 2>&1; then fail "delete-object of another owner's bucket"; fi
grep -q AccessDenied "$WORK/eo.out" || fail "--expected-bucket-owner: $(cat "$WORK/eo.out")"
if in_ns a "$AWS_BIN" s3api copy-object --bucket my-secure-bucket --key keep --copy-source my-secure-bucket/obj \
    --expected-source-bucket-owner 111122223333 > "$WORK/eo.out" 2>&1; then fail "copy from another owner's bucket"; fi
grep -q AccessDenied "$WORK/eo.out" || fail "--expected-source-bucket-owner: $(cat "$WORK/eo.out")"
in_ns a "$AWS_BIN" s3api head-object --bucket my-secure-bucket --key keep --expected-bucket-owner 123456789012 \
    > /dev/null || fail "head-object with the lab's account as expected owner"
kept "--expected-bucket-owner and --expected-source-bucket-owner of another account"
url=$("$PY" -c 'import boto3, botocore.config as c; print(boto3.client("s3", region_name="us-east-1",
    config=c.Config(signature_version="s3v4")).generate_presigned_url("put_object",
    Params={"Bucket": "my-secure-bucket", "Key": "keep"}))')
code=$(in_ns a curl -s --cacert "$AWS_CA_BUNDLE" -o "$WORK/ns.xml" -w '%{http_code}' -T "$WORK/obj.small" \
    -H 'x-amz-storage-class: GLACIER' "$url")
[ "$code" = 403 ] && grep -q "<HeadersNotSigned>x-amz-storage-class</HeadersNotSigned>" "$WORK/ns.xml" \
    || fail "an unsigned x-amz header on a presigned PUT: $code $(cat "$WORK/ns.xml")"
kept "a presigned PUT with an unsigned header"
code=$(in_ns a curl -s --cacert "$AWS_CA_BUNDLE" -o /dev/null -w '%{http_code}' -T "$WORK/keep" "$url")
[ "$code" = 200 ] || fail "the presigned PUT without extra headers: $code"
# curl --aws-sigv4 signs the x-amz-* headers it sends. A plain chunked body (no Content-Length,
# no aws-chunked decoded length) is S3's 411 MissingContentLength and stores nothing.
sig=(--aws-sigv4 "aws:amz:us-east-1:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY"
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD")
code=$(in_ns a curl -s --cacert "$AWS_CA_BUNDLE" "${sig[@]}" -o "$WORK/cl.xml" -w '%{http_code}' \
    -H 'Transfer-Encoding: chunked' -T "$WORK/keep" https://my-secure-bucket.s3.amazonaws.com/chunked)
[ "$code" = 411 ] && grep -q "<Code>MissingContentLength</Code>" "$WORK/cl.xml" \
    || fail "a chunked PUT without Content-Length: $code $(cat "$WORK/cl.xml")"
if in_ns a "$AWS_BIN" s3api head-object --bucket my-secure-bucket --key chunked > /dev/null 2>&1; then
    fail "a chunked PUT without Content-Length was stored"; fi
code=$(in_ns a curl -s --cacert "$AWS_CA_BUNDLE" "${sig[@]}" -o "$WORK/cl.xml" -w '%{http_code}' \
    -T "$WORK/keep" https://my-secure-bucket.s3.amazonaws.com/chunked)
[ "$code" = 200 ] || fail "curl --aws-sigv4 PUT: $code $(cat "$WORK/cl.xml")"
ok "curl --aws-sigv4: a chunked PUT without Content-Length is 411 MissingContentLength, with it 200"
etag=$(in_ns a "$AWS_BIN" s3api head-object --bucket my-secure-bucket --key keep --query ETag --output text)
in_ns a "$AWS_BIN" s3api delete-object --bucket my-secure-bucket --key keep --if-match "$etag" \
    || fail "delete-object --if-match of its own ETag"
if in_ns a "$AWS_BIN" s3api head-object --bucket my-secure-bucket --key keep > /dev/null 2>&1; then
    fail "delete-object --if-match of its own ETag left the object"; fi
ok "refused with the object kept: delete-objects VersionId (NotImplemented), --if-match/ETag of another ETag (PreconditionFailed), another --expected-(source-)bucket-owner (AccessDenied), a presigned PUT's unsigned header (HeadersNotSigned); --if-match of its ETag deletes"
# From the guide: traffic to "Amazon S3 in other regions" goes to the internet gateway, even from
# a subnet with the endpoint route.
expect_path a http://oregon-bucket.s3.us-west-2.amazonaws.com/hello.txt 203.0.113.10
[ "$(in_ns a "$AWS_BIN" s3 cp s3://oregon-bucket/hello.txt - --region us-west-2)" = "Hello from oregon-bucket" ] \
    || fail "aws s3 cp from us-west-2"
ok "aws s3 cp from the us-west-2 bucket in demo-a"
# Signed for us-east-1, S3 answers AuthorizationHeaderMalformed naming the bucket's region, and
# botocore retries there (S3RegionRedirectorv2), by name or at an explicit endpoint.
[ "$(in_ns a "$AWS_BIN" s3 cp s3://oregon-bucket/hello.txt - --region us-east-1)" = "Hello from oregon-bucket" ] \
    || fail "aws s3 cp from us-west-2 signed for us-east-1"
in_ns a "$AWS_BIN" s3api get-object --bucket oregon-bucket --key hello.txt --region us-east-1 \
    --endpoint-url https://s3.us-west-2.amazonaws.com "$WORK/oregon.txt" > /dev/null \
    && [ "$(cat "$WORK/oregon.txt")" = "Hello from oregon-bucket" ] || fail "get-object at us-west-2 signed for us-east-1"
ok "signed for the wrong region: botocore follows AuthorizationHeaderMalformed to us-west-2"
# The Amazon Linux repository bucket by its own name (CNAME style), through the endpoint.
h=$(in_ns a curl -s -D - http://packages.us-east-1.amazonaws.com/repodata/repomd.xml)
grep -q "<repomd>" <<< "$h" && grep -qi "x-vpcsim-vpce: vpce-11bb22cc" <<< "$h" || fail "packages bucket: $h"
ok "http://packages.us-east-1.amazonaws.com/repodata/repomd.xml through the endpoint"
# "Endpoints currently do not support cross-region requests": asked at us-east-1 (path style at
# the global endpoint, or by us-east-1's regional name), S3 redirects.
for u in http://s3.amazonaws.com/oregon-bucket/hello.txt http://oregon-bucket.s3.us-east-1.amazonaws.com/hello.txt; do
    code=$(in_ns a curl -s -o "$WORK/redir.xml" -w '%{http_code}' "$u")
    [ "$code" = 301 ] && grep -q "<Code>PermanentRedirect</Code>" "$WORK/redir.xml" \
        && grep -q "oregon-bucket.s3.us-west-2.amazonaws.com" "$WORK/redir.xml" || fail "$u: no redirect: $code $(cat "$WORK/redir.xml")"
done
ok "us-east-1 answers 301 PermanentRedirect to oregon-bucket.s3.us-west-2.amazonaws.com"
# The legacy global name of a bucket resolves into its region's range (S3's DNS routing), so
# botocore's presigned URL (virtual host oregon-bucket.s3.amazonaws.com, scope us-west-2) works,
# through the internet gateway like any other us-west-2 address.
url=$(AWS_CONFIG_FILE="$WORK/aws-config" "$AWS_BIN" s3 presign s3://oregon-bucket/hello.txt --region us-west-2)
case "$url" in https://oregon-bucket.s3.amazonaws.com/*us-west-2%2Fs3*) ;; *) fail "not the global host with a us-west-2 scope: $url" ;; esac
[ "$(in_ns a curl -s --cacert "$AWS_CA_BUNDLE" "$url")" = "Hello from oregon-bucket" ] || fail "presigned us-west-2 URL: $url"
expect_path a http://oregon-bucket.s3.amazonaws.com/hello.txt 203.0.113.10
ok "aws s3 presign s3://oregon-bucket/hello.txt --region us-west-2: 200 by the global name"
