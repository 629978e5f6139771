//! The S3 REST stub: a hyper HTTP/1.1 server (plain or TLS) over [`Store`].
//!
//! Supports path-style, virtual-hosted-style and CNAME-style addressing, PutObject (streamed to
//! disk, optional Content-MD5, `aws-chunked` framing with chunk signatures, and a signed
//! trailer's signature, verified for header-signed SigV4 streaming uploads, `x-amz-meta-*`),
//! GetObject (streamed, single `Range`, conditional headers), HeadObject, DeleteObject,
//! DeleteObjects, CopyObject,
//! multipart uploads (Create, UploadPart, Complete, Abort, ListParts, ListMultipartUploads),
//! ListObjects v1/v2, ListBuckets, HeadBucket, GetBucketLocation, CreateBucket, DeleteBucket,
//! GetBucketAcl/GetObjectAcl (ACLs are disabled: setting one is refused), GetBucketEncryption
//! and GetBucketOwnershipControls (fixed: SSE-S3, BucketOwnerEnforced)
//! and bucket policies. Every request is authorized by [`Authz`] (SigV4 identity, identity,
//! bucket and endpoint policies). Requests for a bucket of another region than the S3
//! addressed are answered with `301 PermanentRedirect`, as S3 does.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::{self, SeekFrom};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::http::request::Parts;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesText, Event};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, warn};

mod tagging;

use self::tagging::Tags;
use super::access::Access;
use super::checksum::{Algorithm, Checksum, Hasher, Kind};
use super::http::{self, IdleBody, Timeouts};
use super::sigv4;
use super::store::{
    CompleteChecks, ListResult, MAX_PART_NUMBER, MIN_PART_SIZE, Metadata, ObjectMeta, ObjectWriter,
    StorageClass, Store, StoreError, UploadMeta, WriteCondition, etag_in, valid_bucket_name,
};
use crate::model::ACCOUNT_ID;
use crate::policy::{KnownPrincipals, Policy, PolicyKind, RequestContext, S3Policies, Verdict};

/// XML namespace of S3 responses.
pub const S3_NS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";
/// Largest single PUT S3 accepts.
const MAX_PUT_SIZE: u64 = 5 * 1024 * 1024 * 1024;
/// Body bytes gathered before handing them to a blocking write.
const WRITE_CHUNK: usize = 1024 * 1024;
/// Bytes per frame when streaming an object out.
const READ_CHUNK: usize = 64 * 1024;
const OWNER_ID: &str = "75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a";
const OWNER_NAME: &str = "vpcsim";

/// Shared state of an S3 listener.
pub struct S3State {
    pub store: Arc<Store>,
    /// Which region's S3 this listener is (e.g. "us-east-1"); buckets of another region still answer (cross-region handling comes later).
    pub region: String,
    /// Given (client address, local address) of a TCP connection as seen inside the aws namespace,
    /// returns the endpoint path it came through, if any.
    pub origin: Arc<dyn Fn(SocketAddr, SocketAddr) -> Option<EndpointOrigin> + Send + Sync>,
    /// Users and endpoint policies; `None` authorizes nothing (every request passes), which
    /// only unit tests of the HTTP layer use.
    pub access: Option<Arc<arc_swap::ArcSwap<Access>>>,
    /// The region whose S3 addresses include the given local (destination) address of a
    /// connection; the listener serves every region's range on one socket. `None` (e.g. on
    /// the control API port) means `region`.
    pub region_of: Arc<dyn Fn(IpAddr) -> Option<String> + Send + Sync>,
    /// How long a client may leave a request unfinished ([`Timeouts::DEFAULT`] but in tests).
    pub timeouts: Timeouts,
}

/// The gateway endpoint a connection came through.
#[derive(Clone, Debug)]
pub struct EndpointOrigin {
    pub vpce_id: String,
    pub vpc_id: String,
}

/// What is known about the TCP connection a request arrived on.
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// The address the client connected to (which region's S3 it addressed).
    pub local: SocketAddr,
    pub origin: Option<EndpointOrigin>,
}

pub type RespBody = BoxBody<Bytes, io::Error>;

/// A request's body as the handlers read it: reads give up when the client stops sending.
type ReqBody = IdleBody<Incoming>;

/// Accepts connections forever, serving each with HTTP/1.1 keep-alive on its own task.
pub async fn serve(listener: TcpListener, state: Arc<S3State>) -> anyhow::Result<()> {
    serve_with(listener, state, PlainAcceptor).await
}

/// Turns an accepted TCP connection into the byte stream HTTP is spoken on (TLS or not).
/// Implemented for `tokio_rustls::TlsAcceptor` in [`crate::services::tls`].
pub trait StreamAcceptor: Clone + Send + Sync + 'static {
    type Stream: AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static;
    /// Whether streams are encrypted (`aws:SecureTransport`).
    const SECURE: bool;
    fn accept_stream(
        &self,
        tcp: TcpStream,
    ) -> impl std::future::Future<Output = io::Result<Self::Stream>> + Send;
}

/// Plain TCP.
#[derive(Clone, Copy)]
struct PlainAcceptor;

impl StreamAcceptor for PlainAcceptor {
    type Stream = TcpStream;
    const SECURE: bool = false;
    async fn accept_stream(&self, tcp: TcpStream) -> io::Result<TcpStream> {
        Ok(tcp)
    }
}

/// Serves the same S3 handler over TLS (`aws:SecureTransport` is true for its requests).
/// `acceptor` is a `tokio_rustls::TlsAcceptor` (see [`crate::services::tls`]).
pub async fn serve_tls<A: StreamAcceptor>(
    listener: TcpListener,
    acceptor: A,
    state: Arc<S3State>,
) -> anyhow::Result<()> {
    serve_with(listener, state, acceptor).await
}

async fn serve_with<A: StreamAcceptor>(
    listener: TcpListener,
    state: Arc<S3State>,
    acceptor: A,
) -> anyhow::Result<()> {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                debug!(error = %e, "s3 accept failed");
                // E.g. EMFILE: back off instead of spinning.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let local = match stream.local_addr() {
            Ok(a) => a,
            Err(e) => {
                debug!(error = %e, %peer, "s3 local_addr failed");
                continue;
            }
        };
        http::accepted(&stream, &state.timeouts);
        let state = state.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let handshake = acceptor.accept_stream(stream);
            let io = match tokio::time::timeout(std::time::Duration::from_secs(30), handshake).await
            {
                Ok(Ok(io)) => io,
                Ok(Err(e)) => {
                    debug!(error = %e, %peer, "s3 handshake failed");
                    return;
                }
                Err(_) => {
                    debug!(%peer, "s3 handshake timed out");
                    return;
                }
            };
            let state_timeouts = state.timeouts;
            let origin = (state.origin)(peer, local);
            let conn = Arc::new(ConnInfo { peer, local, origin });
            let svc = service_fn(move |req| {
                let state = state.clone();
                let conn = conn.clone();
                async move {
                    Ok::<_, Infallible>(
                        handle_with(&state, &conn, Some(local), A::SECURE, req).await,
                    )
                }
            });
            if let Err(e) =
                http::http1(&state_timeouts).serve_connection(TokioIo::new(io), svc).await
            {
                debug!(error = %e, %peer, "s3 connection error");
            }
        });
    }
}

/// Answers one S3 request (also used by the control API port, where requests come from no VPC).
pub async fn handle(
    state: &S3State,
    conn: &ConnInfo,
    req: Request<Incoming>,
) -> Response<RespBody> {
    handle_with(state, conn, Some(conn.local), false, req).await
}

/// Per-request facts beyond [`ConnInfo`]: the local address (which region's S3 was addressed)
/// and whether the connection is TLS.
struct Via<'a> {
    conn: &'a ConnInfo,
    local: Option<SocketAddr>,
    secure: bool,
}

async fn handle_with(
    state: &S3State,
    conn: &ConnInfo,
    local: Option<SocketAddr>,
    secure: bool,
    req: Request<Incoming>,
) -> Response<RespBody> {
    let request_id = next_request_id();
    let is_head = req.method() == Method::HEAD;
    let via = Via { conn, local, secure };
    let (parts, body) = req.into_parts();
    let (body, stalled) = IdleBody::new(body, state.timeouts.body_idle);
    let mut resp = match dispatch(state, &via, Request::from_parts(parts, body)).await {
        Ok(r) => r,
        Err(e) => {
            debug!(code = e.code, status = e.status.as_u16(), message = %e.message, "s3 error");
            e.into_response(&request_id, is_head)
        }
    };
    // A body the client stopped sending is this answer whatever the handler made of its
    // failed read (`IncompleteBody`, `MalformedXML`, ...), and the connection is closed, as S3
    // closes it.
    if stalled.happened() {
        debug!(peer = %conn.peer, "s3 request body timed out");
        resp = S3Error::request_timeout().into_response(&request_id, is_head);
        resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    let h = resp.headers_mut();
    set(h, "x-amz-request-id", &request_id);
    set(h, "x-amz-id-2", &host_id(&request_id));
    set(h, "server", "AmazonS3");
    set(h, "date", &http_date(now_secs()));
    set(h, "x-vpcsim-source-ip", &conn.peer.ip().to_canonical().to_string());
    if let Some(o) = &conn.origin {
        set(h, "x-vpcsim-vpce", &o.vpce_id);
        set(h, "x-vpcsim-vpc", &o.vpc_id);
    }
    resp
}

/// Sets a header, silently skipping values that are not valid header text.
fn set(h: &mut hyper::HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(HeaderName::from_static(name), v);
    }
}

/// Query parameters that never select an operation (SigV4 signing, SDK hints; SigV2's
/// `Expires`, which authenticates nothing alone). SigV2's `AWSAccessKeyId` and `Signature` are
/// not among them: [`sigv4::verify`] refuses them.
fn is_ignored_param(name: &str) -> bool {
    let l = name.to_ascii_lowercase();
    l.starts_with("x-amz-") || l == "x-id" || l == "expires"
}

const LIST_PARAMS: &[&str] = &[
    "list-type",
    "prefix",
    "delimiter",
    "max-keys",
    "continuation-token",
    "start-after",
    "encoding-type",
    "fetch-owner",
    "marker",
];

const RESPONSE_OVERRIDES: &[(&str, &str)] = &[
    ("response-content-type", "content-type"),
    ("response-content-language", "content-language"),
    ("response-expires", "expires"),
    ("response-cache-control", "cache-control"),
    ("response-content-disposition", "content-disposition"),
    ("response-content-encoding", "content-encoding"),
];

struct Query(Vec<(String, String)>);

impl Query {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
    fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }
    /// First parameter that is neither ignorable nor in `allowed`.
    fn unsupported(&self, allowed: &[&str]) -> Option<&str> {
        self.0
            .iter()
            .map(|(k, _)| k.as_str())
            .find(|k| !is_ignored_param(k) && !allowed.contains(k))
    }
}

async fn dispatch(
    state: &S3State,
    via: &Via<'_>,
    req: Request<ReqBody>,
) -> Result<Response<RespBody>, S3Error> {
    let (parts, body) = req.into_parts();
    let (bucket, key) = parse_target(&parts)?;
    let query = parse_query(parts.uri.query().unwrap_or(""))?;
    let method = parts.method.clone();
    let Some(bucket) = bucket else {
        return match method {
            Method::GET => {
                // ListAllMyBuckets has no resource type: `Resource: "*"` allows it, and so does
                // the usual `arn:aws:s3:::*`, which matches this ARN.
                Authz::new(state, via, &parts, &request_region(state, via), None)?.require(
                    "s3:ListAllMyBuckets",
                    "arn:aws:s3:::*",
                    None,
                )?;
                list_buckets(state).await
            }
            m => Err(S3Error::method_not_allowed(&m, "SERVICE")),
        };
    };
    if !valid_bucket_name(&bucket) {
        return Err(S3Error::invalid_bucket_name(&bucket));
    }
    let region = request_region(state, via);
    let creating = key.is_none() && method == Method::PUT && query.0.is_empty();
    let locating = key.is_none() && query.has("location");
    let meta = state.store.bucket(&bucket);
    // The credential scope must name the bucket's region: S3 answers "the region 'us-east-1' is
    // wrong; expecting 'us-west-2'" with the bucket's region (botocore's S3RegionRedirectorv2
    // retries there), and the endpoint's region for a request about no existing bucket, a
    // CreateBucket and a GetBucketLocation (which answers from any region).
    let bucket_region = meta.as_ref().filter(|_| !creating && !locating).map(|m| m.region.as_str());
    let authz = Authz::new(state, via, &parts, bucket_region.unwrap_or(&region), bucket_region)?;
    // S3 says whether a bucket exists before it checks permissions.
    let Some(meta) = meta else {
        if creating {
            authz.require_in(
                &bucket,
                "s3:CreateBucket",
                &format!("arn:aws:s3:::{bucket}"),
                None,
            )?;
            return create_bucket(state, &bucket, &region, &parts.headers, body).await;
        }
        return Err(S3Error::no_such_bucket(&bucket));
    };
    // Another account's bucket (AWS's repositories): a CreateBucket of its name is a request
    // about a new bucket of the caller's, authorized as one, which S3 answers
    // BucketAlreadyExists (the name "is not available").
    if creating && meta.owner != ACCOUNT_ID {
        authz.require("s3:CreateBucket", &format!("arn:aws:s3:::{bucket}"), None)?;
        return create_bucket(state, &bucket, &region, &parts.headers, body).await;
    }
    // Endpoints do not support cross-region requests; S3 redirects to the bucket's region.
    // GetBucketLocation answers everywhere (that is how clients find the region).
    if meta.region != region && !locating && !creating {
        return Err(S3Error::permanent_redirect(&bucket, &meta.region));
    }
    check_expected_owner(&parts.headers, "x-amz-expected-bucket-owner", &meta.owner)?;
    let bucket_arn = format!("arn:aws:s3:::{bucket}");
    match key {
        None if query.has("policy") => {
            let action = match method {
                Method::GET => "s3:GetBucketPolicy",
                Method::PUT => "s3:PutBucketPolicy",
                Method::DELETE => "s3:DeleteBucketPolicy",
                ref m => return Err(S3Error::method_not_allowed(m, "BUCKET")),
            };
            authz.require_in(&bucket, action, &bucket_arn, None)?;
            bucket_policy(state, &bucket, &method, body).await
        }
        None if query.has("acl") => {
            authorize_acl(&authz, &bucket, &method, &query, &bucket_arn, false)?;
            acl(&method)
        }
        None if query.has("encryption")
            || query.has("ownershipControls")
            || query.has("versioning") =>
        {
            // The lab's fixed bucket settings: (subresource, the GET's action, the PUT's (and
            // DELETE's) action, the answer). The API reference: DeleteBucketEncryption needs
            // "the s3:PutEncryptionConfiguration action", DeleteBucketOwnershipControls "the
            // s3:PutBucketOwnershipControls permission"; versioning has no DELETE.
            type Fixed = fn() -> Result<Response<RespBody>, S3Error>;
            let (name, get, put, answer): (&str, &str, &str, Fixed) = if query.has("encryption") {
                (
                    "encryption",
                    "s3:GetEncryptionConfiguration",
                    "s3:PutEncryptionConfiguration",
                    bucket_encryption,
                )
            } else if query.has("ownershipControls") {
                (
                    "ownershipControls",
                    "s3:GetBucketOwnershipControls",
                    "s3:PutBucketOwnershipControls",
                    ownership_controls,
                )
            } else {
                (
                    "versioning",
                    "s3:GetBucketVersioning",
                    "s3:PutBucketVersioning",
                    bucket_versioning,
                )
            };
            let action = match method {
                Method::GET => get,
                Method::PUT => put,
                Method::DELETE if name != "versioning" => put,
                ref m => return Err(S3Error::method_not_allowed(m, "BUCKET")),
            };
            if let Some(p) = query.unsupported(&[name]) {
                return Err(S3Error::not_implemented(p));
            }
            authz.require_in(&bucket, action, &bucket_arn, None)?;
            match method {
                Method::GET => answer(),
                // Fixed: SSE-S3, BucketOwnerEnforced and never versioned are all the lab has.
                _ => Err(S3Error::not_implemented(name)),
            }
        }
        None if query.has("uploads") => {
            if method != Method::GET {
                return Err(S3Error::method_not_allowed(&method, "BUCKET"));
            }
            if let Some(p) = query.unsupported(&[
                "uploads",
                "prefix",
                "delimiter",
                "max-uploads",
                "key-marker",
                "upload-id-marker",
                "encoding-type",
            ]) {
                return Err(S3Error::not_implemented(p));
            }
            authz.require_in(&bucket, "s3:ListBucketMultipartUploads", &bucket_arn, None)?;
            list_uploads(state, &bucket, &query).await
        }
        None if query.has("delete") => {
            if method != Method::POST {
                return Err(S3Error::method_not_allowed(&method, "BUCKET"));
            }
            if let Some(p) = query.unsupported(&["delete"]) {
                return Err(S3Error::not_implemented(p));
            }
            delete_objects(state, &authz, &bucket, &parts.headers, body).await
        }
        // POST Object (an HTML form upload: its credentials and policy are form fields, not
        // the request's signature) is not simulated: `501` on every bucket, before it is judged
        // as an anonymous request it is not.
        None if method == Method::POST && !query.has("location") => {
            Err(S3Error::not_implemented(method.as_str()))
        }
        None => {
            let action = match (&method, query.has("location")) {
                (&Method::GET, true) => "s3:GetBucketLocation",
                (&Method::GET | &Method::HEAD, false) => "s3:ListBucket",
                (&Method::PUT, _) => "s3:CreateBucket",
                (&Method::DELETE, _) => "s3:DeleteBucket",
                _ => "s3:ListBucket",
            };
            authz.require_in(&bucket, action, &bucket_arn, Some(&query)).map_err(|e| {
                // HeadBucket tells the bucket's region even when it refuses ("curl -I" on a
                // private bucket; botocore's region redirector falls back to HeadBucket and
                // reads the header from the error).
                if method == Method::HEAD {
                    e.header("x-amz-bucket-region", &meta.region)
                } else {
                    e
                }
            })?;
            if query.has("location") {
                if let Some(p) = query.unsupported(&["location"]) {
                    return Err(S3Error::not_implemented(p));
                }
                return match method {
                    Method::GET => get_bucket_location(state, &bucket).await,
                    m => Err(S3Error::method_not_allowed(&m, "BUCKET")),
                };
            }
            if let Some(p) = query.unsupported(LIST_PARAMS) {
                return Err(S3Error::not_implemented(p));
            }
            match method {
                Method::GET => list_objects(state, &bucket, &query).await,
                Method::HEAD => head_bucket(state, &bucket).await,
                Method::PUT => create_bucket(state, &bucket, &region, &parts.headers, body).await,
                Method::DELETE => delete_bucket(state, &bucket).await,
                m => Err(S3Error::method_not_allowed(&m, "BUCKET")),
            }
        }
        Some(key) => {
            let key_arn = format!("{bucket_arn}/{key}");
            if query.has("tagging") {
                return object_tagging(state, &authz, (&bucket, &key), &parts, &query, body).await;
            }
            if query.has("acl") {
                authorize_acl(&authz, &bucket, &method, &query, &key_arn, true)?;
                if method == Method::GET {
                    let (store, b, k) = (state.store.clone(), bucket.clone(), key.clone());
                    blocking(move || {
                        store.head_object(&b, &k).map_err(|e| S3Error::from_store(e, &b, Some(&k)))
                    })
                    .await?;
                }
                return acl(&method);
            }
            let upload_id = query.get("uploadId").map(str::to_string);
            // Multipart operations.
            match (&method, upload_id) {
                (&Method::POST, _) if query.has("uploads") => {
                    if let Some(p) = query.unsupported(&["uploads"]) {
                        return Err(S3Error::not_implemented(p));
                    }
                    let tags = tagging::header_tags(&parts.headers)?;
                    let extra = conditional_keys(&parts.headers, Conditional::Part);
                    authorize_write(&authz, &bucket, &key_arn, tags.as_ref(), &extra)?;
                    refuse_object_acl(&parts.headers)?;
                    let tags = tags.unwrap_or_default();
                    return create_multipart(state, &bucket, &key, &parts, tags).await;
                }
                (&Method::PUT, Some(id)) => {
                    if let Some(p) = query.unsupported(&["uploadId", "partNumber"]) {
                        return Err(S3Error::not_implemented(p));
                    }
                    let extra = conditional_keys(&parts.headers, Conditional::Part);
                    let none = TagKeys::default();
                    authz.require_keyed(&bucket, "s3:PutObject", &key_arn, none, &extra)?;
                    // UploadPartCopy: s3:GetObject on the source as well.
                    if let Some((src_bucket, src_key)) = copy_source(state, &authz, &parts).await? {
                        return upload_part_copy(
                            state,
                            (&src_bucket, &src_key),
                            (&bucket, &key, &id),
                            &query,
                            &parts,
                        )
                        .await;
                    }
                    let signer = authz.chunk_signer(&parts);
                    return upload_part(state, &bucket, &key, &id, &query, &parts, body, signer)
                        .await;
                }
                (&Method::POST, Some(id)) => {
                    if let Some(p) = query.unsupported(&["uploadId"]) {
                        return Err(S3Error::not_implemented(p));
                    }
                    let extra = conditional_keys(&parts.headers, Conditional::Write);
                    let none = TagKeys::default();
                    authz.require_keyed(&bucket, "s3:PutObject", &key_arn, none, &extra)?;
                    return complete_multipart(state, &bucket, &key, &id, &parts.headers, body)
                        .await;
                }
                (&Method::DELETE, Some(id)) => {
                    if let Some(p) = query.unsupported(&["uploadId"]) {
                        return Err(S3Error::not_implemented(p));
                    }
                    authz.require_in(&bucket, "s3:AbortMultipartUpload", &key_arn, None)?;
                    return abort_multipart(state, &bucket, &key, &id).await;
                }
                (&Method::GET, Some(id)) => {
                    if let Some(p) = query.unsupported(&[
                        "uploadId",
                        "max-parts",
                        "part-number-marker",
                        "encoding-type",
                    ]) {
                        return Err(S3Error::not_implemented(p));
                    }
                    authz.require_in(&bucket, "s3:ListMultipartUploadParts", &key_arn, None)?;
                    return list_parts(state, &bucket, &key, &id, &query).await;
                }
                _ => {}
            }
            // A version id names a version, whose actions are its own. GetObject: "If you
            // include a versionId in your request header, you must have the s3:GetObjectVersion
            // permission to access a specific version of an object. The s3:GetObject permission
            // is not required in this scenario" (HeadObject is authorized as GetObject). S3
            // API Reference, DeleteObject: "s3:DeleteObjectVersion - To delete a specific
            // version of an object from a versioning-enabled bucket, you must have the
            // s3:DeleteObjectVersion permission", and to block deletes "you must deny them the
            // s3:DeleteObject, s3:DeleteObjectVersion, and s3:PutLifeCycleConfiguration
            // actions": denying s3:DeleteObject alone does not stop a version's delete.
            let versioned = query.has("versionId");
            let action = match method {
                Method::PUT => "s3:PutObject",
                Method::DELETE if versioned => "s3:DeleteObjectVersion",
                Method::DELETE => "s3:DeleteObject",
                _ if versioned => "s3:GetObjectVersion",
                _ => "s3:GetObject",
            };
            let overrides: Vec<&str> = RESPONSE_OVERRIDES.iter().map(|(q, _)| *q).collect();
            let reading = method == Method::GET || method == Method::HEAD;
            // From the API reference: the response-* parameters "cannot be used with an
            // unsigned (anonymous) request". HeadObject lists the same parameters as GetObject
            // and S3 answers them alike. Checked before authorization: the answer tells nothing
            // about the object.
            if reading && authz.anonymous() && overrides.iter().any(|q| query.has(q)) {
                return Err(S3Error::new(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequest",
                    "Request specific response headers cannot be used for anonymous GET requests.",
                ));
            }
            // The tags a write names (checked before authorization: the condition keys need
            // them), and those of the object a read reads.
            let copying = parts.headers.contains_key("x-amz-copy-source");
            let tags = match method {
                Method::PUT if copying => tagging::copy_tags(&parts.headers)?
                    .filter(|_| parts.headers.contains_key("x-amz-tagging")),
                Method::PUT => tagging::header_tags(&parts.headers)?,
                _ => None,
            };
            if method == Method::PUT {
                let extra = conditional_keys(&parts.headers, Conditional::Write);
                authorize_write(&authz, &bucket, &key_arn, tags.as_ref(), &extra)?;
            } else {
                let existing =
                    if reading { existing_tags(state, &authz, &bucket, &key).await? } else { None };
                let keys = TagKeys { existing: existing.as_ref(), request: None };
                let extra = match method {
                    Method::DELETE => conditional_keys(&parts.headers, Conditional::Delete),
                    _ => Vec::new(),
                };
                authz.require_keyed(&bucket, action, &key_arn, keys, &extra)?;
            }
            let mut allowed: Vec<&str> = Vec::new();
            if reading {
                allowed.extend(&overrides);
                allowed.push("partNumber");
            }
            // No bucket here is versioned, and "Objects that are stored in your bucket before
            // you set the versioning state have a version ID of null" (S3 User Guide, "How S3
            // Versioning works"): `versionId=null` names the object itself. Another version id
            // is not implemented.
            if (reading || method == Method::DELETE) && query.get("versionId") == Some("null") {
                allowed.push("versionId");
            }
            if let Some(p) = query.unsupported(&allowed) {
                return Err(S3Error::not_implemented(p));
            }
            match method {
                Method::PUT => {
                    refuse_object_acl(&parts.headers)?;
                    if let Some((src_bucket, src_key)) = copy_source(state, &authz, &parts).await? {
                        return copy_object(state, &src_bucket, &src_key, &bucket, &key, &parts)
                            .await;
                    }
                    let signer = authz.chunk_signer(&parts);
                    let tags = tags.unwrap_or_default();
                    put_object(state, (bucket, key), &parts, body, signer, tags).await
                }
                Method::GET | Method::HEAD => {
                    let head = method == Method::HEAD;
                    match get_object(state, bucket.clone(), key, &parts, &query, head).await {
                        // Without s3:ListBucket, S3 does not tell a missing key from a
                        // forbidden one.
                        Err(e) if e.code == "NoSuchKey" => {
                            match authz.require_in(&bucket, "s3:ListBucket", &bucket_arn, None) {
                                Ok(()) => Err(e),
                                Err(denied) => Err(denied),
                            }
                        }
                        other => other,
                    }
                }
                Method::DELETE => {
                    let if_match = parts
                        .headers
                        .get("if-match")
                        .map(|v| v.to_str().unwrap_or("").trim().to_string());
                    authorize_conditional_delete(&authz, &bucket, &key_arn, if_match.as_deref())?;
                    match delete_object(state, bucket.clone(), key, if_match).await {
                        // As for a GET: without s3:ListBucket, S3 does not tell a missing key
                        // (of an `If-Match` delete) from a forbidden one.
                        Err(e) if e.code == "NoSuchKey" => {
                            authz.require_in(&bucket, "s3:ListBucket", &bucket_arn, None)?;
                            Err(e)
                        }
                        other => other,
                    }
                }
                Method::POST => Err(S3Error::not_implemented("POST")),
                m => Err(S3Error::method_not_allowed(&m, "OBJECT")),
            }
        }
    }
}

/// The region whose S3 a request was sent to: that of the local address it arrived on,
/// or the listener's own region.
fn request_region(state: &S3State, via: &Via<'_>) -> String {
    via.local
        .and_then(|l| (state.region_of)(l.ip().to_canonical()))
        .unwrap_or_else(|| state.region.clone())
}

/// The `x-amz-copy-source` of a CopyObject or UploadPartCopy, if the request has one: the
/// source bucket and key, once the bucket exists and the caller may `s3:GetObject` the source
/// (`s3:GetObjectVersion` when it names a version; a copy needs read access to its source as
/// well as write access to its destination).
async fn copy_source(
    state: &S3State,
    authz: &Authz<'_>,
    parts: &Parts,
) -> Result<Option<(String, String)>, S3Error> {
    let Some(src) = parts.headers.get("x-amz-copy-source") else {
        return Ok(None);
    };
    let src = src.to_str().map_err(|_| S3Error::invalid_copy_source())?;
    let (src_bucket, src_key) = parse_copy_source(src)?;
    // `?versionId=null` (the only version id taken) names a version: s3:GetObjectVersion, as for
    // a GetObject of it (the Service Authorization Reference lists s3:GetObjectVersion among
    // CopyObject's actions).
    let versioned = src.split_once('?').is_some_and(|(_, q)| !q.is_empty());
    let action = if versioned { "s3:GetObjectVersion" } else { "s3:GetObject" };
    let Some(src_meta) = state.store.bucket(&src_bucket) else {
        return Err(S3Error::no_such_bucket(&src_bucket));
    };
    check_expected_owner(&parts.headers, "x-amz-source-expected-bucket-owner", &src_meta.owner)?;
    let src_arn = format!("arn:aws:s3:::{src_bucket}/{src_key}");
    // A read of the source: its tags are its s3:ExistingObjectTag keys.
    let existing = existing_tags(state, authz, &src_bucket, &src_key).await?;
    let keys = TagKeys { existing: existing.as_ref(), request: None };
    authz.require_tagged(&src_bucket, action, &src_arn, keys)?;
    Ok(Some((src_bucket, src_key)))
}

/// `x-amz-expected-bucket-owner` (a copy's source: `x-amz-source-expected-bucket-owner`), from
/// the S3 User Guide, "Verifying bucket ownership with bucket owner condition": "If the account
/// ID that you provide does not match the actual owner of the bucket, the request fails with the
/// HTTP status code 403 Forbidden (access denied)". `owner`: the bucket's (see
/// [`super::store::BucketMeta::owner`]).
fn check_expected_owner(
    headers: &hyper::HeaderMap,
    name: &str,
    owner: &str,
) -> Result<(), S3Error> {
    match headers.get(name) {
        Some(v) if v.to_str().map(str::trim).ok() != Some(owner) => {
            Err(S3Error::new(StatusCode::FORBIDDEN, "AccessDenied", "Access Denied")
                .header("x-vpcsim-denied-by", "expected-bucket-owner"))
        }
        _ => Ok(()),
    }
}

/// The tag set of the object a request reads or retags, for its `s3:ExistingObjectTag/<key>`
/// condition keys: `None` when the key holds no object, and when nothing is authorized (no
/// need to read it). The object may change before the request proceeds, as it may after.
async fn existing_tags(
    state: &S3State,
    authz: &Authz<'_>,
    bucket: &str,
    key: &str,
) -> Result<Option<Tags>, S3Error> {
    if !authz.authorizes() {
        return Ok(None);
    }
    let (store, b, k) = (state.store.clone(), bucket.to_string(), key.to_string());
    blocking(move || match store.head_object(&b, &k) {
        Ok(meta) => Ok(Some(meta.tags)),
        Err(StoreError::NoSuchKey(_) | StoreError::InvalidKey | StoreError::KeyTooLong(_)) => {
            Ok(None)
        }
        Err(e) => Err(S3Error::from_store(e, &b, Some(&k))),
    })
    .await
}

/// A write (PutObject, CreateMultipartUpload, CopyObject) needs `s3:PutObject` and, when it
/// gives its object tags, `s3:PutObjectTagging` as well ("To use PutObject with tags, you must
/// have the s3:PutObjectTagging permission"); the tags are the request's
/// `s3:RequestObjectTag/<key>` and `s3:RequestObjectTagKeys` for both. `extra`: its
/// [`conditional_keys`], for `s3:PutObject`.
fn authorize_write(
    authz: &Authz<'_>,
    bucket: &str,
    key_arn: &str,
    tags: Option<&Tags>,
    extra: &[(&str, String)],
) -> Result<(), S3Error> {
    let keys = TagKeys { existing: None, request: tags };
    authz.require_keyed(bucket, "s3:PutObject", key_arn, keys, extra)?;
    if tags.is_some() {
        authz.require_tagged(bucket, "s3:PutObjectTagging", key_arn, keys)?;
    }
    Ok(())
}

/// Which operation [`conditional_keys`] are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conditional {
    /// PutObject, CopyObject, CompleteMultipartUpload: an object is created, and the request
    /// may be conditional (`If-Match`, `If-None-Match`).
    Write,
    /// CreateMultipartUpload, UploadPart, UploadPartCopy: `s3:PutObject`, but no object is
    /// created yet and no conditional header is taken.
    Part,
    /// DeleteObject: `If-Match` only.
    Delete,
}

/// The condition keys of a write's or a delete's conditional headers and of whether it creates
/// the object. From the S3 User Guide, "Enforce conditional writes on Amazon S3 buckets": "You
/// can use the condition keys s3:if-match or s3:if-none-match" in a bucket policy, and "For
/// multipart uploads you must specify the s3:ObjectCreationOperation condition key to exempt
/// the CreateMultipartUpload, UploadPart, and UploadPartCopy operations, as these APIs don't
/// accept conditional headers": the key is `false` for those three and `true` for the writes
/// that make the object (its example allows `s3:PutObject` on `"Bool":
/// {"s3:ObjectCreationOperation": "false"}` beside the conditional PutObject and
/// CompleteMultipartUpload; a Deny on `"Null": {"s3:if-none-match": "true"}` names it `true`).
/// "Enforce conditional deletes": "If the If-Match header doesn't exist, the request will be
/// denied with an 403 Access Denied", by `s3:if-match` on `s3:DeleteObject`. A key is set only
/// when its header is sent (so `Null` tells a conditional request from another), to the
/// header's value as sent.
fn conditional_keys(headers: &hyper::HeaderMap, op: Conditional) -> Vec<(&'static str, String)> {
    let header = |name: &str| {
        headers.get(name).map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_string())
    };
    let mut keys = Vec::new();
    match op {
        Conditional::Write => {
            keys.push(("s3:ObjectCreationOperation", "true".to_string()));
            keys.extend(header("if-match").map(|v| ("s3:if-match", v)));
            keys.extend(header("if-none-match").map(|v| ("s3:if-none-match", v)));
        }
        Conditional::Part => keys.push(("s3:ObjectCreationOperation", "false".to_string())),
        Conditional::Delete => keys.extend(header("if-match").map(|v| ("s3:if-match", v))),
    }
    keys
}

/// GetObjectTagging, PutObjectTagging and DeleteObjectTagging (the `?tagging` subresource of
/// an object). PutObjectTagging's body is checked (its integrity header, its tags) before
/// authorization, whose condition keys name its tags.
async fn object_tagging(
    state: &S3State,
    authz: &Authz<'_>,
    (bucket, key): (&str, &str),
    parts: &Parts,
    query: &Query,
    body: ReqBody,
) -> Result<Response<RespBody>, S3Error> {
    let action = match parts.method {
        Method::GET => "s3:GetObjectTagging",
        Method::PUT => "s3:PutObjectTagging",
        Method::DELETE => "s3:DeleteObjectTagging",
        ref m => return Err(S3Error::method_not_allowed(m, "OBJECT")),
    };
    if let Some(p) = query.unsupported(&["tagging"]) {
        return Err(S3Error::not_implemented(p));
    }
    let request = match parts.method {
        Method::PUT => {
            Some(tagging::parse_tagging(&checked_body(&parts.headers, body, bucket).await?)?)
        }
        _ => None,
    };
    let key_arn = format!("arn:aws:s3:::{bucket}/{key}");
    let existing = existing_tags(state, authz, bucket, key).await?;
    let keys = TagKeys { existing: existing.as_ref(), request: request.as_ref() };
    authz.require_tagged(bucket, action, &key_arn, keys)?;
    let (store, b, k) = (state.store.clone(), bucket.to_string(), key.to_string());
    let method = parts.method.clone();
    let meta = blocking(move || {
        match method {
            Method::GET => store.head_object(&b, &k),
            _ => store.set_object_tags(&b, &k, request.unwrap_or_default()),
        }
        .map_err(|e| S3Error::from_store(e, &b, Some(&k)))
    })
    .await?;
    debug!(bucket, key, method = %parts.method, tags = meta.tags.len(), "object tagging");
    match parts.method {
        Method::GET => Ok(xml_response(StatusCode::OK, tagging::tagging_xml(&meta.tags)?)),
        Method::PUT => Ok(empty(StatusCode::OK)),
        _ => Ok(empty(StatusCode::NO_CONTENT)),
    }
}

/// `srcbucket/srckey` or `/srcbucket/srckey`, URL-encoded, optionally `?versionId=…`.
fn parse_copy_source(raw: &str) -> Result<(String, String), S3Error> {
    let (path, version) = match raw.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (raw, None),
    };
    if let Some(v) = version
        && !v.is_empty()
        && v != "versionId=null"
    {
        return Err(S3Error::not_implemented("x-amz-copy-source versionId"));
    }
    let decoded = percent_decode(path, false)?;
    let decoded = decoded.strip_prefix('/').unwrap_or(&decoded);
    match decoded.split_once('/') {
        Some((b, k)) if !b.is_empty() && !k.is_empty() => Ok((b.to_string(), k.to_string())),
        _ => Err(S3Error::invalid_copy_source()),
    }
}

/// The caller of one request and what it may do: SigV4 identity (a bad signature is refused
/// here), the condition keys of its path, and the policies that apply (see
/// [`crate::services::access`]).
struct Authz<'a> {
    state: &'a S3State,
    access: Option<Arc<Access>>,
    access_key: Option<String>,
    origin: Option<&'a EndpointOrigin>,
    source_ip: String,
    secure: bool,
    /// The verified header-signed SigV4 identity and its secret (for aws-chunked signatures).
    identity: Option<(sigv4::Identity, String)>,
    /// The request's headers that are S3 condition keys (`s3:x-amz-acl` …), as (key, value).
    header_keys: Vec<(&'static str, String)>,
}

impl<'a> Authz<'a> {
    /// `scope_region`: the region a signature's credential scope must name; `bucket_region`,
    /// for a request about an existing bucket, is answered in `x-amz-bucket-region` when it
    /// does not.
    fn new(
        state: &'a S3State,
        via: &Via<'a>,
        parts: &Parts,
        scope_region: &str,
        bucket_region: Option<&str>,
    ) -> Result<Authz<'a>, S3Error> {
        let conn = via.conn;
        let source_ip = conn.peer.ip().to_canonical().to_string();
        let secure = via.secure;
        let Some(access) = state.access.as_ref().map(|a| a.load_full()) else {
            return Ok(Authz {
                state,
                access: None,
                access_key: None,
                origin: None,
                source_ip,
                secure,
                identity: None,
                header_keys: Vec::new(),
            });
        };
        let headers: Vec<(&str, &str)> = parts
            .headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
            .collect();
        let sreq = sigv4::Request {
            method: parts.method.as_str(),
            path: parts.uri.path(),
            query: parts.uri.query().unwrap_or(""),
            headers: &headers,
            payload_sha256: None,
        };
        let auth_error = |e: sigv4::AuthError| {
            let err = S3Error::new(
                StatusCode::from_u16(e.s3_status()).unwrap_or(StatusCode::FORBIDDEN),
                e.s3_code(),
                &e.s3_message(),
            );
            match e {
                // S3 tells a client with a wrong clock both times and the limit, e.g.
                // `<RequestTime>20221214T223823Z</RequestTime><ServerTime>2022-12-14T22:55:24Z
                // </ServerTime><MaxAllowedSkewMilliseconds>900000</MaxAllowedSkewMilliseconds>`.
                sigv4::AuthError::TooSkewed => {
                    let sent = |name: &str| {
                        headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|h| h.1)
                    };
                    let request_time = sent("x-amz-date").or_else(|| sent("date")).unwrap_or("");
                    err.field("RequestTime", request_time)
                        .field("ServerTime", &iso8601_seconds(now_secs()))
                        .field(
                            "MaxAllowedSkewMilliseconds",
                            &(sigv4::MAX_SKEW_SECS * 1000).to_string(),
                        )
                }
                _ => err,
            }
        };
        sigv4::check_scope(&sreq, scope_region, "s3").map_err(|e| {
            let wrong_region = matches!(e, sigv4::AuthError::WrongRegion { .. });
            let mut err = auth_error(e);
            if wrong_region {
                err = err.field("Region", scope_region);
            }
            match bucket_region {
                Some(r) => err.header("x-amz-bucket-region", r),
                None => err,
            }
        })?;
        let identity =
            sigv4::verify(&sreq, &|k| access.secret_for(k), now_secs()).map_err(auth_error)?;
        if let Some(id) = &identity {
            let unsigned = sigv4::unsigned_amz_headers(&sreq, id);
            if !unsigned.is_empty() {
                // S3's answer, as SDK and proxy users quote it: `<HeadersNotSigned>` names
                // them (comma-separated here when there are several).
                return Err(S3Error::new(
                    StatusCode::FORBIDDEN,
                    "AccessDenied",
                    "There were headers present in the request which were not signed",
                )
                .field("HeadersNotSigned", &unsigned.join(", ")));
            }
        }
        let identity = identity.and_then(|i| {
            let secret = access.secret_for(&i.access_key)?;
            Some((i, secret))
        });
        let header_keys = crate::policy::HEADER_KEYS
            .iter()
            .filter_map(|k| {
                let v = parts.headers.get(k.strip_prefix("s3:")?)?.to_str().ok()?;
                Some((*k, v.to_string()))
            })
            .collect();
        Ok(Authz {
            header_keys,
            state,
            access_key: identity.as_ref().map(|(i, _)| i.access_key.clone()),
            access: Some(access),
            origin: conn.origin.as_ref(),
            source_ip,
            secure,
            identity,
        })
    }

    /// The signer of `aws-chunked` chunk signatures, for a header-signed request whose payload
    /// is `STREAMING-AWS4-HMAC-SHA256-PAYLOAD` (every chunk then carries a signature chained
    /// from the seed signature) or `STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER` (the same
    /// chunks, then trailing headers signed by `x-amz-trailer-signature`).
    fn chunk_signer(&self, parts: &Parts) -> Option<ChunkSigner> {
        let (id, secret) = self.identity.as_ref()?;
        let sha = parts.headers.get("x-amz-content-sha256")?.to_str().ok()?;
        let trailer = match sha {
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" => false,
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER" => true,
            _ => return None,
        };
        if id.presigned {
            return None;
        }
        Some(ChunkSigner {
            key: sigv4::signing_key(secret, &id.scope.date, &id.scope.region, &id.scope.service),
            amz_date: id.amz_date.clone(),
            scope: id.scope.to_scope_string(),
            previous: id.signature.clone(),
            trailer,
        })
    }

    /// True for an unsigned request (a stub that authorizes nothing knows no one: false).
    fn anonymous(&self) -> bool {
        self.access.is_some() && self.identity.is_none()
    }

    /// False for a stub that authorizes nothing (every check passes).
    fn authorizes(&self) -> bool {
        self.access.is_some()
    }

    /// Requires `action` on `resource` (no bucket policy: account-level actions).
    fn require(&self, action: &str, resource: &str, list: Option<&Query>) -> Result<(), S3Error> {
        self.check(None, action, resource, list, TagKeys::default(), &[])
    }

    /// Requires `action` on `resource` of `bucket` (its bucket policy applies). `list`: the
    /// query of a ListBucket request (its `s3:prefix`, `s3:delimiter` and `s3:max-keys`).
    fn require_in(
        &self,
        bucket: &str,
        action: &str,
        resource: &str,
        list: Option<&Query>,
    ) -> Result<(), S3Error> {
        self.check(Some(bucket), action, resource, list, TagKeys::default(), &[])
    }

    /// [`Authz::require_in`] for a request about an object's tags: those of the object
    /// (`s3:ExistingObjectTag/<key>`) and those it gives (`s3:RequestObjectTag/<key>`,
    /// `s3:RequestObjectTagKeys`).
    fn require_tagged(
        &self,
        bucket: &str,
        action: &str,
        resource: &str,
        tags: TagKeys<'_>,
    ) -> Result<(), S3Error> {
        self.check(Some(bucket), action, resource, None, tags, &[])
    }

    /// [`Authz::require_tagged`] with condition keys only some actions carry (`s3:if-match`,
    /// `s3:if-none-match`, `s3:ObjectCreationOperation`; see [`conditional_keys`]).
    fn require_keyed(
        &self,
        bucket: &str,
        action: &str,
        resource: &str,
        tags: TagKeys<'_>,
        extra: &[(&str, String)],
    ) -> Result<(), S3Error> {
        self.check(Some(bucket), action, resource, None, tags, extra)
    }

    fn check(
        &self,
        bucket: Option<&str>,
        action: &str,
        resource: &str,
        list: Option<&Query>,
        tags: TagKeys<'_>,
        extra: &[(&str, String)],
    ) -> Result<(), S3Error> {
        let Some(access) = &self.access else { return Ok(()) };
        let user = self.access_key.as_deref().and_then(|k| access.user(k));
        let meta = bucket.and_then(|b| self.state.store.bucket(b));
        // A stored policy that no longer parses (it was validated when stored) must not fail
        // open for its Denies: it denies everything but repairing it.
        let bucket_policy = meta.as_ref().and_then(|m| {
            let text = m.policy.as_deref()?;
            Some(Policy::parse(text, PolicyKind::Bucket).unwrap_or_else(|err| {
                warn!(bucket = %m.name, error = %err, "stored bucket policy does not parse: denying all");
                crate::policy::unreadable_bucket_policy()
            }))
        });
        // The account that owns the resource: the bucket's owner (the lab's, or AWS's for its
        // repositories); the caller's own (every user's is the lab's) for a request about no
        // existing bucket (ListBuckets, CreateBucket).
        let owner = meta.as_ref().map_or(ACCOUNT_ID, |m| m.owner.as_str());
        let cross_account = user.is_some_and(|u| u.account() != owner);
        let endpoint_policy =
            self.origin.map(|o| access.endpoint_policy(&o.vpce_id, std::time::Instant::now()));
        let secure = if self.secure { "true" } else { "false" };
        let now = now_secs();
        let (current_time, epoch_time) = (iso8601_seconds(now), now.to_string());
        let tag_keys = |prefix: &str, t: Option<&Tags>| -> Vec<(String, String)> {
            t.into_iter().flatten().map(|(k, v)| (format!("{prefix}{k}"), v.clone())).collect()
        };
        let existing = tag_keys("s3:ExistingObjectTag/", tags.existing);
        let requested = tag_keys("s3:RequestObjectTag/", tags.request);
        let mut keys: Vec<(&str, Vec<&str>)> = vec![
            ("aws:SecureTransport", vec![secure]),
            ("aws:CurrentTime", vec![&current_time]),
            ("aws:EpochTime", vec![&epoch_time]),
            ("s3:ResourceAccount", vec![owner]),
        ];
        match self.origin {
            // From the guide: aws:SourceIp "is not matched" through an endpoint. IAM's global
            // condition keys: aws:VpcSourceIp "matches only if the request originates from the
            // specified IP address and it goes through a VPC endpoint"; through a gateway
            // endpoint the source is the instance's private address, not translated.
            Some(o) => {
                keys.push(("aws:sourceVpce", vec![o.vpce_id.as_str()]));
                keys.push(("aws:sourceVpc", vec![o.vpc_id.as_str()]));
                keys.push(("aws:VpcSourceIp", vec![self.source_ip.as_str()]));
            }
            None => keys.push(("aws:SourceIp", vec![self.source_ip.as_str()])),
        }
        if let Some(u) = user {
            keys.extend(u.keys().into_iter().map(|(k, v)| (k, vec![v])));
        }
        if let Some((id, _)) = &self.identity {
            // Anonymous requests have neither.
            keys.push(("s3:signatureversion", vec!["AWS4-HMAC-SHA256"]));
            let auth = if id.presigned { "REST-QUERY-STRING" } else { "REST-HEADER" };
            keys.push(("s3:authType", vec![auth]));
        }
        keys.extend(self.header_keys.iter().map(|(k, v)| (*k, vec![v.as_str()])));
        keys.extend(extra.iter().map(|(k, v)| (*k, vec![v.as_str()])));
        keys.extend(existing.iter().chain(&requested).map(|(k, v)| (k.as_str(), vec![v.as_str()])));
        if let Some(t) = tags.request {
            // Multivalued: every key the request gives (none for an empty set).
            keys.push(("s3:RequestObjectTagKeys", t.keys().map(String::as_str).collect()));
        }
        if let Some(q) = list {
            keys.push(("s3:prefix", vec![q.get("prefix").unwrap_or("")]));
            if let Some(d) = q.get("delimiter") {
                keys.push(("s3:delimiter", vec![d]));
            }
            if let Some(m) = q.get("max-keys") {
                keys.push(("s3:max-keys", vec![m]));
            }
        }
        let key_refs: Vec<(&str, &[&str])> = keys.iter().map(|(k, v)| (*k, v.as_slice())).collect();
        let req = RequestContext {
            principal: user.map(|u| u.arn.as_str()),
            action,
            resource,
            keys: &key_refs,
        };
        let policies = S3Policies {
            endpoint: endpoint_policy.as_deref(),
            bucket: bucket_policy.as_ref(),
            identity: user.map(|u| &u.policy),
            cross_account,
        };
        match policies.decide(&req) {
            Verdict::Allow => Ok(()),
            Verdict::Deny { by, explicit } => {
                debug!(action, resource, by = %by, cross_account, "s3 access denied");
                let message = match user {
                    Some(u) if !cross_account => {
                        access_denied_message(&u.arn, action, resource, &by, explicit)
                    }
                    _ => "Access Denied".to_string(),
                };
                Err(S3Error::new(StatusCode::FORBIDDEN, "AccessDenied", &message)
                    .header("x-vpcsim-denied-by", &by))
            }
        }
    }
}

/// S3's message for an AccessDenied of a signed request within the bucket owner's account,
/// from the verdict (who denied, and whether by a Deny statement). The S3 User Guide,
/// "Troubleshoot access denied (403 Forbidden) errors": "Most access denied error messages
/// appear in the format User user-arn is not authorized to perform action on "resource-arn"
/// because context"; an explicit Deny says "with an explicit deny in a type policy", an
/// implicit one "because no type policy allows the action action"; "Enhanced access denied
/// messages are returned only for same-account requests" ("Cross-account requests ... return a
/// generic Access Denied message", as anonymous ones do). The types: "VPC endpoint",
/// "resource-based" (bucket policies), "identity-based". Within an account the identity policy
/// is the one expected to allow, so when nothing allows it is the one named. ListAllMyBuckets
/// has no resource, and S3 names none: "is not authorized to perform: s3:ListAllMyBuckets
/// because no identity-based policy allows the s3:ListAllMyBuckets action".
fn access_denied_message(
    principal: &str,
    action: &str,
    resource: &str,
    by: &str,
    explicit: bool,
) -> String {
    use crate::policy::{BUCKET_POLICY, ENDPOINT_POLICY};
    let (a, kind) = match by.split(':').next().unwrap_or(by) {
        ENDPOINT_POLICY => ("a", "VPC endpoint"),
        BUCKET_POLICY => ("a", "resource-based"),
        _ => ("an", "identity-based"),
    };
    let context = if explicit {
        format!("with an explicit deny in {a} {kind} policy")
    } else {
        format!("because no {kind} policy allows the {action} action")
    };
    if action == "s3:ListAllMyBuckets" {
        format!("User: {principal} is not authorized to perform: {action} {context}")
    } else {
        format!(
            "User: {principal} is not authorized to perform: {action} on resource: \"{resource}\" {context}"
        )
    }
}

/// The object-tag condition keys of a request (see [`Authz::require_tagged`]).
#[derive(Clone, Copy, Default)]
struct TagKeys<'t> {
    /// The tags of the object the request reads or retags.
    existing: Option<&'t Tags>,
    /// The tags the request gives an object.
    request: Option<&'t Tags>,
}

/// GetBucketPolicy, PutBucketPolicy (validated: `MalformedPolicy`), DeleteBucketPolicy.
async fn bucket_policy(
    state: &S3State,
    bucket: &str,
    method: &Method,
    body: ReqBody,
) -> Result<Response<RespBody>, S3Error> {
    match *method {
        Method::GET => {
            let meta = state.store.bucket(bucket).ok_or_else(|| S3Error::no_such_bucket(bucket))?;
            match meta.policy {
                Some(p) => {
                    Ok(Response::new(Full::new(Bytes::from(p)).map_err(|n| match n {}).boxed()))
                }
                None => Err(S3Error::new(
                    StatusCode::NOT_FOUND,
                    "NoSuchBucketPolicy",
                    "The bucket policy does not exist",
                )
                .field("BucketName", bucket)),
            }
        }
        Method::PUT => {
            let bytes = http_body_util::Limited::new(body, 20 * 1024)
                .collect()
                .await
                .map_err(|_| {
                    S3Error::new(
                        StatusCode::BAD_REQUEST,
                        "PolicyTooLarge",
                        "Policy exceeds the maximum allowed document size.",
                    )
                })?
                .to_bytes();
            let text = String::from_utf8(bytes.to_vec()).map_err(|_| {
                S3Error::new(
                    StatusCode::BAD_REQUEST,
                    "MalformedPolicy",
                    "Policies must be valid UTF-8",
                )
            })?;
            // S3 refuses a principal that does not exist: the lab's users are known.
            let users = state.access.as_ref().map(|a| a.load().user_arns()).unwrap_or_default();
            let known = KnownPrincipals { account: ACCOUNT_ID, users: &users };
            if let Err(e) = crate::policy::parse_bucket_policy(bucket, &text, known) {
                debug!(bucket, detail = %e.detail, "bucket policy refused");
                return Err(S3Error::new(StatusCode::BAD_REQUEST, "MalformedPolicy", &e.message));
            }
            let (store, b) = (state.store.clone(), bucket.to_string());
            blocking(move || {
                store
                    .set_bucket_policy(&b, Some(text))
                    .map_err(|e| S3Error::from_store(e, &b, None))
            })
            .await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        _ => {
            let (store, b) = (state.store.clone(), bucket.to_string());
            blocking(move || {
                store.set_bucket_policy(&b, None).map_err(|e| S3Error::from_store(e, &b, None))
            })
            .await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
    }
}

/// Bucket and key of a request, from virtual-hosted-style Host or the path.
fn parse_target(parts: &Parts) -> Result<(Option<String>, Option<String>), S3Error> {
    let host = parts.uri.host().map(str::to_string).or_else(|| {
        parts.headers.get(header::HOST).and_then(|h| h.to_str().ok()).map(str::to_string)
    });
    let path = parts.uri.path();
    let path = path.strip_prefix('/').unwrap_or(path);
    if let Some(bucket) =
        host.as_deref().and_then(|h| bucket_from_host(h).or_else(|| cname_bucket(h)))
    {
        let key = percent_decode(path, false)?;
        return Ok((Some(bucket), Some(key).filter(|k| !k.is_empty())));
    }
    if path.is_empty() {
        return Ok((None, None));
    }
    let (b, k) = match path.split_once('/') {
        Some((b, k)) => (b, Some(k)),
        None => (path, None),
    };
    let bucket = percent_decode(b, false)?;
    let key = match k {
        Some(k) => Some(percent_decode(k, false)?).filter(|k| !k.is_empty()),
        None => None,
    };
    Ok((Some(bucket), key))
}

/// The bucket named by a virtual-hosted-style Host (`bucket.s3[.region|-region|.dualstack.region].amazonaws.com`,
/// `bucket.s3-fips[.dualstack].region.amazonaws.com`).
/// `None` for IP addresses, bare service names and foreign hosts (path style).
pub fn bucket_from_host(host: &str) -> Option<String> {
    let host = host_name(host)?;
    let rest = host.strip_suffix(".amazonaws.com")?;
    let labels: Vec<&str> = rest.split('.').collect();
    (1..labels.len()).rev().find(|&i| is_s3_service(&labels[i..])).map(|i| labels[..i].join("."))
}

/// The bucket a Host that is no S3 endpoint name names, CNAME style: from the S3 User Guide
/// ("Virtual hosting of buckets"), otherwise "the bucket for the request is the lowercase value
/// of the Host header, and the key for the request is the Request-URI". So the Amazon Linux
/// repository buckets are reached as `http://packages.us-east-1.amazonaws.com/repodata/…`.
/// `None` for S3's own names (virtual-hosted or path style), IP literals and `localhost` (the
/// control API's `--endpoint-url`), which are path style.
fn cname_bucket(host: &str) -> Option<String> {
    let host = host_name(host)?;
    if let Some(rest) = host.strip_suffix(".amazonaws.com") {
        let labels: Vec<&str> = rest.split('.').collect();
        if (0..labels.len()).any(|i| is_s3_service(&labels[i..])) {
            return None;
        }
    }
    Some(host)
}

/// A Host header's name, lower-cased, without its port and trailing dot; `None` for an empty
/// one, an IP literal and `localhost`.
fn host_name(host: &str) -> Option<String> {
    if host.starts_with('[') {
        return None;
    }
    let host = match host.rsplit_once(':') {
        Some((h, port)) if !port.is_empty() && port.bytes().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host.is_empty() || host == "localhost" || host.parse::<IpAddr>().is_ok() {
        return None;
    }
    Some(host)
}

fn is_s3_service(labels: &[&str]) -> bool {
    fn is_region(r: &str) -> bool {
        r.contains('-')
            && r.ends_with(|c: char| c.is_ascii_digit())
            && r.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
    }
    match labels {
        ["s3"] => true,
        ["s3", r] | ["s3", "dualstack", r] => is_region(r),
        // FIPS endpoints, only where AWS has them (see `model::S3_FIPS_REGIONS`).
        ["s3-fips", r] | ["s3-fips", "dualstack", r] => crate::model::has_s3_fips(r),
        [l] => l.strip_prefix("s3-").is_some_and(|r| r == "external-1" || is_region(r)),
        _ => false,
    }
}

fn parse_query(q: &str) -> Result<Query, S3Error> {
    let mut out = Vec::new();
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.push((percent_decode(k, true)?, percent_decode(v, true)?));
    }
    Ok(Query(out))
}

/// Percent-decodes into UTF-8; in query strings `+` means space.
fn percent_decode(s: &str, plus_is_space: bool) -> Result<String, S3Error> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hi = hex_val(b[i + 1]);
                let lo = hex_val(b[i + 2]);
                match (hi, lo) {
                    (Some(h), Some(l)) => {
                        out.push(h << 4 | l);
                        i += 3;
                    }
                    _ => return Err(S3Error::invalid_uri()),
                }
            }
            b'%' => return Err(S3Error::invalid_uri()),
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| S3Error::invalid_uri())
}

fn hex_val(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// `encoding-type=url` encoding: everything but unreserved characters and '/' is escaped,
/// so both `unquote` and `unquote_plus` recover the key.
fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &c in s.as_bytes() {
        if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(c as char);
        } else {
            out.push_str(&format!("%{c:02X}"));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Operations

async fn blocking<T, F>(f: F) -> Result<T, S3Error>
where
    F: FnOnce() -> Result<T, S3Error> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| S3Error::internal(&format!("blocking task failed: {e}")))?
}

/// ListBuckets: "Returns a list of all buckets owned by the authenticated sender of the
/// request" (S3 API Reference), the lab account's, not AWS's repositories.
async fn list_buckets(state: &S3State) -> Result<Response<RespBody>, S3Error> {
    let mut buckets = state.store.buckets();
    buckets.retain(|b| b.owner == ACCOUNT_ID);
    let body = xml_doc("ListAllMyBucketsResult", |w| {
        owner(w)?;
        w.create_element("Buckets").write_inner_content(|w| {
            for b in &buckets {
                w.create_element("Bucket").write_inner_content(|w| {
                    text(w, "Name", &b.name)?;
                    text(w, "CreationDate", &iso8601(b.created))?;
                    text(w, "BucketRegion", &b.region)
                })?;
            }
            Ok(())
        })?;
        Ok(())
    })?;
    Ok(xml_response(StatusCode::OK, body))
}

// ACLs. Since April 2023 every new bucket has S3 Object Ownership `BucketOwnerEnforced` (ACLs
// disabled), and a lab's buckets are all new. From the S3 User Guide ("Troubleshooting" of
// Object Ownership): "All S3 PUT requests must either specify the bucket-owner-full-control
// canned ACL or not specify an ACL, or these requests will fail"; "Requests to set ACLs or
// update ACLs fail with a 400 error and return the AccessControlListNotSupported error code.
// Requests to read ACLs are still supported. Requests to read ACLs always return a response
// that shows full control for the bucket owner." Each check follows authorization, so an
// explicit Deny on `s3:x-amz-acl` in a bucket policy is still a 403.

/// PutObject, CopyObject and CreateMultipartUpload: no ACL but `bucket-owner-full-control`.
fn refuse_object_acl(headers: &hyper::HeaderMap) -> Result<(), S3Error> {
    let canned = headers.get("x-amz-acl").map(HeaderValue::as_bytes);
    if has_grants(headers) || canned.is_some_and(|v| v != b"bucket-owner-full-control") {
        return Err(S3Error::acl_not_supported());
    }
    Ok(())
}

/// CreateBucket's `x-amz-object-ownership`. The API reference lists "Valid Values:
/// BucketOwnerPreferred | ObjectWriter | BucketOwnerEnforced". `BucketOwnerEnforced` is what
/// every bucket here is; the other two (ACLs enabled) are `501 NotImplemented` naming the
/// header, so no client is told its bucket takes ACLs; another value is S3's `400
/// InvalidArgument` "Invalid x-amz-object-ownership header: <value>" (no ArgumentValue).
fn check_object_ownership(headers: &hyper::HeaderMap) -> Result<(), S3Error> {
    let Some(v) = headers.get("x-amz-object-ownership") else { return Ok(()) };
    match v.as_bytes() {
        b"BucketOwnerEnforced" => Ok(()),
        b"BucketOwnerPreferred" | b"ObjectWriter" => {
            Err(S3Error::not_implemented("x-amz-object-ownership"))
        }
        other => Err(S3Error::new(
            StatusCode::BAD_REQUEST,
            "InvalidArgument",
            &format!("Invalid x-amz-object-ownership header: {}", String::from_utf8_lossy(other)),
        )
        .field("ArgumentName", "x-amz-object-ownership")),
    }
}

/// CreateBucket: "If you want to apply the Bucket owner enforced setting to disable ACLs, your
/// bucket ACL must give full control only to the bucket owner" (the `private` canned ACL).
fn refuse_bucket_acl(headers: &hyper::HeaderMap) -> Result<(), S3Error> {
    let canned = headers.get("x-amz-acl").map(HeaderValue::as_bytes);
    if has_grants(headers) || canned.is_some_and(|v| v != b"private") {
        return Err(S3Error::new(
            StatusCode::BAD_REQUEST,
            "InvalidBucketAclWithObjectOwnership",
            "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting",
        ));
    }
    Ok(())
}

/// `x-amz-grant-read`, `-write`, `-read-acp`, `-write-acp`, `-full-control`.
fn has_grants(headers: &hyper::HeaderMap) -> bool {
    headers.keys().any(|k| k.as_str().starts_with("x-amz-grant-"))
}

/// The `?acl` subresource of a bucket (`arn` the bucket's) or an object: the action its method
/// names, `acl` the only parameter, authorized on `arn`.
fn authorize_acl(
    authz: &Authz<'_>,
    bucket: &str,
    method: &Method,
    query: &Query,
    arn: &str,
    object: bool,
) -> Result<(), S3Error> {
    let (get, put, kind) = if object {
        ("s3:GetObjectAcl", "s3:PutObjectAcl", "OBJECT")
    } else {
        ("s3:GetBucketAcl", "s3:PutBucketAcl", "BUCKET")
    };
    let action = match *method {
        Method::GET => get,
        Method::PUT => put,
        ref m => return Err(S3Error::method_not_allowed(m, kind)),
    };
    if let Some(p) = query.unsupported(&["acl"]) {
        return Err(S3Error::not_implemented(p));
    }
    authz.require_in(bucket, action, arn, None)
}

/// GetBucketAcl / GetObjectAcl (GET: the owner's full control) and PutBucketAcl /
/// PutObjectAcl (PUT: refused).
fn acl(method: &Method) -> Result<Response<RespBody>, S3Error> {
    if method != Method::GET {
        return Err(S3Error::acl_not_supported());
    }
    let body = xml_doc("AccessControlPolicy", |w| {
        owner(w)?;
        w.create_element("AccessControlList").write_inner_content(|w| {
            w.create_element("Grant").write_inner_content(|w| {
                w.create_element("Grantee")
                    .with_attribute(("xmlns:xsi", "http://www.w3.org/2001/XMLSchema-instance"))
                    .with_attribute(("xsi:type", "CanonicalUser"))
                    .write_inner_content(|w| {
                        text(w, "ID", OWNER_ID)?;
                        text(w, "DisplayName", OWNER_NAME)
                    })?;
                text(w, "Permission", "FULL_CONTROL")
            })?;
            Ok(())
        })?;
        Ok(())
    })?;
    Ok(xml_response(StatusCode::OK, body))
}

async fn get_bucket_location(state: &S3State, bucket: &str) -> Result<Response<RespBody>, S3Error> {
    let meta = state.store.bucket(bucket).ok_or_else(|| S3Error::no_such_bucket(bucket))?;
    let mut w = Writer::new(Vec::new());
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None))).map_err(S3Error::xml)?;
    let el = w.create_element("LocationConstraint").with_attribute(("xmlns", S3_NS));
    // "Buckets with a LocationConstraint of EU reside in eu-west-1" (the API reference's
    // GetBucketLocation), which answers `EU` for them: the constraint as it was given.
    match meta.location_constraint.as_deref() {
        Some(c) => el.write_text_content(BytesText::new(c)).map_err(S3Error::xml)?,
        None if meta.region == "us-east-1" => el.write_empty().map_err(S3Error::xml)?,
        None => el.write_text_content(BytesText::new(&meta.region)).map_err(S3Error::xml)?,
    };
    Ok(xml_response(StatusCode::OK, Bytes::from(w.into_inner())))
}

/// GetBucketEncryption: every bucket's default is SSE-S3 (see [`SSE`]), "Amazon S3 now applies
/// server-side encryption with Amazon S3 managed keys (SSE-S3) as the base level of encryption
/// for every bucket", and S3 Bucket Keys are for SSE-KMS only, so off.
fn bucket_encryption() -> Result<Response<RespBody>, S3Error> {
    let body = xml_doc("ServerSideEncryptionConfiguration", |w| {
        w.create_element("Rule").write_inner_content(|w| {
            w.create_element("ApplyServerSideEncryptionByDefault")
                .write_inner_content(|w| text(w, "SSEAlgorithm", SSE.1))?;
            text(w, "BucketKeyEnabled", "false")
        })?;
        Ok(())
    })?;
    Ok(xml_response(StatusCode::OK, body))
}

/// GetBucketVersioning: no bucket of the lab is versioned (PutBucketVersioning is `501`), and
/// for a bucket never versioned S3 answers an empty `<VersioningConfiguration/>`: no `Status`
/// (its values are only `Enabled` and `Suspended`), and no `MfaDelete` ("This element is only
/// returned if the bucket has been configured with MFA delete", botocore's model). Tools read
/// it (Terraform's `aws_s3_bucket`, `aws s3api get-bucket-versioning`).
fn bucket_versioning() -> Result<Response<RespBody>, S3Error> {
    Ok(xml_response(StatusCode::OK, xml_doc("VersioningConfiguration", |_| Ok(()))?))
}

/// GetBucketOwnershipControls: every bucket is `BucketOwnerEnforced` (see
/// [`check_object_ownership`]), S3's default "for all newly created buckets" since April 2023.
fn ownership_controls() -> Result<Response<RespBody>, S3Error> {
    let body = xml_doc("OwnershipControls", |w| {
        w.create_element("Rule")
            .write_inner_content(|w| text(w, "ObjectOwnership", "BucketOwnerEnforced"))?;
        Ok(())
    })?;
    Ok(xml_response(StatusCode::OK, body))
}

async fn head_bucket(state: &S3State, bucket: &str) -> Result<Response<RespBody>, S3Error> {
    let meta = state.store.bucket(bucket).ok_or_else(|| S3Error::no_such_bucket(bucket))?;
    let mut resp = empty(StatusCode::OK);
    set(resp.headers_mut(), "x-amz-bucket-region", &meta.region);
    Ok(resp)
}

/// CreateBucket sent to the S3 of `endpoint_region`. The global endpoint (us-east-1) creates
/// buckets in any region; a regional endpoint only in its own. Its object ownership and ACL
/// headers are checked first.
async fn create_bucket(
    state: &S3State,
    bucket: &str,
    endpoint_region: &str,
    headers: &hyper::HeaderMap,
    body: ReqBody,
) -> Result<Response<RespBody>, S3Error> {
    // A name S3 keeps for itself (see `reserved_bucket_rule`) is `InvalidBucketName`, as any
    // name against the naming rules.
    if crate::model::reserved_bucket_rule(bucket).is_some() {
        return Err(S3Error::invalid_bucket_name(bucket));
    }
    // AWS's repository names are AWS's in every region, also one the lab made no bucket for.
    if crate::model::is_aws_repository_bucket(bucket) {
        return Err(S3Error::from_store(
            StoreError::BucketAlreadyExists(bucket.into()),
            bucket,
            None,
        ));
    }
    check_object_ownership(headers)?;
    refuse_bucket_acl(headers)?;
    let limited = http_body_util::Limited::new(body, 64 * 1024);
    let raw = limited.collect().await.map_err(|_| S3Error::incomplete_body())?.to_bytes();
    // Checked before anything is created: a bad body creates no bucket.
    let constraint = location_constraint(&raw)?;
    if endpoint_region != "us-east-1"
        && let Some(c) = constraint
            .as_deref()
            .filter(|c| *c != endpoint_region && !(*c == "EU" && endpoint_region == "eu-west-1"))
    {
        return Err(S3Error::new(
            StatusCode::BAD_REQUEST,
            "IllegalLocationConstraintException",
            &format!(
                "The {c} location constraint is incompatible for the region specific endpoint this request was sent to."
            ),
        ));
    }
    let region = constraint
        .as_ref()
        .map(|c| if c == "EU" { "eu-west-1".to_string() } else { c.clone() })
        .unwrap_or_else(|| endpoint_region.to_string());
    let (store, b) = (state.store.clone(), bucket.to_string());
    let r = region.clone();
    blocking(move || match store.create_bucket_as(&b, &r, None, constraint) {
        // CreateBucket: "For legacy compatibility, if you re-create an existing bucket that you
        // already own in the North Virginia Region, Amazon S3 returns 200 OK" (409
        // BucketAlreadyOwnedByYou everywhere else, and for a bucket one owns in another region).
        Err(StoreError::BucketAlreadyOwnedByYou(_))
            if r == "us-east-1" && store.bucket(&b).is_some_and(|m| m.region == "us-east-1") =>
        {
            Ok(())
        }
        other => other.map_err(|e| S3Error::from_store(e, &b, None)),
    })
    .await?;
    debug!(bucket = %bucket, region = %region, "create bucket");
    let mut resp = empty(StatusCode::OK);
    // "A forward slash followed by the name of the bucket" in us-east-1; elsewhere S3 answers
    // the bucket's URL (the CLI shows `"Location": "http://<bucket>.s3.amazonaws.com/"`).
    let location = if region == "us-east-1" {
        format!("/{bucket}")
    } else {
        format!("http://{bucket}.s3.amazonaws.com/")
    };
    set(resp.headers_mut(), "location", &location);
    Ok(resp)
}

/// The regions a CreateBucketConfiguration may name (S3's `BucketLocationConstraint`; `EU` is
/// eu-west-1's old name). us-east-1 is not among them: a bucket there is created without a
/// configuration, and naming it is `InvalidLocationConstraint`, as in S3.
const LOCATION_CONSTRAINTS: &[&str] = &[
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "cn-north-1",
    "cn-northwest-1",
    "EU",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
    "us-east-2",
    "us-gov-east-1",
    "us-gov-west-1",
    "us-west-1",
    "us-west-2",
];

/// The `LocationConstraint` a CreateBucket body gives, as given (`EU` for eu-west-1): none for an
/// empty body or an empty `<LocationConstraint>`; `MalformedXML` for a body that is not a
/// well-formed CreateBucketConfiguration; `InvalidLocationConstraint` for a name S3 does not
/// accept.
fn location_constraint(raw: &[u8]) -> Result<Option<String>, S3Error> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let (mut root, mut text) = (None::<String>, String::new());
    xml_walk(raw, |path, ev| {
        match (path, ev) {
            ([r], XmlEv::Open) => root = Some((*r).to_string()),
            ([_, "LocationConstraint"], XmlEv::Text(t)) => text.push_str(t),
            _ => {}
        }
        Ok(())
    })?;
    if root.as_deref() != Some("CreateBucketConfiguration") {
        return Err(S3Error::malformed_xml());
    }
    let c = text.trim();
    if c.is_empty() {
        return Ok(None);
    }
    if !LOCATION_CONSTRAINTS.contains(&c) {
        return Err(S3Error::new(
            StatusCode::BAD_REQUEST,
            "InvalidLocationConstraint",
            "The specified location-constraint is not valid",
        )
        .field("LocationConstraint", c));
    }
    Ok(Some(c.to_string()))
}

/// The condition of a conditional write (PutObject, CompleteMultipartUpload): `If-None-Match`
/// takes only `*` ("Expects the '*' (asterisk) character"; another value is refused as not
/// implemented), `If-Match` an ETag.
fn write_condition(headers: &hyper::HeaderMap) -> Result<Option<WriteCondition>, S3Error> {
    let get = |n: &str| headers.get(n).map(|v| v.to_str().unwrap_or("").trim());
    if let Some(v) = get("if-none-match") {
        if v != "*" {
            return Err(S3Error::not_implemented("If-None-Match"));
        }
        return Ok(Some(WriteCondition::Absent));
    }
    Ok(get("if-match").map(|v| WriteCondition::EtagMatches(v.to_string())))
}

/// Every object is encrypted with SSE-S3: "Amazon S3 now applies server-side encryption with
/// Amazon S3 managed keys (SSE-S3) as the base level of encryption for every bucket in Amazon
/// S3. Starting January 5, 2023, all new object uploads to Amazon S3 are automatically
/// encrypted" (S3 User Guide, "Setting default server-side encryption behavior"). The
/// responses that describe an object say so.
const SSE: (&str, &str) = ("x-amz-server-side-encryption", "AES256");

fn set_sse(h: &mut hyper::HeaderMap) {
    set(h, SSE.0, SSE.1);
}

/// The encryption a write asks for (PutObject, CopyObject, CreateMultipartUpload):
/// `x-amz-server-side-encryption: AES256` is what every object gets; SSE-KMS, DSSE-KMS and
/// customer keys are `501 NotImplemented`; another value is S3's `400 InvalidArgument`.
fn check_encryption(headers: &hyper::HeaderMap) -> Result<(), S3Error> {
    match headers.get(SSE.0).map(|v| v.to_str().unwrap_or("")) {
        None => {}
        Some(v) if v == SSE.1 => {}
        Some("aws:kms" | "aws:kms:dsse") => return Err(S3Error::not_implemented(SSE.0)),
        Some(v) => {
            return Err(S3Error::invalid_argument(SSE.0, v)
                .message("The encryption method specified is not supported"));
        }
    }
    for name in
        ["x-amz-server-side-encryption-aws-kms-key-id", "x-amz-server-side-encryption-context"]
    {
        if headers.contains_key(name) {
            return Err(S3Error::not_implemented(name));
        }
    }
    refuse_customer_keys(headers)
}

/// SSE-C (`x-amz-server-side-encryption-customer-*`, a copy's
/// `x-amz-copy-source-server-side-encryption-customer-*`) is not implemented: refused on every
/// request that could carry it, rather than storing or serving in the clear what the client
/// believes encrypted with its key.
fn refuse_customer_keys(headers: &hyper::HeaderMap) -> Result<(), S3Error> {
    match headers.keys().find(|n| {
        n.as_str().starts_with("x-amz-server-side-encryption-customer-")
            || n.as_str().starts_with("x-amz-copy-source-server-side-encryption-customer-")
    }) {
        Some(n) => Err(S3Error::not_implemented(n.as_str())),
        None => Ok(()),
    }
}

/// The standard headers S3 stores with an object and returns on GetObject and HeadObject.
const STORED_HEADERS: [&str; 5] =
    ["cache-control", "content-disposition", "content-encoding", "content-language", "expires"];

/// Kept with the object and returned by GetObject and HeadObject, as S3 does ("Amazon S3 stores
/// the value of this header in the object metadata"); the lab serves no website, so nothing
/// redirects.
const WEBSITE_REDIRECT: &str = "x-amz-website-redirect-location";

/// `x-amz-website-redirect-location`, checked as S3 checks it: `400 InvalidRedirectLocation`
/// "The website redirect location must have a prefix of 'http://' or 'https://' or '/'."
fn website_redirect(headers: &hyper::HeaderMap) -> Result<Option<String>, S3Error> {
    let Some(v) = headers.get(WEBSITE_REDIRECT) else { return Ok(None) };
    match v.to_str().map(str::trim) {
        Ok(v) if ["/", "http://", "https://"].iter().any(|p| v.starts_with(p)) => {
            Ok(Some(v.to_string()))
        }
        _ => Err(S3Error::new(
            StatusCode::BAD_REQUEST,
            "InvalidRedirectLocation",
            "The website redirect location must have a prefix of 'http://' or 'https://' or '/'.",
        )),
    }
}

/// What a PutObject, CreateMultipartUpload or CopyObject (REPLACE) says about its object:
/// the standard headers ([`STORED_HEADERS`]; `aws-chunked`, the upload's framing, is left out
/// of Content-Encoding), user metadata and the storage class.
fn object_metadata(headers: &hyper::HeaderMap) -> Result<Metadata, S3Error> {
    let mut stored = BTreeMap::new();
    for name in STORED_HEADERS {
        let Some(v) = headers.get(name).and_then(|v| v.to_str().ok()) else { continue };
        let v = if name == "content-encoding" {
            let codings: Vec<&str> = v
                .split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case("aws-chunked"))
                .collect();
            codings.join(",")
        } else {
            v.to_string()
        };
        if !v.is_empty() {
            stored.insert(name.to_string(), v);
        }
    }
    if let Some(v) = website_redirect(headers)? {
        stored.insert(WEBSITE_REDIRECT.to_string(), v);
    }
    Ok(Metadata {
        headers: stored,
        user: user_metadata(headers)?,
        storage_class: storage_class(headers)?,
        // The caller's: `x-amz-tagging` (or the copy source's).
        tags: Tags::new(),
    })
}

/// `x-amz-storage-class`: STANDARD when absent. OUTPOSTS, SNOW and EXPRESS_ONEZONE name storage
/// a region's general purpose bucket does not have: refused like an unknown class.
fn storage_class(headers: &hyper::HeaderMap) -> Result<StorageClass, S3Error> {
    let Some(v) = headers.get("x-amz-storage-class") else { return Ok(StorageClass::Standard) };
    v.to_str().ok().and_then(StorageClass::from_name).ok_or_else(|| {
        S3Error::new(
            StatusCode::BAD_REQUEST,
            "InvalidStorageClass",
            "The storage class you specified is not valid",
        )
    })
}

/// GetObject of an archived object: "If the object you are retrieving is stored in the S3
/// Glacier Flexible Retrieval storage class, the S3 Glacier Deep Archive storage class [...],
/// before you can retrieve the object you must first restore a copy using RestoreObject.
/// Otherwise, this operation returns an InvalidObjectState error." (GetObject, API reference)
fn invalid_object_state(class: StorageClass) -> S3Error {
    S3Error::new(
        StatusCode::FORBIDDEN,
        "InvalidObjectState",
        "The operation is not valid for the object's storage class",
    )
    .field("StorageClass", class.name())
}

/// A copy (CopyObject, UploadPartCopy) from an archived object: "Before using an object as a
/// source object for the copy operation, you must restore a copy of it if [...] The storage
/// class of the source object is GLACIER or DEEP_ARCHIVE." (CopyObject, API reference)
fn check_copy_source_class(meta: &ObjectMeta) -> Result<(), S3Error> {
    if meta.storage_class.is_archived() {
        return Err(S3Error::new(
            StatusCode::FORBIDDEN,
            "InvalidObjectState",
            "Operation is not valid for the source object's storage class",
        ));
    }
    Ok(())
}

/// `x-amz-meta-*` headers: lower-case names without the prefix (S3's limit: 2 KB in all).
fn user_metadata(headers: &hyper::HeaderMap) -> Result<BTreeMap<String, String>, S3Error> {
    let mut out = BTreeMap::new();
    let mut size = 0;
    for (name, value) in headers {
        if let Some(n) = name.as_str().strip_prefix("x-amz-meta-") {
            let v = String::from_utf8_lossy(value.as_bytes()).into_owned();
            size += n.len() + v.len();
            out.insert(n.to_string(), v);
        }
    }
    if size > 2048 {
        return Err(S3Error::new(
            StatusCode::BAD_REQUEST,
            "MetadataTooLarge",
            "Your metadata headers exceed the maximum allowed metadata size.",
        ));
    }
    Ok(out)
}

/// The Content-MD5 header, decoded.
fn content_md5(headers: &hyper::HeaderMap) -> Result<Option<[u8; 16]>, S3Error> {
    let Some(v) = headers.get("content-md5") else { return Ok(None) };
    let v = v.to_str().map_err(|_| S3Error::invalid_digest())?;
    match base64_decode(v.trim()) {
        Some(d) if d.len() == 16 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(&d);
            Ok(Some(a))
        }
        _ => Err(S3Error::invalid_digest()),
    }
}

/// Streams a request body (plain or `aws-chunked`, chunk signatures checked when `signer` is
/// given) into `writer`, checking the announced lengths.
/// Where a request's flexible checksum comes from.
#[derive(Debug, PartialEq)]
enum Declared {
    None,
    /// `x-amz-checksum-<algorithm>: <base64>`.
    Header(Algorithm, String),
    /// `x-amz-trailer: x-amz-checksum-<algorithm>`: the value follows the aws-chunked body.
    Trailer(Algorithm),
}

/// The flexible checksum a PutObject or UploadPart declares, checked before the body is read.
fn declared_checksum(headers: &hyper::HeaderMap) -> Result<Declared, S3Error> {
    let invalid = |name: &str| {
        S3Error::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            &format!("Value for {name} header is invalid."),
        )
    };
    let mut declared = Declared::None;
    let mut count = 0;
    for (name, value) in headers {
        let Some(a) = Algorithm::from_header(name.as_str()) else { continue };
        let value = value.to_str().map_err(|_| invalid(a.header()))?;
        if !a.valid(value) {
            return Err(invalid(a.header()));
        }
        declared = Declared::Header(a, value.trim().to_string());
        count += 1;
    }
    if let Some(t) = headers.get("x-amz-trailer") {
        let a = t.to_str().ok().and_then(Algorithm::from_header).ok_or_else(|| {
            S3Error::new(
                StatusCode::BAD_REQUEST,
                "InvalidRequest",
                "The value specified in the x-amz-trailer header is not supported",
            )
        })?;
        declared = Declared::Trailer(a);
        count += 1;
    }
    if count > 1 {
        return Err(S3Error::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.",
        ));
    }
    if let Some(v) = headers.get("x-amz-sdk-checksum-algorithm") {
        let named = v
            .to_str()
            .ok()
            .and_then(Algorithm::from_name)
            .ok_or_else(|| invalid("x-amz-sdk-checksum-algorithm"))?;
        match &declared {
            Declared::None => {
                return Err(S3Error::new(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequest",
                    "x-amz-sdk-checksum-algorithm specified, but no corresponding x-amz-checksum-* or x-amz-trailer headers were found.",
                ));
            }
            // "If the individual checksum value you provide through x-amz-checksum-algorithm
            // doesn't match the checksum algorithm you set through
            // x-amz-sdk-checksum-algorithm, Amazon S3 fails the request with a BadDigest
            // error." (PutObject, API reference)
            Declared::Header(a, _) | Declared::Trailer(a) if *a != named => {
                return Err(S3Error::new(
                    StatusCode::BAD_REQUEST,
                    "BadDigest",
                    &format!(
                        "The x-amz-sdk-checksum-algorithm {} does not match the {} checksum sent.",
                        named.name(),
                        a.name()
                    ),
                ));
            }
            _ => {}
        }
    }
    Ok(declared)
}

/// Receives a PutObject or UploadPart body into `writer`, decoding aws-chunked framing and
/// checking chunk signatures, the declared SHA-256 and the flexible checksum's form
/// (`declared`, from [`declared_checksum`]). The
/// checksum's value is compared when the caller commits (a mismatch stores nothing). Returns
/// the writer and the checksum the client sent, if any.
async fn receive_body(
    parts: &Parts,
    mut body: ReqBody,
    mut writer: ObjectWriter,
    signer: Option<ChunkSigner>,
    declared: Declared,
) -> Result<(ObjectWriter, Option<Checksum>), S3Error> {
    let headers = &parts.headers;
    if let Declared::Header(a, _) | Declared::Trailer(a) = &declared {
        writer.checksum_with(*a);
    }
    let hstr = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let chunked = hstr("content-encoding")
        .is_some_and(|v| v.split(',').any(|e| e.trim().eq_ignore_ascii_case("aws-chunked")))
        || hstr("x-amz-content-sha256").is_some_and(|v| v.starts_with("STREAMING-"));
    let parse_len = |name: &str| -> Result<Option<u64>, S3Error> {
        match hstr(name) {
            Some(v) => {
                v.trim().parse::<u64>().map(Some).map_err(|_| S3Error::invalid_argument(name, v))
            }
            None if headers.contains_key(name) => Err(S3Error::invalid_argument(name, "")),
            None => Ok(None),
        }
    };
    let content_length = parse_len("content-length")?;
    let decoded_length =
        if chunked { parse_len("x-amz-decoded-content-length")? } else { content_length };
    // S3 stores only a body whose length it is told: `Content-Length`, or for aws-chunked
    // (whose `Content-Length`, if any, counts the chunk framing) `x-amz-decoded-content-length`.
    // A plain `Transfer-Encoding: chunked` body is S3's `411 MissingContentLength`.
    let Some(decoded_length) = decoded_length else {
        return Err(S3Error::new(
            StatusCode::LENGTH_REQUIRED,
            "MissingContentLength",
            "You must provide the Content-Length HTTP header.",
        ));
    };
    if decoded_length > MAX_PUT_SIZE {
        return Err(S3Error::entity_too_large());
    }
    let mut decoder = chunked.then(|| AwsChunked { signer, ..AwsChunked::default() });
    // A declared SHA-256 (the signature covers the header, not the streamed body) is compared
    // before the caller commits anything. It is SigV4's hash of the payload as sent: a plain
    // body's, hashed as it is written; an aws-chunked body's framing, hashed as it arrives
    // (AWS does not say which for aws-chunked: see the README's Decisions).
    let declared_sha256 = hstr("x-amz-content-sha256")
        .map(str::trim)
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_ascii_lowercase);
    let mut sha256 = declared_sha256.as_ref().map(|_| Sha256::new());
    let mut wire_sha256 = if chunked { sha256.take() } else { None };
    let mut pending: Vec<u8> =
        Vec::with_capacity(WRITE_CHUNK.min(content_length.unwrap_or(0) as usize + 1));
    loop {
        let frame = match body.frame().await {
            None => None,
            Some(Ok(f)) => Some(f),
            Some(Err(e)) => {
                debug!(bucket = %writer.bucket(), key = %writer.key(), error = %e, "put body error");
                return Err(S3Error::incomplete_body());
            }
        };
        let done = frame.is_none();
        if let Some(data) = frame.and_then(|f| f.into_data().ok()) {
            if let Some(h) = wire_sha256.as_mut() {
                h.update(&data);
            }
            match decoder.as_mut() {
                Some(d) => d.feed(&data, &mut pending)?,
                None => pending.extend_from_slice(&data),
            }
        }
        if writer.size() + pending.len() as u64 > MAX_PUT_SIZE {
            return Err(S3Error::entity_too_large());
        }
        if pending.len() >= WRITE_CHUNK || (done && !pending.is_empty()) {
            let mut buf = std::mem::take(&mut pending);
            let (w, b, h) = blocking(move || {
                writer.write(&buf).map_err(|e| S3Error::internal(&e.to_string()))?;
                if let Some(h) = sha256.as_mut() {
                    h.update(&buf);
                }
                buf.clear();
                Ok((writer, buf, sha256))
            })
            .await?;
            writer = w;
            pending = b;
            sha256 = h;
        }
        if done {
            break;
        }
    }
    if let Some(d) = decoder.as_mut() {
        d.finish()?;
    }
    if decoded_length != writer.size() {
        return Err(S3Error::incomplete_body());
    }
    let sent = match declared {
        Declared::None => None,
        Declared::Header(algorithm, value) => {
            Some(Checksum { algorithm, value, kind: Kind::FullObject })
        }
        Declared::Trailer(algorithm) => {
            let value =
                decoder.as_ref().and_then(|d| d.trailer(algorithm.header())).ok_or_else(|| {
                    S3Error::new(
                        StatusCode::BAD_REQUEST,
                        "InvalidRequest",
                        &format!(
                            "The x-amz-trailer header specified {}, but the trailer was not sent.",
                            algorithm.header()
                        ),
                    )
                })?;
            if !algorithm.valid(value) {
                return Err(S3Error::new(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequest",
                    &format!("Value for {} trailing header is invalid.", algorithm.header()),
                ));
            }
            Some(Checksum { algorithm, value: value.trim().to_string(), kind: Kind::FullObject })
        }
    };
    if let Some(c) = &sent {
        writer.expect_checksum(&c.value);
    }
    if let (Some(declared), Some(h)) = (declared_sha256, wire_sha256.or(sha256)) {
        let computed = hex::encode(h.finalize());
        if computed != declared {
            return Err(S3Error::new(
                StatusCode::BAD_REQUEST,
                "XAmzContentSHA256Mismatch",
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
            )
            .field("ClientComputedContentSHA256", &declared)
            .field("S3ComputedContentSHA256", &computed));
        }
    }
    Ok((writer, sent))
}

async fn put_object(
    state: &S3State,
    (bucket, key): (String, String),
    parts: &Parts,
    body: ReqBody,
    signer: Option<ChunkSigner>,
    tags: Tags,
) -> Result<Response<RespBody>, S3Error> {
    check_encryption(&parts.headers)?;
    let md5 = content_md5(&parts.headers)?;
    let metadata = Metadata { tags, ..object_metadata(&parts.headers)? };
    let condition = write_condition(&parts.headers)?;
    let declared = declared_checksum(&parts.headers)?;
    let content_type =
        parts.headers.get("content-type").and_then(|v| v.to_str().ok()).map(str::to_string);
    let (store, b, k) = (state.store.clone(), bucket.clone(), key.clone());
    let mut writer: ObjectWriter = blocking(move || {
        store.object_writer(&b, &k).map_err(|e| S3Error::from_store(e, &b, Some(&k)))
    })
    .await?;
    // Checked when the object is committed, against what the key holds then.
    writer.only_if(condition);
    let (writer, _) = receive_body(parts, body, writer, signer, declared).await?;
    let (store, b, k) = (state.store.clone(), bucket.clone(), key.clone());
    let meta = blocking(move || {
        store
            .commit_object_with(writer, content_type.as_deref(), md5, metadata, None)
            .map_err(|e| S3Error::from_store(e, &b, Some(&k)))
    })
    .await?;
    debug!(bucket = %bucket, key = %key, size = meta.size, etag = %meta.etag, "put object");
    let mut resp = empty(StatusCode::OK);
    set(resp.headers_mut(), "etag", &meta.etag);
    set_sse(resp.headers_mut());
    // The stored checksum: the client's, or the CRC64NVME S3 adds to an object sent without.
    set_checksum(resp.headers_mut(), meta.checksum.as_ref());
    Ok(resp)
}

/// `Checksum<ALGORITHM>` and `ChecksumType` elements (CopyObjectResult,
/// CompleteMultipartUploadResult).
fn checksum_xml(w: &mut Writer<Vec<u8>>, checksum: Option<&Checksum>) -> io::Result<()> {
    if let Some(c) = checksum {
        text(w, &format!("Checksum{}", c.algorithm.name()), &c.value)?;
        text(w, "ChecksumType", c.kind.name())?;
    }
    Ok(())
}

/// `x-amz-checksum-<algorithm>` and `x-amz-checksum-type` of an object's checksum.
fn set_checksum(h: &mut hyper::HeaderMap, checksum: Option<&Checksum>) {
    if let Some(c) = checksum {
        set(h, c.algorithm.header(), &c.value);
        set(h, "x-amz-checksum-type", c.kind.name());
    }
}

async fn copy_object(
    state: &S3State,
    src_bucket: &str,
    src_key: &str,
    bucket: &str,
    key: &str,
    parts: &Parts,
) -> Result<Response<RespBody>, S3Error> {
    check_encryption(&parts.headers)?;
    let directive = parts
        .headers
        .get("x-amz-metadata-directive")
        .map(|v| v.to_str().unwrap_or("").to_ascii_uppercase());
    let replace = match directive.as_deref() {
        None | Some("COPY") => None,
        Some("REPLACE") => Some((
            parts.headers.get("content-type").and_then(|v| v.to_str().ok()).map(str::to_string),
            object_metadata(&parts.headers)?,
        )),
        Some(v) => return Err(S3Error::invalid_argument("x-amz-metadata-directive", v)),
    };
    // The source's tags (COPY, the default), or the request's (REPLACE).
    let tags = tagging::copy_tags(&parts.headers)?;
    // "If the x-amz-storage-class header is not used, the copied object will be stored in the
    // STANDARD Storage Class by default." (CopyObject, API reference)
    let class = storage_class(&parts.headers)?;
    let changes_class = parts.headers.contains_key("x-amz-storage-class");
    // CopyObject: "This value is unique to each object and is not copied when using the
    // x-amz-metadata-directive header. Instead, you may opt to provide this header in
    // combination with the x-amz-metadata-directive header."
    let redirect = website_redirect(&parts.headers)?;
    if src_bucket == bucket
        && src_key == key
        && replace.is_none()
        && !changes_class
        && redirect.is_none()
    {
        return Err(S3Error::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
        ));
    }
    // The destination's own conditions (`If-None-Match: *`, `If-Match`), as on PutObject.
    let condition = write_condition(&parts.headers)?;
    // "You can optionally specify a different checksum algorithm to use with the
    // x-amz-checksum-algorithm header" (CopyObject, API reference).
    let algorithm = match parts.headers.get("x-amz-checksum-algorithm") {
        None => None,
        Some(v) => Some(v.to_str().ok().and_then(Algorithm::from_name).ok_or_else(|| {
            S3Error::new(
                StatusCode::BAD_REQUEST,
                "InvalidRequest",
                "Value for x-amz-checksum-algorithm header is invalid.",
            )
        })?),
    };
    let store = state.store.clone();
    let (sb, sk, b, k) =
        (src_bucket.to_string(), src_key.to_string(), bucket.to_string(), key.to_string());
    let headers = parts.headers.clone();
    let meta = blocking(move || {
        let source =
            store.get_object(&sb, &sk).map_err(|e| S3Error::from_store(e, &sb, Some(&sk)))?;
        // Decided on the very version that is copied; nothing is written on a 412.
        check_copy_source(&headers, &source.0)?;
        check_copy_source_class(&source.0)?;
        let (content_type, mut metadata) =
            replace.unwrap_or_else(|| (Some(source.0.content_type.clone()), source.0.metadata()));
        metadata.storage_class = class;
        metadata.tags = tags.unwrap_or_else(|| source.0.tags.clone());
        metadata.headers.remove(WEBSITE_REDIRECT);
        if let Some(v) = redirect {
            metadata.headers.insert(WEBSITE_REDIRECT.to_string(), v);
        }
        store
            .copy_object(source, &b, &k, Some((content_type, metadata)), condition, algorithm)
            .map_err(|e| S3Error::from_store(e, &b, Some(&k)))
    })
    .await?;
    debug!(src_bucket, src_key, bucket, key, size = meta.size, "copy object");
    let body = xml_doc("CopyObjectResult", |w| {
        text(w, "LastModified", &iso8601(meta.last_modified))?;
        text(w, "ETag", &meta.etag)?;
        checksum_xml(w, meta.checksum.as_ref())
    })?;
    let mut resp = xml_response(StatusCode::OK, body);
    set_sse(resp.headers_mut());
    Ok(resp)
}

// --- Multipart uploads --------------------------------------------------------------------

async fn create_multipart(
    state: &S3State,
    bucket: &str,
    key: &str,
    parts: &Parts,
    tags: Tags,
) -> Result<Response<RespBody>, S3Error> {
    check_encryption(&parts.headers)?;
    let metadata = Metadata { tags, ..object_metadata(&parts.headers)? };
    let content_type =
        parts.headers.get("content-type").and_then(|v| v.to_str().ok()).map(str::to_string);
    let checksum = upload_checksum(&parts.headers)?;
    let (store, b, k) = (state.store.clone(), bucket.to_string(), key.to_string());
    let up = blocking(move || {
        store
            .create_upload_with(&b, &k, content_type.as_deref(), metadata, checksum)
            .map_err(|e| S3Error::from_store(e, &b, Some(&k)))
    })
    .await?;
    debug!(bucket, key, upload_id = %up.upload_id, "create multipart upload");
    let body = xml_doc("InitiateMultipartUploadResult", |w| {
        text(w, "Bucket", bucket)?;
        text(w, "Key", key)?;
        text(w, "UploadId", &up.upload_id)
    })?;
    let mut resp = xml_response(StatusCode::OK, body);
    set_sse(resp.headers_mut());
    if let Some((a, kind)) = checksum {
        set(resp.headers_mut(), "x-amz-checksum-algorithm", a.name());
        set(resp.headers_mut(), "x-amz-checksum-type", kind.name());
    }
    Ok(resp)
}

/// The checksum algorithm and type of a CreateMultipartUpload (`x-amz-checksum-algorithm`,
/// `x-amz-checksum-type`).
fn upload_checksum(headers: &hyper::HeaderMap) -> Result<Option<(Algorithm, Kind)>, S3Error> {
    let invalid = |m: &str| S3Error::new(StatusCode::BAD_REQUEST, "InvalidRequest", m);
    let get = |n: &str| headers.get(n).map(|v| v.to_str().unwrap_or(""));
    let algorithm = match get("x-amz-checksum-algorithm") {
        None => None,
        Some(v) => Some(
            Algorithm::from_name(v)
                .ok_or_else(|| invalid("Value for x-amz-checksum-algorithm header is invalid."))?,
        ),
    };
    let kind = match get("x-amz-checksum-type") {
        None => None,
        Some(v) => Some(
            Kind::from_name(v)
                .ok_or_else(|| invalid("Value for x-amz-checksum-type header is invalid."))?,
        ),
    };
    match (algorithm, kind) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(invalid(
            "The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header.",
        )),
        (Some(a), k) => Ok(Some((a, Kind::for_upload(a, k).map_err(|m| invalid(&m))?))),
    }
}

/// The upload must exist and belong to `key`.
fn check_upload(state: &S3State, bucket: &str, key: &str, id: &str) -> Result<UploadMeta, S3Error> {
    match state.store.upload(bucket, id) {
        Ok(m) if m.key == key => Ok(m),
        Ok(_) => Err(S3Error::no_such_upload(id)),
        Err(e) => Err(S3Error::from_store(e, bucket, Some(key)).upload(id)),
    }
}

#[allow(clippy::too_many_arguments)]
async fn upload_part(
    state: &S3State,
    bucket: &str,
    key: &str,
    id: &str,
    query: &Query,
    parts: &Parts,
    body: ReqBody,
    signer: Option<ChunkSigner>,
) -> Result<Response<RespBody>, S3Error> {
    let number = part_number(query)?;
    refuse_customer_keys(&parts.headers)?;
    let upload = check_upload(state, bucket, key, id)?;
    // A part's checksum is of the upload's algorithm.
    let declared = declared_checksum(&parts.headers)?;
    if let (Some((expected, _)), Declared::Header(a, _) | Declared::Trailer(a)) =
        (upload.checksum, &declared)
        && *a != expected
    {
        return Err(S3Error::checksum_type_mismatch(expected, *a));
    }
    let md5 = content_md5(&parts.headers)?;
    let (store, b, k, i) =
        (state.store.clone(), bucket.to_string(), key.to_string(), id.to_string());
    let writer = blocking(move || {
        store
            .part_writer(&b, &i, number)
            .map_err(|e| S3Error::from_store(e, &b, Some(&k)).upload(&i))
    })
    .await?;
    let (writer, sent) = receive_body(parts, body, writer, signer, declared).await?;
    let (store, b, k, i) =
        (state.store.clone(), bucket.to_string(), key.to_string(), id.to_string());
    let part = blocking(move || {
        store.commit_part(writer, md5).map_err(|e| S3Error::from_store(e, &b, Some(&k)).upload(&i))
    })
    .await?;
    debug!(bucket, key, upload_id = id, number, size = part.size, "upload part");
    let mut resp = empty(StatusCode::OK);
    set(resp.headers_mut(), "etag", &part.etag);
    set_sse(resp.headers_mut());
    // The part's checksum, as sent and found equal.
    if let Some(c) = sent {
        set(resp.headers_mut(), c.algorithm.header(), &c.value);
    }
    Ok(resp)
}

fn part_number(query: &Query) -> Result<u32, S3Error> {
    let raw = query.get("partNumber").unwrap_or("");
    match raw.parse::<u32>() {
        Ok(n) if (1..=MAX_PART_NUMBER).contains(&n) => Ok(n),
        _ => Err(S3Error::invalid_argument("partNumber", raw)
            .message("Part number must be an integer between 1 and 10000, inclusive")),
    }
}

/// `x-amz-copy-source-range` as (start, length). The API reference: "The range of bytes to copy
/// from the source object. The range value must use the form bytes=first-last, where the first
/// and last are the zero-based byte offsets to copy." No suffix or open range, unlike Range.
fn copy_source_range(raw: &str) -> Result<(u64, u64), S3Error> {
    let bad = || {
        S3Error::new(
            StatusCode::BAD_REQUEST,
            "InvalidArgument",
            "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy",
        )
        .field("ArgumentName", "x-amz-copy-source-range")
        .field("ArgumentValue", raw)
    };
    // Digits only (`parse` would take a sign); an empty side fails to parse.
    let offset = |s: &str| s.bytes().all(|c| c.is_ascii_digit()).then(|| s.parse::<u64>().ok());
    let (a, b) =
        raw.trim().strip_prefix("bytes=").and_then(|r| r.split_once('-')).ok_or_else(bad)?;
    match (offset(a).flatten(), offset(b).flatten()) {
        (Some(a), Some(b)) if a <= b => Ok((a, b - a + 1)),
        _ => Err(bad()),
    }
}

/// UploadPartCopy: a part from (a `x-amz-copy-source-range` of) an existing object.
async fn upload_part_copy(
    state: &S3State,
    (src_bucket, src_key): (&str, &str),
    (bucket, key, id): (&str, &str, &str),
    query: &Query,
    parts: &Parts,
) -> Result<Response<RespBody>, S3Error> {
    let number = part_number(query)?;
    refuse_customer_keys(&parts.headers)?;
    check_upload(state, bucket, key, id)?;
    let raw_range = parts
        .headers
        .get("x-amz-copy-source-range")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let range = raw_range.as_deref().map(copy_source_range).transpose()?;
    let store = state.store.clone();
    let (sb, sk, b, k, i) = (
        src_bucket.to_string(),
        src_key.to_string(),
        bucket.to_string(),
        key.to_string(),
        id.to_string(),
    );
    let headers = parts.headers.clone();
    let part = blocking(move || {
        use std::io::{Read, Seek};
        let (meta, mut f) =
            store.get_object(&sb, &sk).map_err(|e| S3Error::from_store(e, &sb, Some(&sk)))?;
        check_copy_source(&headers, &meta)?;
        check_copy_source_class(&meta)?;
        let (start, len) = range.unwrap_or((0, meta.size));
        if start + len > meta.size {
            return Err(S3Error::new(
                StatusCode::BAD_REQUEST,
                "InvalidArgument",
                &format!("Range specified is not valid for source object of size: {}", meta.size),
            )
            .field("ArgumentName", "x-amz-copy-source-range")
            .field("ArgumentValue", raw_range.as_deref().unwrap_or("")));
        }
        f.seek(SeekFrom::Start(start)).map_err(|e| S3Error::internal(&e.to_string()))?;
        let mut w = store
            .part_writer(&b, &i, number)
            .map_err(|e| S3Error::from_store(e, &b, Some(&k)).upload(&i))?;
        let mut buf = vec![0u8; WRITE_CHUNK];
        let mut left = len;
        while left > 0 {
            let n = f
                .read(&mut buf[..left.min(WRITE_CHUNK as u64) as usize])
                .map_err(|e| S3Error::internal(&e.to_string()))?;
            if n == 0 {
                return Err(S3Error::internal("copy source truncated"));
            }
            w.write(&buf[..n]).map_err(|e| S3Error::internal(&e.to_string()))?;
            left -= n as u64;
        }
        store.commit_part(w, None).map_err(|e| S3Error::from_store(e, &b, Some(&k)).upload(&i))
    })
    .await?;
    debug!(bucket, key, upload_id = id, number, size = part.size, "upload part copy");
    let body = xml_doc("CopyPartResult", |w| {
        text(w, "LastModified", &iso8601(part.last_modified))?;
        text(w, "ETag", &part.etag)
    })?;
    let mut resp = xml_response(StatusCode::OK, body);
    set_sse(resp.headers_mut());
    Ok(resp)
}

async fn complete_multipart(
    state: &S3State,
    bucket: &str,
    key: &str,
    id: &str,
    headers: &hyper::HeaderMap,
    body: ReqBody,
) -> Result<Response<RespBody>, S3Error> {
    let upload = check_upload(state, bucket, key, id)?;
    let condition = write_condition(headers)?;
    let raw = http_body_util::Limited::new(body, 2 * 1024 * 1024)
        .collect()
        .await
        .map_err(|_| S3Error::malformed_xml())?
        .to_bytes();
    let mut wanted: Vec<(u32, String)> = Vec::new();
    // Each part's `Checksum<ALGORITHM>` element, if any.
    let mut part_sums: Vec<Option<(Algorithm, String)>> = Vec::new();
    let mut current: (Option<u32>, Option<String>, Option<(Algorithm, String)>) =
        (None, None, None);
    let mut root_ok = false;
    xml_walk(&raw, |path, ev| {
        match (path, ev) {
            (["CompleteMultipartUpload"], XmlEv::Open) => root_ok = true,
            (["CompleteMultipartUpload", "Part"], XmlEv::Open) => current = (None, None, None),
            (["CompleteMultipartUpload", "Part", "PartNumber"], XmlEv::Text(t)) => {
                current.0 = Some(t.trim().parse().map_err(|_| S3Error::malformed_xml())?)
            }
            (["CompleteMultipartUpload", "Part", "ETag"], XmlEv::Text(t)) => {
                current.1 = Some(current.1.take().unwrap_or_default() + t)
            }
            (["CompleteMultipartUpload", "Part", element], XmlEv::Text(t)) => {
                if let Some(a) = element.strip_prefix("Checksum").and_then(Algorithm::from_name) {
                    current.2 = Some((a, t.trim().to_string()));
                }
            }
            (["CompleteMultipartUpload", "Part"], XmlEv::Close) => match current.clone() {
                (Some(n), Some(e), sum) => {
                    wanted.push((n, e));
                    part_sums.push(sum);
                }
                _ => return Err(S3Error::malformed_xml()),
            },
            _ => {}
        }
        Ok(())
    })?;
    if !root_ok || wanted.is_empty() {
        return Err(S3Error::malformed_xml());
    }
    let checks = complete_checks(&upload, headers, &wanted, part_sums)?;
    let (store, b, k, i) =
        (state.store.clone(), bucket.to_string(), key.to_string(), id.to_string());
    let meta = blocking(move || {
        store
            .complete_upload_checked(&b, &i, &wanted, condition, &checks)
            .map_err(|e| S3Error::from_store(e, &b, Some(&k)).upload(&i))
    })
    .await?;
    debug!(bucket, key, upload_id = id, size = meta.size, etag = %meta.etag, "complete multipart upload");
    let body = xml_doc("CompleteMultipartUploadResult", |w| {
        text(w, "Location", &format!("/{bucket}/{}", url_encode(key)))?;
        text(w, "Bucket", bucket)?;
        text(w, "Key", key)?;
        text(w, "ETag", &meta.etag)?;
        checksum_xml(w, meta.checksum.as_ref())
    })?;
    let mut resp = xml_response(StatusCode::OK, body);
    set_sse(resp.headers_mut());
    Ok(resp)
}

/// The checksums a CompleteMultipartUpload names, checked against the upload's algorithm:
/// each part's (required for a composite upload, as S3 requires them) and the whole object's
/// (`x-amz-checksum-<algorithm>`). The store compares the values with the parts.
fn complete_checks(
    upload: &UploadMeta,
    headers: &hyper::HeaderMap,
    wanted: &[(u32, String)],
    part_sums: Vec<Option<(Algorithm, String)>>,
) -> Result<CompleteChecks, S3Error> {
    let invalid = |m: String| S3Error::new(StatusCode::BAD_REQUEST, "InvalidRequest", &m);
    let whole = match declared_checksum(headers)? {
        Declared::None => None,
        Declared::Trailer(_) => return Err(AwsChunked::bad()),
        Declared::Header(a, v) => match upload.checksum {
            Some((ua, _)) if ua == a => Some(v),
            _ => {
                return Err(invalid(format!(
                    "The upload was created using {} checksum. The complete request must use the same checksum algorithm.",
                    upload.checksum.map_or("no", |(ua, _)| ua.name())
                )));
            }
        },
    };
    let Some((algorithm, kind)) = upload.checksum else {
        // No algorithm: nothing to compare part checksums with (S3 ignores them then).
        return Ok(CompleteChecks { parts: Vec::new(), whole });
    };
    let mut parts = Vec::with_capacity(part_sums.len());
    for ((n, _), sum) in wanted.iter().zip(part_sums) {
        match sum {
            Some((a, v)) if a == algorithm => parts.push(Some(v)),
            Some((a, _)) => return Err(S3Error::checksum_type_mismatch(algorithm, a)),
            None if kind == Kind::Composite => {
                return Err(invalid(format!(
                    "The upload was created using a {} checksum. The complete request must include the checksum for each part. It was missing for part {n} in the request.",
                    algorithm.name().to_ascii_lowercase()
                )));
            }
            None => parts.push(None),
        }
    }
    Ok(CompleteChecks { parts, whole })
}

async fn abort_multipart(
    state: &S3State,
    bucket: &str,
    key: &str,
    id: &str,
) -> Result<Response<RespBody>, S3Error> {
    check_upload(state, bucket, key, id)?;
    let (store, b, k, i) =
        (state.store.clone(), bucket.to_string(), key.to_string(), id.to_string());
    blocking(move || {
        store.abort_upload(&b, &i).map_err(|e| S3Error::from_store(e, &b, Some(&k)).upload(&i))
    })
    .await?;
    debug!(bucket, key, upload_id = id, "abort multipart upload");
    Ok(empty(StatusCode::NO_CONTENT))
}

/// A page size (`max-keys`, `max-parts`, `max-uploads`): at most 1000 are returned. Anything
/// but an integer from 0 to 2^31-1 is refused as S3 refuses it, naming the argument as S3 does
/// (`maxKeys`, `maxParts`, `maxUploads`): "Argument maxKeys must be an integer between 0 and
/// 2147483647".
fn max_param(q: &Query, name: &str) -> Result<usize, S3Error> {
    let Some(v) = q.get(name) else { return Ok(1000) };
    match v.parse::<i64>() {
        Ok(n) if (0..=i64::from(i32::MAX)).contains(&n) => Ok(n.min(1000) as usize),
        _ => {
            let arg = match name {
                "max-parts" => "maxParts",
                "max-uploads" => "maxUploads",
                _ => "maxKeys",
            };
            Err(S3Error::invalid_argument(arg, v)
                .message(&format!("Argument {arg} must be an integer between 0 and 2147483647")))
        }
    }
}

async fn list_parts(
    state: &S3State,
    bucket: &str,
    key: &str,
    id: &str,
    q: &Query,
) -> Result<Response<RespBody>, S3Error> {
    check_upload(state, bucket, key, id)?;
    let max = max_param(q, "max-parts")?;
    let marker: u32 = match q.get("part-number-marker") {
        None => 0,
        Some(v) => v.parse().map_err(|_| S3Error::invalid_argument("part-number-marker", v))?,
    };
    let (store, b, k, i) =
        (state.store.clone(), bucket.to_string(), key.to_string(), id.to_string());
    let (upload, all) = blocking(move || {
        store.list_parts(&b, &i).map_err(|e| S3Error::from_store(e, &b, Some(&k)).upload(&i))
    })
    .await?;
    let rest: Vec<_> = all.into_iter().filter(|p| p.number > marker).collect();
    let truncated = rest.len() > max;
    let page = &rest[..rest.len().min(max)];
    let body = xml_doc("ListPartsResult", |w| {
        text(w, "Bucket", bucket)?;
        text(w, "Key", key)?;
        text(w, "UploadId", id)?;
        text(w, "PartNumberMarker", &marker.to_string())?;
        if let Some(last) = page.last() {
            text(w, "NextPartNumberMarker", &last.number.to_string())?;
        }
        text(w, "MaxParts", &max.to_string())?;
        text(w, "IsTruncated", if truncated { "true" } else { "false" })?;
        if let Some((algorithm, kind)) = upload.checksum {
            text(w, "ChecksumAlgorithm", algorithm.name())?;
            text(w, "ChecksumType", kind.name())?;
        }
        for p in page {
            w.create_element("Part").write_inner_content(|w| {
                text(w, "PartNumber", &p.number.to_string())?;
                text(w, "LastModified", &iso8601(p.last_modified))?;
                text(w, "ETag", &p.etag)?;
                if let Some(c) = &p.checksum {
                    text(w, &format!("Checksum{}", c.algorithm.name()), &c.value)?;
                }
                text(w, "Size", &p.size.to_string())
            })?;
        }
        initiator(w)?;
        owner(w)?;
        text(w, "StorageClass", upload.storage_class.name())
    })?;
    Ok(xml_response(StatusCode::OK, body))
}

fn initiator(w: &mut Writer<Vec<u8>>) -> io::Result<()> {
    w.create_element("Initiator").write_inner_content(|w| {
        text(w, "ID", OWNER_ID)?;
        text(w, "DisplayName", OWNER_NAME)
    })?;
    Ok(())
}

/// ListMultipartUploads. With a delimiter, "All keys that contain the same string between the
/// prefix, if specified, and the first occurrence of the delimiter after the prefix are grouped
/// under a single result element, CommonPrefixes" and "are not returned elsewhere in the
/// response" (API reference); uploads and common prefixes together count against max-uploads,
/// and a page ending with a common prefix names it as NextKeyMarker (a key marker skips every
/// group at or before it), as ListObjects pages.
async fn list_uploads(
    state: &S3State,
    bucket: &str,
    q: &Query,
) -> Result<Response<RespBody>, S3Error> {
    let max = max_param(q, "max-uploads")?;
    let prefix = q.get("prefix").unwrap_or("").to_string();
    let delimiter = q.get("delimiter").filter(|d| !d.is_empty()).map(str::to_string);
    let key_marker = q.get("key-marker").unwrap_or("").to_string();
    let id_marker = q.get("upload-id-marker").unwrap_or("").to_string();
    let url = q.get("encoding-type").is_some_and(|v| v.eq_ignore_ascii_case("url"));
    let (store, b, p) = (state.store.clone(), bucket.to_string(), prefix.clone());
    let all =
        blocking(move || store.list_uploads(&b, &p).map_err(|e| S3Error::from_store(e, &b, None)))
            .await?;
    enum Entry {
        Upload(UploadMeta),
        Prefix(String),
    }
    let mut page: Vec<Entry> = Vec::new();
    let mut truncated = false;
    for u in all {
        let group = delimiter.as_deref().and_then(|d| {
            u.key[prefix.len()..].find(d).map(|i| u.key[..prefix.len() + i + d.len()].to_string())
        });
        let entry = match group {
            Some(cp) => {
                let seen = matches!(page.last(), Some(Entry::Prefix(last)) if *last == cp);
                if seen || (!key_marker.is_empty() && cp <= key_marker) {
                    continue;
                }
                Entry::Prefix(cp)
            }
            // After (key-marker, upload-id-marker); with only a key marker, after all of that
            // key.
            None if key_marker.is_empty()
                || u.key > key_marker
                || (u.key == key_marker && !id_marker.is_empty() && u.upload_id > id_marker) =>
            {
                Entry::Upload(u)
            }
            None => continue,
        };
        if page.len() == max {
            truncated = true;
            break;
        }
        page.push(entry);
    }
    let enc = |s: &str| if url { url_encode(s) } else { s.to_string() };
    let body = xml_doc("ListMultipartUploadsResult", |w| {
        text(w, "Bucket", bucket)?;
        text(w, "KeyMarker", &enc(&key_marker))?;
        text(w, "UploadIdMarker", &id_marker)?;
        match page.last().filter(|_| truncated) {
            Some(Entry::Upload(last)) => {
                text(w, "NextKeyMarker", &enc(&last.key))?;
                text(w, "NextUploadIdMarker", &last.upload_id)?;
            }
            Some(Entry::Prefix(last)) => text(w, "NextKeyMarker", &enc(last))?,
            None => {}
        }
        if let Some(d) = &delimiter {
            text(w, "Delimiter", &enc(d))?;
        }
        text(w, "Prefix", &enc(&prefix))?;
        text(w, "MaxUploads", &max.to_string())?;
        if url {
            text(w, "EncodingType", "url")?;
        }
        text(w, "IsTruncated", if truncated { "true" } else { "false" })?;
        for e in &page {
            let Entry::Upload(u) = e else { continue };
            w.create_element("Upload").write_inner_content(|w| {
                text(w, "Key", &enc(&u.key))?;
                text(w, "UploadId", &u.upload_id)?;
                initiator(w)?;
                owner(w)?;
                text(w, "StorageClass", u.storage_class.name())?;
                text(w, "Initiated", &iso8601(u.initiated))
            })?;
        }
        for e in &page {
            let Entry::Prefix(p) = e else { continue };
            w.create_element("CommonPrefixes")
                .write_inner_content(|w| text(w, "Prefix", &enc(p)))?;
        }
        Ok(())
    })?;
    Ok(xml_response(StatusCode::OK, body))
}

// --- Bucket deletion and multi-object delete ------------------------------------------------

async fn delete_bucket(state: &S3State, bucket: &str) -> Result<Response<RespBody>, S3Error> {
    let (store, b) = (state.store.clone(), bucket.to_string());
    blocking(move || store.delete_bucket(&b).map_err(|e| S3Error::from_store(e, &b, None))).await?;
    debug!(bucket, "delete bucket");
    Ok(empty(StatusCode::NO_CONTENT))
}

/// The XML body of a request S3 requires an integrity header on, checked against it
/// (DeleteObjects: "The Content-MD5 or x-amz-sdk-checksum-algorithm header is required for
/// all Multi-Object Delete requests."; PutObjectTagging: "Content-MD5 [...] Required: Yes" in
/// its request syntax, and an SDK sends a flexible checksum instead): Content-MD5 or a flexible
/// checksum header, `BadDigest` when the body differs.
async fn checked_body(
    headers: &hyper::HeaderMap,
    body: ReqBody,
    bucket: &str,
) -> Result<Bytes, S3Error> {
    let md5 = content_md5(headers)?;
    let flexible = match declared_checksum(headers)? {
        Declared::Header(a, v) => Some((a, v)),
        Declared::None => None,
        Declared::Trailer(_) => return Err(AwsChunked::bad()),
    };
    if md5.is_none() && flexible.is_none() {
        return Err(S3Error::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "Missing required header for this request: Content-MD5",
        ));
    }
    let raw = http_body_util::Limited::new(body, 2 * 1024 * 1024)
        .collect()
        .await
        .map_err(|_| S3Error::malformed_xml())?
        .to_bytes();
    if let Some(md5) = md5
        && md5[..] != <md5::Md5 as md5::Digest>::digest(&raw)[..]
    {
        return Err(S3Error::bad_digest());
    }
    if let Some((a, v)) = flexible {
        let mut h = Hasher::new(a);
        h.update(&raw);
        if h.finish().value != v {
            return Err(S3Error::from_store(StoreError::BadChecksum(a), bucket, None));
        }
    }
    Ok(raw)
}

/// An `xs:boolean` as XML Schema reads it: `true`, `false`, `1` or `0`, case-sensitive, with
/// surrounding whitespace collapsed away; anything else does not validate. DeleteObjects'
/// `<Quiet>` is one (botocore's model: `"type": "boolean"`).
fn xs_boolean(text: &str) -> Option<bool> {
    match text.trim_matches(|c: char| matches!(c, ' ' | '\t' | '\n' | '\r')) {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// One `<Object>` of a DeleteObjects body.
#[derive(Default)]
struct ToDelete {
    key: Option<String>,
    /// `<VersionId>`: only `null`, the object itself, is simulated.
    version: Option<String>,
    /// `<ETag>`: a conditional delete of this object.
    etag: Option<String>,
}

async fn delete_objects(
    state: &S3State,
    authz: &Authz<'_>,
    bucket: &str,
    headers: &hyper::HeaderMap,
    body: ReqBody,
) -> Result<Response<RespBody>, S3Error> {
    let raw = checked_body(headers, body, bucket).await?;
    let mut objects: Vec<(String, Option<String>, Option<String>)> = Vec::new();
    // `<Quiet>`'s text, once: a boolean in S3's schema (see `xs_boolean`).
    let mut quiet_text: Option<String> = None;
    let mut root_ok = false;
    let mut current = ToDelete::default();
    xml_walk(&raw, |path, ev| {
        match (path, ev) {
            (["Delete"], XmlEv::Open) => root_ok = true,
            (["Delete", "Quiet"], XmlEv::Open) if quiet_text.is_some() => {
                return Err(S3Error::malformed_xml());
            }
            (["Delete", "Quiet"], XmlEv::Open) => quiet_text = Some(String::new()),
            (["Delete", "Quiet"], XmlEv::Text(t)) => {
                quiet_text.get_or_insert_with(String::new).push_str(t)
            }
            (["Delete", "Object"], XmlEv::Open) => current = ToDelete::default(),
            (["Delete", "Object", "Key"], XmlEv::Open) => current.key = Some(String::new()),
            (["Delete", "Object", "Key"], XmlEv::Text(t)) => {
                current.key = Some(current.key.take().unwrap_or_default() + t)
            }
            (["Delete", "Object", "VersionId"], XmlEv::Open) => {
                current.version = Some(String::new())
            }
            (["Delete", "Object", "VersionId"], XmlEv::Text(t)) => {
                current.version = Some(current.version.take().unwrap_or_default() + t)
            }
            (["Delete", "Object", "ETag"], XmlEv::Open) => current.etag = Some(String::new()),
            (["Delete", "Object", "ETag"], XmlEv::Text(t)) => {
                current.etag = Some(current.etag.take().unwrap_or_default() + t)
            }
            (["Delete", "Object"], XmlEv::Close) => {
                let o = std::mem::take(&mut current);
                objects.push((o.key.ok_or_else(S3Error::malformed_xml)?, o.version, o.etag));
            }
            _ => {}
        }
        Ok(())
    })?;
    if !root_ok || objects.is_empty() || objects.len() > 1000 {
        return Err(S3Error::malformed_xml());
    }
    let quiet = match quiet_text.as_deref() {
        None => false,
        Some(t) => xs_boolean(t).ok_or_else(S3Error::malformed_xml)?,
    };
    let mut results: Vec<(String, Option<String>, Result<(), S3Error>)> =
        Vec::with_capacity(objects.len());
    for (key, version, etag) in objects {
        // "For conditionally deleting multiple objects using the DeleteObjects operation, you
        // must provide the ETag value in the ETag element of the object in the XML request
        // body" (S3 User Guide): each object's condition is decided as DeleteObject's
        // `If-Match`, and a failed one is that object's `<Error>`.
        // Its `<ETag>` is its `s3:if-match`, as DeleteObject's `If-Match` header is (the User
        // Guide's policies enforcing conditional deletes name "DeleteObject and DeleteObjects
        // requests").
        let key_arn = format!("arn:aws:s3:::{bucket}/{key}");
        let extra: Vec<(&str, String)> =
            etag.iter().map(|e| ("s3:if-match", e.trim().to_string())).collect();
        // An object naming a version is that version's delete (as DeleteObject's `versionId`).
        let action = if version.is_some() { "s3:DeleteObjectVersion" } else { "s3:DeleteObject" };
        let allowed = authz
            .require_keyed(bucket, action, &key_arn, TagKeys::default(), &extra)
            .and_then(|()| authorize_conditional_delete(authz, bucket, &key_arn, etag.as_deref()));
        let r = match allowed {
            Err(e) => Err(e),
            // As DeleteObject's `versionId`: no bucket is versioned, so `null` ("Objects that
            // are stored in your bucket before you set the versioning state have a version ID
            // of null", S3 User Guide) names the object itself; another version is not
            // simulated, and deleting the current object in its stead would lose it.
            Ok(()) if version.as_deref().is_some_and(|v| v.trim() != "null") => {
                Err(S3Error::not_implemented("VersionId"))
            }
            Ok(()) => {
                let (store, b, k) = (state.store.clone(), bucket.to_string(), key.clone());
                blocking(move || {
                    store
                        .delete_object_if(&b, &k, etag.as_deref().map(str::trim))
                        .map_err(|e| S3Error::from_store(e, &b, Some(&k)))
                })
                .await
            }
        };
        results.push((key, version, r));
    }
    debug!(bucket, count = results.len(), quiet, "delete objects");
    let body = xml_doc("DeleteResult", |w| {
        for (key, version, r) in &results {
            match r {
                Ok(()) if !quiet => {
                    w.create_element("Deleted").write_inner_content(|w| {
                        text(w, "Key", key)?;
                        match version {
                            Some(v) => text(w, "VersionId", v.trim()),
                            None => Ok(()),
                        }
                    })?;
                }
                Ok(()) => {}
                Err(e) => {
                    w.create_element("Error").write_inner_content(|w| {
                        text(w, "Key", key)?;
                        if let Some(v) = version {
                            text(w, "VersionId", v)?;
                        }
                        text(w, "Code", e.code)?;
                        text(w, "Message", &e.message)
                    })?;
                }
            }
        }
        Ok(())
    })?;
    Ok(xml_response(StatusCode::OK, body))
}

/// What [`xml_walk`] reports for each element.
enum XmlEv<'a> {
    Open,
    /// The (unescaped) text content of the innermost element, possibly in several pieces.
    Text(&'a str),
    Close,
}

/// Walks an XML document, calling `f` with the path of local element names for each start,
/// text piece and end. Malformed documents are `MalformedXML`.
fn xml_walk(
    raw: &[u8],
    mut f: impl FnMut(&[&str], XmlEv<'_>) -> Result<(), S3Error>,
) -> Result<(), S3Error> {
    let mut reader = quick_xml::Reader::from_reader(raw);
    let mut buf = Vec::new();
    let mut path: Vec<String> = Vec::new();
    // XML 1.0 (2.1): a document has exactly one root element, and nothing but markup (comments,
    // processing instructions, white space) after it: a second root or text outside it is
    // malformed, not a second request to carry out.
    let mut root_seen = false;
    loop {
        let ev = reader.read_event_into(&mut buf).map_err(|_| S3Error::malformed_xml())?;
        let top = path.is_empty();
        match &ev {
            Event::Start(_) | Event::Empty(_) if top && root_seen => {
                return Err(S3Error::malformed_xml());
            }
            Event::Start(_) | Event::Empty(_) if top => root_seen = true,
            Event::Text(t)
                if top && !t.as_ref().chars().all(|c| matches!(c, ' ' | '\t' | '\r' | '\n')) =>
            {
                return Err(S3Error::malformed_xml());
            }
            Event::CData(_) | Event::GeneralRef(_) if top => return Err(S3Error::malformed_xml()),
            _ => {}
        }
        match ev {
            Event::Start(e) => {
                let name = AsRef::<str>::as_ref(&e.local_name()).to_string();
                path.push(name);
                let p: Vec<&str> = path.iter().map(String::as_str).collect();
                f(&p, XmlEv::Open)?;
            }
            Event::Empty(e) => {
                let name = AsRef::<str>::as_ref(&e.local_name()).to_string();
                path.push(name);
                let p: Vec<&str> = path.iter().map(String::as_str).collect();
                f(&p, XmlEv::Open)?;
                f(&p, XmlEv::Close)?;
                drop(p);
                path.pop();
            }
            Event::End(_) => {
                let p: Vec<&str> = path.iter().map(String::as_str).collect();
                f(&p, XmlEv::Close)?;
                drop(p);
                path.pop();
            }
            Event::Text(t) => {
                let raw = t.into_inner().into_owned();
                let s = quick_xml::escape::unescape(&raw).map_err(|_| S3Error::malformed_xml())?;
                let p: Vec<&str> = path.iter().map(String::as_str).collect();
                f(&p, XmlEv::Text(&s))?;
            }
            Event::CData(t) => {
                let s = t.into_inner().into_owned();
                let p: Vec<&str> = path.iter().map(String::as_str).collect();
                f(&p, XmlEv::Text(&s))?;
            }
            Event::GeneralRef(r) => {
                let s = match r.resolve_char_ref().map_err(|_| S3Error::malformed_xml())? {
                    Some(c) => c.to_string(),
                    None => {
                        let name: &str = r.as_ref();
                        quick_xml::escape::unescape(&format!("&{name};"))
                            .map_err(|_| S3Error::malformed_xml())?
                            .into_owned()
                    }
                };
                let p: Vec<&str> = path.iter().map(String::as_str).collect();
                f(&p, XmlEv::Text(&s))?;
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if !path.is_empty() {
        return Err(S3Error::malformed_xml());
    }
    Ok(())
}

async fn get_object(
    state: &S3State,
    bucket: String,
    key: String,
    parts: &Parts,
    query: &Query,
    head: bool,
) -> Result<Response<RespBody>, S3Error> {
    refuse_customer_keys(&parts.headers)?;
    let (store, b, k) = (state.store.clone(), bucket.clone(), key.clone());
    let (meta, file) = if head {
        let meta = blocking(move || {
            store.head_object(&b, &k).map_err(|e| S3Error::from_store(e, &b, Some(&k)))
        })
        .await?;
        (meta, None)
    } else {
        let (meta, file) = blocking(move || {
            store.get_object(&b, &k).map_err(|e| S3Error::from_store(e, &b, Some(&k)))
        })
        .await?;
        (meta, Some(file))
    };
    // HeadObject still answers for an archived object (it is how a client sees the class).
    if !head && meta.storage_class.is_archived() {
        return Err(invalid_object_state(meta.storage_class));
    }
    if let Some(resp) = check_conditions(&parts.headers, &meta)? {
        return Ok(resp);
    }
    let range_header = parts.headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    // `partNumber`: "Effectively performs a 'ranged' GET request for the part specified"
    // (GetObject, API reference); an object not uploaded in parts is one part.
    let part = match query.get("partNumber") {
        None => None,
        Some(_) if range_header.is_some() => {
            return Err(S3Error::new(
                StatusCode::BAD_REQUEST,
                "InvalidRequest",
                "Cannot specify both Range header and partNumber query parameter",
            ));
        }
        Some(_) => {
            let n = part_number(query)? as usize;
            let whole = [meta.size];
            let sizes: &[u64] = if meta.part_sizes.is_empty() { &whole } else { &meta.part_sizes };
            if n > sizes.len() {
                return Err(S3Error::new(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "InvalidPartNumber",
                    "The requested partnumber is not satisfiable",
                )
                .field("PartNumberRequested", &n.to_string())
                .field("ActualPartCount", &sizes.len().to_string()));
            }
            let start: u64 = sizes[..n - 1].iter().sum();
            Some((start, start + sizes[n - 1], n))
        }
    };
    let range = match (range_header, part) {
        (Some(r), _) => parse_range(r, meta.size)?,
        // An empty part has no byte range: the whole (empty) span.
        (None, Some((a, b, _))) if b > a => Some((a, b - 1)),
        _ => None,
    };
    let (start, len) = match range {
        Some((a, b)) => (a, b - a + 1),
        None => (0, meta.size),
    };
    let body = match file {
        Some(mut file) => {
            if start > 0 {
                file = blocking(move || {
                    use std::io::Seek;
                    file.seek(SeekFrom::Start(start))
                        .map_err(|e| S3Error::internal(&e.to_string()))?;
                    Ok(file)
                })
                .await?;
            }
            FileBody::new(tokio::fs::File::from_std(file), len).boxed()
        }
        None => empty_body(),
    };
    debug!(bucket = %bucket, key = %key, head, start, len, "get object");
    let mut resp = Response::new(body);
    *resp.status_mut() = if range.is_some() { StatusCode::PARTIAL_CONTENT } else { StatusCode::OK };
    let h = resp.headers_mut();
    set(h, "content-length", &len.to_string());
    set(h, "etag", &meta.etag);
    set(h, "last-modified", &http_date(meta.last_modified));
    set(h, "content-type", &meta.content_type);
    set(h, "accept-ranges", "bytes");
    set_sse(h);
    set_object_meta(h, &meta);
    if let Some((a, b)) = range {
        set(h, "content-range", &format!("bytes {a}-{b}/{}", meta.size));
    }
    if part.is_some() && !meta.part_sizes.is_empty() {
        set(h, "x-amz-mp-parts-count", &meta.part_sizes.len().to_string());
    }
    // "x-amz-tagging-count: The number of tags, if any, on the object" (GetObject, HeadObject).
    if !meta.tags.is_empty() {
        set(h, "x-amz-tagging-count", &meta.tags.len().to_string());
    }
    // "x-amz-checksum-mode: To retrieve the checksum, this mode must be enabled." A range gets
    // none (the stored checksum is of the whole object); a part of an assembled object gets
    // the part's own, kept when its upload had an algorithm ("This checksum is present if the
    // multipart upload request was created with the CRC32 checksum algorithm", ObjectPart);
    // an object written whole is its only part.
    let mode = parts.headers.get("x-amz-checksum-mode").and_then(|v| v.to_str().ok());
    if mode.is_some_and(|m| m.eq_ignore_ascii_case("ENABLED")) && range_header.is_none() {
        match part {
            Some((_, _, n)) if !meta.part_sizes.is_empty() => {
                if let (Some(c), Some(v)) = (&meta.checksum, meta.part_checksums.get(n - 1)) {
                    set(h, c.algorithm.header(), v);
                    set(h, "x-amz-checksum-type", c.kind.name());
                }
            }
            _ => set_checksum(h, meta.checksum.as_ref()),
        }
    }
    for (q, hname) in RESPONSE_OVERRIDES {
        if let Some(v) = query.get(q) {
            set(h, hname, v);
        }
    }
    Ok(resp)
}

/// The object's stored standard headers, its user metadata (`x-amz-meta-*`) and its storage
/// class: "Amazon S3 returns this header for all objects except for S3 Standard storage class
/// objects." (HeadObject, API reference)
fn set_object_meta(h: &mut hyper::HeaderMap, meta: &ObjectMeta) {
    if !meta.storage_class.is_standard() {
        set(h, "x-amz-storage-class", meta.storage_class.name());
    }
    for (k, v) in &meta.headers {
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(v)) {
            h.insert(n, v);
        }
    }
    for (k, v) in &meta.user_meta {
        if let (Ok(n), Ok(v)) =
            (HeaderName::from_bytes(format!("x-amz-meta-{k}").as_bytes()), HeaderValue::from_str(v))
        {
            h.insert(n, v);
        }
    }
}

/// The conditional headers of a GET or HEAD, as S3 names them in a 412's `Condition`: If-Match,
/// If-Unmodified-Since, If-None-Match, If-Modified-Since.
const GET_CONDITIONS: [&str; 4] =
    ["If-Match", "If-Unmodified-Since", "If-None-Match", "If-Modified-Since"];
/// The same conditions on a copy's source (CopyObject, UploadPartCopy).
const COPY_SOURCE_CONDITIONS: [&str; 4] = [
    "x-amz-copy-source-If-Match",
    "x-amz-copy-source-If-Unmodified-Since",
    "x-amz-copy-source-If-None-Match",
    "x-amz-copy-source-If-Modified-Since",
];

/// How an object meets a request's conditional headers.
enum Precondition {
    Hold,
    /// If-None-Match or If-Modified-Since (named) is false.
    NotModified(&'static str),
    /// If-Match or If-Unmodified-Since (named) is false.
    Failed(&'static str),
}

/// Evaluates the four conditional headers `names` (in [`GET_CONDITIONS`]' order) against an
/// object, in S3's order of precedence: If-Match decides over If-Unmodified-Since, If-None-Match
/// over If-Modified-Since (a date that does not parse is ignored).
fn precondition(
    headers: &hyper::HeaderMap,
    names: &[&'static str; 4],
    meta: &ObjectMeta,
) -> Precondition {
    let get = |n: &str| headers.get(n.to_ascii_lowercase()).and_then(|v| v.to_str().ok());
    let [if_match, if_unmodified_since, if_none_match, if_modified_since] = *names;
    let etag_matches = |list: &str| etag_in(list, &meta.etag);
    match get(if_match) {
        Some(m) if !etag_matches(m) => return Precondition::Failed(if_match),
        Some(_) => {}
        None => {
            if get(if_unmodified_since)
                .and_then(parse_http_date)
                .is_some_and(|t| meta.last_modified > t)
            {
                return Precondition::Failed(if_unmodified_since);
            }
        }
    }
    match get(if_none_match) {
        Some(m) if etag_matches(m) => Precondition::NotModified(if_none_match),
        Some(_) => Precondition::Hold,
        None if get(if_modified_since)
            .and_then(parse_http_date)
            .is_some_and(|t| meta.last_modified <= t) =>
        {
            Precondition::NotModified(if_modified_since)
        }
        None => Precondition::Hold,
    }
}

fn precondition_failed(condition: &str) -> S3Error {
    S3Error::new(
        StatusCode::PRECONDITION_FAILED,
        "PreconditionFailed",
        "At least one of the pre-conditions you specified did not hold",
    )
    .field("Condition", condition)
}

/// If-Match / If-Unmodified-Since (412) and If-None-Match / If-Modified-Since (304) of a
/// GET or HEAD. `Ok(Some(304 response))` to answer right away.
fn check_conditions(
    headers: &hyper::HeaderMap,
    meta: &ObjectMeta,
) -> Result<Option<Response<RespBody>>, S3Error> {
    match precondition(headers, &GET_CONDITIONS, meta) {
        Precondition::Hold => Ok(None),
        Precondition::Failed(c) => Err(precondition_failed(c)),
        Precondition::NotModified(_) => {
            let mut r = Response::new(empty_body());
            *r.status_mut() = StatusCode::NOT_MODIFIED;
            set(r.headers_mut(), "etag", &meta.etag);
            set(r.headers_mut(), "last-modified", &http_date(meta.last_modified));
            Ok(Some(r))
        }
    }
}

/// The x-amz-copy-source-if-* headers of a copy: every false condition is 412 (a copy has no
/// 304), with the API reference's rules: "x-amz-copy-source-if-match condition evaluates to
/// true" and "x-amz-copy-source-if-unmodified-since condition evaluates to false" copies;
/// "x-amz-copy-source-if-none-match condition evaluates to false" and
/// "x-amz-copy-source-if-modified-since condition evaluates to true" is 412.
fn check_copy_source(headers: &hyper::HeaderMap, meta: &ObjectMeta) -> Result<(), S3Error> {
    match precondition(headers, &COPY_SOURCE_CONDITIONS, meta) {
        Precondition::Hold => Ok(()),
        Precondition::Failed(c) | Precondition::NotModified(c) => Err(precondition_failed(c)),
    }
}

/// A single `bytes=` range as inclusive offsets; `Ok(None)` means serve the whole object
/// (absent, malformed or multi-range), `Err` is 416 InvalidRange.
fn parse_range(header: &str, size: u64) -> Result<Option<(u64, u64)>, S3Error> {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    let (a, b) = (a.trim(), b.trim());
    let unsatisfiable = || S3Error::invalid_range(header, size);
    if a.is_empty() {
        let Ok(n) = b.parse::<u64>() else {
            return Ok(None);
        };
        if n == 0 || size == 0 {
            return Err(unsatisfiable());
        }
        return Ok(Some((size.saturating_sub(n), size - 1)));
    }
    let Ok(a) = a.parse::<u64>() else {
        return Ok(None);
    };
    let end = if b.is_empty() {
        u64::MAX
    } else {
        match b.parse::<u64>() {
            Ok(b) if b >= a => b,
            _ => return Ok(None),
        }
    };
    if a >= size {
        return Err(unsatisfiable());
    }
    Ok(Some((a, end.min(size - 1))))
}

/// A conditional delete (DeleteObject's `If-Match`, a DeleteObjects object's `<ETag>`) by ETag
/// reads the object: "To perform a conditional delete with the If-Match header with an ETag
/// value, you must have the s3:DeleteObject and s3:GetObject permissions" (S3 User Guide, "How to
/// perform conditional deletes"). `*` only asks whether the object exists: s3:DeleteObject.
fn authorize_conditional_delete(
    authz: &Authz<'_>,
    bucket: &str,
    key_arn: &str,
    if_match: Option<&str>,
) -> Result<(), S3Error> {
    match if_match {
        Some(v) if v.trim() != "*" => authz.require_in(bucket, "s3:GetObject", key_arn, None),
        _ => Ok(()),
    }
}

/// DeleteObject. With `If-Match` (the User Guide's conditional delete: "If the ETag value of an
/// object in an S3 bucket doesn't match with the ETag that you provide during the delete
/// operation, the operation fails"), decided under the store's commit lock as a conditional
/// write is: `412 PreconditionFailed` for another ETag, `404 NoSuchKey` for no object.
async fn delete_object(
    state: &S3State,
    bucket: String,
    key: String,
    if_match: Option<String>,
) -> Result<Response<RespBody>, S3Error> {
    let (store, b, k) = (state.store.clone(), bucket.clone(), key.clone());
    blocking(move || {
        store
            .delete_object_if(&b, &k, if_match.as_deref())
            .map_err(|e| S3Error::from_store(e, &b, Some(&k)))
    })
    .await?;
    debug!(bucket = %bucket, key = %key, "delete object");
    Ok(empty(StatusCode::NO_CONTENT))
}

async fn list_objects(
    state: &S3State,
    bucket: &str,
    q: &Query,
) -> Result<Response<RespBody>, S3Error> {
    let v2 = match q.get("list-type") {
        None => false,
        Some("2") => true,
        Some(v) => return Err(S3Error::invalid_argument("list-type", v)),
    };
    let prefix = q.get("prefix").unwrap_or("").to_string();
    let delimiter = q.get("delimiter").filter(|d| !d.is_empty()).map(str::to_string);
    let max_keys = max_param(q, "max-keys")?;
    let url = match q.get("encoding-type") {
        None => false,
        Some(v) if v.eq_ignore_ascii_case("url") => true,
        Some(v) => return Err(S3Error::invalid_argument("encoding-type", v)),
    };
    let fetch_owner = !v2 || q.get("fetch-owner") == Some("true");
    let token = match q.get("continuation-token").filter(|_| v2) {
        Some(t) => {
            Some(hex::decode(t).ok().and_then(|b| String::from_utf8(b).ok()).ok_or_else(|| {
                S3Error::invalid_argument("continuation-token", t)
                    .message("The continuation token provided is incorrect")
            })?)
        }
        None => None,
    };
    let start_after = q.get(if v2 { "start-after" } else { "marker" }).unwrap_or("").to_string();
    let start = token.clone().unwrap_or_else(|| start_after.clone());
    let (store, b) = (state.store.clone(), bucket.to_string());
    let (p, d, s) = (prefix.clone(), delimiter.clone(), start.clone());
    let list: ListResult = blocking(move || {
        store
            .list_objects(
                &b,
                &p,
                d.as_deref(),
                Some(s.as_str()).filter(|s| !s.is_empty()),
                max_keys,
            )
            .map_err(|e| S3Error::from_store(e, &b, None))
    })
    .await?;
    debug!(bucket = %bucket, prefix = %prefix, v2, count = list.contents.len(), "list objects");
    let enc = |s: &str| if url { url_encode(s) } else { s.to_string() };
    let body = xml_doc("ListBucketResult", |w| {
        text(w, "Name", bucket)?;
        text(w, "Prefix", &enc(&prefix))?;
        if v2 {
            if let Some(t) = q.get("continuation-token") {
                text(w, "ContinuationToken", t)?;
            }
            if !start_after.is_empty() {
                text(w, "StartAfter", &enc(&start_after))?;
            }
            text(w, "KeyCount", &(list.contents.len() + list.common_prefixes.len()).to_string())?;
        } else {
            text(w, "Marker", &enc(&start_after))?;
        }
        text(w, "MaxKeys", &max_keys.to_string())?;
        if let Some(d) = &delimiter {
            text(w, "Delimiter", &enc(d))?;
        }
        if url {
            text(w, "EncodingType", "url")?;
        }
        text(w, "IsTruncated", if list.is_truncated { "true" } else { "false" })?;
        if let Some(next) = list.next_token.as_deref().filter(|_| list.is_truncated) {
            if v2 {
                text(w, "NextContinuationToken", &hex::encode(next))?;
            } else if delimiter.is_some() {
                // ListObjects: NextMarker "is returned only if you have the delimiter request
                // parameter specified" (without one, the last Key is the next marker).
                text(w, "NextMarker", &enc(next))?;
            }
        }
        for m in &list.contents {
            contents(w, m, &enc(&m.key), fetch_owner)?;
        }
        for p in &list.common_prefixes {
            w.create_element("CommonPrefixes")
                .write_inner_content(|w| text(w, "Prefix", &enc(p)))?;
        }
        Ok(())
    })?;
    Ok(xml_response(StatusCode::OK, body))
}

fn contents(
    w: &mut Writer<Vec<u8>>,
    m: &ObjectMeta,
    key: &str,
    with_owner: bool,
) -> io::Result<()> {
    w.create_element("Contents").write_inner_content(|w| {
        text(w, "Key", key)?;
        text(w, "LastModified", &iso8601(m.last_modified))?;
        text(w, "ETag", &m.etag)?;
        if let Some(c) = &m.checksum {
            text(w, "ChecksumAlgorithm", c.algorithm.name())?;
            text(w, "ChecksumType", c.kind.name())?;
        }
        text(w, "Size", &m.size.to_string())?;
        if with_owner {
            owner(w)?;
        }
        text(w, "StorageClass", m.storage_class.name())
    })?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Responses and XML

fn empty_body() -> RespBody {
    Full::new(Bytes::new()).map_err(|never| match never {}).boxed()
}

fn empty(status: StatusCode) -> Response<RespBody> {
    let mut r = Response::new(empty_body());
    *r.status_mut() = status;
    if status != StatusCode::NO_CONTENT {
        set(r.headers_mut(), "content-length", "0");
    }
    r
}

fn xml_response(status: StatusCode, body: Bytes) -> Response<RespBody> {
    let len = body.len();
    let mut r = Response::new(Full::new(body).map_err(|never| match never {}).boxed());
    *r.status_mut() = status;
    set(r.headers_mut(), "content-type", "application/xml");
    set(r.headers_mut(), "content-length", &len.to_string());
    r
}

fn text(w: &mut Writer<Vec<u8>>, name: &str, value: &str) -> io::Result<()> {
    w.create_element(name).write_text_content(BytesText::new(value))?;
    Ok(())
}

fn owner(w: &mut Writer<Vec<u8>>) -> io::Result<()> {
    w.create_element("Owner").write_inner_content(|w| {
        text(w, "ID", OWNER_ID)?;
        text(w, "DisplayName", OWNER_NAME)
    })?;
    Ok(())
}

/// An XML document with a root element in the S3 namespace.
fn xml_doc(
    root: &str,
    inner: impl FnOnce(&mut Writer<Vec<u8>>) -> io::Result<()>,
) -> Result<Bytes, S3Error> {
    let mut w = Writer::new(Vec::new());
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None))).map_err(S3Error::xml)?;
    w.create_element(root)
        .with_attribute(("xmlns", S3_NS))
        .write_inner_content(inner)
        .map_err(S3Error::xml)?;
    Ok(Bytes::from(w.into_inner()))
}

/// An S3 error response.
#[derive(Debug)]
struct S3Error {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Extra elements after `<Message>`, e.g. `BucketName`, `Key`.
    fields: Vec<(&'static str, String)>,
    headers: Vec<(&'static str, String)>,
}

impl S3Error {
    fn new(status: StatusCode, code: &'static str, message: &str) -> S3Error {
        S3Error {
            status,
            code,
            message: message.to_string(),
            fields: Vec::new(),
            headers: Vec::new(),
        }
    }
    fn header(mut self, name: &'static str, value: &str) -> S3Error {
        self.headers.push((name, value.to_string()));
        self
    }
    fn field(mut self, name: &'static str, value: &str) -> S3Error {
        self.fields.push((name, value.to_string()));
        self
    }
    fn no_such_bucket(bucket: &str) -> S3Error {
        S3Error::new(StatusCode::NOT_FOUND, "NoSuchBucket", "The specified bucket does not exist")
            .field("BucketName", bucket)
    }
    fn message(mut self, message: &str) -> S3Error {
        self.message = message.to_string();
        self
    }
    /// Adds `<UploadId>` to NoSuchUpload errors.
    fn upload(self, id: &str) -> S3Error {
        if self.code == "NoSuchUpload" && self.fields.is_empty() {
            self.field("UploadId", id)
        } else {
            self
        }
    }
    fn no_such_upload(id: &str) -> S3Error {
        S3Error::new(
            StatusCode::NOT_FOUND,
            "NoSuchUpload",
            "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.",
        )
        .field("UploadId", id)
    }
    fn malformed_xml() -> S3Error {
        S3Error::new(
            StatusCode::BAD_REQUEST,
            "MalformedXML",
            "The XML you provided was not well-formed or did not validate against our published schema",
        )
    }
    fn invalid_copy_source() -> S3Error {
        S3Error::new(StatusCode::BAD_REQUEST, "InvalidArgument", "Invalid copy source object key")
            .field("ArgumentName", "x-amz-copy-source")
    }
    /// 301 to the bucket's own region, as S3 answers a request sent to another region.
    fn permanent_redirect(bucket: &str, region: &str) -> S3Error {
        S3Error::new(
            StatusCode::MOVED_PERMANENTLY,
            "PermanentRedirect",
            "The bucket you are attempting to access must be addressed using the specified endpoint. Please send all future requests to this endpoint.",
        )
        .field("Endpoint", &format!("{bucket}.{}", s3_host(region)))
        .field("Bucket", bucket)
        .header("x-amz-bucket-region", region)
    }
    fn acl_not_supported() -> S3Error {
        S3Error::new(
            StatusCode::BAD_REQUEST,
            "AccessControlListNotSupported",
            "The bucket does not allow ACLs",
        )
    }
    fn no_such_key(key: &str) -> S3Error {
        S3Error::new(StatusCode::NOT_FOUND, "NoSuchKey", "The specified key does not exist.")
            .field("Key", key)
    }
    fn invalid_bucket_name(bucket: &str) -> S3Error {
        S3Error::new(
            StatusCode::BAD_REQUEST,
            "InvalidBucketName",
            "The specified bucket is not valid.",
        )
        .field("BucketName", bucket)
    }
    fn method_not_allowed(method: &Method, resource: &str) -> S3Error {
        S3Error::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "The specified method is not allowed against this resource.",
        )
        .field("Method", method.as_str())
        .field("ResourceType", resource)
    }
    fn not_implemented(what: &str) -> S3Error {
        S3Error::new(
            StatusCode::NOT_IMPLEMENTED,
            "NotImplemented",
            "A header or query you provided implies functionality that is not implemented.",
        )
        .field("Header", what)
    }
    fn invalid_argument(name: &str, value: &str) -> S3Error {
        S3Error::new(
            StatusCode::BAD_REQUEST,
            "InvalidArgument",
            &format!("Invalid argument: {name}"),
        )
        .field("ArgumentName", name)
        .field("ArgumentValue", value)
    }
    fn invalid_uri() -> S3Error {
        S3Error::new(StatusCode::BAD_REQUEST, "InvalidURI", "Couldn't parse the specified URI.")
    }
    fn invalid_digest() -> S3Error {
        S3Error::new(
            StatusCode::BAD_REQUEST,
            "InvalidDigest",
            "The Content-MD5 you specified was invalid.",
        )
    }
    /// A checksum of another algorithm than the multipart upload's.
    fn checksum_type_mismatch(expected: Algorithm, actual: Algorithm) -> S3Error {
        S3Error::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            &format!(
                "Checksum Type mismatch occurred, expected checksum Type: {}, actual checksum Type: {}",
                expected.name().to_ascii_lowercase(),
                actual.name().to_ascii_lowercase()
            ),
        )
    }
    fn bad_digest() -> S3Error {
        S3Error::new(
            StatusCode::BAD_REQUEST,
            "BadDigest",
            "The Content-MD5 you specified did not match what we received.",
        )
    }
    /// S3's answer to a request whose body stopped arriving (S3 API Reference, error codes:
    /// "RequestTimeout: Your socket connection to the server was not read from or written to
    /// within the timeout period", 400; S3's wire message adds the second sentence).
    fn request_timeout() -> S3Error {
        S3Error::new(
            StatusCode::BAD_REQUEST,
            "RequestTimeout",
            "Your socket connection to the server was not read from or written to within the \
             timeout period. Idle connections will be closed.",
        )
    }
    fn incomplete_body() -> S3Error {
        S3Error::new(
            StatusCode::BAD_REQUEST,
            "IncompleteBody",
            "You did not provide the number of bytes specified by the Content-Length HTTP header",
        )
    }
    fn entity_too_large() -> S3Error {
        S3Error::new(
            StatusCode::BAD_REQUEST,
            "EntityTooLarge",
            "Your proposed upload exceeds the maximum allowed object size.",
        )
    }
    fn invalid_range(range: &str, size: u64) -> S3Error {
        let mut e = S3Error::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "InvalidRange",
            "The requested range is not satisfiable",
        )
        .field("RangeRequested", range)
        .field("ActualObjectSize", &size.to_string());
        e.headers.push(("content-range", format!("bytes */{size}")));
        e
    }
    fn internal(detail: &str) -> S3Error {
        tracing::warn!(error = %detail, "s3 internal error");
        S3Error::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "We encountered an internal error. Please try again.",
        )
    }
    fn xml(e: io::Error) -> S3Error {
        S3Error::internal(&format!("xml: {e}"))
    }
    fn from_store(e: StoreError, bucket: &str, key: Option<&str>) -> S3Error {
        match e {
            StoreError::NoSuchBucket(_) => S3Error::no_such_bucket(bucket),
            StoreError::NoSuchKey(_) => S3Error::no_such_key(key.unwrap_or("")),
            StoreError::InvalidBucketName(_) => S3Error::invalid_bucket_name(bucket),
            StoreError::BucketAlreadyExists(_) => S3Error::new(
                StatusCode::CONFLICT,
                "BucketAlreadyExists",
                "The requested bucket name is not available. The bucket namespace is shared by all users of the system. Please select a different name and try again.",
            )
            .field("BucketName", bucket),
            StoreError::BucketAlreadyOwnedByYou(_) => S3Error::new(
                StatusCode::CONFLICT,
                "BucketAlreadyOwnedByYou",
                "Your previous request to create the named bucket succeeded and you already own it.",
            )
            .field("BucketName", bucket),
            StoreError::InvalidKey => S3Error::new(StatusCode::BAD_REQUEST, "InvalidArgument", "The key must not be empty."),
            StoreError::KeyTooLong(_) => {
                S3Error::new(StatusCode::BAD_REQUEST, "KeyTooLongError", "Your key is too long")
            }
            StoreError::BadDigest => S3Error::bad_digest(),
            StoreError::BadChecksum(a) => S3Error::new(
                StatusCode::BAD_REQUEST,
                "BadDigest",
                &format!("The {} you specified did not match the calculated checksum.", a.name()),
            ),
            StoreError::NoSuchUpload(id) => S3Error::no_such_upload(&id),
            StoreError::InvalidPart(_) => S3Error::new(
                StatusCode::BAD_REQUEST,
                "InvalidPart",
                "One or more of the specified parts could not be found.  The part may not have been uploaded, or the specified entity tag may not match the part's entity tag.",
            ),
            StoreError::InvalidPartOrder => S3Error::new(
                StatusCode::BAD_REQUEST,
                "InvalidPartOrder",
                "The list of parts was not in ascending order. Parts must be ordered by part number.",
            ),
            // As S3 answers it (the API reference's table has "... minimum allowed object
            // size."), with the part: ProposedSize, MinSizeAllowed, PartNumber, ETag (unquoted).
            StoreError::EntityTooSmall { part, size, etag } => S3Error::new(
                StatusCode::BAD_REQUEST,
                "EntityTooSmall",
                "Your proposed upload is smaller than the minimum allowed size",
            )
            .field("ProposedSize", &size.to_string())
            .field("MinSizeAllowed", &MIN_PART_SIZE.to_string())
            .field("PartNumber", &part.to_string())
            .field("ETag", etag.trim_matches('"')),
            StoreError::BucketNotEmpty(_) => S3Error::new(
                StatusCode::CONFLICT,
                "BucketNotEmpty",
                "The bucket you tried to delete is not empty",
            )
            .field("BucketName", bucket),
            StoreError::PreconditionFailed(condition) => precondition_failed(condition),
            StoreError::Io(e) => S3Error::internal(&e.to_string()),
        }
    }

    fn into_response(self, request_id: &str, head: bool) -> Response<RespBody> {
        let mut resp = if head {
            let mut r = Response::new(empty_body());
            *r.status_mut() = self.status;
            r
        } else {
            let xml = self.to_xml(request_id).unwrap_or_default();
            xml_response(self.status, Bytes::from(xml))
        };
        for (name, value) in &self.headers {
            set(resp.headers_mut(), name, value);
        }
        resp
    }

    fn to_xml(&self, request_id: &str) -> io::Result<Vec<u8>> {
        let mut w = Writer::new(Vec::new());
        w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
        w.create_element("Error").write_inner_content(|w| {
            text(w, "Code", self.code)?;
            text(w, "Message", &self.message)?;
            for (name, value) in &self.fields {
                text(w, name, value)?;
            }
            text(w, "RequestId", request_id)?;
            text(w, "HostId", &host_id(request_id))
        })?;
        Ok(w.into_inner())
    }
}

// ---------------------------------------------------------------------------------------------
// aws-chunked

#[derive(Default, Debug, PartialEq)]
enum ChunkState {
    /// Expecting `<hex-size>[;ext]\r\n`.
    #[default]
    Header,
    /// Inside chunk data, this many bytes left.
    Data(u64),
    /// Expecting the `\r\n` after chunk data.
    DataEnd,
    /// After the final zero-size chunk: trailer lines until an empty line.
    Trailer,
    Done,
}

/// Verifies the chained chunk signatures of a `STREAMING-AWS4-HMAC-SHA256-PAYLOAD` body, and
/// for `STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER` the trailer's signature after them.
struct ChunkSigner {
    key: [u8; 32],
    amz_date: String,
    scope: String,
    /// The seed signature, then that of the last verified chunk.
    previous: String,
    /// The body ends with trailing headers signed by `x-amz-trailer-signature`.
    trailer: bool,
}

impl ChunkSigner {
    /// The signature of `string_to_sign` if it is the one `claimed`.
    fn check(&self, string_to_sign: &str, claimed: Option<&str>) -> Result<String, S3Error> {
        let want = sigv4::sign(&self.key, string_to_sign);
        match claimed {
            Some(c) if sigv4::constant_time_eq(c.as_bytes(), want.as_bytes()) => Ok(want),
            _ => Err(S3Error::new(
                StatusCode::FORBIDDEN,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
            )),
        }
    }

    /// A chunk's signature: "AWS4-HMAC-SHA256-PAYLOAD" + "\n" + timestamp + "\n" + scope +
    /// "\n" + previous signature + "\n" + Hex(SHA256("")) + "\n" + Hex(SHA256(chunk))
    /// (sigv4-streaming); it becomes the previous signature of the next.
    fn verify(&mut self, chunk_sha256: &[u8], claimed: Option<&str>) -> Result<(), S3Error> {
        let sts = format!(
            "{}\n{}\n{}\n{}\n{}\n{}",
            sigv4::CHUNK_ALGORITHM,
            self.amz_date,
            self.scope,
            self.previous,
            sigv4::EMPTY_SHA256,
            hex::encode(chunk_sha256)
        );
        self.previous = self.check(&sts, claimed)?;
        Ok(())
    }

    /// The trailer's signature, after the final (empty) chunk's: "AWS4-HMAC-SHA256-TRAILER" +
    /// "\n" + timestamp + "\n" + scope + "\n" + the final chunk's signature + "\n" +
    /// Hex(SHA256(trailing headers)) (sigv4-streaming-trailers), the headers as the AWS SDKs'
    /// signers hash them: `name:value\n` each, lower-case names, sorted.
    fn verify_trailer(&self, trailers_sha256: &[u8], claimed: Option<&str>) -> Result<(), S3Error> {
        let sts = format!(
            "{}\n{}\n{}\n{}\n{}",
            sigv4::TRAILER_ALGORITHM,
            self.amz_date,
            self.scope,
            self.previous,
            hex::encode(trailers_sha256)
        );
        self.check(&sts, claimed).map(drop)
    }
}

/// Incremental decoder of the `aws-chunked` framing; with a signer, each chunk's
/// `chunk-signature` is verified as soon as the chunk is complete.
#[derive(Default)]
struct AwsChunked {
    state: ChunkState,
    line: Vec<u8>,
    signer: Option<ChunkSigner>,
    /// SHA-256 of the current chunk's data and its claimed signature.
    hasher: Option<sha2::Sha256>,
    claimed: Option<String>,
    /// Trailing headers after the final chunk (name lower-case, value), at most
    /// [`MAX_TRAILERS`].
    trailers: Vec<(String, String)>,
    /// The `x-amz-trailer-signature` of a signed trailer (kept out of `trailers`).
    trailer_signature: Option<String>,
}

/// Trailing headers kept from an aws-chunked body.
const MAX_TRAILERS: usize = 8;

impl AwsChunked {
    fn bad() -> S3Error {
        S3Error::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "Invalid aws-chunked payload encoding.",
        )
    }

    fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), S3Error> {
        while !input.is_empty() {
            match self.state {
                ChunkState::Data(n) => {
                    let take = (n.min(input.len() as u64)) as usize;
                    if let Some(h) = self.hasher.as_mut() {
                        sha2::Digest::update(h, &input[..take]);
                    }
                    if n == take as u64 {
                        self.chunk_done()?;
                    }
                    out.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    self.state = if n == take as u64 {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(n - take as u64)
                    };
                }
                ChunkState::DataEnd => {
                    match (self.line.is_empty(), input[0]) {
                        (true, b'\r') => self.line.push(b'\r'),
                        (_, b'\n') => {
                            self.line.clear();
                            self.state = ChunkState::Header;
                        }
                        _ => return Err(Self::bad()),
                    }
                    input = &input[1..];
                }
                ChunkState::Done => {
                    if input.iter().all(|c| matches!(c, b'\r' | b'\n')) {
                        return Ok(());
                    }
                    return Err(Self::bad());
                }
                _ => {
                    let Some(i) = input.iter().position(|&c| c == b'\n') else {
                        self.line.extend_from_slice(input);
                        if self.line.len() > 16 * 1024 {
                            return Err(Self::bad());
                        }
                        return Ok(());
                    };
                    self.line.extend_from_slice(&input[..i]);
                    input = &input[i + 1..];
                    let mut line = std::mem::take(&mut self.line);
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    self.line_done(&line)?;
                }
            }
        }
        Ok(())
    }

    /// The current chunk is complete: check its signature.
    fn chunk_done(&mut self) -> Result<(), S3Error> {
        if let (Some(signer), Some(h)) = (self.signer.as_mut(), self.hasher.take()) {
            signer.verify(&sha2::Digest::finalize(h), self.claimed.take().as_deref())?;
        }
        Ok(())
    }

    fn line_done(&mut self, line: &[u8]) -> Result<(), S3Error> {
        self.state = match self.state {
            ChunkState::Header => {
                let mut fields = line.split(|&c| c == b';');
                let size = fields.next().unwrap_or(b"");
                let size = std::str::from_utf8(size).map_err(|_| Self::bad())?.trim();
                if self.signer.is_some() {
                    self.claimed = fields
                        .filter_map(|f| std::str::from_utf8(f).ok())
                        .find_map(|f| f.trim().strip_prefix("chunk-signature="))
                        .map(str::to_string);
                    self.hasher = Some(<sha2::Sha256 as sha2::Digest>::new());
                }
                match u64::from_str_radix(size, 16) {
                    Ok(0) => {
                        self.chunk_done()?;
                        ChunkState::Trailer
                    }
                    Ok(n) if n <= MAX_PUT_SIZE => ChunkState::Data(n),
                    _ => return Err(Self::bad()),
                }
            }
            ChunkState::Trailer if line.is_empty() => {
                self.trailers_done()?;
                ChunkState::Done
            }
            ChunkState::Trailer => {
                let line = std::str::from_utf8(line).map_err(|_| Self::bad())?;
                let (name, value) = line.split_once(':').ok_or_else(Self::bad)?;
                let (name, value) = (name.trim().to_ascii_lowercase(), value.trim().to_string());
                if name == "x-amz-trailer-signature"
                    && self.signer.as_ref().is_some_and(|s| s.trailer)
                {
                    if self.trailer_signature.replace(value).is_some() {
                        return Err(Self::bad());
                    }
                } else {
                    if self.trailers.len() == MAX_TRAILERS {
                        return Err(Self::bad());
                    }
                    self.trailers.push((name, value));
                }
                ChunkState::Trailer
            }
            ChunkState::Data(_) | ChunkState::DataEnd | ChunkState::Done => return Err(Self::bad()),
        };
        Ok(())
    }

    /// The value of trailing header `name` (lower-case).
    fn trailer(&self, name: &str) -> Option<&str> {
        self.trailers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The trailing headers are complete: check their signature when they are signed (every
    /// header line is covered, wherever it stands, so none can be added, changed or left out).
    fn trailers_done(&self) -> Result<(), S3Error> {
        let Some(signer) = self.signer.as_ref().filter(|s| s.trailer) else { return Ok(()) };
        let mut sorted: Vec<&(String, String)> = self.trailers.iter().collect();
        sorted.sort();
        let mut h = <sha2::Sha256 as sha2::Digest>::new();
        for (name, value) in sorted {
            for part in [name.as_bytes(), b":", value.as_bytes(), b"\n"] {
                sha2::Digest::update(&mut h, part);
            }
        }
        signer.verify_trailer(&sha2::Digest::finalize(h), self.trailer_signature.as_deref())
    }

    /// Checks the payload ended after the final chunk (and its trailer's signature).
    fn finish(&mut self) -> Result<(), S3Error> {
        match self.state {
            ChunkState::Done => Ok(()),
            // Tolerate a missing final CRLF after the last chunk or trailer.
            ChunkState::Trailer if self.line.is_empty() => {
                self.trailers_done()?;
                self.state = ChunkState::Done;
                Ok(())
            }
            _ => Err(S3Error::incomplete_body()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Streaming file body

/// Streams `remaining` bytes of a file.
struct FileBody {
    file: tokio::fs::File,
    remaining: u64,
    buf: Vec<u8>,
}

impl FileBody {
    fn new(file: tokio::fs::File, len: u64) -> FileBody {
        FileBody { file, remaining: len, buf: vec![0; READ_CHUNK.min(len as usize)] }
    }
}

impl Body for FileBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        let want = this.remaining.min(this.buf.len() as u64) as usize;
        let mut rb = ReadBuf::new(&mut this.buf[..want]);
        if let Err(e) = ready!(Pin::new(&mut this.file).poll_read(cx, &mut rb)) {
            return Poll::Ready(Some(Err(e)));
        }
        let n = rb.filled().len();
        if n == 0 {
            return Poll::Ready(Some(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "object body truncated",
            ))));
        }
        let chunk = Bytes::copy_from_slice(rb.filled());
        this.remaining -= n as u64;
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

// ---------------------------------------------------------------------------------------------
// Small helpers: ids, dates, base64

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// 16 uppercase hex chars, unique per process (a bijective mix of start time + counter).
fn next_request_id() -> String {
    static START: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let start = *START.get_or_init(|| {
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{:016X}", splitmix64(start.wrapping_add(n)))
}

/// An `x-amz-id-2`-looking value derived from the request id.
fn host_id(request_id: &str) -> String {
    let mut seed = u64::from_str_radix(request_id, 16).unwrap_or(0);
    let mut bytes = Vec::with_capacity(56);
    for _ in 0..7 {
        seed = splitmix64(seed);
        bytes.extend_from_slice(&seed.to_be_bytes());
    }
    base64_encode(&bytes)
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// (year, month, day, hour, minute, second, weekday with 0 = Sunday) of unix seconds.
fn civil(secs: u64) -> (i64, u32, u32, u32, u32, u32, usize) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = sigv4::civil_from_days(days);
    let wd = ((days + 4).rem_euclid(7)) as usize;
    (y, m, d, (rem / 3600) as u32, (rem % 3600 / 60) as u32, (rem % 60) as u32, wd)
}

/// RFC 1123 date, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn http_date(secs: u64) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let (y, m, d, hh, mm, ss, wd) = civil(secs);
    format!("{}, {d:02} {} {y:04} {hh:02}:{mm:02}:{ss:02} GMT", DAYS[wd], MONTHS[(m - 1) as usize])
}

/// Host name of a region's S3 (us-east-1 is the global endpoint).
pub fn s3_host(region: &str) -> String {
    if region == "us-east-1" {
        "s3.amazonaws.com".into()
    } else {
        format!("s3.{region}.amazonaws.com")
    }
}

/// Parses an RFC 1123 date (`Sun, 06 Nov 1994 08:49:37 GMT`) into unix seconds.
fn parse_http_date(s: &str) -> Option<u64> {
    const MONTHS: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let f: Vec<&str> = s.split_whitespace().collect();
    let [_, d, mon, y, hms, "GMT"] = f[..] else { return None };
    let d: i64 = d.parse().ok()?;
    let m = MONTHS.iter().position(|x| *x == mon)? as i64 + 1;
    let y: i64 = y.parse().ok()?;
    let t: Vec<i64> = hms.split(':').map(|x| x.parse().ok()).collect::<Option<_>>()?;
    let [hh, mm, ss] = t[..] else { return None };
    // Days from civil (Howard Hinnant).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()
}

/// ISO 8601 in whole seconds, e.g. `2009-10-12T17:50:30Z` (`aws:CurrentTime`).
fn iso8601_seconds(secs: u64) -> String {
    let (y, m, d, hh, mm, ss, _) = civil(secs);
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
}

/// ISO 8601 with milliseconds, e.g. `2009-10-12T17:50:30.000Z`.
pub fn iso8601(secs: u64) -> String {
    let (y, m, d, hh, mm, ss, _) = civil(secs);
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.000Z")
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub(crate) fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n =
            chunk.iter().enumerate().fold(0u32, |acc, (i, &b)| acc | (b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub(crate) fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.as_bytes();
    if !s.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    for (ci, chunk) in s.chunks(4).enumerate() {
        let last = ci == s.len() / 4 - 1;
        let mut n = 0u32;
        let mut pad = 0;
        for (i, &c) in chunk.iter().enumerate() {
            let v = if c == b'=' && last && i >= 2 {
                pad += 1;
                0
            } else if pad > 0 {
                return None;
            } else {
                B64.iter().position(|&x| x == c)? as u32
            };
            n = n << 6 | v;
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..4 - pad]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::store::test_util::TempDir;
    use md5::{Digest, Md5};
    use std::sync::Mutex;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    #[test]
    fn host_parsing() {
        let cases = [
            ("bucket.s3.amazonaws.com", Some("bucket")),
            ("bucket.s3.us-east-1.amazonaws.com", Some("bucket")),
            ("my.dotted.bucket.s3.eu-west-1.amazonaws.com:443", Some("my.dotted.bucket")),
            ("bucket.s3-us-west-2.amazonaws.com", Some("bucket")),
            ("bucket.s3-external-1.amazonaws.com", Some("bucket")),
            ("bucket.s3.dualstack.ap-south-1.amazonaws.com", Some("bucket")),
            ("bucket.s3-fips.us-east-1.amazonaws.com", Some("bucket")),
            ("a.b.s3-fips.dualstack.us-west-2.amazonaws.com", Some("a.b")),
            ("s3-fips.us-east-1.amazonaws.com", None),
            ("s3-fips.dualstack.ca-west-1.amazonaws.com", None),
            // No FIPS endpoint in eu-west-1: a foreign host, path style.
            ("bucket.s3-fips.eu-west-1.amazonaws.com", None),
            ("Bucket.S3.Amazonaws.com.", Some("bucket")),
            ("a.s3.bucket.s3.amazonaws.com", Some("a.s3.bucket")),
            ("s3.amazonaws.com", None),
            ("s3.us-east-1.amazonaws.com", None),
            ("s3.dualstack.us-east-1.amazonaws.com", None),
            ("s3-external-1.amazonaws.com", None),
            ("10.0.0.1", None),
            ("10.0.0.1:80", None),
            ("[::1]:80", None),
            ("localhost", None),
            ("bucket.example.com", None),
            ("bucket.ec2.amazonaws.com", None),
        ];
        for (host, want) in cases {
            assert_eq!(bucket_from_host(host).as_deref(), want, "{host}");
        }
    }

    /// A Host that is no S3 name is the bucket (CNAME style); S3's names, IP literals and
    /// localhost are not.
    #[test]
    fn cname_hosts() {
        let cases = [
            ("packages.us-east-1.amazonaws.com", Some("packages.us-east-1.amazonaws.com")),
            ("REPO.eu-west-1.amazonaws.com.:80", Some("repo.eu-west-1.amazonaws.com")),
            ("images.example.com", Some("images.example.com")),
            ("bucket.s3.amazonaws.com", None),
            ("s3.amazonaws.com", None),
            ("s3.us-west-2.amazonaws.com:443", None),
            ("s3-external-1.amazonaws.com", None),
            ("127.0.0.1:4599", None),
            ("[::1]:4599", None),
            ("localhost:4599", None),
            ("LocalHost", None),
            ("", None),
        ];
        for (host, want) in cases {
            assert_eq!(cname_bucket(host).as_deref(), want, "{host}");
        }
    }

    #[test]
    fn dates() {
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(iso8601(1_255_369_830), "2009-10-12T17:50:30.000Z");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00.000Z");
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    }

    #[test]
    fn base64_roundtrip() {
        for n in 0..20 {
            let data: Vec<u8> = (0..n).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(base64_decode(&base64_encode(&data)).unwrap(), data);
        }
        assert_eq!(base64_encode(b"hello"), "aGVsbG8=");
        assert_eq!(
            base64_decode("XUFAKrxLKna5cZ2REBfFkg==").unwrap(),
            hex::decode("5d41402abc4b2a76b9719d911017c592").unwrap()
        );
        assert!(base64_decode("abc").is_none());
        assert!(base64_decode("a=bc").is_none());
        assert!(base64_decode("ab!c").is_none());
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100).unwrap(), Some((0, 9)));
        assert_eq!(parse_range("bytes=90-", 100).unwrap(), Some((90, 99)));
        assert_eq!(parse_range("bytes=90-1000", 100).unwrap(), Some((90, 99)));
        assert_eq!(parse_range("bytes=-10", 100).unwrap(), Some((90, 99)));
        assert_eq!(parse_range("bytes=-1000", 100).unwrap(), Some((0, 99)));
        assert_eq!(parse_range("bytes=5-2", 100).unwrap(), None);
        assert_eq!(parse_range("bytes=0-1,5-6", 100).unwrap(), None);
        assert_eq!(parse_range("items=0-1", 100).unwrap(), None);
        assert!(parse_range("bytes=100-", 100).is_err());
        assert!(parse_range("bytes=-0", 100).is_err());
        assert!(parse_range("bytes=0-", 0).is_err());
    }

    #[test]
    fn aws_chunked_decoder() {
        let payload = b"5;chunk-signature=abc\r\nhello\r\n6;chunk-signature=def\r\n world\r\n0;chunk-signature=0\r\n\r\n";
        // Feed byte by byte and all at once.
        for step in [1, 3, payload.len()] {
            let mut d = AwsChunked::default();
            let mut out = Vec::new();
            for piece in payload.chunks(step) {
                d.feed(piece, &mut out).unwrap();
            }
            d.finish().unwrap();
            assert_eq!(out, b"hello world");
        }
        // Trailers (unsigned-payload-trailer style).
        let payload = b"3\r\nabc\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n";
        let mut d = AwsChunked::default();
        let mut out = Vec::new();
        d.feed(payload, &mut out).unwrap();
        d.finish().unwrap();
        assert_eq!(out, b"abc");
        // Truncated.
        let mut d = AwsChunked::default();
        d.feed(b"5;chunk-signature=abc\r\nhel", &mut out).unwrap();
        assert!(d.finish().is_err());
        // Garbage.
        let mut d = AwsChunked::default();
        assert!(d.feed(b"zz\r\n", &mut out).is_err());
        let mut d = AwsChunked::default();
        assert!(d.feed(b"1\r\nabX", &mut out).is_err());
        let mut d = AwsChunked::default();
        assert!(d.feed(b"1\r\na\rX", &mut out).is_err());
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b%2Fc+d", false).unwrap(), "a b/c+d");
        assert_eq!(percent_decode("a%20b+d", true).unwrap(), "a b d");
        assert_eq!(percent_decode("%E2%9C%93", false).unwrap(), "✓");
        assert!(percent_decode("%zz", false).is_err());
        assert!(percent_decode("%2", false).is_err());
        assert!(percent_decode("%", false).is_err());
        assert!(percent_decode("%FF", false).is_err());
        assert_eq!(url_encode("a b+c/ü"), "a%20b%2Bc/%C3%BC");
    }

    // --- End-to-end over loopback -------------------------------------------------------------

    struct Resp {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Resp {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
        }
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.body).into_owned()
        }
    }

    /// Reads one response from a stream (Content-Length framed; HEAD/204/304 have no body).
    async fn read_response(s: &mut TcpStream, head: bool) -> Resp {
        let mut buf = Vec::new();
        let mut byte = [0u8; 1];
        while !buf.ends_with(b"\r\n\r\n") {
            let n = s.read(&mut byte).await.expect("read head");
            assert!(n == 1, "connection closed mid-head: {:?}", String::from_utf8_lossy(&buf));
            buf.push(byte[0]);
        }
        let head_text = String::from_utf8(buf).expect("utf8 head");
        let mut lines = head_text.split("\r\n");
        let status: u16 = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (k, v) = l.split_once(':').unwrap();
                (k.trim().to_ascii_lowercase(), v.trim().to_string())
            })
            .collect();
        let mut resp = Resp { status, headers, body: Vec::new() };
        if head || status == 204 || status == 304 || status == 100 {
            return resp;
        }
        let len: usize = resp.header("content-length").expect("content-length").parse().unwrap();
        resp.body = vec![0; len];
        s.read_exact(&mut resp.body).await.expect("read body");
        resp
    }

    async fn send(
        s: &mut TcpStream,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Resp {
        let mut req = format!("{method} {target} HTTP/1.1\r\n");
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            req.push_str("Host: 127.0.0.1\r\n");
        }
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            && (!body.is_empty() || method == "PUT")
        {
            req.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        if headers.iter().any(|(k, v)| {
            k.eq_ignore_ascii_case("expect") && v.eq_ignore_ascii_case("100-continue")
        }) {
            let interim = read_response(s, false).await;
            if interim.status != 100 {
                return interim;
            }
        }
        s.write_all(body).await.unwrap();
        read_response(s, method == "HEAD").await
    }

    async fn req(
        addr: SocketAddr,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Resp {
        let mut s = TcpStream::connect(addr).await.unwrap();
        send(&mut s, method, target, headers, body).await
    }

    type Seen = Arc<Mutex<Vec<(SocketAddr, SocketAddr)>>>;

    async fn start(with_origin: bool) -> (SocketAddr, TempDir, Arc<Store>, Seen) {
        start_full(with_origin, "us-east-1", [127, 0, 0, 1], None).await
    }

    async fn start_in(region: &str) -> (SocketAddr, TempDir, Arc<Store>, Seen) {
        start_full(false, region, [127, 0, 0, 1], None).await
    }

    /// HeadBucket answers the bucket's region even when it refuses: S3's `x-amz-bucket-region`
    /// on a 403, which `curl -I` and botocore's region redirector (its HeadBucket fallback)
    /// read.
    #[tokio::test]
    async fn head_bucket_names_the_region_when_refused() {
        let (addr, _dir, _store, _) = start_signed().await;
        let r = req(addr, "HEAD", "/bkt", &[], b"").await;
        assert_eq!((r.status, r.header("x-amz-bucket-region")), (403, Some("us-east-1")));
        let r = req(addr, "GET", "/bkt", &[], b"").await;
        assert_eq!((r.status, r.header("x-amz-bucket-region")), (403, None));
    }

    /// A stub that authorizes: the default users of a us-east-1 world (admin may do anything).
    async fn start_signed() -> (SocketAddr, TempDir, Arc<Store>, Seen) {
        let world = crate::model::World::new("t", "us-east-1").unwrap();
        let access =
            Access::from_world(&world, std::time::Duration::ZERO, None, std::time::Instant::now());
        let access = Some(Arc::new(arc_swap::ArcSwap::from_pointee(access)));
        start_full(false, "us-east-1", [127, 0, 0, 1], access).await
    }

    /// IAM's global condition keys: `aws:VpcSourceIp` "matches only if the request originates
    /// from the specified IP address and it goes through a VPC endpoint"; `aws:SourceIp` is
    /// not matched through one (the guide). Through the stub's endpoint (`vpce-0123abcd`) the
    /// caller's address (127.0.0.1) is the first and not the second, on the public path the
    /// reverse; in the endpoint policy as in the bucket policy.
    #[tokio::test]
    async fn vpc_source_ip_is_the_callers_address_through_an_endpoint_only() {
        let cond = |key: &str, net: &str| format!(r#"{{"IpAddress":{{"{key}":"{net}"}}}}"#);
        let allow = |resource: &str, condition: &str| {
            format!(
                r#"{{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"{resource}","Condition":{condition}}}"#
            )
        };
        let endpoint_policy = format!(
            r#"{{"Statement":[{},{}]}}"#,
            allow("arn:aws:s3:::bkt/vpc/*", &cond("aws:VpcSourceIp", "127.0.0.0/8")),
            r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::bkt/*"}"#
        );
        let bucket_policy = format!(
            r#"{{"Version":"2012-10-17","Statement":[{},{},{}]}}"#,
            allow("arn:aws:s3:::bkt/vpc/*", &cond("aws:VpcSourceIp", "127.0.0.0/8")),
            allow("arn:aws:s3:::bkt/other-vpc/*", &cond("aws:VpcSourceIp", "10.0.1.0/24")),
            allow("arn:aws:s3:::bkt/public/*", &cond("aws:SourceIp", "127.0.0.0/8")),
        );
        let mut world = crate::model::World::new("t", "us-east-1").unwrap();
        world.endpoints.push(crate::model::Endpoint {
            id: "vpce-0123abcd".into(),
            vpc: "vpc-42".into(),
            service: "com.amazonaws.us-east-1.s3".into(),
            route_tables: Vec::new(),
            policy: Some(endpoint_policy),
        });
        let access =
            Access::from_world(&world, std::time::Duration::ZERO, None, std::time::Instant::now());
        let access = Arc::new(arc_swap::ArcSwap::from_pointee(access));
        let denied_by = |r: &Resp| {
            r.headers.iter().find(|(k, _)| k == "x-vpcsim-denied-by").map(|(_, v)| v.clone())
        };
        for (through_endpoint, expected) in [(true, [200, 403, 403]), (false, [403, 403, 200])] {
            let (addr, _dir, store, _) =
                start_full(through_endpoint, "us-east-1", [127, 0, 0, 1], Some(access.clone()))
                    .await;
            store.set_bucket_policy("bkt", Some(bucket_policy.clone())).unwrap();
            for (key, want) in ["vpc/k", "other-vpc/k", "public/k"].iter().zip(expected) {
                store.put_object("bkt", key, b"data", None).unwrap();
                let r = req(addr, "GET", &format!("/bkt/{key}"), &[], b"").await;
                assert_eq!(
                    r.status,
                    want,
                    "{key} through the endpoint: {through_endpoint}, denied by {:?}",
                    denied_by(&r)
                );
            }
        }
    }

    async fn start_full(
        with_origin: bool,
        region: &str,
        bind_ip: [u8; 4],
        access: Option<Arc<arc_swap::ArcSwap<Access>>>,
    ) -> (SocketAddr, TempDir, Arc<Store>, Seen) {
        start_timed(with_origin, region, bind_ip, access, Timeouts::DEFAULT).await
    }

    /// A stub with its own timeouts (tests of them use short ones).
    async fn start_timed(
        with_origin: bool,
        region: &str,
        bind_ip: [u8; 4],
        access: Option<Arc<arc_swap::ArcSwap<Access>>>,
        timeouts: Timeouts,
    ) -> (SocketAddr, TempDir, Arc<Store>, Seen) {
        let dir = TempDir::new("s3srv");
        let store = Arc::new(Store::open(&dir.0).unwrap());
        store.create_bucket("bkt", "us-east-1", None).unwrap();
        store.create_bucket("eu-bkt", "eu-west-1", None).unwrap();
        let seen: Seen = Arc::default();
        let seen2 = seen.clone();
        let state = Arc::new(S3State {
            store: store.clone(),
            region: region.into(),
            origin: Arc::new(move |peer, local| {
                seen2.lock().unwrap().push((peer, local));
                with_origin.then(|| EndpointOrigin {
                    vpce_id: "vpce-0123abcd".into(),
                    vpc_id: "vpc-42".into(),
                })
            }),
            access,
            // 127.0.0.2 plays eu-west-1's S3 (see `region_from_local_address`).
            region_of: Arc::new(|ip| {
                (ip == IpAddr::from([127, 0, 0, 2])).then(|| "eu-west-1".to_string())
            }),
            timeouts,
        });
        let listener = TcpListener::bind((std::net::Ipv4Addr::from(bind_ip), 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, state));
        (addr, dir, store, seen)
    }

    fn xml_values(body: &str, tag: &str) -> Vec<String> {
        let open = format!("<{tag}>");
        let close = format!("</{tag}>");
        body.split(&open).skip(1).map(|s| s.split(&close).next().unwrap().to_string()).collect()
    }

    #[tokio::test]
    async fn put_get_roundtrip_large() {
        let (addr, _dir, _store, _) = start(false).await;
        let data: Vec<u8> = (0..5 * 1024 * 1024 + 123)
            .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let md5 = hex::encode(Md5::digest(&data));
        let r = req(
            addr,
            "PUT",
            "/bkt/big/object.bin",
            &[("Content-Type", "application/x-test")],
            &data,
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("etag").unwrap(), format!("\"{md5}\""));
        let r = req(addr, "GET", "/bkt/big/object.bin", &[], b"").await;
        assert_eq!(r.status, 200);
        assert_eq!(hex::encode(Md5::digest(&r.body)), md5);
        assert_eq!(r.body.len(), data.len());
        assert_eq!(r.header("content-type"), Some("application/x-test"));
        assert_eq!(r.header("etag").unwrap(), format!("\"{md5}\""));
        assert!(r.header("last-modified").unwrap().ends_with(" GMT"));
        assert_eq!(r.header("server"), Some("AmazonS3"));
        assert!(r.header("date").is_some());
        assert!(r.header("x-amz-id-2").is_some());
        assert_eq!(r.header("x-amz-request-id").unwrap().len(), 16);
    }

    #[tokio::test]
    async fn head_range_delete_and_keepalive() {
        let (addr, _dir, _store, seen) = start(false).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        let body = b"0123456789abcdefghij";
        let r = send(&mut s, "PUT", "/bkt/r.txt", &[], body).await;
        assert_eq!(r.status, 200);
        let r = send(&mut s, "HEAD", "/bkt/r.txt", &[], b"").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-length"), Some("20"));
        assert_eq!(r.header("content-type"), Some("binary/octet-stream"));
        assert_eq!(r.header("etag").unwrap(), format!("\"{}\"", hex::encode(Md5::digest(body))));
        for (range, want, cr) in [
            ("bytes=2-5", &b"2345"[..], "bytes 2-5/20"),
            ("bytes=15-", b"fghij", "bytes 15-19/20"),
            ("bytes=-3", b"hij", "bytes 17-19/20"),
            ("bytes=18-100", b"ij", "bytes 18-19/20"),
        ] {
            let r = send(&mut s, "GET", "/bkt/r.txt", &[("Range", range)], b"").await;
            assert_eq!(r.status, 206, "{range}");
            assert_eq!(r.body, want, "{range}");
            assert_eq!(r.header("content-range"), Some(cr));
        }
        let r = send(&mut s, "GET", "/bkt/r.txt", &[("Range", "bytes=20-")], b"").await;
        assert_eq!(r.status, 416);
        assert_eq!(xml_values(&r.text(), "Code"), ["InvalidRange"]);
        assert_eq!(r.header("content-range"), Some("bytes */20"));
        let r = send(&mut s, "GET", "/bkt/r.txt?response-content-type=text/x-over", &[], b"").await;
        assert_eq!(r.header("content-type"), Some("text/x-over"));
        let r = send(&mut s, "DELETE", "/bkt/r.txt", &[], b"").await;
        assert_eq!(r.status, 204);
        let r = send(&mut s, "DELETE", "/bkt/r.txt", &[], b"").await;
        assert_eq!(r.status, 204);
        let r = send(&mut s, "HEAD", "/bkt/r.txt", &[], b"").await;
        assert_eq!(r.status, 404);
        assert!(r.header("x-amz-request-id").is_some());
        let r = send(&mut s, "GET", "/bkt/r.txt", &[], b"").await;
        assert_eq!(r.status, 404);
        // All of it on one keep-alive connection: origin consulted exactly once, with our addresses.
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen, [(s.local_addr().unwrap(), addr)]);
    }

    #[tokio::test]
    async fn errors_are_s3_xml() {
        let (addr, _dir, _store, _) = start(false).await;
        let r = req(addr, "GET", "/nobucket/k", &[], b"").await;
        assert_eq!(r.status, 404);
        let t = r.text();
        assert!(
            t.starts_with(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>NoSuchBucket</Code>"
            ),
            "{t}"
        );
        assert_eq!(xml_values(&t, "Message"), ["The specified bucket does not exist"]);
        assert_eq!(xml_values(&t, "BucketName"), ["nobucket"]);
        assert_eq!(xml_values(&t, "RequestId"), [r.header("x-amz-request-id").unwrap()]);
        assert_eq!(r.header("content-type"), Some("application/xml"));

        let r = req(addr, "GET", "/bkt/no%20such%20%3Ckey%3E", &[], b"").await;
        assert_eq!(r.status, 404);
        let t = r.text();
        assert_eq!(xml_values(&t, "Code"), ["NoSuchKey"]);
        assert_eq!(xml_values(&t, "Message"), ["The specified key does not exist."]);
        assert_eq!(xml_values(&t, "Key"), ["no such &lt;key&gt;"]);

        let r = req(addr, "PUT", "/nobucket/k", &[], b"abc").await;
        assert_eq!(
            (r.status, xml_values(&r.text(), "Code")),
            (404, vec!["NoSuchBucket".to_string()])
        );
        let r = req(addr, "GET", "/Bad_Bucket/k", &[], b"").await;
        assert_eq!(
            (r.status, xml_values(&r.text(), "Code")),
            (400, vec!["InvalidBucketName".to_string()])
        );
        let r = req(addr, "PATCH", "/bkt/k", &[], b"").await;
        assert_eq!(
            (r.status, xml_values(&r.text(), "Code")),
            (405, vec!["MethodNotAllowed".to_string()])
        );
        let r = req(addr, "GET", "/bkt?tagging", &[], b"").await;
        assert_eq!(
            (r.status, xml_values(&r.text(), "Code")),
            (501, vec!["NotImplemented".to_string()])
        );
        let r = req(addr, "POST", "/bkt/k", &[], b"").await;
        assert_eq!(r.status, 501);
        let r = req(addr, "GET", "/bkt?list-type=2&max-keys=abc", &[], b"").await;
        assert_eq!(
            (r.status, xml_values(&r.text(), "Code")),
            (400, vec!["InvalidArgument".to_string()])
        );
        let r = req(addr, "HEAD", "/nobucket", &[], b"").await;
        assert_eq!(r.status, 404);
        let r = req(addr, "HEAD", "/bkt", &[], b"").await;
        assert_eq!((r.status, r.header("x-amz-bucket-region")), (200, Some("us-east-1")));
        // Signed-request headers and presigned query parameters are accepted as-is.
        let r = req(
            addr,
            "PUT",
            "/bkt/signed?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=00&x-id=PutObject",
            &[
                ("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00"),
                ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
                ("x-amz-date", "20240101T000000Z"),
            ],
            b"signed",
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }

    #[tokio::test]
    async fn content_md5_checked() {
        let (addr, _dir, store, _) = start(false).await;
        let good = base64_encode(&Md5::digest(b"hello"));
        let bad = base64_encode(&Md5::digest(b"other"));
        let r = req(addr, "PUT", "/bkt/m", &[("Content-MD5", &bad)], b"hello").await;
        assert_eq!((r.status, xml_values(&r.text(), "Code")), (400, vec!["BadDigest".to_string()]));
        assert!(store.head_object("bkt", "m").is_err());
        let r = req(addr, "PUT", "/bkt/m", &[("Content-MD5", "not base64!")], b"hello").await;
        assert_eq!(
            (r.status, xml_values(&r.text(), "Code")),
            (400, vec!["InvalidDigest".to_string()])
        );
        let r = req(addr, "PUT", "/bkt/m", &[("Content-MD5", &good)], b"hello").await;
        assert_eq!(r.status, 200);
        assert_eq!(store.get_object_bytes("bkt", "m").unwrap().1, b"hello");
    }

    /// "Amazon S3 independently calculates a checksum on the server side and validates it
    /// against the provided value before durably storing the object and its checksum in the
    /// object's metadata." (AWS SDKs and Tools guide, Data Integrity Protections for S3)
    #[tokio::test]
    async fn flexible_checksums_checked_stored_and_returned() {
        use crate::services::checksum::Hasher;
        let (addr, _dir, store, _) = start(false).await;
        let sum = |a: Algorithm, data: &[u8]| {
            let mut h = Hasher::new(a);
            h.update(data);
            h.finish().value
        };
        let crc = sum(Algorithm::Crc32, b"hello");
        assert_eq!(crc, "NhCmhg==");
        // A wrong value: BadDigest, nothing stored; an older object under the key stays.
        store.put_object("bkt", "c", b"old", None).unwrap();
        let r = req(addr, "PUT", "/bkt/c", &[("x-amz-checksum-crc32", "AAAAAA==")], b"hello").await;
        assert_eq!((r.status, xml_values(&r.text(), "Code")), (400, vec!["BadDigest".to_string()]));
        assert_eq!(
            xml_values(&r.text(), "Message"),
            ["The CRC32 you specified did not match the calculated checksum."]
        );
        assert_eq!(store.get_object_bytes("bkt", "c").unwrap().1, b"old");
        // Malformed values, two checksums, an algorithm without a value: InvalidRequest.
        for h in [
            vec![("x-amz-checksum-crc32", "AAAA")],
            vec![("x-amz-checksum-sha256", crc.as_str())],
            vec![("x-amz-checksum-crc32", crc.as_str()), ("x-amz-checksum-crc32c", "AAAAAA==")],
            vec![("x-amz-sdk-checksum-algorithm", "CRC32")],
            vec![("x-amz-sdk-checksum-algorithm", "MD5"), ("x-amz-checksum-crc32", crc.as_str())],
            vec![("x-amz-trailer", "x-amz-checksum-md5")],
        ] {
            let r = req(addr, "PUT", "/bkt/c", &h, b"hello").await;
            assert_eq!(
                (r.status, xml_values(&r.text(), "Code")),
                (400, vec!["InvalidRequest".to_string()]),
                "{h:?}"
            );
        }
        // An algorithm header naming another algorithm than the value's: BadDigest.
        let r = req(
            addr,
            "PUT",
            "/bkt/c",
            &[("x-amz-sdk-checksum-algorithm", "SHA1"), ("x-amz-checksum-crc32", &crc)],
            b"hello",
        )
        .await;
        assert_eq!((r.status, xml_values(&r.text(), "Code")), (400, vec!["BadDigest".to_string()]));
        assert_eq!(store.get_object_bytes("bkt", "c").unwrap().1, b"old");

        // Each algorithm: stored and returned on PUT, and on GET/HEAD in checksum mode only.
        for a in Algorithm::ALL {
            let v = sum(a, b"hello");
            let h = [("x-amz-sdk-checksum-algorithm", a.name()), (a.header(), v.as_str())];
            let r = req(addr, "PUT", "/bkt/c", &h, b"hello").await;
            assert_eq!(r.status, 200, "{}: {}", a.name(), r.text());
            assert_eq!(r.header(a.header()), Some(v.as_str()));
            assert_eq!(r.header("x-amz-checksum-type"), Some("FULL_OBJECT"));
            let r = req(addr, "GET", "/bkt/c", &[], b"").await;
            assert_eq!(r.header(a.header()), None, "only in checksum mode");
            let mode = [("x-amz-checksum-mode", "ENABLED")];
            for m in ["GET", "HEAD"] {
                let r = req(addr, m, "/bkt/c", &mode, b"").await;
                assert_eq!(r.header(a.header()), Some(v.as_str()), "{m} {}", a.name());
            }
            let r = req(addr, "GET", "/bkt/c", &[mode[0], ("range", "bytes=0-1")], b"").await;
            assert_eq!((r.status, r.header(a.header())), (206, None), "not for a range");
        }
        // Without a checksum, S3 adds CRC64NVME.
        let r = req(addr, "PUT", "/bkt/d", &[], b"hello").await;
        let nvme = sum(Algorithm::Crc64Nvme, b"hello");
        assert_eq!(r.header("x-amz-checksum-crc64nvme"), Some(nvme.as_str()));
        let r = req(addr, "GET", "/bkt?list-type=2&prefix=d", &[], b"").await;
        assert_eq!(xml_values(&r.text(), "ChecksumAlgorithm"), ["CRC64NVME"]);
        // A copy keeps the algorithm, recomputed over the bytes copied.
        req(
            addr,
            "PUT",
            "/bkt/s",
            &[("x-amz-checksum-sha1", &sum(Algorithm::Sha1, b"hello"))],
            b"hello",
        )
        .await;
        let r = req(addr, "PUT", "/bkt/s2", &[("x-amz-copy-source", "/bkt/s")], b"").await;
        assert_eq!(xml_values(&r.text(), "ChecksumSHA1"), [sum(Algorithm::Sha1, b"hello")]);

        // A trailing checksum after an aws-chunked body: checked the same way.
        let chunked = |trailer: &str| format!("5\r\nhello\r\n0\r\n{trailer}\r\n\r\n").into_bytes();
        let th = [
            ("content-encoding", "aws-chunked"),
            ("x-amz-content-sha256", "STREAMING-UNSIGNED-PAYLOAD-TRAILER"),
            ("x-amz-decoded-content-length", "5"),
            ("x-amz-trailer", "x-amz-checksum-crc32"),
        ];
        let r = req(addr, "PUT", "/bkt/t", &th, &chunked("x-amz-checksum-crc32:AAAAAA==")).await;
        assert_eq!((r.status, xml_values(&r.text(), "Code")), (400, vec!["BadDigest".to_string()]));
        assert!(store.head_object("bkt", "t").is_err());
        let r = req(addr, "PUT", "/bkt/t", &th, &chunked("x-amz-other:1")).await;
        assert_eq!(
            (r.status, xml_values(&r.text(), "Code")),
            (400, vec!["InvalidRequest".to_string()]),
            "the announced trailer is missing"
        );
        let r =
            req(addr, "PUT", "/bkt/t", &th, &chunked(&format!("x-amz-checksum-crc32:{crc}"))).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(store.head_object("bkt", "t").unwrap().checksum.unwrap().value, crc);

        // A part: checked when uploaded; the completed object has a full-object CRC64NVME.
        let r = req(addr, "POST", "/bkt/mp?uploads", &[], b"").await;
        let id = xml_values(&r.text(), "UploadId").remove(0);
        let path = format!("/bkt/mp?partNumber=1&uploadId={id}");
        let r = req(addr, "PUT", &path, &[("x-amz-checksum-crc32", "AAAAAA==")], b"hello").await;
        assert_eq!((r.status, xml_values(&r.text(), "Code")), (400, vec!["BadDigest".to_string()]));
        let r = req(addr, "PUT", &path, &[("x-amz-checksum-crc32", &crc)], b"hello").await;
        assert_eq!((r.status, r.header("x-amz-checksum-crc32")), (200, Some(crc.as_str())));
        let etag = r.header("etag").unwrap().to_string();
        let done = format!(
            "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{etag}</ETag></Part></CompleteMultipartUpload>"
        );
        let r = req(addr, "POST", &format!("/bkt/mp?uploadId={id}"), &[], done.as_bytes()).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(store.head_object("bkt", "mp").unwrap().checksum.unwrap().value, nvme);
    }

    /// S3 user guide, "Checking object integrity": an upload created with an algorithm gets a
    /// composite checksum (the checksum of the parts' checksums, `-<parts>`) or a full-object
    /// one; CompleteMultipartUpload must name each part's checksum for a composite one, and
    /// every value it names is checked.
    #[tokio::test]
    async fn multipart_checksums_composite_and_full_object() {
        use crate::services::checksum::Hasher;
        let (addr, _dir, store, _) = start(false).await;
        let raw = |a: Algorithm, data: &[u8]| {
            let mut h = Hasher::new(a);
            h.update(data);
            h.finish_raw()
        };
        let b64 = |a: Algorithm, data: &[u8]| base64_encode(&raw(a, data));
        let create = |headers: Vec<(&'static str, &'static str)>| async move {
            let r = req(addr, "POST", "/bkt/mp?uploads", &headers, b"").await;
            (r.status, r.header("x-amz-checksum-type").map(str::to_string), r.text())
        };
        // Refused pairs, and a type without an algorithm.
        for h in [
            vec![("x-amz-checksum-algorithm", "CRC64NVME"), ("x-amz-checksum-type", "COMPOSITE")],
            vec![("x-amz-checksum-algorithm", "SHA256"), ("x-amz-checksum-type", "FULL_OBJECT")],
            vec![("x-amz-checksum-type", "FULL_OBJECT")],
            vec![("x-amz-checksum-algorithm", "MD5")],
        ] {
            let (status, _, text) = create(h.clone()).await;
            assert_eq!(
                (status, xml_values(&text, "Code")),
                (400, vec!["InvalidRequest".into()]),
                "{h:?}"
            );
        }
        // CRC32, composite by default.
        let (status, kind, text) = create(vec![("x-amz-checksum-algorithm", "CRC32")]).await;
        assert_eq!((status, kind.as_deref()), (200, Some("COMPOSITE")));
        let id = xml_values(&text, "UploadId").remove(0);
        let path = format!("/bkt/mp?partNumber=1&uploadId={id}");
        let sha = b64(Algorithm::Sha256, b"hello");
        let r = req(addr, "PUT", &path, &[("x-amz-checksum-sha256", &sha)], b"hello").await;
        assert_eq!(xml_values(&r.text(), "Code"), ["InvalidRequest"], "another algorithm");
        let crc = b64(Algorithm::Crc32, b"hello");
        let r = req(addr, "PUT", &path, &[("x-amz-checksum-crc32", &crc)], b"hello").await;
        let etag = r.header("etag").unwrap().to_string();
        // ListParts shows each part's checksum and the upload's algorithm and type.
        let r = req(addr, "GET", &format!("/bkt/mp?uploadId={id}"), &[], b"").await;
        let listed = r.text();
        assert_eq!(xml_values(&listed, "ChecksumCRC32"), std::slice::from_ref(&crc), "{listed}");
        assert_eq!(xml_values(&listed, "ChecksumAlgorithm"), ["CRC32"], "{listed}");
        assert_eq!(xml_values(&listed, "ChecksumType"), ["COMPOSITE"], "{listed}");
        let done = |sum: &str| {
            format!(
                "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{etag}</ETag>{sum}</Part></CompleteMultipartUpload>"
            )
        };
        let complete = format!("/bkt/mp?uploadId={id}");
        let r = req(addr, "POST", &complete, &[], done("").as_bytes()).await;
        assert!(r.text().contains("It was missing for part 1"), "{}", r.text());
        let bad = done("<ChecksumCRC32>AAAAAA==</ChecksumCRC32>");
        let r = req(addr, "POST", &complete, &[], bad.as_bytes()).await;
        assert_eq!((r.status, xml_values(&r.text(), "Code")), (400, vec!["BadDigest".into()]));
        assert!(store.head_object("bkt", "mp").is_err(), "nothing written");
        let good = done(&format!("<ChecksumCRC32>{crc}</ChecksumCRC32>"));
        let r = req(addr, "POST", &complete, &[], good.as_bytes()).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let composite = format!("{}-1", b64(Algorithm::Crc32, &raw(Algorithm::Crc32, b"hello")));
        assert_eq!(xml_values(&r.text(), "ChecksumCRC32"), std::slice::from_ref(&composite));
        assert_eq!(xml_values(&r.text(), "ChecksumType"), ["COMPOSITE"]);
        let r = req(addr, "HEAD", "/bkt/mp", &[("x-amz-checksum-mode", "ENABLED")], b"").await;
        assert_eq!(r.header("x-amz-checksum-crc32"), Some(composite.as_str()));
        assert_eq!(r.header("x-amz-checksum-type"), Some("COMPOSITE"));

        // CRC64NVME, full object: the whole object's value is checked.
        let (_, kind, text) = create(vec![("x-amz-checksum-algorithm", "CRC64NVME")]).await;
        assert_eq!(kind.as_deref(), Some("FULL_OBJECT"));
        let id = xml_values(&text, "UploadId").remove(0);
        let r =
            req(addr, "PUT", &format!("/bkt/mp?partNumber=1&uploadId={id}"), &[], b"world").await;
        let etag = r.header("etag").unwrap().to_string();
        let body = format!(
            "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{etag}</ETag></Part></CompleteMultipartUpload>"
        );
        let complete = format!("/bkt/mp?uploadId={id}");
        let r = req(
            addr,
            "POST",
            &complete,
            &[("x-amz-checksum-crc64nvme", "AAAAAAAAAAA=")],
            body.as_bytes(),
        )
        .await;
        assert_eq!((r.status, xml_values(&r.text(), "Code")), (400, vec!["BadDigest".into()]));
        let whole = b64(Algorithm::Crc64Nvme, b"world");
        let r =
            req(addr, "POST", &complete, &[("x-amz-checksum-crc64nvme", &whole)], body.as_bytes())
                .await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(store.head_object("bkt", "mp").unwrap().checksum.unwrap().value, whole);

        // CopyObject takes another algorithm when asked.
        let r = req(
            addr,
            "PUT",
            "/bkt/mp2",
            &[("x-amz-copy-source", "/bkt/mp"), ("x-amz-checksum-algorithm", "SHA256")],
            b"",
        )
        .await;
        assert_eq!(xml_values(&r.text(), "ChecksumSHA256"), [b64(Algorithm::Sha256, b"world")]);
    }

    /// GetObject/HeadObject `partNumber`: "Effectively performs a 'ranged' GET request for
    /// the part specified".
    #[tokio::test]
    async fn get_and_head_by_part_number() {
        let (addr, _dir, store, _) = start(false).await;
        let r = req(addr, "POST", "/bkt/two?uploads", &[], b"").await;
        let id = xml_values(&r.text(), "UploadId").remove(0);
        let big = vec![b'a'; 5 * 1024 * 1024];
        let mut etags = Vec::new();
        for (n, data) in [(1, &big[..]), (2, &b"tail"[..])] {
            let r = req(addr, "PUT", &format!("/bkt/two?partNumber={n}&uploadId={id}"), &[], data)
                .await;
            etags.push(r.header("etag").unwrap().to_string());
        }
        let body = format!(
            "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{}</ETag></Part><Part><PartNumber>2</PartNumber><ETag>{}</ETag></Part></CompleteMultipartUpload>",
            etags[0], etags[1]
        );
        let r = req(addr, "POST", &format!("/bkt/two?uploadId={id}"), &[], body.as_bytes()).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let total = big.len() + 4;
        let r = req(addr, "GET", "/bkt/two?partNumber=2", &[], b"").await;
        assert_eq!((r.status, r.text()), (206, "tail".to_string()));
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes {}-{}/{total}", big.len(), total - 1).as_str())
        );
        assert_eq!(r.header("x-amz-mp-parts-count"), Some("2"));
        let r = req(addr, "HEAD", "/bkt/two?partNumber=1", &[], b"").await;
        assert_eq!((r.status, r.header("content-length")), (206, Some("5242880")));
        let r = req(addr, "GET", "/bkt/two?partNumber=3", &[], b"").await;
        assert_eq!(
            (r.status, xml_values(&r.text(), "Code")),
            (416, vec!["InvalidPartNumber".into()])
        );
        let r = req(addr, "GET", "/bkt/two?partNumber=1", &[("range", "bytes=0-1")], b"").await;
        assert_eq!((r.status, xml_values(&r.text(), "Code")), (400, vec!["InvalidRequest".into()]));
        // An object written whole is one part.
        store.put_object("bkt", "one", b"whole", None).unwrap();
        let r = req(addr, "GET", "/bkt/one?partNumber=1", &[], b"").await;
        assert_eq!(
            (r.status, r.text(), r.header("x-amz-mp-parts-count")),
            (206, "whole".into(), None)
        );
        let r = req(addr, "GET", "/bkt/one?partNumber=2", &[], b"").await;
        assert_eq!(r.status, 416);
    }

    #[tokio::test]
    async fn aws_chunked_put() {
        let (addr, _dir, store, _) = start(false).await;
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let mut payload = Vec::new();
        for chunk in data.chunks(65_536) {
            payload.extend_from_slice(
                format!("{:x};chunk-signature={}\r\n", chunk.len(), "a".repeat(64)).as_bytes(),
            );
            payload.extend_from_slice(chunk);
            payload.extend_from_slice(b"\r\n");
        }
        payload
            .extend_from_slice(format!("0;chunk-signature={}\r\n\r\n", "b".repeat(64)).as_bytes());
        let dl = data.len().to_string();
        let r = req(
            addr,
            "PUT",
            "/bkt/chunked",
            &[
                ("Content-Encoding", "aws-chunked"),
                ("x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"),
                ("x-amz-decoded-content-length", &dl),
                ("Expect", "100-continue"),
            ],
            &payload,
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("etag").unwrap(), format!("\"{}\"", hex::encode(Md5::digest(&data))));
        assert_eq!(store.get_object_bytes("bkt", "chunked").unwrap().1, data);
        // Unsigned trailer variant, announced only through x-amz-content-sha256.
        let payload = b"4\r\nabcd\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n";
        let r = req(
            addr,
            "PUT",
            "/bkt/chunked2",
            &[
                ("x-amz-content-sha256", "STREAMING-UNSIGNED-PAYLOAD-TRAILER"),
                ("x-amz-decoded-content-length", "4"),
            ],
            payload,
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(store.get_object_bytes("bkt", "chunked2").unwrap().1, b"abcd");
        // Decoded length mismatch is rejected.
        let r = req(
            addr,
            "PUT",
            "/bkt/chunked3",
            &[("Content-Encoding", "aws-chunked"), ("x-amz-decoded-content-length", "5")],
            payload,
        )
        .await;
        assert_eq!(r.status, 400);
        assert!(store.head_object("bkt", "chunked3").is_err());
    }

    #[tokio::test]
    async fn list_v2_prefix_delimiter_pagination() {
        let (addr, _dir, _store, _) = start(false).await;
        for k in [
            "photos/2024/a.jpg",
            "photos/2024/b.jpg",
            "photos/2025/c.jpg",
            "photos/x.jpg",
            "photos/y.jpg",
            "readme",
        ] {
            assert_eq!(req(addr, "PUT", &format!("/bkt/{k}"), &[], k.as_bytes()).await.status, 200);
        }
        // Without delimiter, max-keys=2 over the 5 keys under photos/.
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        let mut pages = 0;
        loop {
            let mut target = "/bkt?list-type=2&prefix=photos%2F&max-keys=2".to_string();
            if let Some(t) = &token {
                target.push_str(&format!("&continuation-token={t}"));
            }
            let r = req(addr, "GET", &target, &[], b"").await;
            assert_eq!(r.status, 200);
            let t = r.text();
            assert!(
                t.contains("<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"),
                "{t}"
            );
            assert_eq!(xml_values(&t, "Name"), ["bkt"]);
            assert_eq!(xml_values(&t, "MaxKeys"), ["2"]);
            assert!(t.contains("<StorageClass>STANDARD</StorageClass>"));
            let lm = xml_values(&t, "LastModified");
            assert!(lm.iter().all(|d| d.len() == 24 && d.ends_with(".000Z")), "{lm:?}");
            let page = xml_values(&t, "Key");
            assert_eq!(xml_values(&t, "KeyCount"), [page.len().to_string()]);
            keys.extend(page);
            pages += 1;
            if xml_values(&t, "IsTruncated") == ["true"] {
                token = xml_values(&t, "NextContinuationToken").pop();
                assert!(token.is_some());
            } else {
                assert!(xml_values(&t, "NextContinuationToken").is_empty());
                break;
            }
        }
        assert_eq!(pages, 3);
        assert_eq!(
            keys,
            [
                "photos/2024/a.jpg",
                "photos/2024/b.jpg",
                "photos/2025/c.jpg",
                "photos/x.jpg",
                "photos/y.jpg"
            ]
        );

        // With delimiter: common prefixes count against max-keys and are not repeated.
        let r =
            req(addr, "GET", "/bkt?list-type=2&prefix=photos/&delimiter=/&max-keys=2", &[], b"")
                .await;
        let t = r.text();
        assert_eq!(xml_values(&t, "Prefix"), ["photos/", "photos/2024/", "photos/2025/"]);
        assert_eq!(xml_values(&t, "IsTruncated"), ["true"]);
        let tok = xml_values(&t, "NextContinuationToken").pop().unwrap();
        let r = req(
            addr,
            "GET",
            &format!("/bkt?list-type=2&prefix=photos/&delimiter=/&continuation-token={tok}"),
            &[],
            b"",
        )
        .await;
        let t = r.text();
        assert_eq!(xml_values(&t, "Key"), ["photos/x.jpg", "photos/y.jpg"]);
        assert_eq!(xml_values(&t, "Prefix"), ["photos/"]);
        assert_eq!(xml_values(&t, "IsTruncated"), ["false"]);

        let r = req(addr, "GET", "/bkt?list-type=2&delimiter=/", &[], b"").await;
        let t = r.text();
        assert_eq!(xml_values(&t, "Key"), ["readme"]);
        assert_eq!(xml_values(&t, "Prefix"), ["", "photos/"]);
        let r = req(addr, "GET", "/bkt?list-type=2&start-after=photos/x.jpg", &[], b"").await;
        assert_eq!(xml_values(&r.text(), "Key"), ["photos/y.jpg", "readme"]);

        // v1 with marker.
        let r =
            req(addr, "GET", "/bkt?prefix=photos/&max-keys=3&marker=photos/2024/a.jpg", &[], b"")
                .await;
        let t = r.text();
        assert_eq!(
            xml_values(&t, "Key"),
            ["photos/2024/b.jpg", "photos/2025/c.jpg", "photos/x.jpg"]
        );
        assert_eq!(xml_values(&t, "Marker"), ["photos/2024/a.jpg"]);
        assert_eq!(xml_values(&t, "IsTruncated"), ["true"]);
        // From the ListObjects reference, NextMarker: "This element is returned only if you
        // have the delimiter request parameter specified. If the response does not include the
        // NextMarker element and it is truncated, you can use the value of the last Key element
        // in the response as the marker parameter".
        assert!(xml_values(&t, "NextMarker").is_empty(), "{t}");
        let r = req(addr, "GET", "/bkt?prefix=photos/&delimiter=/&max-keys=2", &[], b"").await;
        let t = r.text();
        assert_eq!(xml_values(&t, "Prefix"), ["photos/", "photos/2024/", "photos/2025/"]);
        assert_eq!(xml_values(&t, "IsTruncated"), ["true"]);
        assert_eq!(xml_values(&t, "NextMarker"), ["photos/2025/"]);
        let r =
            req(addr, "GET", "/bkt?prefix=photos/&delimiter=/&marker=photos/2025/", &[], b"").await;
        let t = r.text();
        assert_eq!(xml_values(&t, "Key"), ["photos/x.jpg", "photos/y.jpg"]);
        assert_eq!(xml_values(&t, "IsTruncated"), ["false"]);
        assert!(xml_values(&t, "NextMarker").is_empty(), "{t}");

        // Missing bucket lists as NoSuchBucket.
        let r = req(addr, "GET", "/nobucket?list-type=2", &[], b"").await;
        assert_eq!(r.status, 404);
    }

    #[tokio::test]
    async fn virtual_hosted_style_and_bucket_ops() {
        let (addr, _dir, store, _) = start(false).await;
        let r =
            req(addr, "PUT", "/dir/v.txt", &[("Host", "bkt.s3.us-east-1.amazonaws.com")], b"vhost")
                .await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(store.get_object_bytes("bkt", "dir/v.txt").unwrap().1, b"vhost");
        for host in [
            "bkt.s3.amazonaws.com",
            "bkt.s3-external-1.amazonaws.com",
            "bkt.s3.dualstack.us-east-1.amazonaws.com:80",
        ] {
            let r = req(addr, "GET", "/dir/v.txt", &[("Host", host)], b"").await;
            assert_eq!((r.status, r.body.as_slice()), (200, &b"vhost"[..]), "{host}");
        }
        // Bare service name and IP hosts mean path style.
        let r = req(addr, "GET", "/bkt/dir/v.txt", &[("Host", "s3.us-east-1.amazonaws.com")], b"")
            .await;
        assert_eq!(r.body, b"vhost");
        let r = req(addr, "GET", "/?list-type=2", &[("Host", "bkt.s3.amazonaws.com")], b"").await;
        assert_eq!(xml_values(&r.text(), "Key"), ["dir/v.txt"]);
        let r = req(addr, "GET", "/?location", &[("Host", "bkt.s3.amazonaws.com")], b"").await;
        assert!(
            r.text().ends_with(
                "<LocationConstraint xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"/>"
            ),
            "{}",
            r.text()
        );
        let r = req(addr, "GET", "/eu-bkt?location", &[], b"").await;
        assert!(r.text().ends_with(">eu-west-1</LocationConstraint>"), "{}", r.text());
        let r = req(addr, "GET", "/", &[], b"").await;
        assert_eq!(r.status, 200);
        let t = r.text();
        assert!(
            t.contains(
                "<ListAllMyBucketsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
            ),
            "{t}"
        );
        assert_eq!(xml_values(&t, "Name"), ["bkt", "eu-bkt"]);
        // CreateBucket with a location constraint, then a duplicate.
        let cfg = b"<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><LocationConstraint>ap-south-1</LocationConstraint></CreateBucketConfiguration>";
        let r = req(addr, "PUT", "/newbkt", &[], cfg).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(store.bucket("newbkt").unwrap().region, "ap-south-1");
        let location = r.headers.iter().find(|(k, _)| k == "location").map(|(_, v)| v.as_str());
        assert_eq!(location, Some("http://newbkt.s3.amazonaws.com/"));
        let r = req(addr, "PUT", "/newbkt", &[], b"").await;
        assert_eq!(r.status, 409);
    }

    #[tokio::test]
    async fn create_bucket_refuses_a_bad_configuration_and_creates_nothing() {
        let (addr, _dir, store, _) = start(false).await;
        let cfg = |c: &str| {
            format!("<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><LocationConstraint>{c}</LocationConstraint></CreateBucketConfiguration>").into_bytes()
        };
        let cases: [(&str, Vec<u8>, &str); 5] = [
            ("garbage", b"not xml at all".to_vec(), "MalformedXML"),
            (
                "unclosed",
                b"<CreateBucketConfiguration><LocationConstraint>".to_vec(),
                "MalformedXML",
            ),
            (
                "another-root",
                b"<Foo><LocationConstraint>eu-west-1</LocationConstraint></Foo>".to_vec(),
                "MalformedXML",
            ),
            ("nowhere", cfg("nowhere-1"), "InvalidLocationConstraint"),
            // S3: a us-east-1 bucket is created without a configuration; naming it is refused.
            ("virginia", cfg("us-east-1"), "InvalidLocationConstraint"),
        ];
        for (name, body, code) in cases {
            let r = req(addr, "PUT", &format!("/bad-{name}"), &[], &body).await;
            assert_eq!(
                (r.status, xml_values(&r.text(), "Code")),
                (400, vec![code.to_string()]),
                "{name}"
            );
            assert!(store.bucket(&format!("bad-{name}")).is_none(), "{name} was created");
        }
        // EU is eu-west-1's old name; an empty constraint is the endpoint's region.
        assert_eq!(req(addr, "PUT", "/old-eu", &[], &cfg("EU")).await.status, 200);
        assert_eq!(store.bucket("old-eu").unwrap().region, "eu-west-1");
        assert_eq!(req(addr, "PUT", "/no-constraint", &[], &cfg("")).await.status, 200);
        assert_eq!(store.bucket("no-constraint").unwrap().region, "us-east-1");
        // Creating again a bucket one owns: 200 in us-east-1 ("for legacy compatibility"),
        // 409 BucketAlreadyOwnedByYou in any other region.
        store.put_object("no-constraint", "kept", b"x", None).unwrap();
        assert_eq!(req(addr, "PUT", "/no-constraint", &[], b"").await.status, 200);
        assert!(store.head_object("no-constraint", "kept").is_ok());
        let r = req(addr, "PUT", "/old-eu", &[], &cfg("EU")).await;
        assert_eq!(
            (r.status, xml_values(&r.text(), "Code")),
            (409, vec!["BucketAlreadyOwnedByYou".to_string()])
        );
        // Created again from another region, in either direction, the bucket is still one's
        // own: 409 BucketAlreadyOwnedByYou, not BucketAlreadyExists (a name held by another
        // account), and not the legacy 200 for a bucket outside us-east-1.
        for (bucket, body) in [("/old-eu", Vec::new()), ("/no-constraint", cfg("eu-west-1"))] {
            let r = req(addr, "PUT", bucket, &[], &body).await;
            assert_eq!(
                (r.status, xml_values(&r.text(), "Code")),
                (409, vec!["BucketAlreadyOwnedByYou".to_string()]),
                "{bucket}"
            );
        }
        assert_eq!(store.bucket("old-eu").unwrap().region, "eu-west-1");
        assert_eq!(store.bucket("no-constraint").unwrap().region, "us-east-1");
    }

    #[tokio::test]
    async fn vpcsim_headers_follow_origin() {
        let (with, _d1, _s1, _) = start(true).await;
        let (without, _d2, _s2, _) = start(false).await;
        let r = req(with, "GET", "/bkt/missing", &[], b"").await;
        assert_eq!(r.header("x-vpcsim-source-ip"), Some("127.0.0.1"));
        assert_eq!(r.header("x-vpcsim-vpce"), Some("vpce-0123abcd"));
        assert_eq!(r.header("x-vpcsim-vpc"), Some("vpc-42"));
        let r = req(without, "GET", "/bkt/missing", &[], b"").await;
        assert_eq!(r.header("x-vpcsim-source-ip"), Some("127.0.0.1"));
        assert_eq!(r.header("x-vpcsim-vpce"), None);
        assert_eq!(r.header("x-vpcsim-vpc"), None);
        let r = req(with, "GET", "/", &[], b"").await;
        assert_eq!(r.header("x-vpcsim-vpce"), Some("vpce-0123abcd"));
    }

    #[tokio::test]
    async fn tricky_keys_stored_safely() {
        let (addr, dir, store, _) = start(false).await;
        let keys = [
            ("with%20space", "with space"),
            ("%C3%BCn%C3%AFc%C3%B8d%C3%A9/%E9%94%AE", "ünïcødé/键"),
            ("../../../etc/passwd", "../../../etc/passwd"),
            ("..%2F..%2Fescape", "../../escape"),
            ("a+b%2Bc", "a+b+c"),
            ("dir//double", "dir//double"),
        ];
        for (i, (raw, key)) in keys.iter().enumerate() {
            let r = req(addr, "PUT", &format!("/bkt/{raw}"), &[], format!("v{i}").as_bytes()).await;
            assert_eq!(r.status, 200, "{raw}: {}", r.text());
            assert_eq!(
                store.get_object_bytes("bkt", key).unwrap().1,
                format!("v{i}").as_bytes(),
                "{key}"
            );
            let r = req(addr, "GET", &format!("/bkt/{raw}"), &[], b"").await;
            assert_eq!(r.body, format!("v{i}").as_bytes());
        }
        // Only the buckets directory exists under the root; nothing escaped.
        let top: Vec<_> =
            std::fs::read_dir(&dir.0).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(top, ["buckets"]);
        let r = req(addr, "GET", "/bkt?list-type=2&encoding-type=url", &[], b"").await;
        let t = r.text();
        let listed = xml_values(&t, "Key");
        assert!(listed.contains(&"with%20space".to_string()), "{listed:?}");
        assert!(listed.contains(&"a%2Bb%2Bc".to_string()), "{listed:?}");
        let r = req(addr, "GET", "/bkt?list-type=2&prefix=with", &[], b"").await;
        assert_eq!(xml_values(&r.text(), "Key"), ["with space"]);
    }

    /// 200 MB through PUT and GET without buffering the object (run with `--ignored --release`).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore]
    async fn put_get_200mb_streamed() {
        let (addr, _dir, _store, _) = start(false).await;
        const SIZE: usize = 200 * 1024 * 1024;
        let block: Vec<u8> =
            (0..1024 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
        let mut md5 = Md5::new();
        let mut s = TcpStream::connect(addr).await.unwrap();
        let head = format!("PUT /bkt/huge HTTP/1.1\r\nHost: x\r\nContent-Length: {SIZE}\r\n\r\n");
        s.write_all(head.as_bytes()).await.unwrap();
        for i in 0..SIZE / block.len() {
            let mut b = block.clone();
            b[0] = i as u8;
            md5.update(&b);
            s.write_all(&b).await.unwrap();
        }
        let want = format!("\"{}\"", hex::encode(md5.finalize()));
        let r = read_response(&mut s, false).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("etag"), Some(want.as_str()));
        s.write_all(b"GET /bkt/huge HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut buf = Vec::new();
        let mut byte = [0u8; 1];
        while !buf.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut byte).await.unwrap();
            buf.push(byte[0]);
        }
        assert!(String::from_utf8_lossy(&buf).contains(&format!("content-length: {SIZE}")));
        let mut md5 = Md5::new();
        let mut left = SIZE;
        let mut chunk = vec![0u8; 1 << 20];
        while left > 0 {
            let n = s.read(&mut chunk[..left.min(1 << 20)]).await.unwrap();
            assert!(n > 0);
            md5.update(&chunk[..n]);
            left -= n;
        }
        assert_eq!(format!("\"{}\"", hex::encode(md5.finalize())), want);
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let hwm = status.lines().find(|l| l.starts_with("VmHWM")).unwrap_or("").to_string();
        eprintln!("peak RSS: {hwm}");
        let kb: u64 = hwm.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0);
        assert!(kb < 100 * 1024, "{hwm}");
    }

    #[tokio::test]
    async fn broken_connections_do_not_stop_the_server() {
        let (addr, _dir, _store, _) = start(false).await;
        for junk in [
            &b"GARBAGE\r\n\r\n"[..],
            b"PUT /bkt/x HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nshort",
            b"",
        ] {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(junk).await.unwrap();
            drop(s);
        }
        let r = req(addr, "GET", "/", &[], b"").await;
        assert_eq!(r.status, 200);
        let r = req(addr, "GET", "/bkt/x", &[], b"").await;
        assert_eq!(r.status, 404);
    }

    // --- Multipart, copy, multi-delete, bucket deletion, regions --------------------------------

    const MIB: usize = 1024 * 1024;

    fn pattern(len: usize, seed: u32) -> Vec<u8> {
        (0..len as u32)
            .map(|i| (i.wrapping_add(seed).wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect()
    }

    async fn initiate(addr: SocketAddr, target: &str, headers: &[(&str, &str)]) -> String {
        let r = req(addr, "POST", &format!("{target}?uploads"), headers, b"").await;
        assert_eq!(r.status, 200, "{}", r.text());
        let t = r.text();
        assert!(t.contains("<InitiateMultipartUploadResult xmlns="), "{t}");
        xml_values(&t, "UploadId").pop().unwrap()
    }

    async fn put_part(addr: SocketAddr, target: &str, id: &str, n: u32, data: &[u8]) -> String {
        let r =
            req(addr, "PUT", &format!("{target}?partNumber={n}&uploadId={id}"), &[], data).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let etag = r.header("etag").unwrap().to_string();
        assert_eq!(etag, format!("\"{}\"", hex::encode(Md5::digest(data))));
        etag
    }

    fn complete_xml(parts: &[(u32, &str)]) -> Vec<u8> {
        let mut x = String::from(
            "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">",
        );
        for (n, e) in parts {
            // Escaped quotes, as some SDKs send them.
            let e = e.replace('"', "&quot;");
            x.push_str(&format!("<Part><ETag>{e}</ETag><PartNumber>{n}</PartNumber></Part>"));
        }
        x.push_str("</CompleteMultipartUpload>");
        x.into_bytes()
    }

    #[tokio::test]
    async fn multipart_round_trip_and_errors() {
        let (addr, _dir, store, _) = start(false).await;
        let target = "/bkt/dir/big%20file.bin";
        let id = initiate(
            addr,
            target,
            &[("Content-Type", "application/x-big"), ("x-amz-meta-color", "blue")],
        )
        .await;
        let p1 = pattern(5 * MIB, 1);
        let p2 = pattern(5 * MIB, 2);
        let p3 = pattern(1000, 3);
        let e1 = put_part(addr, target, &id, 1, &p1).await;
        let e3 = put_part(addr, target, &id, 3, &p3).await;
        // Re-uploading a part replaces it.
        put_part(addr, target, &id, 2, b"short").await;
        let e2 = put_part(addr, target, &id, 2, &p2).await;
        // ListParts.
        let r = req(addr, "GET", &format!("{target}?uploadId={id}"), &[], b"").await;
        assert_eq!(r.status, 200, "{}", r.text());
        let t = r.text();
        assert_eq!(xml_values(&t, "PartNumber"), ["1", "2", "3"]);
        assert_eq!(
            xml_values(&t, "Size"),
            [(5 * MIB).to_string(), (5 * MIB).to_string(), "1000".into()]
        );
        let q = |e: &str| e.replace('"', "&quot;");
        assert_eq!(xml_values(&t, "ETag"), [q(&e1), q(&e2), q(&e3)]);
        let r = req(addr, "GET", &format!("{target}?uploadId={id}&max-parts=2"), &[], b"").await;
        let t = r.text();
        assert_eq!(
            (xml_values(&t, "IsTruncated"), xml_values(&t, "NextPartNumberMarker")),
            (vec!["true".into()], vec!["2".into()])
        );
        // ListMultipartUploads.
        let other = initiate(addr, "/bkt/other", &[]).await;
        let r = req(addr, "GET", "/bkt?uploads", &[], b"").await;
        assert_eq!(r.status, 200);
        let t = r.text();
        assert_eq!(xml_values(&t, "Key"), ["dir/big file.bin", "other"]);
        assert_eq!(xml_values(&t, "UploadId"), [id.clone(), other.clone()]);
        let r = req(addr, "GET", "/bkt?uploads&prefix=oth", &[], b"").await;
        assert_eq!(xml_values(&r.text(), "Key"), ["other"]);

        // Errors: order, too small, wrong ETag, unknown id, wrong key.
        let r = req(
            addr,
            "POST",
            &format!("{target}?uploadId={id}"),
            &[],
            &complete_xml(&[(2, &e2), (1, &e1)]),
        )
        .await;
        assert_eq!(
            (r.status, xml_values(&r.text(), "Code")),
            (400, vec!["InvalidPartOrder".to_string()])
        );
        let r = req(
            addr,
            "POST",
            &format!("{target}?uploadId={id}"),
            &[],
            &complete_xml(&[(1, &e1), (3, &e3), (2, &e2)]),
        )
        .await;
        assert_eq!(xml_values(&r.text(), "Code"), ["InvalidPartOrder"]);
        let small = initiate(addr, "/bkt/small", &[]).await;
        let s1 = put_part(addr, "/bkt/small", &small, 1, b"tiny").await;
        let s2 = put_part(addr, "/bkt/small", &small, 2, b"also tiny").await;
        let r = req(
            addr,
            "POST",
            &format!("/bkt/small?uploadId={small}"),
            &[],
            &complete_xml(&[(1, &s1), (2, &s2)]),
        )
        .await;
        let t = r.text();
        assert_eq!((r.status, xml_values(&t, "Code")), (400, vec!["EntityTooSmall".to_string()]));
        assert_eq!(
            xml_values(&t, "Message"),
            ["Your proposed upload is smaller than the minimum allowed size"]
        );
        // The first part under 5 MiB, as S3 names it.
        let fields: Vec<Vec<String>> = ["ProposedSize", "MinSizeAllowed", "PartNumber", "ETag"]
            .iter()
            .map(|f| xml_values(&t, f))
            .collect();
        assert_eq!(fields, [["4"], ["5242880"], ["1"], [s1.trim_matches('"')]]);
        let r =
            req(addr, "POST", &format!("{target}?uploadId={id}"), &[], &complete_xml(&[(1, &e2)]))
                .await;
        assert_eq!(
            (r.status, xml_values(&r.text(), "Code")),
            (400, vec!["InvalidPart".to_string()])
        );
        let r =
            req(addr, "POST", &format!("{target}?uploadId={id}"), &[], &complete_xml(&[(9, &e1)]))
                .await;
        assert_eq!(xml_values(&r.text(), "Code"), ["InvalidPart"]);
        let r = req(addr, "POST", &format!("{target}?uploadId={id}"), &[], b"<nope").await;
        assert_eq!(xml_values(&r.text(), "Code"), ["MalformedXML"]);
        for bad in ["0123456789abcdef", "../../etc", "%2E%2E%2Fx"] {
            let r =
                req(addr, "PUT", &format!("{target}?partNumber=1&uploadId={bad}"), &[], b"x").await;
            assert_eq!(
                (r.status, xml_values(&r.text(), "Code")),
                (404, vec!["NoSuchUpload".to_string()]),
                "{bad}"
            );
        }
        let r =
            req(addr, "PUT", &format!("/bkt/wrongkey?partNumber=1&uploadId={id}"), &[], b"x").await;
        assert_eq!(xml_values(&r.text(), "Code"), ["NoSuchUpload"]);
        let r =
            req(addr, "PUT", &format!("{target}?partNumber=10001&uploadId={id}"), &[], b"x").await;
        assert_eq!(xml_values(&r.text(), "Code"), ["InvalidArgument"]);
        // Nothing visible yet.
        assert!(store.head_object("bkt", "dir/big file.bin").is_err());

        // Complete.
        let r = req(
            addr,
            "POST",
            &format!("{target}?uploadId={id}"),
            &[],
            &complete_xml(&[(1, &e1), (2, &e2), (3, &e3)]),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let t = r.text();
        let mut md5s = Vec::new();
        for e in [&e1, &e2, &e3] {
            md5s.extend(hex::decode(e.trim_matches('"')).unwrap());
        }
        let want = format!("\"{}-3\"", hex::encode(Md5::digest(&md5s)));
        assert_eq!(xml_values(&t, "ETag"), [want.replace('"', "&quot;")]);
        assert_eq!(xml_values(&t, "Key"), ["dir/big file.bin"]);
        let r = req(addr, "GET", target, &[], b"").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("etag"), Some(want.as_str()));
        assert_eq!(r.header("content-type"), Some("application/x-big"));
        assert_eq!(r.header("x-amz-meta-color"), Some("blue"));
        let mut all = p1.clone();
        all.extend(&p2);
        all.extend(&p3);
        assert!(r.body == all, "assembled body differs");
        // The upload is gone.
        let r = req(addr, "GET", &format!("{target}?uploadId={id}"), &[], b"").await;
        assert_eq!(
            (r.status, xml_values(&r.text(), "Code")),
            (404, vec!["NoSuchUpload".to_string()])
        );
        assert_eq!(xml_values(&r.text(), "UploadId"), [id.as_str()]);
        // Abort.
        let r = req(addr, "DELETE", &format!("/bkt/other?uploadId={other}"), &[], b"").await;
        assert_eq!(r.status, 204);
        let r = req(addr, "DELETE", &format!("/bkt/other?uploadId={other}"), &[], b"").await;
        assert_eq!(xml_values(&r.text(), "Code"), ["NoSuchUpload"]);
        let r = req(addr, "GET", "/bkt?uploads", &[], b"").await;
        assert_eq!(xml_values(&r.text(), "Key"), ["small"]);
    }

    #[tokio::test]
    async fn copy_object_and_metadata() {
        let (addr, _dir, store, _) = start(false).await;
        let r = req(
            addr,
            "PUT",
            "/bkt/src%20key",
            &[("Content-Type", "text/x-src"), ("x-amz-meta-owner", "alice")],
            b"copy me",
        )
        .await;
        assert_eq!(r.status, 200);
        let etag = r.header("etag").unwrap().to_string();
        store.create_bucket("bkt2", "us-east-1", None).unwrap();
        for (source, dst) in [("/bkt/src%20key", "/bkt2/c1"), ("bkt/src%20key", "/bkt/c2")] {
            let r = req(addr, "PUT", dst, &[("x-amz-copy-source", source)], b"").await;
            assert_eq!(r.status, 200, "{}", r.text());
            let t = r.text();
            assert!(t.contains("<CopyObjectResult xmlns="), "{t}");
            assert_eq!(xml_values(&t, "ETag"), [etag.replace('"', "&quot;")]);
            assert_eq!(xml_values(&t, "LastModified")[0].len(), 24);
        }
        let (m, body) = store.get_object_bytes("bkt2", "c1").unwrap();
        assert_eq!(body, b"copy me");
        assert_eq!(
            (m.content_type.as_str(), m.user_meta.get("owner").map(String::as_str)),
            ("text/x-src", Some("alice"))
        );
        // UploadPartCopy, whole source and a range.
        let id = initiate(addr, "/bkt/pc", &[]).await;
        let r = req(
            addr,
            "PUT",
            &format!("/bkt/pc?partNumber=1&uploadId={id}"),
            &[("x-amz-copy-source", "/bkt/src%20key"), ("x-amz-copy-source-range", "bytes=0-3")],
            b"",
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let t = r.text();
        assert!(t.contains("<CopyPartResult xmlns="), "{t}");
        let e1 = xml_values(&t, "ETag").pop().unwrap().replace("&quot;", "\"");
        assert_eq!(e1, format!("\"{}\"", hex::encode(Md5::digest(b"copy"))));
        let r = req(
            addr,
            "PUT",
            &format!("/bkt/pc?partNumber=1&uploadId={id}"),
            &[("x-amz-copy-source", "/bkt/src%20key"), ("x-amz-copy-source-range", "bytes=0-99")],
            b"",
        )
        .await;
        // Past the source's end: S3's InvalidArgument (not a GET's InvalidRange).
        let t = r.text();
        assert_eq!(r.status, 400);
        assert_eq!(
            (xml_values(&t, "Code"), xml_values(&t, "Message")),
            (
                vec!["InvalidArgument".to_string()],
                vec!["Range specified is not valid for source object of size: 7".to_string()]
            )
        );
        assert_eq!(xml_values(&t, "ArgumentName"), ["x-amz-copy-source-range"]);
        assert_eq!(xml_values(&t, "ArgumentValue"), ["bytes=0-99"]);
        // Not bytes=first-last: no open or suffix range, as a GET's Range may be.
        for bad in ["bytes=5-", "bytes=-3", "bytes=3-1", "0-3", "bytes=+0-3", "bytes=a-b"] {
            let r = req(
                addr,
                "PUT",
                &format!("/bkt/pc?partNumber=1&uploadId={id}"),
                &[("x-amz-copy-source", "/bkt/src%20key"), ("x-amz-copy-source-range", bad)],
                b"",
            )
            .await;
            let t = r.text();
            assert_eq!((r.status, xml_values(&t, "Code")), (400, vec!["InvalidArgument".into()]));
            assert_eq!(
                xml_values(&t, "Message"),
                [
                    "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy"
                ],
                "{bad}"
            );
            assert_eq!(xml_values(&t, "ArgumentName"), ["x-amz-copy-source-range"]);
            assert_eq!(xml_values(&t, "ArgumentValue"), [bad]);
        }
        let r =
            req(addr, "POST", &format!("/bkt/pc?uploadId={id}"), &[], &complete_xml(&[(1, &e1)]))
                .await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(store.get_object_bytes("bkt", "pc").unwrap().1, b"copy");
        // REPLACE takes the request's metadata.
        let r = req(
            addr,
            "PUT",
            "/bkt/c3",
            &[
                ("x-amz-copy-source", "/bkt/src%20key"),
                ("x-amz-metadata-directive", "REPLACE"),
                ("Content-Type", "text/new"),
                ("x-amz-meta-owner", "bob"),
            ],
            b"",
        )
        .await;
        assert_eq!(r.status, 200);
        let r = req(addr, "HEAD", "/bkt/c3", &[], b"").await;
        assert_eq!(
            (r.header("content-type"), r.header("x-amz-meta-owner")),
            (Some("text/new"), Some("bob"))
        );
        // Copy onto itself without REPLACE is refused; missing sources are reported.
        let r = req(addr, "PUT", "/bkt/c3", &[("x-amz-copy-source", "/bkt/c3")], b"").await;
        assert_eq!(
            (r.status, xml_values(&r.text(), "Code")),
            (400, vec!["InvalidRequest".to_string()])
        );
        let r = req(addr, "PUT", "/bkt/c4", &[("x-amz-copy-source", "/bkt/missing")], b"").await;
        assert_eq!((r.status, xml_values(&r.text(), "Code")), (404, vec!["NoSuchKey".to_string()]));
        let r = req(addr, "PUT", "/bkt/c4", &[("x-amz-copy-source", "/nobkt/x")], b"").await;
        assert_eq!(
            (r.status, xml_values(&r.text(), "Code")),
            (404, vec!["NoSuchBucket".to_string()])
        );
        let r = req(addr, "PUT", "/bkt/c4", &[("x-amz-copy-source", "nokey")], b"").await;
        assert_eq!(r.status, 400);

        // Conditional GET/HEAD.
        let lm = r#"Thu, 01 Jan 2099 00:00:00 GMT"#;
        let old = "Thu, 01 Jan 1970 00:00:00 GMT";
        let r = req(addr, "GET", "/bkt/src%20key", &[("If-None-Match", &etag)], b"").await;
        assert_eq!((r.status, r.header("etag")), (304, Some(etag.as_str())));
        let r = req(addr, "GET", "/bkt/src%20key", &[("If-Match", "\"nope\"")], b"").await;
        assert_eq!(
            (r.status, xml_values(&r.text(), "Code")),
            (412, vec!["PreconditionFailed".to_string()])
        );
        let r = req(addr, "GET", "/bkt/src%20key", &[("If-Match", &etag)], b"").await;
        assert_eq!((r.status, r.body.as_slice()), (200, &b"copy me"[..]));
        let r = req(addr, "HEAD", "/bkt/src%20key", &[("If-Modified-Since", lm)], b"").await;
        assert_eq!(r.status, 304);
        let r = req(addr, "HEAD", "/bkt/src%20key", &[("If-Modified-Since", old)], b"").await;
        assert_eq!(r.status, 200);
        let r = req(addr, "GET", "/bkt/src%20key", &[("If-Unmodified-Since", old)], b"").await;
        assert_eq!(r.status, 412);
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784_111_777));
        assert_eq!(parse_http_date(&http_date(1_700_000_000)), Some(1_700_000_000));
    }

    #[tokio::test]
    async fn delete_objects_and_bucket() {
        let (addr, _dir, store, _) = start(false).await;
        for k in ["a", "b&c", "d"] {
            store.put_object("bkt", k, b"x", None).unwrap();
        }
        let body = b"<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Object><Key>a</Key></Object><Object><Key>b&amp;c</Key></Object><Object><Key>never</Key></Object></Delete>";
        // "The Content-MD5 or x-amz-sdk-checksum-algorithm header is required": refused without,
        // BadDigest with a wrong one, nothing deleted.
        let r = req(addr, "POST", "/bkt?delete", &[], body).await;
        assert_eq!((r.status, xml_values(&r.text(), "Code")), (400, vec!["InvalidRequest".into()]));
        let wrong = base64_encode(&Md5::digest(b"other"));
        let r = req(addr, "POST", "/bkt?delete", &[("Content-MD5", &wrong)], body).await;
        assert_eq!((r.status, xml_values(&r.text(), "Code")), (400, vec!["BadDigest".into()]));
        assert!(store.head_object("bkt", "a").is_ok());
        let md5 = |b: &[u8]| base64_encode(&Md5::digest(b));
        let r = req(addr, "POST", "/bkt?delete", &[("Content-MD5", &md5(body))], body).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let t = r.text();
        assert!(t.contains("<DeleteResult xmlns="), "{t}");
        assert_eq!(xml_values(&t, "Key"), ["a", "b&amp;c", "never"]);
        assert!(store.head_object("bkt", "b&c").is_err());
        let quiet = b"<Delete><Quiet>true</Quiet><Object><Key>d</Key></Object></Delete>";
        // A flexible checksum instead of Content-MD5: checked too.
        let r =
            req(addr, "POST", "/bkt?delete", &[("x-amz-sdk-checksum-algorithm", "CRC32")], quiet)
                .await;
        assert_eq!(xml_values(&r.text(), "Code"), ["InvalidRequest"], "an algorithm, no value");
        let r =
            req(addr, "POST", "/bkt?delete", &[("x-amz-checksum-crc32", "AAAAAA==")], quiet).await;
        assert_eq!(xml_values(&r.text(), "Code"), ["BadDigest"]);
        assert!(store.head_object("bkt", "d").is_ok());
        let crc = {
            let mut h = crate::services::checksum::Hasher::new(Algorithm::Crc32);
            h.update(quiet);
            h.finish().value
        };
        let h = [("x-amz-sdk-checksum-algorithm", "CRC32"), ("x-amz-checksum-crc32", &crc)];
        let r = req(addr, "POST", "/bkt?delete", &h, quiet).await;
        assert_eq!(r.status, 200);
        assert!(xml_values(&r.text(), "Key").is_empty(), "{}", r.text());
        assert!(store.head_object("bkt", "d").is_err());
        let empty = b"<Delete></Delete>";
        let r = req(addr, "POST", "/bkt?delete", &[("Content-MD5", &md5(empty))], empty).await;
        assert_eq!(xml_values(&r.text(), "Code"), ["MalformedXML"]);

        // DeleteBucket: not while objects or uploads remain.
        store.put_object("bkt", "left", b"x", None).unwrap();
        let r = req(addr, "DELETE", "/bkt", &[], b"").await;
        assert_eq!(
            (r.status, xml_values(&r.text(), "Code")),
            (409, vec!["BucketNotEmpty".to_string()])
        );
        store.delete_object("bkt", "left").unwrap();
        let id = initiate(addr, "/bkt/up", &[]).await;
        let r = req(addr, "DELETE", "/bkt", &[], b"").await;
        assert_eq!(xml_values(&r.text(), "Code"), ["BucketNotEmpty"]);
        assert_eq!(
            req(addr, "DELETE", &format!("/bkt/up?uploadId={id}"), &[], b"").await.status,
            204
        );
        let r = req(addr, "DELETE", "/bkt", &[], b"").await;
        assert_eq!(r.status, 204, "{}", r.text());
        assert!(store.bucket("bkt").is_none());
        let r = req(addr, "DELETE", "/bkt", &[], b"").await;
        assert_eq!(r.status, 404);
        // The name can be reused, empty.
        assert_eq!(req(addr, "PUT", "/bkt", &[], b"").await.status, 200);
        let r = req(addr, "GET", "/bkt?list-type=2", &[], b"").await;
        assert!(xml_values(&r.text(), "Key").is_empty());
    }

    /// botocore's S3 model: `Delete.Quiet` is a boolean, "Element to enable quiet mode for the
    /// request. When you add this element, you must set its value to `true`." A value that is not
    /// an `xs:boolean` does not validate against S3's schema: `400 MalformedXML` ("The XML you
    /// provided was not well-formed or did not validate against our published schema"), nothing
    /// deleted. The schema type's other lexical forms (`false`, `1`, `0`) are valid XML for it.
    #[tokio::test]
    async fn a_second_root_or_text_after_the_root_is_malformed_and_deletes_nothing() {
        // XML 1.0 (2.1): one root element; a second one is not a second batch to carry out.
        let (addr, _dir, store, _) = start(false).await;
        let md5 = |b: &[u8]| base64_encode(&Md5::digest(b));
        for bad in [
            "<Delete><Object><Key>a</Key></Object></Delete><Delete><Object><Key>b</Key></Object></Delete>",
            "<Delete><Object><Key>a</Key></Object></Delete>b",
            "<Delete><Object><Key>a</Key></Object></Delete><![CDATA[b]]>",
        ] {
            store.put_object("bkt", "a", b"x", None).unwrap();
            store.put_object("bkt", "b", b"x", None).unwrap();
            let r = req(
                addr,
                "POST",
                "/bkt?delete",
                &[("Content-MD5", &md5(bad.as_bytes()))],
                bad.as_bytes(),
            )
            .await;
            assert_eq!(
                (r.status, xml_values(&r.text(), "Code")),
                (400, vec!["MalformedXML".to_string()]),
                "{bad}"
            );
            assert!(
                store.head_object("bkt", "a").is_ok() && store.head_object("bkt", "b").is_ok(),
                "{bad}: nothing deleted"
            );
        }
        // White space and a comment after the root are markup, not content.
        let ok = "<Delete><Object><Key>a</Key></Object></Delete>\n <!-- done -->\n";
        let r = req(
            addr,
            "POST",
            "/bkt?delete",
            &[("Content-MD5", &md5(ok.as_bytes()))],
            ok.as_bytes(),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(store.head_object("bkt", "a").is_err());
    }

    #[tokio::test]
    async fn delete_objects_quiet_must_be_a_boolean() {
        let (addr, _dir, store, _) = start(false).await;
        let md5 = |b: &[u8]| base64_encode(&Md5::digest(b));
        let body = |quiet: &str| {
            format!("<Delete>{quiet}<Object><Key>k</Key></Object></Delete>").into_bytes()
        };
        for bad in [
            "<Quiet>maybe</Quiet>",
            "<Quiet>TRUE</Quiet>",
            "<Quiet>yes</Quiet>",
            "<Quiet></Quiet>",
            "<Quiet/>",
            "<Quiet>true</Quiet><Quiet>true</Quiet>",
        ] {
            store.put_object("bkt", "k", b"x", None).unwrap();
            let b = body(bad);
            let r = req(addr, "POST", "/bkt?delete", &[("Content-MD5", &md5(&b))], &b).await;
            assert_eq!(
                (r.status, xml_values(&r.text(), "Code")),
                (400, vec!["MalformedXML".to_string()]),
                "{bad}"
            );
            assert!(store.head_object("bkt", "k").is_ok(), "{bad}: nothing deleted");
        }
        // Quiet mode lists no successful deletes; verbose mode lists each.
        for (quiet, listed) in [
            ("<Quiet>true</Quiet>", false),
            ("<Quiet> 1 </Quiet>", false),
            ("<Quiet>false</Quiet>", true),
            ("<Quiet>0</Quiet>", true),
            ("", true),
        ] {
            store.put_object("bkt", "k", b"x", None).unwrap();
            let b = body(quiet);
            let r = req(addr, "POST", "/bkt?delete", &[("Content-MD5", &md5(&b))], &b).await;
            assert_eq!(r.status, 200, "{quiet}: {}", r.text());
            assert_eq!(!xml_values(&r.text(), "Key").is_empty(), listed, "{quiet}");
            assert!(store.head_object("bkt", "k").is_err(), "{quiet}: deleted");
        }
    }

    #[tokio::test]
    async fn cross_region_requests_redirect() {
        // The listener is us-east-1's S3; eu-bkt lives in eu-west-1.
        let (addr, _dir, _store, _) = start(false).await;
        let r = req(addr, "GET", "/eu-bkt/k", &[], b"").await;
        assert_eq!(r.status, 301, "{}", r.text());
        let t = r.text();
        assert_eq!(xml_values(&t, "Code"), ["PermanentRedirect"]);
        assert_eq!(xml_values(&t, "Endpoint"), ["eu-bkt.s3.eu-west-1.amazonaws.com"]);
        assert_eq!(xml_values(&t, "Bucket"), ["eu-bkt"]);
        assert_eq!(r.header("x-amz-bucket-region"), Some("eu-west-1"));
        let r = req(addr, "HEAD", "/", &[("Host", "eu-bkt.s3.amazonaws.com")], b"").await;
        assert_eq!((r.status, r.header("x-amz-bucket-region")), (301, Some("eu-west-1")));
        let r = req(addr, "PUT", "/eu-bkt/k", &[], b"x").await;
        assert_eq!(r.status, 301);
        // GetBucketLocation answers from any region.
        let r = req(addr, "GET", "/eu-bkt?location", &[], b"").await;
        assert_eq!(r.status, 200);

        // eu-west-1's S3: us-east-1 buckets redirect to the global endpoint; CreateBucket only
        // in its own region.
        let (eu, _dir2, store2, _) = start_in("eu-west-1").await;
        let r = req(eu, "GET", "/bkt?list-type=2", &[], b"").await;
        assert_eq!(r.status, 301);
        assert_eq!(xml_values(&r.text(), "Endpoint"), ["bkt.s3.amazonaws.com"]);
        assert_eq!(r.header("x-amz-bucket-region"), Some("us-east-1"));
        assert_eq!(req(eu, "GET", "/eu-bkt?list-type=2", &[], b"").await.status, 200);
        let cfg = |r: &str| {
            format!("<CreateBucketConfiguration><LocationConstraint>{r}</LocationConstraint></CreateBucketConfiguration>").into_bytes()
        };
        let r = req(eu, "PUT", "/new-ap", &[], &cfg("ap-south-1")).await;
        assert_eq!(
            (r.status, xml_values(&r.text(), "Code")),
            (400, vec!["IllegalLocationConstraintException".to_string()])
        );
        let r = req(eu, "PUT", "/new-eu", &[], &cfg("eu-west-1")).await;
        assert_eq!(r.status, 200);
        assert_eq!(store2.bucket("new-eu").unwrap().region, "eu-west-1");
        let r = req(eu, "PUT", "/new-eu2", &[], b"").await;
        assert_eq!(r.status, 200);
        assert_eq!(store2.bucket("new-eu2").unwrap().region, "eu-west-1");
    }

    #[test]
    fn chunk_signatures_verified() {
        let key = sigv4::signing_key("secret", "20240101", "us-east-1", "s3");
        let scope = "20240101/us-east-1/s3/aws4_request";
        let date = "20240101T000000Z";
        let seed = "a".repeat(64);
        let chunks: [&[u8]; 3] = [b"hello ", b"world", b""];
        let mut payload = Vec::new();
        let mut prev = seed.clone();
        for c in chunks {
            let sig = sigv4::chunk_signature(&key, date, scope, &prev, c);
            payload
                .extend_from_slice(format!("{:x};chunk-signature={sig}\r\n", c.len()).as_bytes());
            payload.extend_from_slice(c);
            payload.extend_from_slice(b"\r\n");
            prev = sig;
        }
        let signer = || ChunkSigner {
            key,
            amz_date: date.into(),
            scope: scope.into(),
            previous: seed.clone(),
            trailer: false,
        };
        for step in [1, 7, payload.len()] {
            let mut d = AwsChunked { signer: Some(signer()), ..AwsChunked::default() };
            let mut out = Vec::new();
            for piece in payload.chunks(step) {
                d.feed(piece, &mut out).unwrap();
            }
            d.finish().unwrap();
            assert_eq!(out, b"hello world");
        }
        // A changed byte, a wrong seed, a missing final signature: SignatureDoesNotMatch.
        let mut bad = payload.clone();
        let i = bad.windows(5).position(|w| w == b"world").unwrap();
        bad[i] = b'W';
        let mut d = AwsChunked { signer: Some(signer()), ..AwsChunked::default() };
        let e = d.feed(&bad, &mut Vec::new()).unwrap_err();
        assert_eq!((e.status, e.code), (StatusCode::FORBIDDEN, "SignatureDoesNotMatch"));
        let mut d = AwsChunked {
            signer: Some(ChunkSigner { previous: "b".repeat(64), ..signer() }),
            ..AwsChunked::default()
        };
        assert!(d.feed(&payload, &mut Vec::new()).is_err());
        let last = payload.windows(4).rposition(|w| w == b"\r\n0;").unwrap() + 2;
        let unsigned_end = [&payload[..last], b"0\r\n\r\n"].concat();
        let mut d = AwsChunked { signer: Some(signer()), ..AwsChunked::default() };
        assert!(d.feed(&unsigned_end, &mut Vec::new()).is_err());
    }

    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER`: the chunks are signed as without a
    /// trailer, then "AWS4-HMAC-SHA256-TRAILER" + "\n" + timestamp + "\n" + scope + "\n" +
    /// the final chunk's signature + "\n" + Hex(SHA256(trailing headers)) signs the trailing
    /// headers (S3 API Reference, sigv4-streaming-trailers), sent as `x-amz-trailer-signature`
    /// after them. The decoder checks it wherever the body is split and whether or not the
    /// final CRLF comes; a changed, added or unsigned trailer, a second signature or a missing
    /// one is `403 SignatureDoesNotMatch` (or the framing's `InvalidRequest`).
    #[test]
    fn trailer_signature_verified() {
        let key = sigv4::signing_key("secret", "20240101", "us-east-1", "s3");
        let scope = "20240101/us-east-1/s3/aws4_request";
        let date = "20240101T000000Z";
        let seed = "a".repeat(64);
        let mut chunks = Vec::new();
        let mut prev = seed.clone();
        for c in [&b"hello "[..], b"world", b""] {
            let sts = format!(
                "AWS4-HMAC-SHA256-PAYLOAD\n{date}\n{scope}\n{prev}\n{}\n{}",
                sigv4::sha256_hex(b""),
                sigv4::sha256_hex(c)
            );
            prev = sigv4::sign(&key, &sts);
            chunks
                .extend_from_slice(format!("{:x};chunk-signature={prev}\r\n", c.len()).as_bytes());
            if !c.is_empty() {
                chunks.extend_from_slice(c);
                chunks.extend_from_slice(b"\r\n");
            }
        }
        let trailer_sig = |canonical: &str| {
            let sts = format!(
                "AWS4-HMAC-SHA256-TRAILER\n{date}\n{scope}\n{prev}\n{}",
                sigv4::sha256_hex(canonical.as_bytes())
            );
            sigv4::sign(&key, &sts)
        };
        let good = trailer_sig("x-amz-checksum-crc32:DUoRhQ==\n");
        let body = |trailer: &str| [&chunks[..], trailer.as_bytes()].concat();
        let signer = || ChunkSigner {
            key,
            amz_date: date.into(),
            scope: scope.into(),
            previous: seed.clone(),
            trailer: true,
        };
        let run = |payload: &[u8], step: usize| {
            let mut d = AwsChunked { signer: Some(signer()), ..AwsChunked::default() };
            let mut out = Vec::new();
            for piece in payload.chunks(step) {
                d.feed(piece, &mut out)?;
            }
            d.finish()?;
            Ok::<_, S3Error>((out, d.trailer("x-amz-checksum-crc32").map(str::to_string)))
        };
        let signed = format!("x-amz-checksum-crc32:DUoRhQ==\r\nx-amz-trailer-signature:{good}\r\n");
        for ending in ["\r\n", ""] {
            let payload = body(&format!("{signed}{ending}"));
            for step in [1, 5, payload.len()] {
                let (out, crc) = run(&payload, step).unwrap();
                assert_eq!(
                    (out.as_slice(), crc.as_deref()),
                    (&b"hello world"[..], Some("DUoRhQ=="))
                );
            }
        }
        // Two trailers: hashed sorted by name, whatever their order on the wire.
        let two = trailer_sig("x-amz-checksum-crc32:DUoRhQ==\nx-amz-meta-a:1\n");
        let payload = body(&format!(
            "x-amz-meta-a:1\r\nx-amz-checksum-crc32:DUoRhQ==\r\nx-amz-trailer-signature:{two}\r\n\r\n"
        ));
        assert!(run(&payload, payload.len()).is_ok());
        let forged = "f".repeat(64);
        for (case, trailer) in [
            (
                "forged",
                format!(
                    "x-amz-checksum-crc32:DUoRhQ==\r\nx-amz-trailer-signature:{forged}\r\n\r\n"
                ),
            ),
            ("missing", "x-amz-checksum-crc32:DUoRhQ==\r\n\r\n".to_string()),
            ("missing, no final CRLF", "x-amz-checksum-crc32:DUoRhQ==\r\n".to_string()),
            (
                "changed value",
                format!("x-amz-checksum-crc32:AAAAAA==\r\nx-amz-trailer-signature:{good}\r\n\r\n"),
            ),
            ("added after", format!("{signed}x-amz-meta-a:1\r\n\r\n")),
            ("added before", format!("x-amz-meta-a:1\r\n{signed}\r\n")),
            ("no trailer", "\r\n".to_string()),
        ] {
            let payload = body(&trailer);
            let e = run(&payload, 3).unwrap_err();
            assert_eq!(
                (e.status, e.code),
                (StatusCode::FORBIDDEN, "SignatureDoesNotMatch"),
                "{case}"
            );
        }
        let twice = body(&format!("{signed}x-amz-trailer-signature:{good}\r\n\r\n"));
        assert_eq!(run(&twice, 3).unwrap_err().code, "InvalidRequest");
        // Unsigned chunks under a signed trailer: refused at the first chunk.
        let payload = format!("b\r\nhello world\r\n0\r\n{signed}\r\n");
        let e = run(payload.as_bytes(), 3).unwrap_err();
        assert_eq!((e.status, e.code), (StatusCode::FORBIDDEN, "SignatureDoesNotMatch"));
        // Without a signer (STREAMING-UNSIGNED-PAYLOAD-TRAILER) the line is an ordinary trailer.
        let mut d = AwsChunked::default();
        d.feed(payload.as_bytes(), &mut Vec::new()).unwrap();
        d.finish().unwrap();
        assert_eq!(d.trailer("x-amz-checksum-crc32"), Some("DUoRhQ=="));
    }

    /// ACLs are disabled (Object Ownership `BucketOwnerEnforced`, the default of new buckets):
    /// setting one is refused with S3's codes and nothing is written; reading one answers the
    /// owner's full control.
    #[tokio::test]
    async fn acls_are_disabled() {
        let (addr, _dir, store, _) = start(false).await;
        let code = |r: &Resp| (r.status, xml_values(&r.text(), "Code").concat());
        let not_supported = (400, "AccessControlListNotSupported".to_string());
        for acl in [
            ("x-amz-acl", "public-read"),
            ("x-amz-acl", "private"),
            ("x-amz-grant-read", "uri=\"http://acs.amazonaws.com/groups/global/AllUsers\""),
        ] {
            let r = req(addr, "PUT", "/bkt/k", &[acl], b"data").await;
            assert_eq!(code(&r), not_supported, "{acl:?}");
            assert!(store.head_object("bkt", "k").is_err(), "{acl:?}");
            let r = req(addr, "POST", "/bkt/k?uploads", &[acl], b"").await;
            assert_eq!(code(&r), not_supported, "{acl:?}");
        }
        let r = req(addr, "PUT", "/bkt/k", &[("x-amz-acl", "bucket-owner-full-control")], b"data")
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let r = req(
            addr,
            "PUT",
            "/bkt/copy",
            &[("x-amz-copy-source", "/bkt/k"), ("x-amz-acl", "public-read")],
            b"",
        )
        .await;
        assert_eq!(code(&r), not_supported);
        assert!(store.head_object("bkt", "copy").is_err());
        assert_eq!(
            code(&req(addr, "PUT", "/bkt/k?acl", &[("x-amz-acl", "private")], b"").await),
            not_supported
        );
        assert_eq!(
            code(&req(addr, "PUT", "/bkt?acl", &[("x-amz-acl", "private")], b"").await),
            not_supported
        );
        // CreateBucket: only the private canned ACL.
        let r = req(addr, "PUT", "/new-bkt", &[("x-amz-acl", "public-read")], b"").await;
        assert_eq!(code(&r), (400, "InvalidBucketAclWithObjectOwnership".to_string()));
        assert_eq!(
            xml_values(&r.text(), "Message"),
            ["Bucket cannot have ACLs set with ObjectOwnership&apos;s BucketOwnerEnforced setting"]
        );
        assert!(store.bucket("new-bkt").is_none());
        // x-amz-object-ownership: BucketOwnerEnforced is what every bucket is; the modes with
        // ACLs are not implemented (even with an ACL that they would take); another value is
        // S3's InvalidArgument. Nothing is created.
        let own = "x-amz-object-ownership";
        for (headers, want) in [
            (&[(own, "ObjectWriter")][..], (501, "NotImplemented")),
            (&[(own, "BucketOwnerPreferred")][..], (501, "NotImplemented")),
            (&[(own, "ObjectWriter"), ("x-amz-acl", "public-read")][..], (501, "NotImplemented")),
            (&[(own, "Bogus")][..], (400, "InvalidArgument")),
            (&[(own, "bucketownerenforced")][..], (400, "InvalidArgument")),
        ] {
            let r = req(addr, "PUT", "/new-bkt", headers, b"").await;
            let t = r.text();
            assert_eq!(code(&r), (want.0, want.1.to_string()), "{headers:?}: {t}");
            if want.0 == 501 {
                assert_eq!(xml_values(&t, "Header"), [own], "{t}");
            } else {
                let value = headers[0].1;
                assert_eq!(
                    xml_values(&t, "Message"),
                    [format!("Invalid x-amz-object-ownership header: {value}")]
                );
                assert_eq!(xml_values(&t, "ArgumentName"), [own], "{t}");
            }
            assert!(store.bucket("new-bkt").is_none(), "{headers:?}");
        }
        let headers = [("x-amz-acl", "private"), (own, "BucketOwnerEnforced")];
        let r = req(addr, "PUT", "/new-bkt", &headers, b"").await;
        assert_eq!(r.status, 200, "{}", r.text());
        // GetBucketAcl, GetObjectAcl: the owner, FULL_CONTROL.
        for target in ["/bkt?acl", "/bkt/k?acl"] {
            let r = req(addr, "GET", target, &[], b"").await;
            let t = r.text();
            assert_eq!(r.status, 200, "{t}");
            assert_eq!(xml_values(&t, "ID"), [OWNER_ID, OWNER_ID], "{t}");
            assert_eq!(xml_values(&t, "Permission"), ["FULL_CONTROL"], "{t}");
            assert!(t.contains(r#"xsi:type="CanonicalUser""#), "{t}");
        }
        assert_eq!(
            code(&req(addr, "GET", "/bkt/nope?acl", &[], b"").await),
            (404, "NoSuchKey".to_string())
        );
    }

    /// The Amazon Linux repository buckets answer by their own name, as yum asks for them.
    #[tokio::test]
    async fn cname_style_host_names_the_bucket() {
        let (addr, _dir, store, _) = start(false).await;
        let repo = "packages.us-east-1.amazonaws.com";
        store.create_bucket(repo, "us-east-1", None).unwrap();
        store.put_object(repo, "repodata/repomd.xml", b"<repomd/>", None).unwrap();
        let r = req(addr, "GET", "/repodata/repomd.xml", &[("Host", repo)], b"").await;
        assert_eq!((r.status, r.body.as_slice()), (200, &b"<repomd/>"[..]), "{}", r.text());
        let r =
            req(addr, "GET", "/?list-type=2", &[("Host", "PACKAGES.us-east-1.amazonaws.com")], b"")
                .await;
        assert_eq!(xml_values(&r.text(), "Key"), ["repodata/repomd.xml"]);
        // A Host naming no bucket: NoSuchBucket for that name.
        let r = req(addr, "GET", "/bkt/k", &[("Host", "www.example.com")], b"").await;
        assert_eq!(xml_values(&r.text(), "BucketName"), ["www.example.com"]);
        // The control API's names stay path style.
        store.put_object("bkt", "k", b"v", None).unwrap();
        for host in ["localhost:4599", "127.0.0.1:4599"] {
            let r = req(addr, "GET", "/bkt/k", &[("Host", host)], b"").await;
            assert_eq!((r.status, r.body.as_slice()), (200, &b"v"[..]), "{host}");
        }
    }

    #[tokio::test]
    async fn region_from_local_address() {
        // One listener region (us-east-1), but connections to 127.0.0.2 address eu-west-1's S3.
        let (addr, _dir, _store, _) = start_full(false, "us-east-1", [127, 0, 0, 2], None).await;
        let r = req(addr, "PUT", "/eu-bkt/k", &[], b"in eu").await;
        assert_eq!(r.status, 200, "{}", r.text());
        let r = req(addr, "GET", "/k", &[("Host", "eu-bkt.s3.eu-west-1.amazonaws.com")], b"").await;
        assert_eq!(r.body, b"in eu");
        // The legacy global name arriving at eu-west-1's address (where the resolver sends it
        // for an eu-west-1 bucket) is eu-west-1's request, as the real endpoint takes it.
        let r = req(addr, "GET", "/k", &[("Host", "eu-bkt.s3.amazonaws.com")], b"").await;
        assert_eq!((r.status, r.body.as_slice()), (200, &b"in eu"[..]));
        let r = req(addr, "GET", "/bkt/k", &[], b"").await;
        assert_eq!((r.status, r.header("x-amz-bucket-region")), (301, Some("us-east-1")));
        assert_eq!(xml_values(&r.text(), "Endpoint"), ["bkt.s3.amazonaws.com"]);
        let cfg = b"<CreateBucketConfiguration><LocationConstraint>us-west-2</LocationConstraint></CreateBucketConfiguration>";
        let r = req(addr, "PUT", "/new-bkt", &[], cfg).await;
        assert_eq!(xml_values(&r.text(), "Code"), ["IllegalLocationConstraintException"]);
    }

    const ADMIN_AK: &str = "AKIAIOSFODNN7EXAMPLE";
    const ADMIN_SK: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    /// Adds x-amz-date and a SigV4 Authorization (all given headers signed) for the admin user
    /// to a request for `target` (path and query); returns the signature (the seed of
    /// aws-chunked chunk signatures).
    fn sign_admin(method: &str, target: &str, headers: &mut Vec<(String, String)>) -> String {
        sign_as((ADMIN_AK, ADMIN_SK), method, target, headers)
    }

    /// [`sign_admin`] for another user's key pair.
    fn sign_as(
        keys: (&str, &str),
        method: &str,
        target: &str,
        headers: &mut Vec<(String, String)>,
    ) -> String {
        sign_scoped(keys, ("us-east-1", "s3"), method, target, headers)
    }

    /// [`sign_as`] with a credential scope of the given region and service.
    fn sign_scoped(
        (ak, sk): (&str, &str),
        (region, service): (&str, &str),
        method: &str,
        target: &str,
        headers: &mut Vec<(String, String)>,
    ) -> String {
        sign_scoped_at((ak, sk), (region, service), method, target, headers, now_secs())
    }

    /// [`sign_scoped`] by a clock that says `now`.
    fn sign_scoped_at(
        (ak, sk): (&str, &str),
        (region, service): (&str, &str),
        method: &str,
        target: &str,
        headers: &mut Vec<(String, String)>,
        now: u64,
    ) -> String {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let amz = sigv4::format_amz_date(now);
        headers.push(("x-amz-date".into(), amz.clone()));
        let mut names: Vec<String> = headers.iter().map(|(k, _)| k.to_ascii_lowercase()).collect();
        names.sort();
        let scope = format!("{}/{region}/{service}/aws4_request", &amz[..8]);
        let auth = |sig: &str| {
            format!(
                "AWS4-HMAC-SHA256 Credential={ak}/{scope}, SignedHeaders={}, Signature={sig}",
                names.join(";")
            )
        };
        let mut with_auth = headers.clone();
        with_auth.push(("authorization".into(), auth(&"0".repeat(64))));
        let hs: Vec<(&str, &str)> =
            with_auth.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let sreq = sigv4::Request { method, path, query, headers: &hs, payload_sha256: None };
        let secrets = |k: &str| (k == ak).then(|| sk.to_string());
        let Err(sigv4::AuthError::SignatureMismatch { string_to_sign, .. }) =
            sigv4::verify(&sreq, &secrets, now)
        else {
            panic!("expected a signature mismatch for the placeholder signature");
        };
        let key = sigv4::signing_key(sk, &amz[..8], region, service);
        let sig = sigv4::sign(&key, &string_to_sign);
        headers.push(("authorization".into(), auth(&sig)));
        sig
    }

    /// A request signed by a clock an hour behind: `403 RequestTimeTooSkewed`, with the
    /// request's time, the server's and the allowed skew, as S3 answers.
    #[tokio::test]
    async fn a_skewed_clock_is_told_the_servers_time() {
        let (addr, _dir, _store, _) = start_signed().await;
        let mut headers: Vec<(String, String)> = vec![
            ("host".into(), "127.0.0.1".into()),
            ("x-amz-content-sha256".into(), "UNSIGNED-PAYLOAD".into()),
        ];
        let then = now_secs() - 3600;
        let _ = sign_scoped_at(
            (ADMIN_AK, ADMIN_SK),
            ("us-east-1", "s3"),
            "GET",
            "/bkt/x",
            &mut headers,
            then,
        );
        let hs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let before = now_secs();
        let r = req(addr, "GET", "/bkt/x", &hs, b"").await;
        let after = now_secs();
        let body = r.text();
        assert_eq!(
            (r.status, xml_values(&body, "Code")),
            (403, vec!["RequestTimeTooSkewed".into()])
        );
        assert_eq!(xml_values(&body, "RequestTime"), vec![sigv4::format_amz_date(then)]);
        let server = xml_values(&body, "ServerTime");
        assert!(
            (before..=after).any(|t| server == vec![iso8601_seconds(t)]),
            "{server:?} at {before}..={after}"
        );
        assert_eq!(xml_values(&body, "MaxAllowedSkewMilliseconds"), vec!["900000".to_string()]);
    }

    /// CopyObject's destination takes the conditional-write headers as PutObject does:
    /// `If-None-Match: *` onto an existing key and `If-Match` of another ETag are 412, and the
    /// destination is left as it was.
    #[tokio::test]
    async fn copy_object_honours_the_destinations_conditions() {
        let (addr, _dir, store, _) = start(false).await;
        store.put_object("bkt", "src", b"new data", None).unwrap();
        let old = store.put_object("bkt", "dst", b"old data", None).unwrap();
        let src = ("x-amz-copy-source", "/bkt/src");
        for cond in [("If-None-Match", "*"), ("If-Match", "\"0123\"")] {
            let r = req(addr, "PUT", "/bkt/dst", &[src, cond], b"").await;
            assert_eq!(
                (r.status, xml_values(&r.text(), "Code")),
                (412, vec!["PreconditionFailed".to_string()]),
                "{cond:?}"
            );
            assert_eq!(store.get_object_bytes("bkt", "dst").unwrap().1, b"old data");
        }
        let etag = format!("\"{}\"", old.etag);
        let r = req(addr, "PUT", "/bkt/dst", &[src, ("If-Match", &etag)], b"").await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(store.get_object_bytes("bkt", "dst").unwrap().1, b"new data");
        let r = req(addr, "PUT", "/bkt/fresh", &[src, ("If-None-Match", "*")], b"").await;
        assert_eq!(r.status, 200, "{}", r.text());
    }

    /// POST Object (an HTML form upload, boto3's `generate_presigned_post`) is not simulated: the
    /// form's fields carry its credentials, so judged as an anonymous `s3:ListBucket` it got
    /// `403 AccessDenied` on a private bucket and `501` on a public one. It is `501
    /// NotImplemented` on every bucket, before authorization, and stores nothing.
    #[tokio::test]
    async fn a_form_upload_is_not_implemented_on_every_bucket() {
        let (addr, _dir, store, _) = start_signed().await;
        let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*",
            "Action":"s3:ListBucket","Resource":"arn:aws:s3:::pub"}]}"#;
        store.create_bucket("pub", "us-east-1", Some(policy.into())).unwrap();
        let form = "--b\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nx.txt\r\n--b\r\n\
                    Content-Disposition: form-data; name=\"file\"; filename=\"x\"\r\n\r\ndata\r\n--b--\r\n";
        for bucket in ["bkt", "pub"] {
            let ct = [("content-type", "multipart/form-data; boundary=b")];
            let r = req(addr, "POST", &format!("/{bucket}"), &ct, form.as_bytes()).await;
            assert_eq!(
                (r.status, xml_values(&r.text(), "Code"), xml_values(&r.text(), "Header")),
                (501, vec!["NotImplemented".into()], vec!["POST".into()]),
                "{bucket}"
            );
            assert!(store.head_object(bucket, "x.txt").is_err());
        }
    }

    /// A copy reads its source: CopyObject and UploadPartCopy need `s3:GetObject` on the source
    /// besides `s3:PutObject` on the destination, and a refused copy creates nothing.
    #[tokio::test]
    async fn copies_need_read_access_to_their_source() {
        let (addr, _dir, store, _) = start_signed().await;
        // Anyone may read and write pub/*; nobody anonymous may read bkt (no bucket policy).
        let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*",
            "Action":["s3:GetObject","s3:PutObject"],"Resource":"arn:aws:s3:::pub/*"}]}"#;
        store.create_bucket("pub", "us-east-1", Some(policy.into())).unwrap();
        store.put_object("bkt", "secret", b"secret data", None).unwrap();
        store.put_object("pub", "src", b"public data", None).unwrap();

        let r = req(addr, "PUT", "/pub/copy", &[("x-amz-copy-source", "/bkt/secret")], b"").await;
        assert_eq!((r.status, xml_values(&r.text(), "Code")), (403, vec!["AccessDenied".into()]));
        assert!(store.head_object("pub", "copy").is_err());
        let r = req(addr, "PUT", "/pub/copy", &[("x-amz-copy-source", "/pub/src")], b"").await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(store.get_object_bytes("pub", "copy").unwrap().1, b"public data");

        let id = initiate(addr, "/pub/parts", &[]).await;
        let target = format!("/pub/parts?partNumber=1&uploadId={id}");
        let r = req(addr, "PUT", &target, &[("x-amz-copy-source", "/bkt/secret")], b"").await;
        assert_eq!((r.status, xml_values(&r.text(), "Code")), (403, vec!["AccessDenied".into()]));
        let parts = || store.list_parts("pub", &id).unwrap().1.len();
        assert_eq!(parts(), 0);
        let r = req(addr, "PUT", &target, &[("x-amz-copy-source", "/pub/src")], b"").await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(parts(), 1);
    }

    /// A signed request as `keys` (access and secret key); the response.
    async fn signed_as(
        addr: SocketAddr,
        keys: (&str, &str),
        method: &str,
        target: &str,
        extra: &[(&str, &str)],
    ) -> Resp {
        let mut headers: Vec<(String, String)> =
            extra.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        headers.push(("host".into(), addr.to_string()));
        headers.push(("x-amz-content-sha256".into(), sigv4::EMPTY_SHA256.into()));
        sign_as(keys, method, target, &mut headers);
        let hs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        req(addr, method, target, &hs, b"").await
    }

    /// A signature's credential scope must name S3 and the region the request is for: the
    /// bucket's (as S3 answers, so that botocore retries there), or the endpoint's for a request
    /// about no bucket, GetBucketLocation and CreateBucket.
    #[tokio::test]
    async fn credential_scope_names_the_region_and_s3() {
        let (addr, _dir, store, _) = start_signed().await;
        store.put_object("eu-bkt", "k", b"in eu", None).unwrap();
        let signed = |scope: (&'static str, &'static str), method: &'static str, target: &str| {
            let mut headers = vec![
                ("host".to_string(), addr.to_string()),
                ("x-amz-content-sha256".to_string(), sigv4::EMPTY_SHA256.to_string()),
            ];
            sign_scoped((ADMIN_AK, ADMIN_SK), scope, method, target, &mut headers);
            let target = target.to_string();
            async move {
                let hs: Vec<(&str, &str)> =
                    headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                req(addr, method, &target, &hs, b"").await
            }
        };
        // Quotes come escaped in the XML text (as any XML reader reads them back).
        let text = |r: &Resp| r.text().replace("&apos;", "'").replace("&quot;", "\"");
        let wrong_region = |r: &Resp, scope: &str, expected: &str| {
            let t = text(r);
            assert_eq!(r.status, 400, "{t}");
            assert_eq!(xml_values(&t, "Code"), ["AuthorizationHeaderMalformed"]);
            assert_eq!(
                xml_values(&t, "Message"),
                [format!(
                    "The authorization header is malformed; the region '{scope}' is wrong; expecting '{expected}'"
                )]
            );
            assert_eq!(xml_values(&t, "Region"), [expected]);
        };
        // The bucket's region, whichever S3 was addressed.
        let r = signed(("us-east-1", "s3"), "GET", "/eu-bkt/k").await;
        wrong_region(&r, "us-east-1", "eu-west-1");
        assert_eq!(r.header("x-amz-bucket-region"), Some("eu-west-1"));
        let r = signed(("eu-west-1", "s3"), "GET", "/bkt?list-type=2").await;
        wrong_region(&r, "eu-west-1", "us-east-1");
        // Signed for its region but sent to us-east-1's S3: the redirect as before.
        let r = signed(("eu-west-1", "s3"), "GET", "/eu-bkt/k").await;
        assert_eq!((r.status, r.header("x-amz-bucket-region")), (301, Some("eu-west-1")));
        // No bucket: the endpoint's region, and no x-amz-bucket-region.
        let r = signed(("mars-north-9", "s3"), "GET", "/").await;
        wrong_region(&r, "mars-north-9", "us-east-1");
        assert_eq!(r.header("x-amz-bucket-region"), None);
        let r = signed(("eu-west-1", "s3"), "PUT", "/new-bucket").await;
        wrong_region(&r, "eu-west-1", "us-east-1");
        assert!(store.bucket("new-bucket").is_none());
        // GetBucketLocation answers from the endpoint's region for any bucket.
        let r = signed(("us-east-1", "s3"), "GET", "/eu-bkt?location").await;
        assert_eq!(r.status, 200, "{}", r.text());
        let r = signed(("eu-west-1", "s3"), "GET", "/eu-bkt?location").await;
        wrong_region(&r, "eu-west-1", "us-east-1");
        // Another service.
        let r = signed(("us-east-1", "sts"), "GET", "/bkt?list-type=2").await;
        assert_eq!(r.status, 400);
        assert_eq!(
            xml_values(&text(&r), "Message"),
            [
                "The authorization header is malformed; incorrect service \"sts\". This endpoint belongs to \"s3\"."
            ]
        );
        // The right scope.
        let r = signed(("us-east-1", "s3"), "GET", "/bkt?list-type=2").await;
        assert_eq!(r.status, 200, "{}", r.text());
        let r = signed(("us-east-1", "s3"), "GET", "/").await;
        assert_eq!(r.status, 200, "{}", r.text());
    }

    /// GetBucketEncryption and GetBucketOwnershipControls answer the lab's fixed settings
    /// (SSE-S3, BucketOwnerEnforced), each authorized by its own action: a bucket policy's
    /// Deny of that action refuses it and nothing else. Put*/Delete* stay 501.
    #[tokio::test]
    async fn encryption_and_ownership_controls_are_fixed() {
        let (addr, _dir, store, _) = start_signed().await;
        let admin = (ADMIN_AK, ADMIN_SK);
        let r = signed_as(addr, admin, "GET", "/bkt?encryption", &[]).await;
        let t = r.text();
        assert_eq!(r.status, 200, "{t}");
        assert!(t.contains(&format!(
            r#"<ServerSideEncryptionConfiguration xmlns="{S3_NS}"><Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>AES256</SSEAlgorithm></ApplyServerSideEncryptionByDefault><BucketKeyEnabled>false</BucketKeyEnabled></Rule></ServerSideEncryptionConfiguration>"#
        )), "{t}");
        let r = signed_as(addr, admin, "GET", "/bkt?ownershipControls", &[]).await;
        let t = r.text();
        assert_eq!(r.status, 200, "{t}");
        assert!(t.contains(&format!(
            r#"<OwnershipControls xmlns="{S3_NS}"><Rule><ObjectOwnership>BucketOwnerEnforced</ObjectOwnership></Rule></OwnershipControls>"#
        )), "{t}");
        for (method, target) in [
            ("PUT", "/bkt?encryption"),
            ("DELETE", "/bkt?encryption"),
            ("PUT", "/bkt?ownershipControls"),
            ("DELETE", "/bkt?ownershipControls"),
        ] {
            let r = signed_as(addr, admin, method, target, &[]).await;
            assert_eq!(
                (r.status, xml_values(&r.text(), "Code")),
                (501, vec!["NotImplemented".into()]),
                "{method} {target}"
            );
        }
        // Never versioned: a configuration without Status; setting it is not simulated, and
        // there is no DeleteBucketVersioning.
        let r = signed_as(addr, admin, "GET", "/bkt?versioning", &[]).await;
        let t = r.text();
        assert_eq!(r.status, 200, "{t}");
        assert!(t.contains(&format!(r#"<VersioningConfiguration xmlns="{S3_NS}">"#)), "{t}");
        assert!(!t.contains("Status") && !t.contains("MfaDelete"), "{t}");
        let r = signed_as(addr, admin, "PUT", "/bkt?versioning", &[]).await;
        assert_eq!(
            (r.status, xml_values(&r.text(), "Code")),
            (501, vec!["NotImplemented".into()]),
            "{}",
            r.text()
        );
        let r = signed_as(addr, admin, "DELETE", "/bkt?versioning", &[]).await;
        assert_eq!(r.status, 405, "{}", r.text());
        let r = signed_as(addr, admin, "POST", "/bkt?encryption", &[]).await;
        assert_eq!(r.status, 405, "{}", r.text());
        let r = signed_as(addr, admin, "GET", "/nope?encryption", &[]).await;
        assert_eq!(r.status, 404, "{}", r.text());
        // Each GET by its own action.
        for (action, denied, allowed) in [
            ("s3:GetEncryptionConfiguration", "/locked?encryption", "/locked?ownershipControls"),
            ("s3:GetBucketOwnershipControls", "/locked?ownershipControls", "/locked?encryption"),
            ("s3:GetBucketVersioning", "/locked?versioning", "/locked?encryption"),
        ] {
            let policy = format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Deny","Principal":"*","Action":"{action}","Resource":"arn:aws:s3:::locked"}}]}}"#
            );
            let _ = store.delete_bucket("locked");
            store.create_bucket("locked", "us-east-1", Some(policy)).unwrap();
            let r = signed_as(addr, admin, "GET", denied, &[]).await;
            assert_eq!(r.status, 403, "{action}: {}", r.text());
            let r = signed_as(addr, admin, "GET", allowed, &[]).await;
            assert_eq!(r.status, 200, "{action}: {}", r.text());
        }
    }

    /// A stub authorizing for `world`'s users.
    async fn start_world(world: &crate::model::World) -> (SocketAddr, TempDir, Arc<Store>, Seen) {
        let access =
            Access::from_world(world, std::time::Duration::ZERO, None, std::time::Instant::now());
        let access = Some(Arc::new(arc_swap::ArcSwap::from_pointee(access)));
        start_full(false, "us-east-1", [127, 0, 0, 1], access).await
    }

    /// The condition keys AWS fills in for a request are filled in: the principal's
    /// (aws:PrincipalArn, aws:PrincipalAccount, aws:PrincipalType, aws:userid), the bucket
    /// owner's account, the time, the signature's, S3 headers' and a list's parameters. Each
    /// Deny below fires when its key is absent or wrong.
    #[tokio::test]
    async fn condition_keys_are_filled() {
        let (addr, _dir, store, _) = start_signed().await;
        let admin = "arn:aws:iam::123456789012:user/admin";
        let deny = |sid: &str, action: &str, cond: &str| {
            format!(
                r#"{{"Sid":"{sid}","Effect":"Deny","Principal":"*","Action":"{action}","Resource":["arn:aws:s3:::keys","arn:aws:s3:::keys/*"],"Condition":{cond}}}"#
            )
        };
        let statements = [
            deny(
                "Arn",
                "s3:*",
                &format!(r#"{{"StringNotEquals":{{"aws:PrincipalArn":"{admin}"}}}}"#),
            ),
            deny(
                "Account",
                "s3:*",
                r#"{"StringNotEquals":{"aws:PrincipalAccount":"123456789012"}}"#,
            ),
            deny("Type", "s3:*", r#"{"StringNotEquals":{"aws:PrincipalType":"User"}}"#),
            deny("UserId", "s3:*", r#"{"StringNotLike":{"aws:userid":"AIDA?????????????????"}}"#),
            deny("Owner", "s3:*", r#"{"StringNotEquals":{"s3:ResourceAccount":"123456789012"}}"#),
            deny("Time", "s3:*", r#"{"DateLessThan":{"aws:CurrentTime":"2020-01-01T00:00:00Z"}}"#),
            deny("Epoch", "s3:*", r#"{"Null":{"aws:EpochTime":"true"}}"#),
            deny(
                "Sig",
                "s3:*",
                r#"{"StringNotEquals":{"s3:signatureversion":"AWS4-HMAC-SHA256"}}"#,
            ),
            deny("Auth", "s3:*", r#"{"StringNotEquals":{"s3:authType":"REST-HEADER"}}"#),
            deny(
                "Acl",
                "s3:PutObject",
                r#"{"StringNotEqualsIfExists":{"s3:x-amz-acl":"bucket-owner-full-control"}}"#,
            ),
            deny(
                "Sse",
                "s3:PutObject",
                r#"{"StringEquals":{"s3:x-amz-server-side-encryption":"aws:kms"}}"#,
            ),
            deny("MaxKeys", "s3:ListBucket", r#"{"NumericGreaterThan":{"s3:max-keys":"100"}}"#),
            deny("Delimiter", "s3:ListBucket", r#"{"StringEquals":{"s3:delimiter":"x"}}"#),
        ];
        let policy =
            format!(r#"{{"Version":"2012-10-17","Statement":[{}]}}"#, statements.join(","));
        store.create_bucket("keys", "us-east-1", Some(policy)).unwrap();
        store.put_object("keys", "a.txt", b"a", None).unwrap();
        let admin_keys = (ADMIN_AK, ADMIN_SK);
        let denied_by = |r: &Resp| {
            r.headers.iter().find(|(k, _)| k == "x-vpcsim-denied-by").map(|(_, v)| v.clone())
        };
        let r = signed_as(addr, admin_keys, "GET", "/keys/a.txt", &[]).await;
        assert_eq!(r.status, 200, "{:?} {}", denied_by(&r), r.text());
        let owner_full_control = ("x-amz-acl", "bucket-owner-full-control");
        let r = signed_as(addr, admin_keys, "PUT", "/keys/b.txt", &[owner_full_control]).await;
        assert_eq!(r.status, 200, "{:?} {}", denied_by(&r), r.text());
        // Authorization comes before the ACL check: a public-read the bucket could not take
        // anyway is the policy's 403.
        for (headers, sid) in [
            (&[("x-amz-acl", "public-read")][..], "Acl"),
            (&[owner_full_control, ("x-amz-server-side-encryption", "aws:kms")], "Sse"),
        ] {
            let r = signed_as(addr, admin_keys, "PUT", "/keys/c.txt", headers).await;
            assert_eq!((r.status, denied_by(&r)), (403, Some(format!("bucket-policy:{sid}"))));
        }
        for (query, want) in [
            ("?list-type=2&max-keys=10&delimiter=/", None),
            ("?list-type=2&prefix=a", None),
            ("?list-type=2&max-keys=1000", Some("bucket-policy:MaxKeys")),
            ("?list-type=2&delimiter=x", Some("bucket-policy:Delimiter")),
        ] {
            let r = signed_as(addr, admin_keys, "GET", &format!("/keys{query}"), &[]).await;
            assert_eq!(denied_by(&r).as_deref(), want, "{query}: {}", r.text());
        }
        // Anonymous: no principal keys, no signature: the first Deny applies.
        let r = req(addr, "GET", "/keys/a.txt", &[], b"").await;
        assert_eq!((r.status, denied_by(&r)), (403, Some("bucket-policy:Arn".into())));
    }

    /// `s3:ListAllMyBuckets` on `arn:aws:s3:::*`, the usual way to write it, allows ListBuckets
    /// as `Resource: "*"` does; a bucket's ARN does not.
    #[tokio::test]
    async fn list_all_my_buckets_on_the_s3_arn_pattern() {
        let mut world = crate::model::World::new("t", "us-east-1").unwrap();
        for (name, resource) in
            [("arnlister", "arn:aws:s3:::*"), ("starlister", "*"), ("one", "arn:aws:s3:::bkt")]
        {
            world
                .add_user(crate::model::User {
                    name: name.into(),
                    access_key: format!("AKIA{:0>16}", name.to_uppercase()),
                    secret_key: "secret".into(),
                    policies: vec![format!(
                        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"s3:ListAllMyBuckets","Resource":"{resource}"}}]}}"#
                    )],
                })
                .unwrap();
        }
        let (addr, _dir, _store, _) = start_world(&world).await;
        for (name, want) in [("arnlister", 200), ("starlister", 200), ("one", 403)] {
            let ak = format!("AKIA{:0>16}", name.to_uppercase());
            let r = signed_as(addr, (&ak, "secret"), "GET", "/", &[]).await;
            assert_eq!(r.status, want, "{name}: {}", r.text());
        }
    }

    /// A stored bucket policy that no longer parses denies everything (its Denies never fail
    /// open), the admin included, except reading, replacing and deleting the policy.
    #[tokio::test]
    async fn an_unreadable_bucket_policy_fails_closed() {
        let (addr, _dir, store, _) = start_signed().await;
        store.create_bucket("broken", "us-east-1", Some("{not json".into())).unwrap();
        store.put_object("broken", "a.txt", b"a", None).unwrap();
        let admin = (ADMIN_AK, ADMIN_SK);
        let denied_by = |r: &Resp| {
            r.headers.iter().find(|(k, _)| k == "x-vpcsim-denied-by").map(|(_, v)| v.clone())
        };
        let r = signed_as(addr, admin, "GET", "/broken/a.txt", &[]).await;
        assert_eq!(
            (r.status, denied_by(&r)),
            (403, Some("bucket-policy:UnreadableBucketPolicy".into()))
        );
        let r = req(addr, "GET", "/broken/a.txt", &[], b"").await;
        assert_eq!(r.status, 403);
        let r = signed_as(addr, admin, "GET", "/broken?policy", &[]).await;
        assert_eq!((r.status, r.text()), (200, "{not json".to_string()));
        let r = signed_as(addr, admin, "DELETE", "/broken?policy", &[]).await;
        assert_eq!(r.status, 204, "{}", r.text());
        let r = signed_as(addr, admin, "GET", "/broken/a.txt", &[]).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }

    /// The `<Message>` of an error answer, its XML escapes undone.
    fn error_message(r: &Resp) -> String {
        let raw = xml_values(&r.text(), "Message").pop().unwrap_or_default();
        quick_xml::escape::unescape(&raw).map(|m| m.into_owned()).unwrap_or(raw)
    }

    /// AWS's own buckets (the Amazon Linux AMI repositories) are another account's. The guide:
    /// "The Amazon Linux AMI repositories are Amazon S3 buckets in each region", and the
    /// default endpoint policy allows access "to any Amazon S3 resource; including Amazon S3
    /// resources for an AWS account other than the account with which the VPC is associated".
    /// ListBuckets "Returns a list of all buckets owned by the authenticated sender of the
    /// request"; across accounts the bucket policy must allow as well as the identity policy
    /// (IAM, "Cross-account policy evaluation logic"), and the repositories' policy allows
    /// reading objects only; the S3 User Guide: "If the account ID that you provide does not
    /// match the actual owner of the bucket, the request fails with the HTTP status code 403";
    /// CreateBucket of a name another account has is `409 BucketAlreadyExists`.
    #[tokio::test]
    async fn aws_repository_buckets_belong_to_another_account() {
        use crate::model::AWS_ACCOUNT_ID;
        let (addr, _dir, store, _) = start_signed().await;
        let repo = "repo.us-east-1.amazonaws.com";
        let policy = format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"AmazonLinuxRepository","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::{repo}/*"}}]}}"#
        );
        store.create_bucket_owned(repo, "us-east-1", Some(policy.clone()), AWS_ACCOUNT_ID).unwrap();
        store.put_object(repo, "repodata/repomd.xml", b"<repomd/>", None).unwrap();
        let admin = (ADMIN_AK, ADMIN_SK);
        let index = format!("/{repo}/repodata/repomd.xml");
        let denied_by = |r: &Resp| r.header("x-vpcsim-denied-by").map(str::to_string);

        // Only the caller's account's buckets are listed.
        let r = signed_as(addr, admin, "GET", "/", &[]).await;
        assert_eq!(xml_values(&r.text(), "Name"), ["bkt", "eu-bkt"], "{}", r.text());

        // Read as its policy allows: signed (the admin's identity policy allows too) and
        // anonymous; the bucket owner is AWS's account, not the lab's.
        let r = signed_as(addr, admin, "GET", &index, &[]).await;
        assert_eq!((r.status, r.text().as_str()), (200, "<repomd/>"));
        assert_eq!(req(addr, "GET", &index, &[], b"").await.status, 200);
        let theirs = ("x-amz-expected-bucket-owner", AWS_ACCOUNT_ID);
        let ours = ("x-amz-expected-bucket-owner", ACCOUNT_ID);
        assert_eq!(signed_as(addr, admin, "GET", &index, &[theirs]).await.status, 200);
        let r = signed_as(addr, admin, "GET", &index, &[ours]).await;
        assert_eq!((r.status, denied_by(&r).as_deref()), (403, Some("expected-bucket-owner")));

        // Never written, deleted or re-policied by the lab's users, the admin included: "Access
        // Denied" (no enhanced message across accounts), and nothing changes.
        for (method, target) in [
            ("PUT", format!("/{repo}/repodata/evil.txt")),
            ("DELETE", index.clone()),
            ("DELETE", format!("/{repo}")),
            ("PUT", format!("/{repo}?policy")),
            ("DELETE", format!("/{repo}?policy")),
            ("GET", format!("/{repo}?policy")),
            ("GET", format!("/{repo}?list-type=2")),
            ("POST", format!("/{repo}/big.rpm?uploads")),
        ] {
            let r = signed_as(addr, admin, method, &target, &[]).await;
            assert_eq!(
                (r.status, xml_values(&r.text(), "Code"), error_message(&r)),
                (403, vec!["AccessDenied".to_string()], "Access Denied".to_string()),
                "{method} {target}"
            );
            assert_eq!(denied_by(&r).as_deref(), Some("bucket-policy"), "{method} {target}");
        }
        let r = signed_as(addr, admin, "HEAD", &format!("/{repo}"), &[]).await;
        assert_eq!((r.status, r.header("x-amz-bucket-region")), (403, Some("us-east-1")));
        let meta = store.bucket(repo).expect("still there");
        assert_eq!((meta.owner.as_str(), meta.policy), (AWS_ACCOUNT_ID, Some(policy)));
        assert!(store.head_object(repo, "repodata/evil.txt").is_err());
        assert!(store.head_object(repo, "repodata/repomd.xml").is_ok());
        assert!(store.list_uploads(repo, "").unwrap().is_empty());

        // Its name is not available, also where the lab has no such bucket.
        for name in [repo, "packages.eu-west-1.amazonaws.com"] {
            let r = signed_as(addr, admin, "PUT", &format!("/{name}"), &[]).await;
            assert_eq!(
                (r.status, xml_values(&r.text(), "Code")),
                (409, vec!["BucketAlreadyExists".to_string()]),
                "{name}"
            );
        }
        assert!(store.bucket("packages.eu-west-1.amazonaws.com").is_none());

        // A copy out of it reads it (its owner as the source's expected owner); into it, no.
        let source = ("x-amz-copy-source", &index[..]);
        let r = signed_as(addr, admin, "PUT", "/bkt/repomd.xml", &[source]).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let wrong = ("x-amz-source-expected-bucket-owner", ACCOUNT_ID);
        let r = signed_as(addr, admin, "PUT", "/bkt/again.xml", &[source, wrong]).await;
        assert_eq!((r.status, denied_by(&r).as_deref()), (403, Some("expected-bucket-owner")));
        let into = ("x-amz-copy-source", "/bkt/repomd.xml");
        let r = signed_as(addr, admin, "PUT", &format!("/{repo}/copied.xml"), &[into]).await;
        assert_eq!(r.status, 403, "{}", r.text());
    }

    /// s3:ResourceAccount is the account that owns the bucket: an endpoint policy allowing only
    /// the lab's account's buckets (a data perimeter) blocks AWS's repositories, which such
    /// policies must allow by name.
    #[tokio::test]
    async fn resource_account_is_the_bucket_owners() {
        use crate::model::AWS_ACCOUNT_ID;
        let only_mine = r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*","Condition":{"StringEquals":{"s3:ResourceAccount":"123456789012"}}}]}"#;
        let mut world = crate::model::World::new("t", "us-east-1").unwrap();
        world.endpoints.push(crate::model::Endpoint {
            id: "vpce-0123abcd".into(),
            vpc: "vpc-42".into(),
            service: "com.amazonaws.us-east-1.s3".into(),
            route_tables: Vec::new(),
            policy: Some(only_mine.into()),
        });
        let access =
            Access::from_world(&world, std::time::Duration::ZERO, None, std::time::Instant::now());
        let access = Some(Arc::new(arc_swap::ArcSwap::from_pointee(access)));
        let (addr, _dir, store, _) = start_full(true, "us-east-1", [127, 0, 0, 1], access).await;
        let repo = "packages.us-east-1.amazonaws.com";
        let public = format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":["arn:aws:s3:::{repo}/*","arn:aws:s3:::bkt/*"]}}]}}"#
        );
        store.create_bucket_owned(repo, "us-east-1", Some(public), AWS_ACCOUNT_ID).unwrap();
        store.put_object(repo, "repodata/repomd.xml", b"<repomd/>", None).unwrap();
        let bkt_policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::bkt/*"}]}"#;
        store.set_bucket_policy("bkt", Some(bkt_policy.into())).unwrap();
        store.put_object("bkt", "k", b"mine", None).unwrap();
        assert_eq!(req(addr, "GET", "/bkt/k", &[], b"").await.status, 200);
        let r = req(addr, "GET", &format!("/{repo}/repodata/repomd.xml"), &[], b"").await;
        assert_eq!((r.status, r.header("x-vpcsim-denied-by")), (403, Some("endpoint-policy")));
    }

    /// S3 User Guide, "Troubleshoot access denied (403 Forbidden) errors": same-account
    /// requests get "User user-arn is not authorized to perform action on "resource-arn"
    /// because context", "with an explicit deny in a type policy" or "because no type policy
    /// allows the action action"; "Cross-account requests ... return a generic Access Denied
    /// message", and so do anonymous ones.
    #[tokio::test]
    async fn access_denied_names_the_policy_for_the_same_account() {
        let endpoint_policy = r#"{"Statement":[
            {"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::bkt","arn:aws:s3:::bkt/*"]},
            {"Effect":"Allow","Principal":"*","Action":"s3:ListAllMyBuckets","Resource":"*"},
            {"Effect":"Deny","Principal":"*","Action":"s3:DeleteObject","Resource":"arn:aws:s3:::bkt/keep"}]}"#;
        let mut world = crate::model::World::new("t", "us-east-1").unwrap();
        world.endpoints.push(crate::model::Endpoint {
            id: "vpce-0123abcd".into(),
            vpc: "vpc-42".into(),
            service: "com.amazonaws.us-east-1.s3".into(),
            route_tables: Vec::new(),
            policy: Some(endpoint_policy.into()),
        });
        for u in crate::model::default_users() {
            world.add_user(u).unwrap();
        }
        for (name, policy) in [
            ("reader", None),
            (
                "careful",
                Some(
                    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"},{"Sid":"NoWrites","Effect":"Deny","Action":"s3:PutObject","Resource":"*"}]}"#,
                ),
            ),
        ] {
            world
                .add_user(crate::model::User {
                    name: name.into(),
                    access_key: format!("AKIA{:0>16}", name.to_uppercase()),
                    secret_key: "secret".into(),
                    policies: policy.into_iter().map(str::to_string).collect(),
                })
                .unwrap();
        }
        let access =
            Access::from_world(&world, std::time::Duration::ZERO, None, std::time::Instant::now());
        let access = Some(Arc::new(arc_swap::ArcSwap::from_pointee(access)));
        let (addr, _dir, store, _) = start_full(true, "us-east-1", [127, 0, 0, 1], access).await;
        store.create_bucket("other", "us-east-1", None).unwrap();
        let no_secrets = r#"{"Version":"2012-10-17","Statement":[{"Sid":"NoSecrets","Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::bkt/secret"}]}"#;
        store.set_bucket_policy("bkt", Some(no_secrets.into())).unwrap();
        for key in ["k", "keep", "secret"] {
            store.put_object("bkt", key, b"x", None).unwrap();
        }
        store.put_object("other", "k", b"x", None).unwrap();
        let admin = (ADMIN_AK, ADMIN_SK);
        let reader = ("AKIA0000000000READER", "secret");
        let careful = ("AKIA000000000CAREFUL", "secret");
        let user = |n: &str| {
            format!("User: arn:aws:iam::123456789012:user/{n} is not authorized to perform:")
        };
        for (keys, method, target, by, want) in [
            (
                admin,
                "GET",
                "/other/k",
                "endpoint-policy",
                format!(
                    "{} s3:GetObject on resource: \"arn:aws:s3:::other/k\" because no VPC endpoint policy allows the s3:GetObject action",
                    user("admin")
                ),
            ),
            (
                admin,
                "DELETE",
                "/bkt/keep",
                "endpoint-policy",
                format!(
                    "{} s3:DeleteObject on resource: \"arn:aws:s3:::bkt/keep\" with an explicit deny in a VPC endpoint policy",
                    user("admin")
                ),
            ),
            (
                admin,
                "GET",
                "/bkt/secret",
                "bucket-policy:NoSecrets",
                format!(
                    "{} s3:GetObject on resource: \"arn:aws:s3:::bkt/secret\" with an explicit deny in a resource-based policy",
                    user("admin")
                ),
            ),
            (
                reader,
                "GET",
                "/bkt/k",
                "implicit",
                format!(
                    "{} s3:GetObject on resource: \"arn:aws:s3:::bkt/k\" because no identity-based policy allows the s3:GetObject action",
                    user("reader")
                ),
            ),
            (
                reader,
                "GET",
                "/bkt?list-type=2",
                "implicit",
                format!(
                    "{} s3:ListBucket on resource: \"arn:aws:s3:::bkt\" because no identity-based policy allows the s3:ListBucket action",
                    user("reader")
                ),
            ),
            (
                reader,
                "GET",
                "/",
                "implicit",
                format!(
                    "{} s3:ListAllMyBuckets because no identity-based policy allows the s3:ListAllMyBuckets action",
                    user("reader")
                ),
            ),
            (
                careful,
                "PUT",
                "/bkt/new",
                "user-policy:NoWrites",
                format!(
                    "{} s3:PutObject on resource: \"arn:aws:s3:::bkt/new\" with an explicit deny in an identity-based policy",
                    user("careful")
                ),
            ),
        ] {
            let r = signed_as(addr, keys, method, target, &[]).await;
            assert_eq!(
                (r.status, r.header("x-vpcsim-denied-by"), error_message(&r)),
                (403, Some(by), want),
                "{method} {target}"
            );
        }
        // Anonymous: the generic message.
        let r = req(addr, "GET", "/other/k", &[], b"").await;
        assert_eq!((r.status, error_message(&r)), (403, "Access Denied".to_string()));
    }

    #[tokio::test]
    async fn signed_aws_chunked_put_checks_chunk_signatures() {
        let (addr, _dir, store, _) = start_signed().await;
        let data = pattern(150_000, 9);
        for tamper in [false, true] {
            let key = if tamper { "/bkt/tampered" } else { "/bkt/signed" };
            let mut headers: Vec<(String, String)> = vec![
                ("host".into(), "127.0.0.1".into()),
                ("content-encoding".into(), "aws-chunked".into()),
                ("x-amz-content-sha256".into(), "STREAMING-AWS4-HMAC-SHA256-PAYLOAD".into()),
                ("x-amz-decoded-content-length".into(), data.len().to_string()),
            ];
            let seed = sign_admin("PUT", key, &mut headers);
            let amz = headers.iter().find(|(k, _)| k == "x-amz-date").unwrap().1.clone();
            let skey = sigv4::signing_key(ADMIN_SK, &amz[..8], "us-east-1", "s3");
            let scope = format!("{}/us-east-1/s3/aws4_request", &amz[..8]);
            let mut payload = Vec::new();
            let mut prev = seed;
            for chunk in data.chunks(65_536).chain([&[][..]]) {
                let sig = sigv4::chunk_signature(&skey, &amz, &scope, &prev, chunk);
                payload.extend_from_slice(
                    format!("{:x};chunk-signature={sig}\r\n", chunk.len()).as_bytes(),
                );
                let mut c = chunk.to_vec();
                if tamper && !c.is_empty() && prev != sig {
                    c[0] ^= 1;
                }
                payload.extend_from_slice(&c);
                payload.extend_from_slice(b"\r\n");
                prev = sig;
            }
            let hs: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let r = req(addr, "PUT", key, &hs, &payload).await;
            if tamper {
                assert_eq!(
                    (r.status, xml_values(&r.text(), "Code")),
                    (403, vec!["SignatureDoesNotMatch".to_string()])
                );
                assert!(store.head_object("bkt", "tampered").is_err());
            } else {
                assert_eq!(r.status, 200, "{}", r.text());
                assert_eq!(store.get_object_bytes("bkt", "signed").unwrap().1, data);
            }
        }
        // Unsigned requests are anonymous: denied.
        let r = req(addr, "PUT", "/bkt/anon", &[], b"x").await;
        assert_eq!(r.status, 403);
    }

    /// An aws-chunked body of `data` for the admin's request signed at `amz` with signature
    /// `seed`: 64 KiB chunks and the final empty one, each with its `chunk-signature`, then,
    /// given a trailer, that header and its `x-amz-trailer-signature`. The strings to sign are
    /// built here from the S3 API Reference's text, not with the stub's code: a chunk's is
    /// `AWS4-HMAC-SHA256-PAYLOAD`, the timestamp, the scope, the previous signature,
    /// Hex(SHA256("")) and Hex(SHA256(chunk)), one a line (sigv4-streaming); the trailer's is
    /// `AWS4-HMAC-SHA256-TRAILER`, the timestamp, the scope, the final chunk's signature and
    /// Hex(SHA256(trailing headers as `name:value\n`)) (sigv4-streaming-trailers; the AWS SDKs'
    /// signers hash them so, sorted by name).
    fn signed_stream(amz: &str, seed: &str, data: &[u8], trailer: Option<(&str, &str)>) -> Vec<u8> {
        let skey = sigv4::signing_key(ADMIN_SK, &amz[..8], "us-east-1", "s3");
        let scope = format!("{}/us-east-1/s3/aws4_request", &amz[..8]);
        let empty = sigv4::sha256_hex(b"");
        let mut body = Vec::new();
        let mut prev = seed.to_string();
        for chunk in data.chunks(65_536).chain([&[][..]]) {
            let sts = format!(
                "AWS4-HMAC-SHA256-PAYLOAD\n{amz}\n{scope}\n{prev}\n{empty}\n{}",
                sigv4::sha256_hex(chunk)
            );
            let sig = sigv4::sign(&skey, &sts);
            body.extend_from_slice(
                format!("{:x};chunk-signature={sig}\r\n", chunk.len()).as_bytes(),
            );
            if !chunk.is_empty() {
                body.extend_from_slice(chunk);
                body.extend_from_slice(b"\r\n");
            }
            prev = sig;
        }
        if let Some((name, value)) = trailer {
            let canonical = format!("{name}:{value}\n");
            let sts = format!(
                "AWS4-HMAC-SHA256-TRAILER\n{amz}\n{scope}\n{prev}\n{}",
                sigv4::sha256_hex(canonical.as_bytes())
            );
            let sig = sigv4::sign(&skey, &sts);
            body.extend_from_slice(
                format!("{name}:{value}\r\nx-amz-trailer-signature:{sig}\r\n").as_bytes(),
            );
        }
        body.extend_from_slice(b"\r\n");
        body
    }

    /// Overwrites the 64 hex digits after the first `marker` in `body` with `with`.
    fn forge_after(mut body: Vec<u8>, marker: &[u8], with: u8) -> Vec<u8> {
        let at = body.windows(marker.len()).position(|w| w == marker).unwrap() + marker.len();
        body[at..at + 64].fill(with);
        body
    }

    /// `x-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER` is signed chunks and
    /// a signed trailer. The S3 API Reference (Signature calculations for trailing headers
    /// (chunked uploads)): "Previous chunks are sent as normal and signed as described in the
    /// previous sections, including sending the final chunk with a payload of 0 bytes. The
    /// trailing headers are included as their own chunk and sent after the final chunk with a
    /// payload of 0 bytes", and their signature is "appended as a trailing header itself, named
    /// x-amz-trailer-signature" (the AWS SDK for Kotlin's signChunkTrailer). A forged chunk
    /// signature, a forged or missing trailer signature, or a trailer changed under its
    /// signature is `403 SignatureDoesNotMatch`, as for a forged chunk without trailers, and
    /// the object under the key stays as it was. `STREAMING-UNSIGNED-PAYLOAD-TRAILER` (what
    /// the AWS CLI sends over HTTPS) has neither and is taken.
    #[tokio::test]
    async fn signed_trailer_upload_checks_chunk_and_trailer_signatures() {
        use crate::services::checksum::Hasher;
        let (addr, _dir, store, _) = start_signed().await;
        let crc32 = |data: &[u8]| {
            let mut h = Hasher::new(Algorithm::Crc32);
            h.update(data);
            h.finish().value
        };
        let data = pattern(150_000, 5);
        let crc = crc32(&data);
        store.put_object("bkt", "k", b"original", None).unwrap();
        let trailer = ("x-amz-checksum-crc32", crc.as_str());
        let drop_signature = |mut body: Vec<u8>| {
            let at = body.windows(24).position(|w| w == b"x-amz-trailer-signature:").unwrap();
            body.drain(at..at + 24 + 64 + 2);
            body
        };
        let other_crc = crc32(b"other");
        let change_value = |body: Vec<u8>| {
            let text = String::from_utf8_lossy(&body).into_owned();
            assert_eq!(other_crc.len(), crc.len());
            let at = body.len() - text.rfind(crc.as_str()).map(|i| text.len() - i).unwrap();
            let mut body = body;
            body[at..at + crc.len()].copy_from_slice(other_crc.as_bytes());
            body
        };
        type Forge<'a> = &'a dyn Fn(Vec<u8>) -> Vec<u8>;
        let cases: [(&str, Forge); 5] = [
            ("a forged chunk signature", &|b| forge_after(b, b"chunk-signature=", b'0')),
            ("a forged trailer signature", &|b| forge_after(b, b"x-amz-trailer-signature:", b'f')),
            ("no trailer signature", &drop_signature),
            ("a trailer changed under its signature", &change_value),
            ("all signatures right", &|b| b),
        ];
        for (case, forge) in cases {
            let mut headers: Vec<(String, String)> = vec![
                ("host".into(), "127.0.0.1".into()),
                ("content-encoding".into(), "aws-chunked".into()),
                (
                    "x-amz-content-sha256".into(),
                    "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER".into(),
                ),
                ("x-amz-decoded-content-length".into(), data.len().to_string()),
                ("x-amz-trailer".into(), "x-amz-checksum-crc32".into()),
            ];
            let seed = sign_admin("PUT", "/bkt/k", &mut headers);
            let amz = headers.iter().find(|(k, _)| k == "x-amz-date").unwrap().1.clone();
            let body = forge(signed_stream(&amz, &seed, &data, Some(trailer)));
            let hs: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let r = req(addr, "PUT", "/bkt/k", &hs, &body).await;
            if case == "all signatures right" {
                assert_eq!(r.status, 200, "{case}: {}", r.text());
                assert_eq!(store.get_object_bytes("bkt", "k").unwrap().1, data);
                assert_eq!(store.head_object("bkt", "k").unwrap().checksum.unwrap().value, crc);
            } else {
                assert_eq!(
                    (r.status, xml_values(&r.text(), "Code")),
                    (403, vec!["SignatureDoesNotMatch".to_string()]),
                    "{case}"
                );
                assert_eq!(store.get_object_bytes("bkt", "k").unwrap().1, b"original", "{case}");
            }
        }
        // The unsigned variant: plain chunks, an unsigned trailer.
        let mut headers: Vec<(String, String)> = vec![
            ("host".into(), "127.0.0.1".into()),
            ("content-encoding".into(), "aws-chunked".into()),
            ("x-amz-content-sha256".into(), "STREAMING-UNSIGNED-PAYLOAD-TRAILER".into()),
            ("x-amz-decoded-content-length".into(), "5".into()),
            ("x-amz-trailer".into(), "x-amz-checksum-crc32".into()),
        ];
        sign_admin("PUT", "/bkt/u", &mut headers);
        let hs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let body = format!("5\r\nhello\r\n0\r\nx-amz-checksum-crc32:{}\r\n\r\n", crc32(b"hello"));
        let r = req(addr, "PUT", "/bkt/u", &hs, body.as_bytes()).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(store.get_object_bytes("bkt", "u").unwrap().1, b"hello");
    }

    /// An aws-chunked body under a hex `x-amz-content-sha256`: the hash was signed, so the body
    /// must match it. SigV4's "HashedPayload = Lowercase(HexEncode(Hash(requestPayload)))" is
    /// the hash of the payload as sent, here the aws-chunked framing (what a SigV4 signer that
    /// hashes the body it sends, as botocore's does, declares); AWS does not say which, see
    /// the README's Decisions. Any other value, the decoded content's hash included, is `400
    /// XAmzContentSHA256Mismatch` and the object under the key stays as it was.
    #[tokio::test]
    async fn declared_payload_hash_covers_an_aws_chunked_body_as_sent() {
        let (addr, _dir, store, _) = start_signed().await;
        store.put_object("bkt", "k", b"original", None).unwrap();
        let data = b"the real body".repeat(100);
        let wire = [format!("{:x}\r\n", data.len()).as_bytes(), &data, b"\r\n0\r\n\r\n"].concat();
        for (declared, ok) in [
            (sigv4::sha256_hex(b"what was signed"), false),
            (sigv4::sha256_hex(b""), false),
            (sigv4::sha256_hex(&data), false),
            (sigv4::sha256_hex(&wire), true),
        ] {
            let mut headers: Vec<(String, String)> = vec![
                ("host".into(), "127.0.0.1".into()),
                ("content-encoding".into(), "aws-chunked".into()),
                ("x-amz-content-sha256".into(), declared.clone()),
                ("x-amz-decoded-content-length".into(), data.len().to_string()),
            ];
            sign_admin("PUT", "/bkt/k", &mut headers);
            let hs: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let r = req(addr, "PUT", "/bkt/k", &hs, &wire).await;
            if ok {
                assert_eq!(r.status, 200, "{}", r.text());
                assert_eq!(store.get_object_bytes("bkt", "k").unwrap().1, data);
            } else {
                let t = r.text();
                assert_eq!(
                    (r.status, xml_values(&t, "Code")),
                    (400, vec!["XAmzContentSHA256Mismatch".to_string()]),
                    "{declared}"
                );
                assert_eq!(xml_values(&t, "ClientComputedContentSHA256"), [declared]);
                assert_eq!(xml_values(&t, "S3ComputedContentSHA256"), [sigv4::sha256_hex(&wire)]);
                assert_eq!(store.get_object_bytes("bkt", "k").unwrap().1, b"original");
            }
        }
    }

    /// Buckets created after June 24, 2020 accept only Signature Version 4 (the lab's are all
    /// new). S3 refuses SigV2 in a header or a query string alike: "The authorization
    /// mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256." (400
    /// InvalidRequest). A SigV2-signed URL is never taken for an anonymous request, not even to
    /// a public bucket, and a refused PUT stores nothing.
    #[tokio::test]
    async fn signature_version_2_is_refused_never_anonymous() {
        let (addr, _dir, store, _) = start_signed().await;
        let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*",
            "Action":["s3:GetObject","s3:PutObject"],"Resource":"arn:aws:s3:::pub/*"}]}"#;
        store.create_bucket("pub", "us-east-1", Some(policy.into())).unwrap();
        store.put_object("pub", "k", b"public", None).unwrap();
        let r = req(addr, "GET", "/pub/k", &[], b"").await;
        assert_eq!(r.status, 200, "anonymous read of a public object");
        let refused = |r: &Resp| {
            let t = r.text();
            (r.status, xml_values(&t, "Code"), xml_values(&t, "Message"))
        };
        let expected = (
            400,
            vec!["InvalidRequest".to_string()],
            vec![
                "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256."
                    .to_string(),
            ],
        );
        // An expired (Expires=1) and forged presigned SigV2 URL, as `aws s3 presign` of AWS
        // CLI v1 makes them.
        let v2 = "AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Expires=1&Signature=bWq2s1WEIj%2BYdJ3E%3D";
        let r = req(addr, "GET", &format!("/pub/k?{v2}"), &[], b"").await;
        assert_eq!(refused(&r), expected);
        let r = req(addr, "PUT", &format!("/pub/new?{v2}"), &[], b"data").await;
        assert_eq!(refused(&r), expected);
        assert!(store.head_object("pub", "new").is_err());
        // Either parameter alone is SigV2 query authentication too.
        let r = req(addr, "GET", "/pub/k?Signature=abc", &[], b"").await;
        assert_eq!(refused(&r), expected);
        let r = req(addr, "GET", "/pub/k?AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE", &[], b"").await;
        assert_eq!(refused(&r), expected);
        // The same for a SigV2 Authorization header.
        let auth = [("Authorization", "AWS AKIAIOSFODNN7EXAMPLE:frJIUN8DYpKDtOLCwo//yllqDzg=")];
        let r = req(addr, "PUT", "/pub/new", &auth, b"data").await;
        assert_eq!(refused(&r), expected);
        assert!(store.head_object("pub", "new").is_err());
    }

    /// GetObject's response-* overrides, from the API reference: "When you use these
    /// parameters, you must sign the request by using either an Authorization header or a
    /// presigned URL. These parameters cannot be used with an unsigned (anonymous) request."
    /// S3 answers 400 InvalidRequest "Request specific response headers cannot be used for
    /// anonymous GET requests."
    #[tokio::test]
    async fn response_overrides_need_a_signed_request() {
        let (addr, _dir, store, _) = start_signed().await;
        let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*",
            "Action":"s3:GetObject","Resource":"arn:aws:s3:::pub/*"}]}"#;
        store.create_bucket("pub", "us-east-1", Some(policy.into())).unwrap();
        store.put_object("pub", "k", b"public", None).unwrap();
        for (q, header) in RESPONSE_OVERRIDES {
            let target = format!("/pub/k?{q}=over");
            let r = req(addr, "GET", &target, &[], b"").await;
            let t = r.text();
            assert_eq!(
                (r.status, xml_values(&t, "Code"), xml_values(&t, "Message")),
                (
                    400,
                    vec!["InvalidRequest".to_string()],
                    vec![
                        "Request specific response headers cannot be used for anonymous GET requests."
                            .to_string()
                    ]
                ),
                "{q}"
            );
            let mut headers = vec![
                ("host".to_string(), "127.0.0.1".to_string()),
                ("x-amz-content-sha256".to_string(), sigv4::EMPTY_SHA256.to_string()),
            ];
            sign_admin("GET", &target, &mut headers);
            let hs: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let r = req(addr, "GET", &target, &hs, b"").await;
            assert_eq!(r.status, 200, "{q}: {}", r.text());
            assert_eq!(r.header(header), Some("over"), "{q}");
            assert_eq!(r.body, b"public");
            // HeadObject takes the same parameters, refused the same way when anonymous.
            assert_eq!(req(addr, "HEAD", &target, &[], b"").await.status, 400, "HEAD {q}");
            let mut headers = vec![
                ("host".to_string(), "127.0.0.1".to_string()),
                ("x-amz-content-sha256".to_string(), sigv4::EMPTY_SHA256.to_string()),
            ];
            sign_admin("HEAD", &target, &mut headers);
            let hs: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let r = req(addr, "HEAD", &target, &hs, b"").await;
            assert_eq!(r.status, 200, "HEAD {q}");
            assert_eq!(r.header(header), Some("over"), "HEAD {q}");
            assert_eq!(r.header("content-length"), Some("6"), "HEAD {q}");
        }
        // Without an override the same anonymous GET is fine.
        assert_eq!(req(addr, "GET", "/pub/k", &[], b"").await.status, 200);
    }

    /// CopyObject and UploadPartCopy honour x-amz-copy-source-if-* (412 PreconditionFailed,
    /// nothing written), with the API reference's combination rules: "If both the
    /// x-amz-copy-source-if-match and x-amz-copy-source-if-unmodified-since headers are present
    /// in the request and evaluate as follows, Amazon S3 returns 200 OK and copies the data:
    /// x-amz-copy-source-if-match condition evaluates to true; x-amz-copy-source-if-unmodified-
    /// since condition evaluates to false"; "If both the x-amz-copy-source-if-none-match and
    /// x-amz-copy-source-if-modified-since headers are present in the request and evaluate as
    /// follows, Amazon S3 returns the 412 Precondition Failed response code: x-amz-copy-source-
    /// if-none-match condition evaluates to false; x-amz-copy-source-if-modified-since
    /// condition evaluates to true".
    #[tokio::test]
    async fn copy_source_conditions() {
        let (addr, _dir, store, _) = start(false).await;
        let src = store.put_object("bkt", "src", b"copy me", None).unwrap();
        let etag = src.etag.clone();
        let (past, future) =
            (http_date(src.last_modified - 3600), http_date(src.last_modified + 3600));
        const IM: &str = "x-amz-copy-source-if-match";
        const INM: &str = "x-amz-copy-source-if-none-match";
        const IMS: &str = "x-amz-copy-source-if-modified-since";
        const IUS: &str = "x-amz-copy-source-if-unmodified-since";
        let other = "\"0123456789abcdef0123456789abcdef\"";
        // (conditional headers, the Condition of the 412 or None for a copy)
        type Case<'a> = (Vec<(&'a str, &'a str)>, Option<&'a str>);
        let cases: Vec<Case> = vec![
            (vec![(IM, other)], Some("x-amz-copy-source-If-Match")),
            (vec![(IM, &etag)], None),
            (vec![(INM, &etag)], Some("x-amz-copy-source-If-None-Match")),
            (vec![(INM, other)], None),
            (vec![(IUS, &past)], Some("x-amz-copy-source-If-Unmodified-Since")),
            (vec![(IUS, &future)], None),
            (vec![(IMS, &future)], Some("x-amz-copy-source-If-Modified-Since")),
            (vec![(IMS, &past)], None),
            // if-match true and if-unmodified-since false: copied.
            (vec![(IM, &etag), (IUS, &past)], None),
            // if-none-match false and if-modified-since true: 412.
            (vec![(INM, &etag), (IMS, &past)], Some("x-amz-copy-source-If-None-Match")),
            // if-none-match true and if-modified-since false: copied (if-none-match decides,
            // as If-None-Match does over If-Modified-Since on a GET).
            (vec![(INM, other), (IMS, &future)], None),
        ];
        for (i, (conds, failed)) in cases.iter().enumerate() {
            let mut headers = vec![("x-amz-copy-source", "/bkt/src")];
            headers.extend(conds.iter().copied());
            let key = format!("c{i}");
            let r = req(addr, "PUT", &format!("/bkt/{key}"), &headers, b"").await;
            let t = r.text();
            match failed {
                Some(cond) => {
                    assert_eq!(
                        (r.status, xml_values(&t, "Code"), xml_values(&t, "Condition")),
                        (412, vec!["PreconditionFailed".to_string()], vec![cond.to_string()]),
                        "{conds:?}"
                    );
                    assert!(store.head_object("bkt", &key).is_err(), "{conds:?}: copied");
                }
                None => {
                    assert_eq!(r.status, 200, "{conds:?}: {t}");
                    assert_eq!(store.get_object_bytes("bkt", &key).unwrap().1, b"copy me");
                }
            }
        }
        // UploadPartCopy: the same conditions, and a refused part is not stored.
        let id = initiate(addr, "/bkt/parts", &[]).await;
        let target = format!("/bkt/parts?partNumber=1&uploadId={id}");
        let parts = || store.list_parts("bkt", &id).unwrap().1.len();
        for (h, v) in [(IM, other), (INM, etag.as_str()), (IUS, &past), (IMS, &future)] {
            let r =
                req(addr, "PUT", &target, &[("x-amz-copy-source", "/bkt/src"), (h, v)], b"").await;
            assert_eq!(
                (r.status, xml_values(&r.text(), "Code")),
                (412, vec!["PreconditionFailed".to_string()]),
                "{h}"
            );
            assert_eq!(parts(), 0, "{h}");
        }
        let r =
            req(addr, "PUT", &target, &[("x-amz-copy-source", "/bkt/src"), (IM, &etag)], b"").await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(parts(), 1);
    }

    /// PutObject, CreateMultipartUpload and CopyObject (REPLACE) take Cache-Control ("Specifies
    /// caching behavior along the request/reply chain"), Content-Disposition ("Specifies
    /// presentational information for the object"), Content-Encoding, Content-Language and
    /// Expires as the object's, and GetObject and HeadObject return the same fields. COPY keeps
    /// the source's. `aws-chunked` is the upload's framing, not the object's encoding: S3 does
    /// not store it.
    #[tokio::test]
    async fn standard_object_headers_are_stored() {
        let (addr, _dir, store, _) = start(false).await;
        let std_headers = [
            ("Cache-Control", "max-age=60"),
            ("Content-Disposition", "attachment; filename=\"a.txt\""),
            ("Content-Encoding", "gzip"),
            ("Content-Language", "en-GB"),
            ("Expires", "Thu, 01 Dec 2044 16:00:00 GMT"),
        ];
        let has_all = |r: &Resp, what: &str| {
            for (h, v) in std_headers {
                assert_eq!(r.header(h), Some(v), "{what}: {h}");
            }
        };
        let r = req(addr, "PUT", "/bkt/src", &std_headers, b"zipped").await;
        assert_eq!(r.status, 200, "{}", r.text());
        has_all(&req(addr, "GET", "/bkt/src", &[], b"").await, "GET");
        has_all(&req(addr, "HEAD", "/bkt/src", &[], b"").await, "HEAD");
        // COPY keeps them; REPLACE takes the request's (none here).
        let copy = [("x-amz-copy-source", "/bkt/src")];
        assert_eq!(req(addr, "PUT", "/bkt/copied", &copy, b"").await.status, 200);
        has_all(&req(addr, "HEAD", "/bkt/copied", &[], b"").await, "COPY");
        let replace = [("x-amz-copy-source", "/bkt/src"), ("x-amz-metadata-directive", "REPLACE")];
        assert_eq!(req(addr, "PUT", "/bkt/replaced", &replace, b"").await.status, 200);
        let r = req(addr, "HEAD", "/bkt/replaced", &[], b"").await;
        for (h, _) in std_headers {
            assert_eq!(r.header(h), None, "REPLACE: {h}");
        }
        let mut replace_with = replace.to_vec();
        replace_with.extend(std_headers);
        assert_eq!(req(addr, "PUT", "/bkt/replaced", &replace_with, b"").await.status, 200);
        has_all(&req(addr, "HEAD", "/bkt/replaced", &[], b"").await, "REPLACE with headers");
        // Multipart: given at creation, on the completed object.
        let id = initiate(addr, "/bkt/mp", &std_headers).await;
        let e1 = put_part(addr, "/bkt/mp", &id, 1, b"part").await;
        let r =
            req(addr, "POST", &format!("/bkt/mp?uploadId={id}"), &[], &complete_xml(&[(1, &e1)]))
                .await;
        assert_eq!(r.status, 200, "{}", r.text());
        has_all(&req(addr, "GET", "/bkt/mp", &[], b"").await, "multipart");
        // aws-chunked framing is not stored as the object's encoding; what follows it is.
        for (encoding, stored) in [("aws-chunked", None), ("aws-chunked,gzip", Some("gzip"))] {
            let body = b"5\r\nhello\r\n0\r\n\r\n";
            let headers = [
                ("Content-Encoding", encoding),
                ("x-amz-content-sha256", "STREAMING-UNSIGNED-PAYLOAD-TRAILER"),
                ("x-amz-decoded-content-length", "5"),
            ];
            let r = req(addr, "PUT", "/bkt/chunked", &headers, body).await;
            assert_eq!(r.status, 200, "{}", r.text());
            assert_eq!(store.get_object_bytes("bkt", "chunked").unwrap().1, b"hello");
            let r = req(addr, "HEAD", "/bkt/chunked", &[], b"").await;
            assert_eq!(r.header("content-encoding"), stored, "{encoding}");
        }
    }

    /// Conditional writes (PutObject, CompleteMultipartUpload). The API reference:
    /// If-None-Match "Uploads the object only if the object key name does not already exist in
    /// the bucket specified. Otherwise, Amazon S3 returns a 412 Precondition Failed error";
    /// If-Match "Uploads the object only if the ETag (entity tag) value provided during the
    /// WRITE operation matches the ETag of the object in S3. If the ETag values do not match,
    /// the operation returns a 412 Precondition Failed error". The user guide: with If-Match,
    /// "if there's no current object version with the same name [...] the operation fails with
    /// a 404 Not Found error". A refused write changes nothing.
    #[tokio::test]
    async fn conditional_writes() {
        let (addr, _dir, store, _) = start(false).await;
        let v1 = store.put_object("bkt", "k", b"v1", None).unwrap();
        let body = |k: &str| store.get_object_bytes("bkt", k).map(|(_, b)| b).ok();
        let failed = |r: &Resp, cond: &str| {
            let t = r.text();
            assert_eq!(
                (r.status, xml_values(&t, "Code"), xml_values(&t, "Condition")),
                (412, vec!["PreconditionFailed".to_string()], vec![cond.to_string()]),
                "{t}"
            );
        };
        let r = req(addr, "PUT", "/bkt/k", &[("If-None-Match", "*")], b"v2").await;
        failed(&r, "If-None-Match");
        assert_eq!(body("k").unwrap(), b"v1");
        let r = req(addr, "PUT", "/bkt/new", &[("If-None-Match", "*")], b"new").await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(body("new").unwrap(), b"new");
        let wrong = "\"0123456789abcdef0123456789abcdef\"";
        let r = req(addr, "PUT", "/bkt/k", &[("If-Match", wrong)], b"v2").await;
        failed(&r, "If-Match");
        assert_eq!(body("k").unwrap(), b"v1");
        let r = req(addr, "PUT", "/bkt/missing", &[("If-Match", wrong)], b"v2").await;
        assert_eq!((r.status, xml_values(&r.text(), "Code")), (404, vec!["NoSuchKey".to_string()]));
        assert!(body("missing").is_none());
        let r = req(addr, "PUT", "/bkt/k", &[("If-Match", &v1.etag)], b"v2").await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(body("k").unwrap(), b"v2");
        // No orphaned bodies of the refused writes.
        let objects = _dir.0.join("buckets/bkt/objects");
        let data = std::fs::read_dir(objects)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".data"));
        assert_eq!(data.count(), 2);

        // CompleteMultipartUpload: refused, the object and the upload stay; then completed.
        let id = initiate(addr, "/bkt/k", &[]).await;
        let e1 = put_part(addr, "/bkt/k", &id, 1, b"multi").await;
        let target = format!("/bkt/k?uploadId={id}");
        let xml = complete_xml(&[(1, &e1)]);
        let r = req(addr, "POST", &target, &[("If-None-Match", "*")], &xml).await;
        failed(&r, "If-None-Match");
        let r = req(addr, "POST", &target, &[("If-Match", wrong)], &xml).await;
        failed(&r, "If-Match");
        assert_eq!(body("k").unwrap(), b"v2");
        assert_eq!(store.list_parts("bkt", &id).unwrap().1.len(), 1);
        let etag = store.head_object("bkt", "k").unwrap().etag;
        let r = req(addr, "POST", &target, &[("If-Match", &etag)], &xml).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(body("k").unwrap(), b"multi");
    }

    /// A body that does not match its declared x-amz-content-sha256 is refused with 400
    /// XAmzContentSHA256Mismatch ("The provided 'x-amz-content-sha256' header does not match
    /// what was computed.") and nothing is stored, though the signature, which covers only the
    /// header, verifies (the body is streamed, so the hash is checked as it is written).
    #[tokio::test]
    async fn declared_payload_hash_is_checked() {
        let (addr, _dir, store, _) = start_signed().await;
        for (body, declared, ok) in [
            (&b"the real body"[..], sigv4::sha256_hex(b"another body"), false),
            (b"the real body", sigv4::sha256_hex(b"the real body"), true),
        ] {
            let mut headers = vec![
                ("host".to_string(), "127.0.0.1".to_string()),
                ("x-amz-content-sha256".to_string(), declared.clone()),
            ];
            sign_admin("PUT", "/bkt/hashed", &mut headers);
            let hs: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let r = req(addr, "PUT", "/bkt/hashed", &hs, body).await;
            if ok {
                assert_eq!(r.status, 200, "{}", r.text());
                assert_eq!(store.get_object_bytes("bkt", "hashed").unwrap().1, body);
            } else {
                // quick-xml escapes ' as &apos; (the same text to an XML parser).
                let t = r.text().replace("&apos;", "'");
                assert_eq!(
                    (r.status, xml_values(&t, "Code"), xml_values(&t, "Message")),
                    (
                        400,
                        vec!["XAmzContentSHA256Mismatch".to_string()],
                        vec![
                            "The provided 'x-amz-content-sha256' header does not match what was computed."
                                .to_string()
                        ]
                    )
                );
                assert_eq!(xml_values(&t, "ClientComputedContentSHA256"), [declared]);
                assert_eq!(xml_values(&t, "S3ComputedContentSHA256"), [sigv4::sha256_hex(body)]);
                assert!(store.head_object("bkt", "hashed").is_err());
            }
        }
    }

    /// `x-amz-storage-class` is kept with the object (PutObject, CopyObject, multipart) and
    /// shown where S3 shows it; an unknown class stores nothing; an archived object's body is
    /// not served. The API reference: HeadObject's x-amz-storage-class "Amazon S3 returns this
    /// header for all objects except for S3 Standard storage class objects"; GetObject of a
    /// GLACIER or DEEP_ARCHIVE object "returns an InvalidObjectState error".
    #[tokio::test]
    async fn storage_classes_are_kept_and_shown() {
        let (addr, _dir, store, _) = start(false).await;
        let class = |r: &Resp| r.header("x-amz-storage-class").map(str::to_string);
        // Unknown (or another kind of storage's) class: 400, nothing stored.
        for bad in ["BOGUS", "standard", "OUTPOSTS", "EXPRESS_ONEZONE"] {
            let r = req(addr, "PUT", "/bkt/bad", &[("x-amz-storage-class", bad)], b"x").await;
            let t = r.text();
            assert_eq!(r.status, 400, "{bad}");
            assert_eq!(xml_values(&t, "Code"), ["InvalidStorageClass"], "{bad}");
            assert_eq!(xml_values(&t, "Message"), ["The storage class you specified is not valid"]);
            let r =
                req(addr, "POST", "/bkt/bad?uploads", &[("x-amz-storage-class", bad)], b"").await;
            assert_eq!(r.status, 400, "{bad}");
        }
        assert!(store.head_object("bkt", "bad").is_err());
        assert!(store.list_uploads("bkt", "").unwrap().is_empty());
        // STANDARD is never named in a header; every other class is.
        for name in ["STANDARD", "STANDARD_IA", "GLACIER_IR", "DEEP_ARCHIVE"] {
            let key = format!("/bkt/c-{name}");
            let r = req(addr, "PUT", &key, &[("x-amz-storage-class", name)], b"data").await;
            assert_eq!(r.status, 200, "{name}: {}", r.text());
            let want = (name != "STANDARD").then(|| name.to_string());
            assert_eq!(class(&req(addr, "HEAD", &key, &[], b"").await), want, "{name}");
        }
        assert_eq!(
            class(&req(addr, "GET", "/bkt/c-GLACIER_IR", &[], b"").await).unwrap(),
            "GLACIER_IR"
        );
        // Listings name the stored class.
        let t = req(addr, "GET", "/bkt?list-type=2&prefix=c-", &[], b"").await.text();
        assert_eq!(
            xml_values(&t, "StorageClass"),
            ["DEEP_ARCHIVE", "GLACIER_IR", "STANDARD", "STANDARD_IA"]
        );
        let t = req(addr, "GET", "/bkt?prefix=c-", &[], b"").await.text();
        assert_eq!(xml_values(&t, "StorageClass").len(), 4);
        assert!(t.contains("<StorageClass>DEEP_ARCHIVE</StorageClass>"), "{t}");
        // An archived object: HEAD answers, GET is 403 InvalidObjectState, and it is no copy
        // source.
        for name in ["GLACIER", "DEEP_ARCHIVE"] {
            let key = format!("/bkt/a-{name}");
            let r = req(addr, "PUT", &key, &[("x-amz-storage-class", name)], b"cold").await;
            assert_eq!(r.status, 200);
            assert_eq!(req(addr, "HEAD", &key, &[], b"").await.status, 200);
            let r = req(addr, "GET", &key, &[], b"").await;
            let t = r.text().replace("&apos;", "'");
            assert_eq!(r.status, 403, "{name}");
            assert_eq!(xml_values(&t, "Code"), ["InvalidObjectState"]);
            assert_eq!(
                xml_values(&t, "Message"),
                ["The operation is not valid for the object's storage class"]
            );
            assert_eq!(xml_values(&t, "StorageClass"), [name]);
            let r = req(addr, "PUT", "/bkt/thawed", &[("x-amz-copy-source", &key)], b"").await;
            assert_eq!(
                (r.status, xml_values(&r.text(), "Code")),
                (403, vec!["InvalidObjectState".to_string()])
            );
        }
        assert!(store.head_object("bkt", "thawed").is_err());
        // A copy is STANDARD unless it names a class, whatever the directive; naming one makes
        // a copy onto itself legal.
        let copy = |extra: &[(&'static str, &'static str)]| {
            let mut h = vec![("x-amz-copy-source", "/bkt/c-STANDARD_IA")];
            h.extend_from_slice(extra);
            h
        };
        assert_eq!(req(addr, "PUT", "/bkt/copy1", &copy(&[]), b"").await.status, 200);
        assert_eq!(
            store.head_object("bkt", "copy1").unwrap().storage_class,
            StorageClass::Standard
        );
        let h =
            copy(&[("x-amz-metadata-directive", "REPLACE"), ("x-amz-storage-class", "ONEZONE_IA")]);
        assert_eq!(req(addr, "PUT", "/bkt/copy2", &h, b"").await.status, 200);
        assert_eq!(
            store.head_object("bkt", "copy2").unwrap().storage_class,
            StorageClass::OnezoneIa
        );
        let h =
            [("x-amz-copy-source", "/bkt/copy1"), ("x-amz-storage-class", "INTELLIGENT_TIERING")];
        let r = req(addr, "PUT", "/bkt/copy1", &h, b"").await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(
            store.head_object("bkt", "copy1").unwrap().storage_class,
            StorageClass::IntelligentTiering
        );
        let h = copy(&[("x-amz-storage-class", "BOGUS")]);
        assert_eq!(req(addr, "PUT", "/bkt/copy3", &h, b"").await.status, 400);
        assert!(store.head_object("bkt", "copy3").is_err());
        // Multipart: the upload's class is listed and given to the completed object.
        let id = initiate(addr, "/bkt/mp", &[("x-amz-storage-class", "REDUCED_REDUNDANCY")]).await;
        let e1 = put_part(addr, "/bkt/mp", &id, 1, b"part").await;
        let t = req(addr, "GET", "/bkt?uploads", &[], b"").await.text();
        assert_eq!(xml_values(&t, "StorageClass"), ["REDUCED_REDUNDANCY"]);
        let t = req(addr, "GET", &format!("/bkt/mp?uploadId={id}"), &[], b"").await.text();
        assert_eq!(xml_values(&t, "StorageClass"), ["REDUCED_REDUNDANCY"]);
        let r =
            req(addr, "POST", &format!("/bkt/mp?uploadId={id}"), &[], &complete_xml(&[(1, &e1)]))
                .await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(
            class(&req(addr, "HEAD", "/bkt/mp", &[], b"").await).unwrap(),
            "REDUCED_REDUNDANCY"
        );
    }

    /// ListMultipartUploads with a delimiter: keys sharing the part between the prefix and the
    /// delimiter roll up into CommonPrefixes, counted with the uploads against max-uploads;
    /// following NextKeyMarker (and NextUploadIdMarker) pages through each entry once.
    #[tokio::test]
    async fn list_uploads_with_delimiter() {
        let (addr, _dir, _store, _) = start(false).await;
        let mut ids = BTreeMap::new();
        for key in ["a.bin", "d/1", "d/2", "d/sub/3", "e/1", "z"] {
            ids.insert(key, initiate(addr, &format!("/bkt/{key}"), &[]).await);
        }
        let second = initiate(addr, "/bkt/z", &[]).await;
        let t = req(addr, "GET", "/bkt?uploads&delimiter=/", &[], b"").await.text();
        assert_eq!(xml_values(&t, "Key"), ["a.bin", "z", "z"]);
        assert_eq!(xml_values(&t, "Delimiter"), ["/"]);
        assert_eq!(
            xml_values(&t, "CommonPrefixes"),
            ["<Prefix>d/</Prefix>", "<Prefix>e/</Prefix>"]
        );
        assert_eq!(xml_values(&t, "IsTruncated"), ["false"]);
        // With a prefix: grouped after it.
        let t = req(addr, "GET", "/bkt?uploads&prefix=d/&delimiter=/", &[], b"").await.text();
        assert_eq!(xml_values(&t, "Key"), ["d/1", "d/2"]);
        assert_eq!(xml_values(&t, "Prefix"), ["d/", "d/sub/"]);
        // Pages of two, following the markers: every upload and prefix once, in order.
        let mut seen = Vec::new();
        let mut markers = (String::new(), String::new());
        for _ in 0..10 {
            let target = format!(
                "/bkt?uploads&delimiter=/&max-uploads=2&key-marker={}&upload-id-marker={}",
                markers.0, markers.1
            );
            let t = req(addr, "GET", &target, &[], b"").await.text();
            let keys = xml_values(&t, "Key");
            let prefixes = xml_values(&t, "CommonPrefixes");
            assert!(keys.len() + prefixes.len() <= 2, "{t}");
            seen.extend(keys.into_iter().zip(xml_values(&t, "UploadId")));
            seen.extend(prefixes.into_iter().map(|p| (p, String::new())));
            if xml_values(&t, "IsTruncated") == ["false"] {
                break;
            }
            markers = (
                xml_values(&t, "NextKeyMarker").pop().unwrap(),
                xml_values(&t, "NextUploadIdMarker").pop().unwrap_or_default(),
            );
        }
        // (A page lists its uploads, then its prefixes: compared as sets.)
        seen.sort();
        let mut want: Vec<(String, String)> = vec![
            ("a.bin".into(), ids["a.bin"].clone()),
            ("<Prefix>d/</Prefix>".into(), String::new()),
            ("<Prefix>e/</Prefix>".into(), String::new()),
            ("z".into(), ids["z"].clone()),
            ("z".into(), second),
        ];
        want.sort();
        assert_eq!(seen, want);
    }

    /// `versionId=null` names the object of an unversioned bucket (GET, HEAD, DELETE, a copy's
    /// source); another version id is still not implemented.
    #[tokio::test]
    async fn version_id_null_is_the_object() {
        let (addr, _dir, store, _) = start(false).await;
        store.put_object("bkt", "k", b"body", None).unwrap();
        let r = req(addr, "GET", "/bkt/k?versionId=null", &[], b"").await;
        assert_eq!((r.status, r.body.as_slice()), (200, &b"body"[..]));
        assert_eq!(req(addr, "HEAD", "/bkt/k?versionId=null", &[], b"").await.status, 200);
        let copy = [("x-amz-copy-source", "/bkt/k?versionId=null")];
        assert_eq!(req(addr, "PUT", "/bkt/c", &copy, b"").await.status, 200);
        assert_eq!(store.get_object_bytes("bkt", "c").unwrap().1, b"body");
        for method in ["GET", "DELETE"] {
            let r = req(addr, method, "/bkt/k?versionId=3HL4kqtJlcpXroDTDmJ", &[], b"").await;
            assert_eq!(r.status, 501, "{method}");
        }
        assert_eq!(req(addr, "DELETE", "/bkt/k?versionId=null", &[], b"").await.status, 204);
        assert!(store.head_object("bkt", "k").is_err());
    }

    /// Page sizes and continuation tokens are refused with S3's words: "Argument maxKeys must
    /// be an integer between 0 and 2147483647" (maxParts, maxUploads alike), "The continuation
    /// token provided is incorrect".
    #[tokio::test]
    async fn bad_page_sizes_and_tokens() {
        let (addr, _dir, _store, _) = start(false).await;
        let id = initiate(addr, "/bkt/mp", &[]).await;
        let cases = [
            ("/bkt?list-type=2&max-keys=", "maxKeys"),
            ("/bkt?max-keys=-1", "maxKeys"),
            ("/bkt?list-type=2&max-keys=2147483648", "maxKeys"),
            ("/bkt?list-type=2&max-keys=abc", "maxKeys"),
            ("/bkt?uploads&max-uploads=2147483648", "maxUploads"),
            ("/bkt/mp?max-parts=x&uploadId=", "maxParts"),
        ];
        for (target, arg) in cases {
            let target = target.replace("uploadId=", &format!("uploadId={id}"));
            let r = req(addr, "GET", &target, &[], b"").await;
            let t = r.text();
            assert_eq!((r.status, xml_values(&t, "Code")), (400, vec!["InvalidArgument".into()]));
            assert_eq!(
                xml_values(&t, "Message"),
                [format!("Argument {arg} must be an integer between 0 and 2147483647")],
                "{target}"
            );
            assert_eq!(xml_values(&t, "ArgumentName"), [arg]);
        }
        // The largest is taken (and listed as at most 1000).
        let r = req(addr, "GET", "/bkt?list-type=2&max-keys=2147483647", &[], b"").await;
        assert_eq!((r.status, xml_values(&r.text(), "MaxKeys")), (200, vec!["1000".into()]));
        let r = req(addr, "GET", "/bkt?list-type=2&continuation-token=zz", &[], b"").await;
        let t = r.text();
        assert_eq!((r.status, xml_values(&t, "Code")), (400, vec!["InvalidArgument".into()]));
        assert_eq!(xml_values(&t, "Message"), ["The continuation token provided is incorrect"]);
        assert_eq!(xml_values(&t, "ArgumentName"), ["continuation-token"]);
    }

    /// Every object is SSE-S3 encrypted, as every new object on S3 since January 2023: the
    /// writes and reads that describe an object answer `x-amz-server-side-encryption: AES256`.
    /// Asking for AES256 is fine; SSE-KMS and customer keys are not implemented; an unknown
    /// method is S3's InvalidArgument. Nothing is stored when refused.
    #[tokio::test]
    async fn objects_are_sse_s3() {
        let (addr, _dir, store, _) = start(false).await;
        let sse = |r: &Resp, what: &str| {
            assert!(r.status < 300, "{what}: {} {}", r.status, r.text());
            assert_eq!(r.header("x-amz-server-side-encryption"), Some("AES256"), "{what}");
        };
        let aes = ("x-amz-server-side-encryption", "AES256");
        sse(&req(addr, "PUT", "/bkt/k", &[], b"body").await, "PutObject");
        sse(&req(addr, "PUT", "/bkt/k2", &[aes], b"body").await, "PutObject AES256");
        sse(&req(addr, "GET", "/bkt/k", &[], b"").await, "GetObject");
        sse(&req(addr, "GET", "/bkt/k", &[("range", "bytes=0-1")], b"").await, "GetObject range");
        sse(&req(addr, "HEAD", "/bkt/k", &[], b"").await, "HeadObject");
        sse(&req(addr, "PUT", "/bkt/c", &[("x-amz-copy-source", "/bkt/k")], b"").await, "Copy");
        let r = req(addr, "POST", "/bkt/mp?uploads", &[aes], b"").await;
        sse(&r, "CreateMultipartUpload");
        let id = xml_values(&r.text(), "UploadId").pop().unwrap();
        let r = req(addr, "PUT", &format!("/bkt/mp?partNumber=1&uploadId={id}"), &[], b"p").await;
        sse(&r, "UploadPart");
        let etag = r.header("etag").unwrap().to_string();
        let h = [("x-amz-copy-source", "/bkt/k")];
        let target = format!("/bkt/mp?partNumber=2&uploadId={id}");
        sse(&req(addr, "PUT", &target, &h, b"").await, "UploadPartCopy");
        let r =
            req(addr, "POST", &format!("/bkt/mp?uploadId={id}"), &[], &complete_xml(&[(1, &etag)]))
                .await;
        sse(&r, "CompleteMultipartUpload");
        // Refused: nothing stored.
        let refused = [
            (&[("x-amz-server-side-encryption", "aws:kms")][..], 501, "NotImplemented"),
            (&[("x-amz-server-side-encryption", "aws:kms:dsse")][..], 501, "NotImplemented"),
            (&[("x-amz-server-side-encryption-aws-kms-key-id", "k")][..], 501, "NotImplemented"),
            (
                &[("x-amz-server-side-encryption-customer-algorithm", "AES256")][..],
                501,
                "NotImplemented",
            ),
            (&[("x-amz-server-side-encryption", "ROT13")][..], 400, "InvalidArgument"),
        ];
        for (headers, status, code) in refused {
            let r = req(addr, "PUT", "/bkt/no", headers, b"x").await;
            let t = r.text();
            assert_eq!(
                (r.status, xml_values(&t, "Code")),
                (status, vec![code.to_string()]),
                "{headers:?}"
            );
            if code == "InvalidArgument" {
                assert_eq!(
                    xml_values(&t, "Message"),
                    ["The encryption method specified is not supported"]
                );
                assert_eq!(xml_values(&t, "ArgumentName"), ["x-amz-server-side-encryption"]);
                assert_eq!(xml_values(&t, "ArgumentValue"), ["ROT13"]);
            }
            let r = req(addr, "POST", "/bkt/no?uploads", headers, b"").await;
            assert_eq!(r.status, status, "{headers:?}");
        }
        assert!(store.head_object("bkt", "no").is_err());
        assert!(store.list_uploads("bkt", "no").unwrap().is_empty());
        let key = [("x-amz-server-side-encryption-customer-algorithm", "AES256")];
        assert_eq!(req(addr, "GET", "/bkt/k", &key, b"").await.status, 501);
    }
    // --- Object tagging -----------------------------------------------------------------------

    /// `<Tagging><TagSet>…</TagSet></Tagging>` of the given (key, value) pairs, XML-escaped.
    fn tagging_body(tags: &[(&str, &str)]) -> Vec<u8> {
        let esc = |t: &str| quick_xml::escape::escape(t).into_owned();
        let mut x =
            String::from("<Tagging xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><TagSet>");
        for (k, v) in tags {
            x.push_str(&format!("<Tag><Key>{}</Key><Value>{}</Value></Tag>", esc(k), esc(v)));
        }
        x.push_str("</TagSet></Tagging>");
        x.into_bytes()
    }

    /// PutObjectTagging of `body` with its Content-MD5.
    async fn put_tagging(addr: SocketAddr, target: &str, body: &[u8]) -> Resp {
        let md5 = base64_encode(&Md5::digest(body));
        req(addr, "PUT", &format!("{target}?tagging"), &[("Content-MD5", &md5)], body).await
    }

    /// The (Key, Value) pairs of a GetObjectTagging answer.
    fn tag_pairs(body: &str) -> Vec<(String, String)> {
        xml_values(body, "Key").into_iter().zip(xml_values(body, "Value")).collect()
    }

    fn pairs(tags: &[(&str, &str)]) -> Vec<(String, String)> {
        tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// PutObject: "x-amz-tagging: The tag-set for the object. The tag-set must be encoded as URL
    /// Query parameters. (For example, "Key1=Value1")". GetObjectTagging "returns the tag-set of
    /// an object"; PutObjectTagging "sets the supplied tag-set to an object that already exists
    /// in a bucket" (replacing the set); DeleteObjectTagging "removes the entire tag set from
    /// the specified object" (204). GetObject and HeadObject: "x-amz-tagging-count: The number
    /// of tags, if any, on the object". Tagging leaves the body, ETag and Last-Modified alone.
    #[tokio::test]
    async fn object_tags_put_get_replace_delete() {
        let (addr, _dir, store, _) = start(false).await;
        let tags = ("x-amz-tagging", "team=blue&note=a%20b%2Bc&empty=");
        let r = req(addr, "PUT", "/bkt/k", &[tags], b"body").await;
        assert_eq!(r.status, 200, "{}", r.text());
        let etag = r.header("etag").unwrap().to_string();
        let r = req(addr, "GET", "/bkt/k?tagging", &[], b"").await;
        assert_eq!(r.status, 200, "{}", r.text());
        let t = r.text();
        assert!(t.contains("<Tagging xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"), "{t}");
        let mut got = tag_pairs(&t);
        got.sort();
        assert_eq!(got, pairs(&[("empty", ""), ("note", "a b+c"), ("team", "blue")]));
        for method in ["GET", "HEAD"] {
            let r = req(addr, method, "/bkt/k", &[], b"").await;
            assert_eq!(r.header("x-amz-tagging-count"), Some("3"), "{method}");
        }
        // Replaced as a whole, durably with the object.
        let before = store.head_object("bkt", "k").unwrap();
        // "letters, numbers, and spaces representable in UTF-8, and the following characters:
        // + - = . _ : / @" (Tag restrictions).
        let value = "prod 1:2/@+=-._ Größe";
        let r = put_tagging(addr, "/bkt/k", &tagging_body(&[("env", value)])).await;
        assert_eq!((r.status, r.body.len()), (200, 0), "{}", r.text());
        let t = req(addr, "GET", "/bkt/k?tagging", &[], b"").await.text();
        assert_eq!(tag_pairs(&t), pairs(&[("env", value)]));
        let after = store.head_object("bkt", "k").unwrap();
        assert_eq!(after.tags, BTreeMap::from([("env".into(), value.into())]));
        assert_eq!((&after.etag, after.last_modified), (&before.etag, before.last_modified));
        assert_eq!(req(addr, "GET", "/bkt/k", &[], b"").await.header("etag"), Some(etag.as_str()));
        // Deleted: an empty TagSet, no count.
        let r = req(addr, "DELETE", "/bkt/k?tagging", &[], b"").await;
        assert_eq!(r.status, 204);
        let r = req(addr, "GET", "/bkt/k?tagging", &[], b"").await;
        assert_eq!(r.status, 200);
        assert!(r.text().contains("<TagSet/>") || r.text().contains("<TagSet></TagSet>"));
        assert!(tag_pairs(&r.text()).is_empty());
        assert_eq!(req(addr, "HEAD", "/bkt/k", &[], b"").await.header("x-amz-tagging-count"), None);
        assert_eq!(req(addr, "GET", "/bkt/k", &[], b"").await.body, b"body");
        // An object stored without tags has an empty set; a missing key is NoSuchKey.
        store.put_object("bkt", "plain", b"x", None).unwrap();
        let r = req(addr, "GET", "/bkt/plain?tagging", &[], b"").await;
        assert_eq!((r.status, tag_pairs(&r.text()).len()), (200, 0));
        for (method, body) in [("GET", Vec::new()), ("PUT", tagging_body(&[("a", "b")]))] {
            let r = if method == "PUT" {
                put_tagging(addr, "/bkt/nope", &body).await
            } else {
                req(addr, "GET", "/bkt/nope?tagging", &[], b"").await
            };
            assert_eq!((r.status, xml_values(&r.text(), "Code")), (404, vec!["NoSuchKey".into()]));
        }
        assert!(store.head_object("bkt", "nope").is_err());
    }

    /// The limits of "Categorizing your objects using tags" (S3 User Guide): "You can associate
    /// up to 10 tags with an object"; "A tag key can be up to 128 Unicode characters in length,
    /// and tag values can be up to 256 Unicode characters in length"; "The key and values are
    /// case sensitive" and a set has each key once. PutObjectTagging "has the following special
    /// errors: InvalidTag [...] MalformedXML - The XML provided does not match the schema".
    /// A refused request changes nothing.
    #[tokio::test]
    async fn object_tags_are_validated() {
        let (addr, _dir, store, _) = start(false).await;
        store.put_object("bkt", "k", b"x", None).unwrap();
        store.set_object_tags("bkt", "k", BTreeMap::from([("keep".into(), "me".into())])).unwrap();
        let refused = |r: &Resp, code: &str, message: &str| {
            let t = r.text();
            assert_eq!(r.status, 400, "{t}");
            assert_eq!(xml_values(&t, "Code"), [code], "{t}");
            assert_eq!(xml_values(&t, "Message"), [quick_xml::escape::escape(message)], "{t}");
        };
        let eleven: Vec<(String, String)> =
            (0..11).map(|i| (format!("k{i}"), format!("v{i}"))).collect();
        let eleven: Vec<(&str, &str)> =
            eleven.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let too_many = "Object tags cannot be greater than 10";
        refused(&put_tagging(addr, "/bkt/k", &tagging_body(&eleven)).await, "BadRequest", too_many);
        let long_key = "k".repeat(129);
        refused(
            &put_tagging(addr, "/bkt/k", &tagging_body(&[(&long_key, "v")])).await,
            "InvalidTag",
            "The TagKey you have provided is too long, max 128",
        );
        let long_value = "v".repeat(257);
        refused(
            &put_tagging(addr, "/bkt/k", &tagging_body(&[("k", &long_value)])).await,
            "InvalidTag",
            "The TagValue you have provided is too long, max 256",
        );
        refused(
            &put_tagging(addr, "/bkt/k", &tagging_body(&[("a", "1"), ("a", "2")])).await,
            "InvalidTag",
            "Cannot provide multiple Tags with the same key",
        );
        refused(
            &put_tagging(addr, "/bkt/k", &tagging_body(&[("", "v")])).await,
            "InvalidTag",
            "The TagKey you have provided is invalid",
        );
        refused(
            &put_tagging(addr, "/bkt/k", &tagging_body(&[("k", "semi;colon")])).await,
            "InvalidTag",
            "The TagValue you have provided is invalid",
        );
        for bad in [
            &b"<Tagging><TagSet><Tag><Key>a</Key><Value>b</Value></Tag></TagSet>"[..],
            b"<Tagging><TagSet><Tag><Value>b</Value></Tag></TagSet></Tagging>",
            b"<Tagging><TagSet><Tag><Key>a</Key></Tag></TagSet></Tagging>",
            b"<Tagging></Tagging>",
            b"<Other><TagSet/></Other>",
            b"not xml",
        ] {
            let r = put_tagging(addr, "/bkt/k", bad).await;
            assert_eq!(
                (r.status, xml_values(&r.text(), "Code")),
                (400, vec!["MalformedXML".into()]),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        // Unicode characters, not bytes: 128 of them in a key and 256 in a value are allowed.
        let (key, value) = ("é".repeat(128), "ü".repeat(256));
        let r = put_tagging(addr, "/bkt/k", &tagging_body(&[(&key, &value)])).await;
        assert_eq!(r.status, 200, "{}", r.text());
        store.set_object_tags("bkt", "k", BTreeMap::from([("keep".into(), "me".into())])).unwrap();
        // PutObjectTagging needs Content-MD5 or a flexible checksum, as DeleteObjects does,
        // and the value is checked.
        let body = tagging_body(&[("a", "b")]);
        let r = req(addr, "PUT", "/bkt/k?tagging", &[], &body).await;
        refused(&r, "InvalidRequest", "Missing required header for this request: Content-MD5");
        let wrong = base64_encode(&Md5::digest(b"other"));
        let r = req(addr, "PUT", "/bkt/k?tagging", &[("Content-MD5", &wrong)], &body).await;
        assert_eq!((r.status, xml_values(&r.text(), "Code")), (400, vec!["BadDigest".into()]));
        let mut h = crate::services::checksum::Hasher::new(Algorithm::Crc32);
        h.update(&body);
        let crc = h.finish().value;
        let r = req(addr, "PUT", "/bkt/k?tagging", &[("x-amz-checksum-crc32", "AAAAAA==")], &body)
            .await;
        assert_eq!(r.status, 400, "{}", r.text());
        assert_eq!(store.head_object("bkt", "k").unwrap().tags.len(), 1, "nothing changed");
        assert!(store.head_object("bkt", "k").unwrap().tags.contains_key("keep"));
        let r = req(addr, "PUT", "/bkt/k?tagging", &[("x-amz-checksum-crc32", &crc)], &body).await;
        assert_eq!(r.status, 200, "{}", r.text());

        // The header is checked alike before anything is stored; duplicate keys or bad
        // encoding there are S3's InvalidArgument about the header.
        let header: String = (0..11).map(|i| format!("k{i}=v{i}")).collect::<Vec<_>>().join("&");
        let r = req(addr, "PUT", "/bkt/new", &[("x-amz-tagging", &header)], b"x").await;
        refused(&r, "BadRequest", too_many);
        let long = format!("k={}", "v".repeat(257));
        let r = req(addr, "PUT", "/bkt/new", &[("x-amz-tagging", &long)], b"x").await;
        refused(&r, "InvalidTag", "The TagValue you have provided is too long, max 256");
        let dup = "The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query parameters without tag name duplicates.";
        for bad in ["a=1&a=2", "=v", "a=%zz", "a=%FF"] {
            let r = req(addr, "PUT", "/bkt/new", &[("x-amz-tagging", bad)], b"x").await;
            refused(&r, "InvalidArgument", dup);
            let r = req(addr, "POST", "/bkt/new?uploads", &[("x-amz-tagging", bad)], b"").await;
            refused(&r, "InvalidArgument", dup);
        }
        assert!(store.head_object("bkt", "new").is_err());
        assert!(store.list_uploads("bkt", "").unwrap().is_empty());
    }

    /// CreateMultipartUpload takes `x-amz-tagging` ("The tag-set for the object"), applied to
    /// the object CompleteMultipartUpload assembles. CopyObject's `x-amz-tagging-directive`:
    /// "Specifies whether the object tag-set is copied from the source object or replaced with
    /// the tag-set that's provided in the request. The default value is COPY."
    #[tokio::test]
    async fn object_tags_on_multipart_and_copy() {
        let (addr, _dir, store, _) = start(false).await;
        let id = initiate(addr, "/bkt/mp", &[("x-amz-tagging", "stage=upload")]).await;
        let e1 = put_part(addr, "/bkt/mp", &id, 1, b"part").await;
        assert!(store.head_object("bkt", "mp").is_err());
        let r =
            req(addr, "POST", &format!("/bkt/mp?uploadId={id}"), &[], &complete_xml(&[(1, &e1)]))
                .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let t = req(addr, "GET", "/bkt/mp?tagging", &[], b"").await.text();
        assert_eq!(tag_pairs(&t), pairs(&[("stage", "upload")]));

        let src = ("x-amz-copy-source", "/bkt/mp");
        let tagged = |k: &str| store.head_object("bkt", k).unwrap().tags;
        let want = |t: &[(&str, &str)]| -> BTreeMap<String, String> {
            t.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        // Default and COPY: the source's tags (a header's tags are not used).
        let r = req(addr, "PUT", "/bkt/c1", &[src], b"").await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(tagged("c1"), want(&[("stage", "upload")]));
        let h = [src, ("x-amz-tagging-directive", "COPY"), ("x-amz-tagging", "x=y")];
        assert_eq!(req(addr, "PUT", "/bkt/c2", &h, b"").await.status, 200);
        assert_eq!(tagged("c2"), want(&[("stage", "upload")]));
        // Metadata REPLACE does not replace the tags.
        let h = [src, ("x-amz-metadata-directive", "REPLACE")];
        assert_eq!(req(addr, "PUT", "/bkt/c3", &h, b"").await.status, 200);
        assert_eq!(tagged("c3"), want(&[("stage", "upload")]));
        // REPLACE: the request's tags, or none.
        let h = [src, ("x-amz-tagging-directive", "REPLACE"), ("x-amz-tagging", "x=y")];
        assert_eq!(req(addr, "PUT", "/bkt/c4", &h, b"").await.status, 200);
        assert_eq!(tagged("c4"), want(&[("x", "y")]));
        let h = [src, ("x-amz-tagging-directive", "REPLACE")];
        assert_eq!(req(addr, "PUT", "/bkt/c5", &h, b"").await.status, 200);
        assert!(tagged("c5").is_empty());
        let h = [src, ("x-amz-tagging-directive", "MERGE")];
        let r = req(addr, "PUT", "/bkt/c6", &h, b"").await;
        assert_eq!(
            (r.status, xml_values(&r.text(), "Code")),
            (400, vec!["InvalidArgument".into()])
        );
        let h = [src, ("x-amz-tagging-directive", "REPLACE"), ("x-amz-tagging", "a=1&a=2")];
        assert_eq!(req(addr, "PUT", "/bkt/c6", &h, b"").await.status, 400);
        assert!(store.head_object("bkt", "c6").is_err());
        // A new PutObject replaces the object and its tags.
        store.put_object("bkt", "c1", b"new", None).unwrap();
        assert!(tagged("c1").is_empty());
    }

    /// Tagging and access control: GetObjectTagging, PutObjectTagging and DeleteObjectTagging
    /// are their own actions; "To use PutObject with tags, you must have the
    /// s3:PutObjectTagging permission" as well as s3:PutObject (so for CreateMultipartUpload and
    /// a copy that replaces tags). The condition keys of "Tagging and access control policies":
    /// "s3:ExistingObjectTag/<tag-key> – Use this condition key to verify that an existing
    /// object tag has the specific tag key and value"; "s3:RequestObjectTagKeys – Use this
    /// condition key to restrict the tag keys that you want to allow on objects";
    /// "s3:RequestObjectTag/<tag-key> – Use this condition key to restrict the tag keys and
    /// values that you want to allow on objects".
    #[tokio::test]
    async fn object_tagging_is_authorized() {
        let (addr, _dir, store, _) = start_signed().await;
        let policy = r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Principal":"*","Action":["s3:PutObject","s3:DeleteObjectTagging"],
             "Resource":"arn:aws:s3:::pub/*"},
            {"Effect":"Allow","Principal":"*","Action":["s3:GetObject","s3:GetObjectTagging"],
             "Resource":"arn:aws:s3:::pub/*",
             "Condition":{"StringEquals":{"s3:ExistingObjectTag/public":"yes"}}},
            {"Effect":"Allow","Principal":"*","Action":"s3:PutObjectTagging",
             "Resource":"arn:aws:s3:::pub/*",
             "Condition":{"ForAllValues:StringEquals":{"s3:RequestObjectTagKeys":["public","team"]},
                          "StringNotEquals":{"s3:RequestObjectTag/team":"red"}}}]}"#;
        store.create_bucket("pub", "us-east-1", Some(policy.into())).unwrap();
        let denied = |r: &Resp| {
            assert_eq!(
                (r.status, xml_values(&r.text(), "Code")),
                (403, vec!["AccessDenied".into()])
            )
        };
        // PutObject with tags needs s3:PutObjectTagging for those tags.
        let r =
            req(addr, "PUT", "/pub/open", &[("x-amz-tagging", "public=yes&team=blue")], b"o").await;
        assert_eq!(r.status, 200, "{}", r.text());
        denied(&req(addr, "PUT", "/pub/x", &[("x-amz-tagging", "owner=me")], b"x").await);
        denied(&req(addr, "PUT", "/pub/x", &[("x-amz-tagging", "team=red")], b"x").await);
        denied(&req(addr, "POST", "/pub/x?uploads", &[("x-amz-tagging", "owner=me")], b"").await);
        assert!(store.head_object("pub", "x").is_err());
        assert!(store.list_uploads("pub", "").unwrap().is_empty());
        let r = req(addr, "PUT", "/pub/closed", &[], b"c").await;
        assert_eq!(r.status, 200, "{}", r.text());
        // Reads by existing tag: GetObject, HeadObject, GetObjectTagging.
        assert_eq!(req(addr, "GET", "/pub/open", &[], b"").await.body, b"o");
        assert_eq!(req(addr, "HEAD", "/pub/open", &[], b"").await.status, 200);
        assert_eq!(req(addr, "GET", "/pub/open?tagging", &[], b"").await.status, 200);
        denied(&req(addr, "GET", "/pub/closed", &[], b"").await);
        denied(&req(addr, "GET", "/pub/closed?tagging", &[], b"").await);
        // PutObjectTagging by the request's tags.
        let r = put_tagging(addr, "/pub/closed", &tagging_body(&[("public", "yes")])).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(req(addr, "GET", "/pub/closed", &[], b"").await.body, b"c");
        denied(&put_tagging(addr, "/pub/closed", &tagging_body(&[("owner", "me")])).await);
        denied(&put_tagging(addr, "/pub/closed", &tagging_body(&[("team", "red")])).await);
        // DeleteObjectTagging is allowed; then the object is no longer readable.
        assert_eq!(req(addr, "DELETE", "/pub/closed?tagging", &[], b"").await.status, 204);
        denied(&req(addr, "GET", "/pub/closed", &[], b"").await);
        // Without s3:DeleteObjectTagging (bkt has no bucket policy): refused.
        store.put_object("bkt", "k", b"x", None).unwrap();
        denied(&req(addr, "DELETE", "/bkt/k?tagging", &[], b"").await);
        // The admin may do all of it.
        let r = signed_as(addr, (ADMIN_AK, ADMIN_SK), "GET", "/bkt/k?tagging", &[]).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }

    /// GetObject/HeadObject `partNumber` with `x-amz-checksum-mode: ENABLED` of an object
    /// assembled from an upload created with a checksum algorithm: the part's own checksum
    /// (ObjectPart: "The Base64 encoded, 32-bit CRC32 checksum of the part. This checksum is
    /// present if the multipart upload request was created with the CRC32 checksum
    /// algorithm"); none for an upload created without one.
    #[tokio::test]
    async fn part_reads_return_the_parts_checksum() {
        use crate::services::checksum::Hasher;
        let (addr, _dir, _store, _) = start(false).await;
        let crc = |data: &[u8]| {
            let mut h = Hasher::new(Algorithm::Crc32);
            h.update(data);
            h.finish().value
        };
        let big = vec![b'a'; 5 * 1024 * 1024];
        let mode = ("x-amz-checksum-mode", "ENABLED");
        for (key, created) in [
            ("composite", vec![("x-amz-checksum-algorithm", "CRC32")]),
            (
                "full",
                vec![("x-amz-checksum-algorithm", "CRC32"), ("x-amz-checksum-type", "FULL_OBJECT")],
            ),
            ("none", vec![]),
        ] {
            let target = format!("/bkt/{key}");
            let id = initiate(addr, &target, &created).await;
            let mut done = String::from("<CompleteMultipartUpload>");
            for (n, data) in [(1u32, &big[..]), (2, &b"tail"[..])] {
                let path = format!("{target}?partNumber={n}&uploadId={id}");
                let sum = crc(data);
                let h: Vec<(&str, &str)> =
                    if created.is_empty() { vec![] } else { vec![("x-amz-checksum-crc32", &sum)] };
                let r = req(addr, "PUT", &path, &h, data).await;
                assert_eq!(r.status, 200, "{}", r.text());
                let etag = r.header("etag").unwrap();
                let named = if key == "composite" {
                    format!("<ChecksumCRC32>{sum}</ChecksumCRC32>")
                } else {
                    String::new()
                };
                done.push_str(&format!(
                    "<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag>{named}</Part>"
                ));
            }
            done.push_str("</CompleteMultipartUpload>");
            let r =
                req(addr, "POST", &format!("{target}?uploadId={id}"), &[], done.as_bytes()).await;
            assert_eq!(r.status, 200, "{key}: {}", r.text());
            for method in ["GET", "HEAD"] {
                let r = req(addr, method, &format!("{target}?partNumber=2"), &[mode], b"").await;
                assert_eq!(r.status, 206, "{key}");
                let want = (!created.is_empty()).then(|| crc(b"tail"));
                assert_eq!(r.header("x-amz-checksum-crc32"), want.as_deref(), "{key} {method}");
                let r = req(addr, method, &format!("{target}?partNumber=1"), &[mode], b"").await;
                let want = (!created.is_empty()).then(|| crc(&big));
                assert_eq!(r.header("x-amz-checksum-crc32"), want.as_deref(), "{key} {method}");
                // Not without the mode.
                let r = req(addr, method, &format!("{target}?partNumber=1"), &[], b"").await;
                assert_eq!(r.header("x-amz-checksum-crc32"), None);
            }
        }
    }

    /// DeleteObjects reads each object's `VersionId`: `null` is the object itself (no bucket is
    /// versioned) and is echoed in `<Deleted>`; any other id is that key's `NotImplemented`
    /// error, as DeleteObject answers it, and deletes nothing.
    #[tokio::test]
    async fn delete_objects_honours_version_ids() {
        let (addr, _dir, store, _) = start(false).await;
        for k in ["a", "b", "c"] {
            store.put_object("bkt", k, b"x", None).unwrap();
        }
        let body = b"<Delete><Object><Key>a</Key><VersionId>3HL4kqtJlcpXroDTDmJ</VersionId></Object>\
            <Object><Key>b</Key><VersionId>null</VersionId></Object><Object><Key>c</Key></Object></Delete>";
        let md5 = base64_encode(&Md5::digest(body));
        let r = req(addr, "POST", "/bkt?delete", &[("Content-MD5", &md5)], body).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let t = r.text();
        let errors = xml_values(&t, "Error");
        assert_eq!(errors.len(), 1, "{t}");
        assert_eq!(xml_values(&errors[0], "Key"), ["a"]);
        assert_eq!(xml_values(&errors[0], "VersionId"), ["3HL4kqtJlcpXroDTDmJ"]);
        assert_eq!(xml_values(&errors[0], "Code"), ["NotImplemented"]);
        let deleted = xml_values(&t, "Deleted");
        assert_eq!(deleted.len(), 2, "{t}");
        assert_eq!(xml_values(&deleted[0], "Key"), ["b"]);
        assert_eq!(xml_values(&deleted[0], "VersionId"), ["null"]);
        assert_eq!(xml_values(&deleted[1], "Key"), ["c"]);
        assert!(xml_values(&deleted[1], "VersionId").is_empty(), "{t}");
        assert!(store.head_object("bkt", "a").is_ok(), "another version's id deleted the object");
        assert!(store.head_object("bkt", "b").is_err());
        assert!(store.head_object("bkt", "c").is_err());
    }

    /// Conditional deletes (S3 User Guide, "How to perform conditional deletes"): DeleteObject's
    /// `If-Match` and each DeleteObjects object's `<ETag>`; another ETag is `412
    /// PreconditionFailed` (in DeleteObjects that key's `<Error>`), a missing key `404
    /// NoSuchKey`, and the object stays.
    #[tokio::test]
    async fn conditional_deletes() {
        let (addr, _dir, store, _) = start(false).await;
        let v1 = store.put_object("bkt", "k", b"v1", None).unwrap();
        let wrong = "\"0123456789abcdef0123456789abcdef\"";
        let r = req(addr, "DELETE", "/bkt/k", &[("If-Match", wrong)], b"").await;
        let t = r.text();
        assert_eq!(
            (r.status, xml_values(&t, "Code"), xml_values(&t, "Condition")),
            (412, vec!["PreconditionFailed".to_string()], vec!["If-Match".to_string()]),
            "{t}"
        );
        assert!(store.head_object("bkt", "k").is_ok());
        let r = req(addr, "DELETE", "/bkt/missing", &[("If-Match", "*")], b"").await;
        assert_eq!((r.status, xml_values(&r.text(), "Code")), (404, vec!["NoSuchKey".to_string()]));
        let r = req(addr, "DELETE", "/bkt/k", &[("If-Match", &v1.etag)], b"").await;
        assert_eq!(r.status, 204, "{}", r.text());
        assert!(store.head_object("bkt", "k").is_err());
        store.put_object("bkt", "k", b"v2", None).unwrap();
        assert_eq!(req(addr, "DELETE", "/bkt/k", &[("If-Match", "*")], b"").await.status, 204);
        assert!(store.head_object("bkt", "k").is_err());

        let a = store.put_object("bkt", "a", b"a", None).unwrap();
        store.put_object("bkt", "b", b"b", None).unwrap();
        let body = format!(
            "<Delete><Object><Key>a</Key><ETag>{}</ETag></Object>\
             <Object><Key>b</Key><ETag>{wrong}</ETag></Object>\
             <Object><Key>gone</Key><ETag>*</ETag></Object></Delete>",
            a.etag
        );
        let md5 = base64_encode(&Md5::digest(body.as_bytes()));
        let r = req(addr, "POST", "/bkt?delete", &[("Content-MD5", &md5)], body.as_bytes()).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let t = r.text();
        let errors = xml_values(&t, "Error");
        let codes: Vec<_> =
            errors.iter().map(|e| (xml_values(e, "Key"), xml_values(e, "Code"))).collect();
        assert_eq!(
            codes,
            [
                (vec!["b".to_string()], vec!["PreconditionFailed".to_string()]),
                (vec!["gone".to_string()], vec!["NoSuchKey".to_string()])
            ],
            "{t}"
        );
        assert_eq!(xml_values(&t, "Deleted").len(), 1, "{t}");
        assert!(store.head_object("bkt", "a").is_err());
        assert_eq!(store.get_object_bytes("bkt", "b").unwrap().1, b"b");
    }

    /// "To perform a conditional delete with the If-Match header with an ETag value, you must
    /// have the s3:DeleteObject and s3:GetObject permissions" (the User Guide); `If-Match: *`
    /// needs only s3:DeleteObject.
    #[tokio::test]
    async fn conditional_deletes_by_etag_need_read_access() {
        let (addr, _dir, store, _) = start_signed().await;
        let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*",
            "Action":"s3:DeleteObject","Resource":"arn:aws:s3:::pub/*"}]}"#;
        store.create_bucket("pub", "us-east-1", Some(policy.into())).unwrap();
        let k = store.put_object("pub", "k", b"v", None).unwrap();
        let r = req(addr, "DELETE", "/pub/k", &[("If-Match", &k.etag)], b"").await;
        assert_eq!((r.status, xml_values(&r.text(), "Code")), (403, vec!["AccessDenied".into()]));
        assert!(store.head_object("pub", "k").is_ok());
        let r = req(addr, "DELETE", "/pub/k", &[("If-Match", "*")], b"").await;
        assert_eq!(r.status, 204, "{}", r.text());
        assert!(store.head_object("pub", "k").is_err());
    }

    /// The S3 User Guide's "Enforce conditional writes on Amazon S3 buckets", example 1:
    /// `s3:PutObject` is allowed when `s3:if-none-match` is not Null, and (for multipart uploads)
    /// when `s3:ObjectCreationOperation` is false; "Enforce conditional deletes": `s3:DeleteObject`
    /// when `s3:if-match` is not Null. A request with the header passes, one without is `403`
    /// and changes nothing; CreateMultipartUpload and UploadPart pass, CompleteMultipartUpload
    /// only with the header; a DeleteObjects object only with its `<ETag>`.
    #[tokio::test]
    async fn bucket_policies_can_require_conditional_writes_and_deletes() {
        let (addr, _dir, store, _) = start_signed().await;
        let policy = r#"{"Version":"2012-10-17","Statement":[
            {"Sid":"AllowConditionalPut","Effect":"Allow","Principal":"*","Action":"s3:PutObject",
             "Resource":"arn:aws:s3:::cwb/*","Condition":{"Null":{"s3:if-none-match":"false"}}},
            {"Sid":"AllowConditionalPutwithMPUs","Effect":"Allow","Principal":"*",
             "Action":"s3:PutObject","Resource":"arn:aws:s3:::cwb/*",
             "Condition":{"Bool":{"s3:ObjectCreationOperation":"false"}}},
            {"Sid":"AllowConditionalDeletes","Effect":"Allow","Principal":"*",
             "Action":"s3:DeleteObject","Resource":"arn:aws:s3:::cwb/*",
             "Condition":{"Null":{"s3:if-match":"false"}}}]}"#;
        store.create_bucket("cwb", "us-east-1", Some(policy.into())).unwrap();
        let denied = |r: &Resp| {
            assert_eq!(
                (r.status, xml_values(&r.text(), "Code")),
                (403, vec!["AccessDenied".into()])
            )
        };
        denied(&req(addr, "PUT", "/cwb/k", &[], b"plain").await);
        assert!(store.head_object("cwb", "k").is_err(), "a refused put stored the object");
        let r = req(addr, "PUT", "/cwb/k", &[("If-None-Match", "*")], b"first").await;
        assert_eq!(r.status, 200, "{}", r.text());
        // Allowed, and then decided: the key is taken.
        let r = req(addr, "PUT", "/cwb/k", &[("If-None-Match", "*")], b"second").await;
        assert_eq!(r.status, 412, "{}", r.text());
        assert_eq!(store.get_object_bytes("cwb", "k").unwrap().1, b"first");

        // Multipart: creating and uploading parts are exempt, completing is not.
        let r = req(addr, "POST", "/cwb/mp?uploads", &[], b"").await;
        assert_eq!(r.status, 200, "{}", r.text());
        let id = xml_values(&r.text(), "UploadId").remove(0);
        let r = req(addr, "PUT", &format!("/cwb/mp?partNumber=1&uploadId={id}"), &[], b"p").await;
        assert_eq!(r.status, 200, "{}", r.text());
        let etag = r.header("etag").unwrap().to_string();
        let done = format!(
            "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{etag}</ETag></Part>\
             </CompleteMultipartUpload>"
        );
        let complete = format!("/cwb/mp?uploadId={id}");
        denied(&req(addr, "POST", &complete, &[], done.as_bytes()).await);
        assert!(store.head_object("cwb", "mp").is_err());
        let h = [("If-None-Match", "*")];
        let r = req(addr, "POST", &complete, &h, done.as_bytes()).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(store.get_object_bytes("cwb", "mp").unwrap().1, b"p");

        // Deletes: only with If-Match (`*` needs no s3:GetObject).
        denied(&req(addr, "DELETE", "/cwb/k", &[], b"").await);
        assert!(store.head_object("cwb", "k").is_ok(), "a refused delete deleted");
        let r = req(addr, "DELETE", "/cwb/k", &[("If-Match", "*")], b"").await;
        assert_eq!(r.status, 204, "{}", r.text());
        assert!(store.head_object("cwb", "k").is_err());
        let body = b"<Delete><Object><Key>mp</Key></Object>\
            <Object><Key>mp</Key><ETag>*</ETag></Object></Delete>";
        let md5 = base64_encode(&Md5::digest(body));
        let r = req(addr, "POST", "/cwb?delete", &[("Content-MD5", &md5)], body).await;
        let t = r.text();
        assert_eq!(r.status, 200, "{t}");
        let errors = xml_values(&t, "Error");
        assert_eq!(errors.len(), 1, "{t}");
        assert_eq!(xml_values(&errors[0], "Code"), ["AccessDenied"]);
        assert_eq!(xml_values(&t, "Deleted").len(), 1, "{t}");
        assert!(store.head_object("cwb", "mp").is_err());
    }

    /// The policy these keys exist for, as users write it: Deny `s3:PutObject` when
    /// `s3:if-none-match` is Null and `s3:ObjectCreationOperation` is true. Without the keys on
    /// requests the Deny never matched (a Bool condition on an absent key is false), so every
    /// overwrite went through.
    #[tokio::test]
    async fn a_deny_on_unconditional_writes_refuses_them() {
        let (addr, _dir, store, _) = start_signed().await;
        let policy = r#"{"Version":"2012-10-17","Statement":[
            {"Sid":"Open","Effect":"Allow","Principal":"*","Action":"s3:PutObject",
             "Resource":"arn:aws:s3:::cwb/*"},
            {"Sid":"DenyUnconditionalPut","Effect":"Deny","Principal":"*","Action":"s3:PutObject",
             "Resource":"arn:aws:s3:::cwb/*","Condition":{"Null":{"s3:if-none-match":"true"},
             "Bool":{"s3:ObjectCreationOperation":"true"}}}]}"#;
        store.create_bucket("cwb", "us-east-1", Some(policy.into())).unwrap();
        let r = req(addr, "PUT", "/cwb/k", &[], b"plain").await;
        assert_eq!(r.status, 403, "{}", r.text());
        assert_eq!(r.header("x-vpcsim-denied-by"), Some("bucket-policy:DenyUnconditionalPut"));
        assert!(store.head_object("cwb", "k").is_err());
        // If-Match without If-None-Match is refused too: the policy asks for If-None-Match.
        let r = req(addr, "PUT", "/cwb/k", &[("If-Match", "*")], b"plain").await;
        assert_eq!(r.status, 403, "{}", r.text());
        let r = req(addr, "PUT", "/cwb/k", &[("If-None-Match", "*")], b"new").await;
        assert_eq!(r.status, 200, "{}", r.text());
        let r = req(addr, "POST", "/cwb/mp?uploads", &[], b"").await;
        assert_eq!(r.status, 200, "{}", r.text());
    }

    /// A request naming a version (`versionId=null`, the only one simulated) is authorized as
    /// that version's action: DeleteObject and DeleteObjects as `s3:DeleteObjectVersion`,
    /// GetObject and HeadObject as `s3:GetObjectVersion`, a copy's source as
    /// `s3:GetObjectVersion`; `s3:DeleteObject` and `s3:GetObject` do not grant them.
    #[tokio::test]
    async fn naming_a_version_needs_the_version_actions() {
        let (addr, _dir, store, _) = start_signed().await;
        let allow = |actions: &str| {
            format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":"*",
                "Action":[{actions}],"Resource":"arn:aws:s3:::ver/*"}}]}}"#
            )
        };
        let current = allow(r#""s3:GetObject","s3:DeleteObject","s3:PutObject""#);
        store.create_bucket("ver", "us-east-1", Some(current.clone())).unwrap();
        store.put_object("ver", "k", b"v", None).unwrap();
        let code = |r: &Resp| (r.status, xml_values(&r.text(), "Code"));
        let denied = (403, vec!["AccessDenied".to_string()]);
        for method in ["GET", "DELETE"] {
            let r = req(addr, method, "/ver/k?versionId=null", &[], b"").await;
            assert_eq!(code(&r), denied, "{method}");
        }
        assert_eq!(req(addr, "HEAD", "/ver/k?versionId=null", &[], b"").await.status, 403);
        let copy = [("x-amz-copy-source", "/ver/k?versionId=null")];
        assert_eq!(code(&req(addr, "PUT", "/ver/copy", &copy, b"").await), denied);
        assert!(store.head_object("ver", "copy").is_err());
        let body = b"<Delete><Object><Key>k</Key><VersionId>null</VersionId></Object></Delete>";
        let md5 = base64_encode(&Md5::digest(body));
        let r = req(addr, "POST", "/ver?delete", &[("Content-MD5", &md5)], body).await;
        let t = r.text();
        assert_eq!(xml_values(&t, "Code"), ["AccessDenied"], "{t}");
        assert!(store.head_object("ver", "k").is_ok(), "a refused delete deleted");
        // The current object is still served under s3:GetObject.
        assert_eq!(req(addr, "GET", "/ver/k", &[], b"").await.status, 200);

        let versions = allow(r#""s3:GetObjectVersion","s3:DeleteObjectVersion","s3:PutObject""#);
        store.set_bucket_policy("ver", Some(versions)).unwrap();
        assert_eq!(req(addr, "GET", "/ver/k", &[], b"").await.status, 403);
        let r = req(addr, "GET", "/ver/k?versionId=null", &[], b"").await;
        assert_eq!((r.status, r.body.as_slice()), (200, &b"v"[..]));
        assert_eq!(req(addr, "HEAD", "/ver/k?versionId=null", &[], b"").await.status, 200);
        let r = req(addr, "PUT", "/ver/copy", &copy, b"").await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(req(addr, "DELETE", "/ver/k", &[], b"").await.status, 403);
        assert_eq!(req(addr, "DELETE", "/ver/k?versionId=null", &[], b"").await.status, 204);
        assert!(store.head_object("ver", "k").is_err());
        let body = b"<Delete><Object><Key>copy</Key><VersionId>null</VersionId></Object></Delete>";
        let md5 = base64_encode(&Md5::digest(body));
        let r = req(addr, "POST", "/ver?delete", &[("Content-MD5", &md5)], body).await;
        assert_eq!(xml_values(&r.text(), "Deleted").len(), 1, "{}", r.text());
        assert!(store.head_object("ver", "copy").is_err());
    }

    /// A presigned URL's target (path and query) for the admin, signing only `host`.
    fn presign_admin(method: &str, path: &str, host: &str) -> String {
        let now = now_secs();
        let amz = sigv4::format_amz_date(now);
        let query = format!(
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={ADMIN_AK}%2F{}%2Fus-east-1%2Fs3%2F\
             aws4_request&X-Amz-Date={amz}&X-Amz-Expires=300&X-Amz-SignedHeaders=host",
            &amz[..8]
        );
        let placeholder = format!("{query}&X-Amz-Signature={}", "0".repeat(64));
        let hs = [("host", host)];
        let sreq = sigv4::Request {
            method,
            path,
            query: &placeholder,
            headers: &hs,
            payload_sha256: None,
        };
        let secrets = |k: &str| (k == ADMIN_AK).then(|| ADMIN_SK.to_string());
        let Err(sigv4::AuthError::SignatureMismatch { string_to_sign, .. }) =
            sigv4::verify(&sreq, &secrets, now)
        else {
            panic!("expected a signature mismatch for the placeholder signature");
        };
        let key = sigv4::signing_key(ADMIN_SK, &amz[..8], "us-east-1", "s3");
        format!("{path}?{query}&X-Amz-Signature={}", sigv4::sign(&key, &string_to_sign))
    }

    /// S3 refuses a signed request with an `x-amz-*` header its signature does not cover: `403
    /// AccessDenied` "There were headers present in the request which were not signed", the
    /// headers in `<HeadersNotSigned>`; nothing is stored. What clients leave unsigned passes:
    /// `x-amzn-trace-id`, `user-agent`, `expect` (botocore), and `x-amz-content-sha256` on a
    /// presigned URL (whose payload is `UNSIGNED-PAYLOAD` whatever the header says).
    #[tokio::test]
    async fn unsigned_amz_headers_are_refused() {
        let (addr, _dir, store, _) = start_signed().await;
        let host = addr.to_string();
        let refused = |r: &Resp, names: &str| {
            let t = r.text();
            assert_eq!(
                (r.status, xml_values(&t, "Code"), xml_values(&t, "HeadersNotSigned")),
                (403, vec!["AccessDenied".to_string()], vec![names.to_string()]),
                "{t}"
            );
            assert_eq!(
                xml_values(&t, "Message"),
                ["There were headers present in the request which were not signed"]
            );
        };
        let mut signed = vec![
            ("host".to_string(), host.clone()),
            ("x-amz-content-sha256".to_string(), "UNSIGNED-PAYLOAD".to_string()),
        ];
        sign_admin("PUT", "/bkt/k", &mut signed);
        let with = |extra: &[(&str, &str)]| {
            let mut h: Vec<(String, String)> = signed.clone();
            h.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
            h
        };
        let extra = with(&[("x-amz-storage-class", "GLACIER"), ("X-Amz-Meta-Note", "added")]);
        let hs: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let r = req(addr, "PUT", "/bkt/k", &hs, b"data").await;
        refused(&r, "x-amz-meta-note, x-amz-storage-class");
        assert!(store.head_object("bkt", "k").is_err());
        let fine = with(&[
            ("x-amzn-trace-id", "Root=1-5759e988-bd862e3fe1be46a994272793"),
            ("user-agent", "aws-cli/2.15.0"),
        ]);
        let hs: Vec<(&str, &str)> = fine.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let r = req(addr, "PUT", "/bkt/k", &hs, b"data").await;
        assert_eq!(r.status, 200, "{}", r.text());

        // A presigned URL signs only what its X-Amz-SignedHeaders names.
        let target = presign_admin("PUT", "/bkt/p", &host);
        let hs = [("host", host.as_str()), ("x-amz-acl", "bucket-owner-full-control")];
        let r = req(addr, "PUT", &target, &hs, b"data").await;
        refused(&r, "x-amz-acl");
        assert!(store.head_object("bkt", "p").is_err());
        let hs = [("host", host.as_str()), ("x-amz-content-sha256", "UNSIGNED-PAYLOAD")];
        let r = req(addr, "PUT", &target, &hs, b"data").await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(store.get_object_bytes("bkt", "p").unwrap().1, b"data");
    }

    /// `x-amz-expected-bucket-owner` (and a copy's `x-amz-source-expected-bucket-owner`): "If the
    /// account ID that you provide does not match the actual owner of the bucket, the request
    /// fails with the HTTP status code 403 Forbidden (access denied)"; nothing is changed.
    #[tokio::test]
    async fn expected_bucket_owner_is_checked() {
        let (addr, _dir, store, _) = start(false).await;
        store.put_object("bkt", "k", b"v", None).unwrap();
        let denied = |r: &Resp| {
            assert_eq!(
                (r.status, xml_values(&r.text(), "Code")),
                (403, vec!["AccessDenied".to_string()]),
                "{}",
                r.text()
            );
        };
        let other = ("x-amz-expected-bucket-owner", "111122223333");
        denied(&req(addr, "DELETE", "/bkt/k", &[other], b"").await);
        assert!(store.head_object("bkt", "k").is_ok());
        denied(&req(addr, "PUT", "/bkt/new", &[other], b"x").await);
        assert!(store.head_object("bkt", "new").is_err());
        denied(&req(addr, "GET", "/bkt?list-type=2", &[other], b"").await);
        denied(&req(addr, "GET", "/bkt/k", &[other], b"").await);
        let ours = ("x-amz-expected-bucket-owner", ACCOUNT_ID);
        assert_eq!(req(addr, "GET", "/bkt/k", &[ours], b"").await.status, 200);

        let src = ("x-amz-copy-source", "/bkt/k");
        let r = req(
            addr,
            "PUT",
            "/bkt/c",
            &[src, ("x-amz-source-expected-bucket-owner", "111122223333")],
            b"",
        )
        .await;
        denied(&r);
        assert!(store.head_object("bkt", "c").is_err());
        let id = initiate(addr, "/bkt/parts", &[]).await;
        let target = format!("/bkt/parts?partNumber=1&uploadId={id}");
        let r = req(
            addr,
            "PUT",
            &target,
            &[src, ("x-amz-source-expected-bucket-owner", "111122223333")],
            b"",
        )
        .await;
        denied(&r);
        assert_eq!(store.list_parts("bkt", &id).unwrap().1.len(), 0);
        let r = req(
            addr,
            "PUT",
            "/bkt/c",
            &[src, ours, ("x-amz-source-expected-bucket-owner", ACCOUNT_ID)],
            b"",
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }

    /// Names S3 reserves ("Bucket naming rules": the prefixes `xn--`, `sthree-`,
    /// `amzn-s3-demo-`, the suffixes `-s3alias`, `--ol-s3`, `.mrap`, `--x-s3`, `--table-s3`)
    /// are `400 InvalidBucketName` for CreateBucket, and no bucket is made.
    #[tokio::test]
    async fn reserved_bucket_names_are_refused() {
        let (addr, _dir, store, _) = start(false).await;
        for name in [
            "xn--bucket",
            "sthree-bucket",
            "sthree-configurator-b",
            "amzn-s3-demo-bucket",
            "bucket-s3alias",
            "bucket--ol-s3",
            "bucket.mrap",
            "bucket--usw2-az1--x-s3",
            "bucket--table-s3",
        ] {
            let r = req(addr, "PUT", &format!("/{name}"), &[], b"").await;
            assert_eq!(
                (r.status, xml_values(&r.text(), "Code")),
                (400, vec!["InvalidBucketName".to_string()]),
                "{name}: {}",
                r.text()
            );
            assert!(store.bucket(name).is_none(), "{name}");
        }
        assert_eq!(req(addr, "PUT", "/xn-bucket-s3", &[], b"").await.status, 200);
        // A bucket an older vpcsim made under such a name is still served.
        store.create_bucket("amzn-s3-demo-old", "us-east-1", None).unwrap();
        store.put_object("amzn-s3-demo-old", "k", b"kept", None).unwrap();
        let r = req(addr, "GET", "/amzn-s3-demo-old/k", &[], b"").await;
        assert_eq!((r.status, r.body.as_slice()), (200, &b"kept"[..]));
    }

    /// A PutObject or UploadPart body of unknown length (plain `Transfer-Encoding: chunked`, or
    /// aws-chunked without `x-amz-decoded-content-length`) is `411 MissingContentLength` "You
    /// must provide the Content-Length HTTP header.", and nothing is stored.
    #[tokio::test]
    async fn bodies_without_a_length_are_refused() {
        let (addr, _dir, store, _) = start(false).await;
        let id = initiate(addr, "/bkt/up", &[]).await;
        let part = format!("/bkt/up?partNumber=1&uploadId={id}");
        for target in ["/bkt/k", part.as_str()] {
            for extra in ["", "Content-Encoding: aws-chunked\r\n"] {
                let mut s = TcpStream::connect(addr).await.unwrap();
                let chunk =
                    if extra.is_empty() { "4\r\ndata\r\n" } else { "9\r\n4\r\ndata\r\n\r\n" };
                let raw = format!(
                    "PUT {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}Transfer-Encoding: chunked\r\n\r\n\
                     {chunk}0\r\n\r\n"
                );
                s.write_all(raw.as_bytes()).await.unwrap();
                let r = read_response(&mut s, false).await;
                let t = r.text();
                assert_eq!(
                    (r.status, xml_values(&t, "Code"), xml_values(&t, "Message")),
                    (
                        411,
                        vec!["MissingContentLength".to_string()],
                        vec!["You must provide the Content-Length HTTP header.".to_string()]
                    ),
                    "{target} {extra:?}: {t}"
                );
            }
        }
        assert!(store.head_object("bkt", "k").is_err());
        assert_eq!(store.list_parts("bkt", &id).unwrap().1.len(), 0);
        // With the decoded length, aws-chunked needs no Content-Length.
        let mut s = TcpStream::connect(addr).await.unwrap();
        let raw = "PUT /bkt/k HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Encoding: aws-chunked\r\n\
                   x-amz-decoded-content-length: 4\r\nTransfer-Encoding: chunked\r\n\r\n\
                   9\r\n4\r\ndata\r\n\r\n5\r\n0\r\n\r\n\r\n0\r\n\r\n";
        s.write_all(raw.as_bytes()).await.unwrap();
        let r = read_response(&mut s, false).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(store.get_object_bytes("bkt", "k").unwrap().1, b"data");
    }

    /// A bucket created with the `LocationConstraint` `EU` is in eu-west-1, and GetBucketLocation
    /// answers `EU` (the API reference: "Buckets with a LocationConstraint of EU reside in
    /// eu-west-1"), also once the store is opened again; a bucket.json written before the
    /// constraint was kept still loads, and a bucket made otherwise keeps the old format.
    #[tokio::test]
    async fn location_constraint_eu_is_answered_as_given() {
        let (addr, dir, store, _) = start(false).await;
        let cfg = b"<CreateBucketConfiguration><LocationConstraint>EU</LocationConstraint>\
            </CreateBucketConfiguration>";
        assert_eq!(req(addr, "PUT", "/old-eu", &[], cfg).await.status, 200);
        assert_eq!(store.bucket("old-eu").unwrap().region, "eu-west-1");
        let r = req(addr, "GET", "/old-eu?location", &[], b"").await;
        assert!(r.text().contains(">EU</LocationConstraint>"), "{}", r.text());
        let r = req(addr, "GET", "/eu-bkt?location", &[], b"").await;
        assert!(r.text().contains(">eu-west-1</LocationConstraint>"), "{}", r.text());
        let raw = std::fs::read_to_string(dir.0.join("buckets/eu-bkt/bucket.json")).unwrap();
        assert!(!raw.contains("location_constraint"), "{raw}");
        let legacy = dir.0.join("buckets/legacy");
        std::fs::create_dir_all(legacy.join("objects")).unwrap();
        std::fs::write(
            legacy.join("bucket.json"),
            r#"{"name":"legacy","region":"eu-west-1","policy":null,"created":1}"#,
        )
        .unwrap();
        let reopened = Store::open(&dir.0).unwrap();
        assert_eq!(reopened.bucket("old-eu").unwrap().location_constraint.as_deref(), Some("EU"));
        let legacy = reopened.bucket("legacy").unwrap();
        assert_eq!((legacy.region.as_str(), legacy.location_constraint), ("eu-west-1", None));
    }

    /// `x-amz-website-redirect-location` is stored with the object and returned by GetObject and
    /// HeadObject; a value not starting with `/`, `http://` or `https://` is `400
    /// InvalidRedirectLocation` and stores nothing. A copy does not take its source's ("This
    /// value is unique to each object and is not copied"), only the one the request gives.
    #[tokio::test]
    async fn website_redirect_location_is_kept() {
        let (addr, _dir, store, _) = start(false).await;
        let redirect = ("x-amz-website-redirect-location", "/other.html");
        assert_eq!(req(addr, "PUT", "/bkt/page", &[redirect], b"page").await.status, 200);
        for method in ["GET", "HEAD"] {
            let r = req(addr, method, "/bkt/page", &[], b"").await;
            assert_eq!(
                r.header("x-amz-website-redirect-location"),
                Some("/other.html"),
                "{method}"
            );
        }
        let r = req(addr, "PUT", "/bkt/bad", &[("x-amz-website-redirect-location", "other")], b"x")
            .await;
        assert_eq!(
            (r.status, xml_values(&r.text(), "Code")),
            (400, vec!["InvalidRedirectLocation".to_string()])
        );
        assert!(store.head_object("bkt", "bad").is_err());
        let src = ("x-amz-copy-source", "/bkt/page");
        assert_eq!(req(addr, "PUT", "/bkt/copy", &[src], b"").await.status, 200);
        let r = req(addr, "HEAD", "/bkt/copy", &[], b"").await;
        assert_eq!(r.header("x-amz-website-redirect-location"), None);
        let other = ("x-amz-website-redirect-location", "https://example.com/");
        assert_eq!(req(addr, "PUT", "/bkt/page", &[src, other], b"").await.status, 200);
        let r = req(addr, "HEAD", "/bkt/page", &[], b"").await;
        assert_eq!(r.header("x-amz-website-redirect-location"), Some("https://example.com/"));
    }

    // --- Timeouts and half-close --------------------------------------------------------------

    /// Short timeouts, so that a test of them need not wait S3's 20 s.
    const SHORT: Timeouts = Timeouts {
        header: std::time::Duration::from_millis(300),
        body_idle: std::time::Duration::from_millis(300),
        send_idle: std::time::Duration::from_millis(300),
    };

    /// The next response, which must come eventually.
    async fn answer(s: &mut TcpStream) -> Resp {
        tokio::time::timeout(std::time::Duration::from_secs(30), read_response(s, false))
            .await
            .expect("no answer")
    }

    /// S3's answer to a client that stops sending (S3 API Reference, error codes:
    /// "RequestTimeout: Your socket connection to the server was not read from or written to
    /// within the timeout period", 400 Bad Request; on the wire S3 adds "Idle connections will
    /// be closed." and closes the connection).
    fn assert_request_timeout(r: &Resp) {
        assert_eq!(r.status, 400, "{}", r.text());
        assert_eq!(xml_values(&r.text(), "Code"), ["RequestTimeout"]);
        assert_eq!(
            xml_values(&r.text(), "Message"),
            ["Your socket connection to the server was not read from or written to within the \
              timeout period. Idle connections will be closed."]
        );
        assert_eq!(r.header("connection"), Some("close"));
    }

    /// Headers that stop arriving do not hold the connection: it is closed.
    #[tokio::test]
    async fn a_request_whose_headers_stop_is_closed() {
        let (addr, _dir, _store, _) =
            start_timed(false, "us-east-1", [127, 0, 0, 1], None, SHORT).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /bkt/k HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: 1").await.unwrap();
        crate::services::http::read_until_closed(&mut s).await;
        // Nor does a connection that never sends a byte.
        let mut s = TcpStream::connect(addr).await.unwrap();
        assert!(crate::services::http::read_until_closed(&mut s).await.is_empty());
    }

    /// A keep-alive connection left idle after a response is closed, as S3 closes idle
    /// connections; the response itself is whole.
    #[tokio::test]
    async fn an_idle_keep_alive_connection_is_closed() {
        let (addr, _dir, store, _) =
            start_timed(false, "us-east-1", [127, 0, 0, 1], None, SHORT).await;
        store.put_object("bkt", "k", b"data", None).unwrap();
        let mut s = TcpStream::connect(addr).await.unwrap();
        let r = send(&mut s, "GET", "/bkt/k", &[], b"").await;
        assert_eq!((r.status, r.body.as_slice()), (200, &b"data"[..]));
        assert!(crate::services::http::read_until_closed(&mut s).await.is_empty());
    }

    /// A PUT whose body stops arriving is answered `400 RequestTimeout` and the connection
    /// closed; the object it would have replaced is kept.
    #[tokio::test]
    async fn a_put_whose_body_stops_gets_request_timeout() {
        let (addr, _dir, store, _) =
            start_timed(false, "us-east-1", [127, 0, 0, 1], None, SHORT).await;
        store.put_object("bkt", "stall", b"old", None).unwrap();
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(
            b"PUT /bkt/stall HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\nabc",
        )
        .await
        .unwrap();
        assert_request_timeout(&answer(&mut s).await);
        assert!(crate::services::http::read_until_closed(&mut s).await.is_empty());
        let r = req(addr, "GET", "/bkt/stall", &[], b"").await;
        assert_eq!((r.status, r.body.as_slice()), (200, &b"old"[..]));
    }

    /// The same for a body read whole before it is looked at (CreateBucket's configuration):
    /// `RequestTimeout`, no bucket.
    #[tokio::test]
    async fn a_create_bucket_whose_body_stops_gets_request_timeout() {
        let (addr, _dir, store, _) =
            start_timed(false, "us-east-1", [127, 0, 0, 1], None, SHORT).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(
            b"PUT /new-bucket HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 200\r\n\r\n<Create",
        )
        .await
        .unwrap();
        assert_request_timeout(&answer(&mut s).await);
        assert!(crate::services::http::read_until_closed(&mut s).await.is_empty());
        assert!(store.bucket("new-bucket").is_none());
    }

    /// The timeouts are on a lack of progress, never on a total: an upload whose bytes keep
    /// coming, each gap well within the idle time, and a download whose reader pauses longer
    /// than the header and body timeouts (but reads again within `send_idle`), both take
    /// several timeouts in all and complete.
    #[tokio::test]
    async fn slow_but_steady_transfers_are_not_cut() {
        let timeouts = Timeouts {
            header: std::time::Duration::from_millis(400),
            body_idle: std::time::Duration::from_millis(800),
            send_idle: std::time::Duration::from_millis(3000),
        };
        let (addr, _dir, _store, _) =
            start_timed(false, "us-east-1", [127, 0, 0, 1], None, timeouts).await;
        let data: Vec<u8> = (0..4 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!(
                "PUT /bkt/slow HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n",
                data.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        for chunk in data.chunks(data.len() / 8) {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            s.write_all(chunk).await.unwrap();
        }
        let r = answer(&mut s).await;
        assert_eq!(r.status, 200, "{}", r.text());
        // The download: the reader stops three times for longer than any timeout.
        s.write_all(b"GET /bkt/slow HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await.unwrap();
        let mut got = Vec::new();
        let mut buf = vec![0u8; 256 * 1024];
        for _ in 0..3 {
            let n = s.read(&mut buf).await.unwrap();
            got.extend_from_slice(&buf[..n]);
            tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
        }
        let head_end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        assert!(
            got.starts_with(b"HTTP/1.1 200"),
            "{:?}",
            String::from_utf8_lossy(&got[..head_end])
        );
        let mut body = got.split_off(head_end);
        while body.len() < data.len() {
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "cut after {} of {} bytes", body.len(), data.len());
            body.extend_from_slice(&buf[..n]);
        }
        assert!(body == data, "the download differs");
    }

    /// Whether the server still holds its end of the TCP connection to `client` open
    /// (established), from `/proc/net/tcp`.
    fn server_end_open(server: SocketAddr, client: SocketAddr) -> bool {
        let hex = |a: SocketAddr| format!(":{:04X}", a.port());
        let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
        table.lines().skip(1).any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f[1].ends_with(&hex(server)) && f[2].ends_with(&hex(client)) && f[3] == "01"
        })
    }

    /// A client that stops reading a response (its window closed) does not hold the server's
    /// connection: after `send_idle` without progress the server's end is dropped, as S3 drops
    /// a connection "not read from or written to within the timeout period".
    #[tokio::test]
    async fn a_client_that_stops_reading_is_dropped() {
        let (addr, _dir, store, _) =
            start_timed(false, "us-east-1", [127, 0, 0, 1], None, SHORT).await;
        let big: Vec<u8> = (0..16 * 1024 * 1024u32).map(|i| (i % 253) as u8).collect();
        store.put_object("bkt", "big", &big, None).unwrap();
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.set_recv_buffer_size(4096).unwrap();
        let mut s = sock.connect(addr).await.unwrap();
        let me = s.local_addr().unwrap();
        s.write_all(b"GET /bkt/big HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await.unwrap();
        let dropped = tokio::time::timeout(std::time::Duration::from_secs(30), async {
            while server_end_open(addr, me) {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        })
        .await;
        assert!(dropped.is_ok(), "the server still holds the connection of a client not reading");
        // What was sent before is there to read; the rest never comes.
        let got = crate::services::http::read_until_closed(&mut s).await;
        assert!(got.starts_with(b"HTTP/1.1 200 OK\r\n"));
        assert!(got.len() < big.len());
    }

    /// A client that half-closes after a complete request (`shutdown(SHUT_WR)`, `nc -N`) still
    /// gets its answer (RFC 9112 §9.6 lets a client close its sending side after the request),
    /// for a GET and for a PUT, which is stored.
    #[tokio::test]
    async fn a_half_closed_client_gets_its_answer() {
        let (addr, _dir, store, _) = start(false).await;
        store.put_object("bkt", "hello.txt", b"hello", None).unwrap();
        for _ in 0..5 {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(b"GET /bkt/hello.txt HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await.unwrap();
            s.shutdown().await.unwrap();
            let out = crate::services::http::read_until_closed(&mut s).await;
            assert!(out.starts_with(b"HTTP/1.1 200 OK\r\n"), "{:?}", String::from_utf8_lossy(&out));
            assert!(out.ends_with(b"\r\n\r\nhello"), "{:?}", String::from_utf8_lossy(&out));
        }
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"PUT /bkt/half HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 4\r\n\r\nhalf")
            .await
            .unwrap();
        s.shutdown().await.unwrap();
        let out = crate::services::http::read_until_closed(&mut s).await;
        assert!(out.starts_with(b"HTTP/1.1 200 OK\r\n"), "{:?}", String::from_utf8_lossy(&out));
        let r = req(addr, "GET", "/bkt/half", &[], b"").await;
        assert_eq!((r.status, r.body.as_slice()), (200, &b"half"[..]));
    }
}
