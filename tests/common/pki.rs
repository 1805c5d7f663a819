//! A throwaway PKI for the TLS tests: a CA, server certificates for
//! `localhost`/`127.0.0.1` and client certificates, written as PEM files
//! into a temp dir, plus clients (reqwest, tonic, raw rustls) that trust it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber,
};

/// A CA that can issue certificates, and the files written so far.
pub struct Pki {
    pub dir: tempfile::TempDir,
    issuer: Issuer<'static, KeyPair>,
    pub ca_pem: String,
}

/// A PEM certificate and its PEM private key.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: Vec<u8>,
}

impl Pki {
    pub fn new(name: &str) -> Pki {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).expect("CA cert");
        Pki {
            dir: tempfile::tempdir().expect("temp dir"),
            ca_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    fn issue(&self, names: &[&str], serial: u64, usage: ExtendedKeyUsagePurpose) -> Issued {
        let key = KeyPair::generate().expect("leaf key");
        let mut params =
            CertificateParams::new(names.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
                .expect("leaf params");
        params.serial_number = Some(SerialNumber::from(serial));
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().copied().unwrap_or("client"),
        );
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &self.issuer).expect("sign leaf");
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }

    /// A server certificate for localhost and 127.0.0.1.
    pub fn server(&self, serial: u64) -> Issued {
        self.issue(
            &["localhost", "127.0.0.1"],
            serial,
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    /// A client certificate.
    pub fn client(&self, serial: u64) -> Issued {
        self.issue(&["client"], serial, ExtendedKeyUsagePurpose::ClientAuth)
    }

    /// Writes `text` to `name` in the PKI's dir.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write pem");
        path
    }

    /// Writes the CA and `server` as `ca.pem`, `server.pem`, `server.key`.
    pub fn write_server(&self, server: &Issued) -> (PathBuf, PathBuf, PathBuf) {
        (
            self.write("ca.pem", &self.ca_pem),
            self.write("server.pem", &server.cert_pem),
            self.write("server.key", &server.key_pem),
        )
    }
}

/// The `tls:` block for a gatehouse config.
pub fn tls_yaml(cert: &Path, key: &Path, client_ca: Option<&Path>) -> String {
    let mut out = format!(
        "tls:\n  cert_file: {}\n  key_file: {}\n",
        cert.display(),
        key.display()
    );
    if let Some(ca) = client_ca {
        out.push_str(&format!("  client_ca_file: {}\n", ca.display()));
    }
    out
}

/// An HTTPS client trusting only `ca_pem`, optionally with a client cert.
pub fn https_client(ca_pem: &str, identity: Option<&Issued>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("ca")])
        .timeout(std::time::Duration::from_secs(5));
    if let Some(id) = identity {
        let pem = format!("{}{}", id.cert_pem, id.key_pem);
        b = b.identity(reqwest::Identity::from_pem(pem.as_bytes()).expect("identity"));
    }
    b.build().expect("https client")
}

/// A gRPC channel over TLS to `addr`, trusting `ca_pem`.
pub async fn grpc_channel(
    addr: std::net::SocketAddr,
    ca_pem: &str,
    identity: Option<&Issued>,
) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem))
        .domain_name("localhost");
    if let Some(id) = identity {
        tls = tls.identity(Identity::from_pem(&id.cert_pem, &id.key_pem));
    }
    Channel::from_shared(format!("https://{addr}"))
        .expect("uri")
        .tls_config(tls)?
        .timeout(std::time::Duration::from_secs(5))
        .connect()
        .await
}

/// Completes a TLS handshake with `addr` (trusting `ca_pem`, no client
/// cert) and returns the DER of the certificate the server presented.
pub async fn presented_cert(addr: std::net::SocketAddr, ca_pem: &str) -> Vec<u8> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).expect("ca pem"))
        .expect("add ca");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    let tls = connector.connect(name, tcp).await.expect("handshake");
    tls.get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.as_ref().to_vec())
        .expect("server certificate")
}
