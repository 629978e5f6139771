//! Object tags (S3 User Guide, "Categorizing your objects using tags"): the tag set a request
//! gives an object, from `x-amz-tagging` (PutObject, CreateMultipartUpload, CopyObject with
//! `x-amz-tagging-directive: REPLACE`) or a PutObjectTagging body, checked as S3 checks it, and
//! the GetObjectTagging answer. Invariant: a [`Tags`] returned here holds at most
//! [`MAX_TAGS`] tags, each key 1–128 and each value 0–256 Unicode characters of the allowed
//! set, no key beginning with `aws:`; the store keeps it as given (tags stored before the prefix
//! was refused are kept and answered as they are).

use std::collections::BTreeMap;

use bytes::Bytes;
use hyper::StatusCode;

use super::{S3Error, XmlEv, percent_decode, text, xml_doc, xml_walk};

/// An object's tag set, by key.
pub type Tags = BTreeMap<String, String>;

/// "You can associate up to 10 tags with an object."
const MAX_TAGS: usize = 10;
/// "A tag key can be up to 128 Unicode characters in length, and tag values can be up to 256
/// Unicode characters in length."
const MAX_KEY_CHARS: usize = 128;
const MAX_VALUE_CHARS: usize = 256;
/// The key prefix AWS keeps for the tags it sets itself.
const RESERVED_PREFIX: &str = "aws:";

/// S3's answer to a malformed `x-amz-tagging` (bad encoding, an empty key, a key twice), as the
/// AWS CLI shows it for `put-object --tagging 'a=&a='`.
fn bad_header() -> S3Error {
    S3Error::new(
        StatusCode::BAD_REQUEST,
        "InvalidArgument",
        "The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query parameters without tag name duplicates.",
    )
    .field("ArgumentName", "x-amz-tagging")
}

fn invalid_tag(message: &str) -> S3Error {
    S3Error::new(StatusCode::BAD_REQUEST, "InvalidTag", message)
}

/// Tag restrictions: "letters, numbers, and spaces representable in UTF-8, and the following
/// characters: + - = . _ : / @".
fn allowed(s: &str) -> bool {
    s.chars().all(|c| c.is_alphanumeric() || c.is_whitespace() || "+-=._:/@".contains(c))
}

/// Checks tags as a request gave them (in order, repeats included) and makes them a set;
/// `repeated` is the error for a key given twice.
fn tag_set(given: Vec<(String, String)>, repeated: impl Fn() -> S3Error) -> Result<Tags, S3Error> {
    if given.len() > MAX_TAGS {
        return Err(S3Error::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Object tags cannot be greater than 10",
        ));
    }
    let mut tags = Tags::new();
    for (key, value) in given {
        if key.chars().count() > MAX_KEY_CHARS {
            return Err(invalid_tag("The TagKey you have provided is too long, max 128"));
        }
        if value.chars().count() > MAX_VALUE_CHARS {
            return Err(invalid_tag("The TagValue you have provided is too long, max 256"));
        }
        // AWS reserves the prefix for its own tags ("May not begin with aws:"); as written, in
        // lower case (see the README's Decisions).
        if key.starts_with(RESERVED_PREFIX) {
            return Err(
                invalid_tag("Your TagKey cannot be prefixed with aws:").field("TagKey", &key)
            );
        }
        if key.is_empty() || !allowed(&key) {
            return Err(invalid_tag("The TagKey you have provided is invalid"));
        }
        if !allowed(&value) {
            return Err(invalid_tag("The TagValue you have provided is invalid"));
        }
        if tags.insert(key, value).is_some() {
            return Err(repeated());
        }
    }
    Ok(tags)
}

