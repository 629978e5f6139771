#!/usr/bin/env bash
# Security groups and network ACLs through the AWS CLI.
#
#   a 10.0.1.10 [sg: egress tcp 443 -> pl-1a2b3c4d only] ── vpce ── aws (S3)
#   b 10.0.2.10 [default sg] <── internet 198.51.100.10 (ingress needs a rule)
#   c 10.0.3.10 [nacl: inbound deny tcp 1024-65535 from 54.123.0.0/16]
# From the guide: "you can use the service's prefix list ID as the destination in the outbound
# rule" of a security group, but "You cannot use prefix list IDs to create an outbound rule in a
# network ACL".
source "$(dirname "$0")/lib.sh"
lab_up "$ROOT/netns/demo.toml" sg

# reach NS HOST PORT: 0 if a TCP connection gets an answer (even "refused"), 1 if dropped.
reach() {
    local rc=0
    in_ns "$1" curl -s -m 3 -o /dev/null "http://$2:$3/" || rc=$?
    [ "$rc" != 28 ]
}

sg=$(awsx ec2 create-security-group --group-name https-to-s3 --description "HTTPS to S3 only" \
    --vpc-id vpc-111bbb22 --query GroupId --output text)
awsx ec2 revoke-security-group-egress --group-id "$sg" --ip-permissions 'IpProtocol=-1,IpRanges=[{CidrIp=0.0.0.0/0}]' >/dev/null
rule=$(awsx ec2 authorize-security-group-egress --group-id "$sg" --ip-permissions \
    '[{"IpProtocol":"tcp","FromPort":443,"ToPort":443,"PrefixListIds":[{"PrefixListId":"pl-1a2b3c4d","Description":"HTTPS to S3"}]}]' \
    --query 'SecurityGroupRules[0].SecurityGroupRuleId' --output text)
[[ "$rule" == sgr-* ]] || fail "authorize answered no rule id: $rule"
got=$(awsx ec2 describe-security-group-rules --filters Name=group-id,Values="$sg" --output text \
    --query "SecurityGroupRules[?SecurityGroupRuleId=='$rule'].[PrefixListId,Description,IsEgress]")
[ "$got" = $'pl-1a2b3c4d\tHTTPS to S3\tTrue' ] || fail "describe-security-group-rules: '$got'"
ok "authorize answers the rule's id; describe-security-group-rules shows it with its description"
# Security group rules are taggable resources: create-tags on the sgr- id, the tag shown by
# describe-security-group-rules and describe-tags; authorize's --tag-specifications.
awsx ec2 create-tags --resources "$rule" --tags Key=Name,Value=s3-https
got=$(awsx ec2 describe-security-group-rules --security-group-rule-ids "$rule" --output text \
    --query 'SecurityGroupRules[0].Tags[?Key==`Name`].Value')
[ "$got" = s3-https ] || fail "describe-security-group-rules: rule tag '$got'"
got=$(awsx ec2 describe-tags --filters Name=resource-type,Values=security-group-rule --output text \
    --query 'Tags[].[ResourceId,Key,Value]')
[ "$got" = "$rule"$'\tName\ts3-https' ] || fail "describe-tags: '$got'"
expect_error InvalidSecurityGroupRuleId.NotFound ec2 create-tags --resources sgr-0123456789abcdef0 \
    --tags Key=Name,Value=x
out=$(awsx ec2 authorize-security-group-egress --group-id "$sg" --output text \
    --ip-permissions 'IpProtocol=tcp,FromPort=8443,ToPort=8443,IpRanges=[{CidrIp=10.9.0.0/16}]' \
    --tag-specifications 'ResourceType=security-group-rule,Tags=[{Key=team,Value=blue}]' \
    --query 'SecurityGroupRules[0].[SecurityGroupRuleId,Tags[0].Value]')
read -r tagged value <<< "$out"
[[ "$tagged" == sgr-* && "$value" = blue ]] || fail "authorize --tag-specifications: '$out'"
awsx ec2 revoke-security-group-egress --group-id "$sg" --security-group-rule-ids "$tagged" >/dev/null
awsx ec2 describe-tags --filters Name=resource-id,Values="$tagged" | grep >/dev/null -c team \
    && fail "a revoked rule's tags stayed"
ok "rule tags: create-tags on an sgr- id, describe-security-group-rules and describe-tags show it; tag specifications on authorize"
expect_error InvalidPrefixListID.NotFound ec2 authorize-security-group-egress --group-id "$sg" \
    --ip-permissions 'IpProtocol=tcp,FromPort=80,ToPort=80,PrefixListIds=[{PrefixListId=pl-00000000}]'
