//! Loading certificate, key and client CA files: each unusable file is
//! refused with the key that names it.
#![allow(clippy::unwrap_used)]

use crate::common::pki::Pki;
use crate::config::TlsSpec;

use super::TlsAcceptors;

#[test]
fn unusable_tls_files_name_the_key_at_fault() {
    let pki = Pki::new("load CA");
    let server = pki.server(1);
    let other = pki.server(2);
    let (ca, cert, key) = pki.write_server(&server);
    let garbage = pki.write("garbage.pem", "not PEM at all\n");
    let other_key = pki.write("other.key", &other.key_pem);
    let spec = |c: &std::path::Path, k: &std::path::Path, ca: Option<&std::path::Path>| TlsSpec {
        cert_file: c.display().to_string(),
        key_file: k.display().to_string(),
        client_ca_file: ca.map(|p| p.display().to_string()),
    };
    let ok = TlsAcceptors::load(&spec(&cert, &key, Some(&ca))).unwrap();
    assert!(ok.mtls);
    assert!(!TlsAcceptors::load(&spec(&cert, &key, None)).unwrap().mtls);
    for (s, want) in [
        (spec(&garbage, &key, None), "tls.cert_file"),
        (spec(&cert, &garbage, None), "tls.key_file"),
        (spec(&cert, &other_key, None), "tls.key_file"),
        (spec(&cert, &key, Some(&garbage)), "tls.client_ca_file"),
    ] {
        let err = TlsAcceptors::load(&s).unwrap_err();
        assert_eq!(err.key, want, "{err}");
    }
}