/// The tags of `x-amz-tagging` ("The tag-set must be encoded as URL Query parameters. (For
/// example, "Key1=Value1")"); `None` without the header. An empty value is an empty set.
pub(super) fn header_tags(headers: &hyper::HeaderMap) -> Result<Option<Tags>, S3Error> {
    let Some(raw) = headers.get("x-amz-tagging") else { return Ok(None) };
    let raw = raw.to_str().map_err(|_| bad_header())?;
    let mut given = Vec::new();
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_decode(k, true).map_err(|_| bad_header())?;
        let value = percent_decode(v, true).map_err(|_| bad_header())?;
        if key.is_empty() {
            return Err(bad_header());
        }
        given.push((key, value));
    }
    tag_set(given, bad_header).map(Some)
}

/// CopyObject's tags: `None` to copy the source's (`x-amz-tagging-directive` COPY, the
/// default: "If you choose COPY for the x-amz-tagging-directive, you don't need to set the
/// x-amz-tagging header, because the tag-set will be copied from the source object directly"),
/// else the request's (REPLACE; none without `x-amz-tagging`).
pub(super) fn copy_tags(headers: &hyper::HeaderMap) -> Result<Option<Tags>, S3Error> {
    let directive = headers
        .get("x-amz-tagging-directive")
        .map(|v| v.to_str().unwrap_or("").to_ascii_uppercase());
    match directive.as_deref() {
        None | Some("COPY") => Ok(None),
        Some("REPLACE") => Ok(Some(header_tags(headers)?.unwrap_or_default())),
        Some(v) => Err(S3Error::invalid_argument("x-amz-tagging-directive", v)),
    }
}

/// The tag set of a PutObjectTagging body (`<Tagging><TagSet><Tag><Key>…</Key><Value>…
/// </Value></Tag>…</TagSet></Tagging>`): `MalformedXML` when it does not follow that shape,
/// "Cannot provide multiple Tags with the same key" for a key given twice.
pub(super) fn parse_tagging(raw: &[u8]) -> Result<Tags, S3Error> {
    let mut given = Vec::new();
    let (mut root, mut set) = (false, false);
    let mut current: (Option<String>, Option<String>) = (None, None);
    xml_walk(raw, |path, ev| {
        match (path, ev) {
            (["Tagging"], XmlEv::Open) => root = true,
            (["Tagging", "TagSet"], XmlEv::Open) => set = true,
            (["Tagging", "TagSet", "Tag"], XmlEv::Open) => current = (None, None),
            (["Tagging", "TagSet", "Tag", "Key"], XmlEv::Open) => {
                current.0.get_or_insert_with(String::new);
            }
            (["Tagging", "TagSet", "Tag", "Key"], XmlEv::Text(t)) => {
                current.0.get_or_insert_with(String::new).push_str(t)
            }
            (["Tagging", "TagSet", "Tag", "Value"], XmlEv::Open) => {
                current.1.get_or_insert_with(String::new);
            }
            (["Tagging", "TagSet", "Tag", "Value"], XmlEv::Text(t)) => {
                current.1.get_or_insert_with(String::new).push_str(t)
            }
            (["Tagging", "TagSet", "Tag"], XmlEv::Close) => match std::mem::take(&mut current) {
                (Some(k), Some(v)) => given.push((k, v)),
                _ => return Err(S3Error::malformed_xml()),
            },
            _ => {}
        }
        Ok(())
    })?;
    if !root || !set {
        return Err(S3Error::malformed_xml());
    }
    tag_set(given, || invalid_tag("Cannot provide multiple Tags with the same key"))
}