awsx ec2 describe-security-groups --group-ids "$sg" | grep >/dev/null -c '"PrefixListId": "pl-1a2b3c4d"' || fail "rule not shown"
reach a 54.123.170.5 80 || fail "a reaches S3:80 before the group is applied"
awsx ec2 modify-instance-attribute --instance-id i-0a0a0a0a --groups "$sg"
if reach a 54.123.170.5 80; then fail "HTTP to S3 passed the HTTPS-only group"; fi
if reach a 198.51.100.10 80; then fail "the internet passed the HTTPS-only group"; fi
reach a 54.123.170.5 443 || fail "HTTPS to S3 was dropped"
"$VPCSIM" status "$LAB" --json | grep -A1 '"sg_egress"' | tail -n1 | grep >/dev/null -cv '^ *0$' || fail "sg_egress not counted"
ok "egress only tcp 443 to pl-1a2b3c4d: HTTP to S3 and the internet refused, HTTPS to S3 passes"
awsx ec2 modify-instance-attribute --instance-id i-0a0a0a0a --groups sg-111bbb22
reach a 54.123.170.5 80 || fail "default group restored but still blocked"

# Ingress from the internet to a public IP: refused by the default group, allowed by a rule.
in_ns b iperf3 -s -D -B 10.0.2.10 -I "$WORK/iperf.pid" --logfile "$WORK/iperf.log"
for _ in $(seq 100); do in_ns b ss -ltn | grep >/dev/null -c ':5201' && break; sleep 0.05; done
if in_ns internet timeout 5 iperf3 -c 203.0.113.20 -t 1 --connect-timeout 2000 >/dev/null 2>&1; then
    fail "the internet reached b without an ingress rule"
fi
awsx ec2 authorize-security-group-ingress --group-id sg-111bbb22 \
    --ip-permissions 'IpProtocol=tcp,FromPort=5201,ToPort=5201,IpRanges=[{CidrIp=198.51.100.0/24}]' >/dev/null
in_ns internet timeout 10 iperf3 -c 203.0.113.20 -t 1 >/dev/null || fail "ingress rule did not open 5201"
grep -q "Accepted connection from 198.51.100.10" "$WORK/iperf.log" || fail "b did not see 198.51.100.10"
ok "internet -> 203.0.113.20:5201: refused by default, allowed by an ingress rule"
kill "$(cat "$WORK/iperf.pid")"; rm -f "$WORK/iperf.pid"

# Network ACLs: stateless, first match by rule number; a prefix list is refused.
acl=$(awsx ec2 create-network-acl --vpc-id vpc-111bbb22 --query NetworkAcl.NetworkAclId --output text)
awsx ec2 create-network-acl-entry --network-acl-id "$acl" --egress --rule-number 100 --protocol -1 \
    --rule-action allow --cidr-block 0.0.0.0/0
awsx ec2 create-network-acl-entry --network-acl-id "$acl" --ingress --rule-number 50 --protocol tcp \
    --port-range From=1024,To=65535 --rule-action deny --cidr-block 54.123.0.0/16
awsx ec2 create-network-acl-entry --network-acl-id "$acl" --ingress --rule-number 100 --protocol -1 \
    --rule-action allow --cidr-block 0.0.0.0/0
expect_error InvalidParameterValue ec2 create-network-acl-entry --network-acl-id "$acl" --egress \
    --rule-number 200 --protocol -1 --rule-action allow --cidr-block pl-1a2b3c4d
assoc=$(awsx ec2 describe-network-acls --filters Name=association.subnet-id,Values=subnet-0c0c0c0c \
    --query 'NetworkAcls[0].Associations[?SubnetId==`subnet-0c0c0c0c`].NetworkAclAssociationId' --output text)
awsx ec2 replace-network-acl-association --association-id "$assoc" --network-acl-id "$acl" >/dev/null
# The replies from S3 (from 54.123.x to c's ephemeral port; a NACL's ports are the packet's
# destination port) hit the inbound deny: NACLs are stateless.
if reach c 54.123.170.5 80; then fail "the NACL inbound deny did not stop S3's replies"; fi
"$VPCSIM" status "$LAB" --json | grep -A1 '"nacl_in"' | tail -n1 | grep >/dev/null -cv '^ *0$' || fail "nacl_in not counted"
awsx ec2 delete-network-acl-entry --network-acl-id "$acl" --ingress --rule-number 50
reach c 54.123.170.5 80 || fail "deleting the deny rule did not reopen"
ok "NACL: inbound deny by rule number stops replies (stateless); prefix lists refused"
