//! HTTPS for the S3 stub: a lab certificate authority (kept in the lab directory so clients
//! can be told to trust it, e.g. `AWS_CA_BUNDLE=<dir>/ca.pem`) and leaf certificates for the
//! S3 host names (and addresses) it serves.
//!
//! rustls with the ring provider; certificates from rcgen (ECDSA P-256).

use std::fs;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpStream;

use super::s3::StreamAcceptor;

const CA_CERT_FILE: &str = "ca.pem";
const CA_KEY_FILE: &str = "ca.key";
const CA_NAME: &str = "vpcsim lab CA";

/// The lab's certificate authority.
pub struct LabCa {
    key: KeyPair,
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    dir: PathBuf,
}

/// The CA's parameters. They are fixed, so an issuer rebuilt from them and the stored key
/// signs leaves that chain to the stored certificate (same subject, same key identifier).
fn ca_params() -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_NAME);
    dn.push(DnType::OrganizationName, "vpcsim");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = rcgen::date_time_ymd(2024, 1, 1);
    p.not_after = rcgen::date_time_ymd(2049, 12, 31);
    p
}

/// Creates a CA in `dir` (`ca.pem`, `ca.key`, the key readable by its owner only), or loads
/// the one already there.
pub fn lab_ca(dir: &Path) -> anyhow::Result<LabCa> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let cert_path = dir.join(CA_CERT_FILE);
    let key_path = dir.join(CA_KEY_FILE);
    if cert_path.exists() && key_path.exists() {
        let key_pem = fs::read_to_string(&key_path)?;
        let key = KeyPair::from_pem(&key_pem).context("parsing ca.key")?;
        let cert_pem = fs::read_to_string(&cert_path)?;
        let cert_der = pem_cert_der(&cert_pem).context("parsing ca.pem")?;
        return Ok(LabCa { key, cert_pem, cert_der, dir: dir.to_path_buf() });
    }
    let key = KeyPair::generate()?;
    let cert = ca_params().self_signed(&key)?;
    let cert_pem = cert.pem();
    write_private(&key_path, key.serialize_pem().as_bytes())?;
    write_atomic(&cert_path, cert_pem.as_bytes())?;
    Ok(LabCa { key, cert_pem, cert_der: cert.der().clone(), dir: dir.to_path_buf() })
}

impl LabCa {
    /// The CA certificate (PEM), what clients must trust.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// Path of `ca.pem`.
    pub fn cert_path(&self) -> PathBuf {
        self.dir.join(CA_CERT_FILE)
    }

    /// A server configuration with a fresh leaf certificate for `names` (DNS names, wildcards
    /// allowed; entries that parse as IP addresses become IP SANs), chained to the CA.
    /// HTTP/1.1 only (ALPN `http/1.1`).
    pub fn server_config(&self, names: &[String]) -> Arc<rustls::ServerConfig> {
        self.try_server_config(names).expect("issuing the S3 leaf certificate")
    }

    pub fn try_server_config(&self, names: &[String]) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let mut params = CertificateParams::default();
        for n in names {
            let san = match n.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(
                    n.as_str().try_into().with_context(|| format!("bad name {n}"))?,
                ),
            };
            params.subject_alt_names.push(san);
        }
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            names.first().map(String::as_str).unwrap_or("s3.amazonaws.com"),
        );
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages =
            vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = rcgen::date_time_ymd(2024, 1, 1);
        params.not_after = rcgen::date_time_ymd(2049, 12, 31);
        let leaf_key = KeyPair::generate()?;
        let ca = ca_params();
        let issuer = Issuer::from_params(&ca, &self.key);
        let leaf = params.signed_by(&leaf_key, &issuer)?;
        let chain = vec![leaf.der().clone(), self.cert_der.clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }
}

/// Every S3 host name of `regions` (see the module doc of the S3 stub for the forms), for
/// [`LabCa::server_config`]: the global names plus, per region, `s3.<r>`, `s3-<r>` and
/// `s3.dualstack.<r>`, and where AWS has FIPS endpoints (`model::S3_FIPS_REGIONS`) also
/// `s3-fips.<r>` and `s3-fips.dualstack.<r>`, each with its `*.` wildcard for
/// virtual-hosted-style buckets.
pub fn s3_names(regions: &[String]) -> Vec<String> {
    let mut out: Vec<String> = [
        "s3.amazonaws.com",
        "*.s3.amazonaws.com",
        "s3-external-1.amazonaws.com",
        "*.s3-external-1.amazonaws.com",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for r in regions {
        for host in [
            format!("s3.{r}.amazonaws.com"),
            format!("s3-{r}.amazonaws.com"),
            format!("s3.dualstack.{r}.amazonaws.com"),
        ] {
            out.push(format!("*.{host}"));
            out.push(host);
        }
        if crate::model::has_s3_fips(r) {
            for host in [
                format!("s3-fips.{r}.amazonaws.com"),
                format!("s3-fips.dualstack.{r}.amazonaws.com"),
            ] {
                out.push(format!("*.{host}"));
                out.push(host);
            }
        }
    }
    out
}

impl StreamAcceptor for tokio_rustls::TlsAcceptor {
    type Stream = tokio_rustls::server::TlsStream<TcpStream>;
    const SECURE: bool = true;
    fn accept_stream(
        &self,
        tcp: TcpStream,
    ) -> impl std::future::Future<Output = io::Result<Self::Stream>> + Send {
        self.accept(tcp)
    }
}

fn pem_cert_der(pem: &str) -> anyhow::Result<CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    Ok(CertificateDer::from_pem_slice(pem.as_bytes())?)
}

fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    write_file(path, data, 0o644)
}

fn write_private(path: &Path, data: &[u8]) -> io::Result<()> {
    write_file(path, data, 0o600)
}

fn write_file(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f =
        fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::s3::{EndpointOrigin, S3State, serve_tls};
    use crate::services::store::Store;
    use crate::services::store::test_util::TempDir;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn https_get_with_lab_ca() {
        let dir = TempDir::new("tls");
        let ca = lab_ca(&dir.0.join("ca")).unwrap();
        // Loading again gives the same CA.
        let again = lab_ca(&dir.0.join("ca")).unwrap();
        assert_eq!(again.cert_pem(), ca.cert_pem());
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &fs::metadata(dir.0.join("ca/ca.key")).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);

        let mut names = s3_names(&["us-east-1".to_string(), "eu-west-1".to_string()]);
        names.push("127.0.0.1".into());
        // A leaf issued by the reloaded CA chains to the stored certificate.
        let cfg = again.server_config(&names);
        let store = Arc::new(Store::open(&dir.0.join("store")).unwrap());
        // Anyone may read, but only over TLS (aws:SecureTransport).
        let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::bkt","arn:aws:s3:::bkt/*"],"Condition":{"Bool":{"aws:SecureTransport":"true"}}}]}"#;
        store.create_bucket("bkt", "us-east-1", Some(policy.into())).unwrap();
        store.put_object("bkt", "hello.txt", b"over tls", None).unwrap();
        let state = Arc::new(S3State {
            store,
            region: "us-east-1".into(),
            origin: Arc::new(|_, _| None::<EndpointOrigin>),
            access: Some(Arc::new(arc_swap::ArcSwap::from_pointee(
                crate::services::access::Access::from_world(
                    &crate::model::World::new("t", "us-east-1").unwrap(),
                    std::time::Duration::ZERO,
                    None,
                    std::time::Instant::now(),
                ),
            ))),
            region_of: Arc::new(|_| None),
            timeouts: crate::services::http::Timeouts::DEFAULT,
        });
        // The same state over plain HTTP: the policy does not allow.
        let plain = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let plain_addr = plain.local_addr().unwrap();
        tokio::spawn(crate::services::s3::serve(plain, state.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve_tls(listener, tokio_rustls::TlsAcceptor::from(cfg), state));

        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.cert_der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
        for (sni, host) in [
            ("s3.amazonaws.com", "s3.amazonaws.com"),
            ("bkt.s3.eu-west-1.amazonaws.com", "bkt.s3.amazonaws.com"),
            // FIPS (us-east-1 has it), virtual-hosted and path style.
            ("bkt.s3-fips.us-east-1.amazonaws.com", "bkt.s3-fips.us-east-1.amazonaws.com"),
            (
                "s3-fips.dualstack.us-east-1.amazonaws.com",
                "s3-fips.dualstack.us-east-1.amazonaws.com",
            ),
            (
                "bkt.s3-fips.dualstack.us-east-1.amazonaws.com",
                "bkt.s3-fips.dualstack.us-east-1.amazonaws.com",
            ),
        ] {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let name = rustls::pki_types::ServerName::try_from(sni.to_string()).unwrap();
            let mut tls = connector.connect(name, tcp).await.unwrap();
            let target = if host.starts_with("bkt.") { "/hello.txt" } else { "/bkt/hello.txt" };
            tls.write_all(
                format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await
            .unwrap();
            let mut out = Vec::new();
            let _ = tls.read_to_end(&mut out).await;
            let text = String::from_utf8_lossy(&out);
            assert!(text.starts_with("HTTP/1.1 200"), "{text}");
            assert!(text.ends_with("over tls"), "{text}");
        }
        let mut s = tokio::net::TcpStream::connect(plain_addr).await.unwrap();
        s.write_all(
            b"GET /bkt/hello.txt HTTP/1.1\r\nHost: s3.amazonaws.com\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 403"));
        // A name outside the certificate is refused by the client; so is FIPS where AWS has
        // none (eu-west-1).
        for sni in ["example.com", "bkt.s3-fips.eu-west-1.amazonaws.com"] {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let name = rustls::pki_types::ServerName::try_from(sni).unwrap();
            assert!(connector.connect(name, tcp).await.is_err(), "{sni}");
        }
        // The server survives a failed handshake; an IP SAN works too.
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let mut tls = connector.connect(name, tcp).await.unwrap();
        tls.write_all(
            b"GET /bkt/hello.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
        let mut out = Vec::new();
        let _ = tls.read_to_end(&mut out).await;
        assert!(String::from_utf8_lossy(&out).ends_with("over tls"));
    }
}
