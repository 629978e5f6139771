//! `ClientToken`: echoed by the create answers whose botocore output has `clientToken`, kept
//! with an instance (DescribeInstances `clientToken`, filter `client-token`), and at most 64
//! ASCII characters.

use super::*;

#[test]
fn create_answers_echo_the_client_token() {
    let w = lab();
    let creates: &[&[(&str, &str)]] = &[
        &[("Action", "CreateRouteTable"), ("VpcId", "vpc-111bbb22")],
        &[("Action", "CreateNetworkAcl"), ("VpcId", "vpc-111bbb22")],
        &[
            ("Action", "CreateVpcEndpoint"),
            ("VpcId", "vpc-111bbb22"),
            ("ServiceName", "com.amazonaws.us-east-1.s3"),
        ],
    ];
    for create in creates {
        let mut p = create.to_vec();
        p.push(("ClientToken", "tok-echo"));
        let (_, xml) = change(&w, &p);
        assert_eq!(texts(&xml, "clientToken"), ["tok-echo"], "{xml}");
        // Without one, none.
        let (_, xml) = change(&w, create);
        assert!(texts(&xml, "clientToken").is_empty(), "{xml}");
    }
}

#[test]
fn instances_keep_their_client_token() {
    let w = lab();
    let run = [
        ("Action", "RunInstances"),
        ("ImageId", "ami-12345678"),
        ("SubnetId", "subnet-0b0b0b0b"),
        ("ClientToken", "launch-1"),
    ];
    let (w1, xml) = change(&w, &run);
    let id = text(&xml, "instanceId");
    // "The client token is included in the response when you describe the instance" (EC2
    // User Guide, Ensuring idempotency).
    assert_eq!(texts(&xml, "clientToken"), ["launch-1"]);
    let xml = read_xml(&w1, &[("Action", "DescribeInstances"), ("InstanceId.1", &id)]);
    assert_eq!(texts(&xml, "clientToken"), ["launch-1"]);
    let by_token = |w: &World, t: &str| {
        let xml = read_xml(
            w,
            &[
                ("Action", "DescribeInstances"),
                ("Filter.1.Name", "client-token"),
                ("Filter.1.Value.1", t),
            ],
        );
        texts(&without(&xml, "networkInterfaceSet"), "instanceId")
    };
    assert_eq!(by_token(&w1, "launch-1"), [id.as_str()]);
    assert!(by_token(&w1, "launch-2").is_empty());
    // Lab-file instances have none.
    let xml = read_xml(&w1, &[("Action", "DescribeInstances"), ("InstanceId.1", "i-0a0a0a0a")]);
    assert!(texts(&xml, "clientToken").is_empty());
    // A terminated instance keeps it.
    let (w2, _) = change(&w1, &[("Action", "TerminateInstances"), ("InstanceId.1", &id)]);
    assert_eq!(by_token(&w2, "launch-1"), [id.as_str()]);
    // A world saved before tokens were kept loads.
    let mut v = serde_json::to_value(&w1).unwrap();
    for i in v["instances"].as_array_mut().unwrap() {
        i.as_object_mut().unwrap().remove("client_token");
    }
    let old: World = serde_json::from_value(v).unwrap();
    assert!(old.instances.iter().all(|i| i.client_token.is_none()));
}
/// "A client token is a unique, case-sensitive string of up to 64 ASCII characters" (EC2 User
/// Guide, Ensuring idempotency).
#[test]
fn client_tokens_are_at_most_64_ascii_characters() {
    let w = lab();
    let long = "t".repeat(65);
    let e = refused(
        &w,
        &[("Action", "CreateRouteTable"), ("VpcId", "vpc-111bbb22"), ("ClientToken", &long)],
        "InvalidParameterValue",
    );
    assert!(e.message.contains("64"), "{}", e.message);
    refused(
        &w,
        &[("Action", "CreateRouteTable"), ("VpcId", "vpc-111bbb22"), ("ClientToken", "tök")],
        "InvalidParameterValue",
    );
    let ok = "t".repeat(64);
    change(&w, &[("Action", "CreateRouteTable"), ("VpcId", "vpc-111bbb22"), ("ClientToken", &ok)]);
}