/// GetObjectTagging's answer: `<Tagging><TagSet>` with a `<Tag>` per tag (empty without).
pub(super) fn tagging_xml(tags: &Tags) -> Result<Bytes, S3Error> {
    xml_doc("Tagging", |w| {
        w.create_element("TagSet").write_inner_content(|w| {
            for (k, v) in tags {
                w.create_element("Tag").write_inner_content(|w| {
                    text(w, "Key", k)?;
                    text(w, "Value", v)
                })?;
            }
            Ok(())
        })?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(tagging: &str) -> hyper::HeaderMap {
        let mut h = hyper::HeaderMap::new();
        h.insert("x-amz-tagging", tagging.parse().unwrap());
        h
    }

    /// "The tag-set must be encoded as URL Query parameters": percent escapes and `+` decode,
    /// a key without `=` has an empty value, an empty header is an empty set.
    #[test]
    fn header_is_url_query_encoded() {
        let t = header_tags(&headers("a=1&b%2Fc=x+y%40z&flag&")).unwrap().unwrap();
        let want = [("a", "1"), ("b/c", "x y@z"), ("flag", "")];
        assert_eq!(t, want.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
        assert!(header_tags(&headers("")).unwrap().unwrap().is_empty());
        assert!(header_tags(&hyper::HeaderMap::new()).unwrap().is_none());
        for bad in ["a=1&a=2", "=v", "%zz=1", "a=%C3"] {
            assert_eq!(header_tags(&headers(bad)).unwrap_err().code, "InvalidArgument", "{bad}");
        }
    }

    /// Lengths count Unicode characters; the limits hold at their edges.
    #[test]
    fn limits_at_their_edges() {
        let one = |k: String, v: String| tag_set(vec![(k, v)], || invalid_tag("dup"));
        assert!(one("k".repeat(128), "v".repeat(256)).is_ok());
        assert!(one("é".repeat(128), "ü".repeat(256)).is_ok());
        assert!(one("k".repeat(129), String::new()).unwrap_err().message.contains("max 128"));
        assert!(one("k".into(), "v".repeat(257)).unwrap_err().message.contains("max 256"));
        let ten: Vec<_> = (0..10).map(|i| (format!("k{i}"), String::new())).collect();
        assert!(tag_set(ten.clone(), || invalid_tag("dup")).is_ok());
        let mut eleven = ten;
        eleven.push(("k10".into(), String::new()));
        assert_eq!(tag_set(eleven, || invalid_tag("dup")).unwrap_err().code, "BadRequest");
    }

    /// AWS reserves the `aws:` key prefix for its own tags (EC2's `S3ObjectTag`, "the tags to
    /// apply to the … object": "May not begin with aws:"). S3 refuses it in an object's tag set
    /// with `400 InvalidTag` "Your TagKey cannot be prefixed with aws:" (as quoted from S3 in
    /// cloud-custodian#370; LocalStack's S3 gives the same for object tags, with `<TagKey>`),
    /// whether the set comes from a PutObjectTagging body or from `x-amz-tagging`.
    #[test]
    fn aws_prefix_is_reserved() {
        let check = |e: S3Error| {
            assert_eq!((e.status, e.code), (StatusCode::BAD_REQUEST, "InvalidTag"));
            assert_eq!(e.message, "Your TagKey cannot be prefixed with aws:");
            assert_eq!(e.fields, [("TagKey", "aws:cloudformation:stack-name".to_string())]);
        };
        check(header_tags(&headers("a=1&aws%3Acloudformation%3Astack-name=x")).unwrap_err());
        let mut copy = headers("aws%3Acloudformation%3Astack-name=x");
        copy.insert("x-amz-tagging-directive", "REPLACE".parse().unwrap());
        check(copy_tags(&copy).unwrap_err());
        let body = b"<Tagging><TagSet><Tag><Key>aws:cloudformation:stack-name</Key><Value>x</Value></Tag></TagSet></Tagging>";
        check(parse_tagging(body).unwrap_err());
        // Only the prefix: `aws` elsewhere in a key, or without the colon, is the caller's.
        for key in ["aws", "awsx:y", "my:aws:key", "x-aws:"] {
            assert!(tag_set(vec![(key.into(), String::new())], || invalid_tag("dup")).is_ok());
        }
    }

    #[test]
    fn tagging_body_round_trips() {
        let tags: Tags = [("a b".to_string(), "x:y/z".to_string())].into();
        let xml = tagging_xml(&tags).unwrap();
        assert_eq!(parse_tagging(&xml).unwrap(), tags);
        let empty = tagging_xml(&Tags::new()).unwrap();
        assert!(parse_tagging(&empty).unwrap().is_empty());
    }
}
