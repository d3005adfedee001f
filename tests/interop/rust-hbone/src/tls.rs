//! TLS configurations as ztunnel builds them (src/tls/certificate.rs and
//! src/tls/workload.rs there): TLS 1.3 only, the two AES-GCM suites, ALPN
//! h2, a client certificate both ways; the client sends no SNI, does not
//! resume, and checks the server's chain and then its SPIFFE URI SAN; the
//! server checks the client's chain and then its trust domain. The server
//! leaves rustls's session storage on, so it issues a NewSessionTicket after
//! every handshake (its nonce is 32 bytes).

use std::fs::File;
use std::io::BufReader;
use std::sync::Arc;
use std::time::SystemTime;

use rustls::client::{ServerCertVerified, ServerCertVerifier};
use rustls::server::{AllowAnyAuthenticatedClient, ClientCertVerified, ClientCertVerifier};
use rustls::{Certificate, ClientConfig, DistinguishedNames, Error, PrivateKey, RootCertStore,
             ServerConfig, ServerName};

static SUITES: &[rustls::SupportedCipherSuite] = &[
    rustls::cipher_suite::TLS13_AES_256_GCM_SHA384,
    rustls::cipher_suite::TLS13_AES_128_GCM_SHA256,
];

static SIG_ALGS: &[&webpki::SignatureAlgorithm] = &[
    &webpki::ECDSA_P256_SHA256,
    &webpki::ECDSA_P256_SHA384,
    &webpki::ECDSA_P384_SHA256,
    &webpki::ECDSA_P384_SHA384,
    &webpki::ED25519,
    &webpki::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
    &webpki::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
    &webpki::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
    &webpki::RSA_PKCS1_2048_8192_SHA256,
    &webpki::RSA_PKCS1_2048_8192_SHA384,
    &webpki::RSA_PKCS1_2048_8192_SHA512,
];

/// Key-exchange groups: all three rustls offers (X25519 first, its only
/// key share in a ClientHello), or only the one named, to make a peer that
/// starts with another group go through HelloRetryRequest.
fn kx_groups(only: Option<&str>) -> Result<Vec<&'static rustls::SupportedKxGroup>, String> {
    let all = [&rustls::kx_group::X25519, &rustls::kx_group::SECP256R1, &rustls::kx_group::SECP384R1];
    match only {
        None => Ok(all.to_vec()),
        Some("x25519") => Ok(vec![all[0]]),
        Some("secp256r1") => Ok(vec![all[1]]),
        Some("secp384r1") => Ok(vec![all[2]]),
        Some(k) => Err(format!("--kx: unknown group {}", k)),
    }
}

fn open(path: &str) -> Result<BufReader<File>, String> {
    File::open(path).map(BufReader::new).map_err(|e| format!("{}: {}", path, e))
}

pub fn load_certs(path: &str) -> Result<Vec<Certificate>, String> {
    let certs = rustls_pemfile::certs(&mut open(path)?).map_err(|e| format!("{}: {}", path, e))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate", path));
    }
    Ok(certs.into_iter().map(Certificate).collect())
}

pub fn load_key(path: &str) -> Result<PrivateKey, String> {
    let mut r = open(path)?;
    loop {
        match rustls_pemfile::read_one(&mut r).map_err(|e| format!("{}: {}", path, e))? {
            Some(rustls_pemfile::Item::PKCS8Key(k))
            | Some(rustls_pemfile::Item::ECKey(k))
            | Some(rustls_pemfile::Item::RSAKey(k)) => return Ok(PrivateKey(k)),
            Some(_) => continue,
            None => return Err(format!("{}: no private key", path)),
        }
    }
}

fn root_store(path: &str) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for c in load_certs(path)? {
        roots.add(&c).map_err(|e| format!("{}: {}", path, e))?;
    }
    Ok(roots)
}

/// One DER TLV: (tag, contents, what follows).
fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    if b.len() < 2 {
        return None;
    }
    let l0 = b[1] as usize;
    let (len, hdr) = if l0 < 0x80 {
        (l0, 2)
    } else {
        let n = l0 & 0x7f;
        if n == 0 || n > 4 || b.len() < 2 + n {
            return None;
        }
        (b[2..2 + n].iter().fold(0usize, |a, &x| (a << 8) | x as usize), 2 + n)
    };
    if b.len() < hdr + len {
        return None;
    }
    Some((b[0], &b[hdr..hdr + len], &b[hdr + len..]))
}

/// The spiffe:// URI SANs of a DER certificate (tbsCertificate, its [3]
/// extensions, subjectAltName 2.5.29.17, GeneralName [6] URIs).
pub fn spiffe_ids(der: &[u8]) -> Vec<String> {
    fn walk(der: &[u8], out: &mut Vec<String>) -> Option<()> {
        let (_, cert, _) = tlv(der)?;
        let (_, mut tbs, _) = tlv(cert)?;
        while !tbs.is_empty() {
            let (tag, body, rest) = tlv(tbs)?;
            tbs = rest;
            if tag != 0xa3 {
                continue;
            }
            let (_, mut exts, _) = tlv(body)?;
            while !exts.is_empty() {
                let (_, ext, rest) = tlv(exts)?;
                exts = rest;
                let (_, oid, after) = tlv(ext)?;
                if oid != [0x55, 0x1d, 0x11] {
                    continue;
                }
                let (mut t, mut v, after) = tlv(after)?;
                if t == 0x01 {
                    let x = tlv(after)?; // critical: BOOLEAN, then the value
                    t = x.0;
                    v = x.1;
                }
                if t != 0x04 {
                    return None;
                }
                let (_, mut names, _) = tlv(v)?;
                while !names.is_empty() {
                    let (t, n, rest) = tlv(names)?;
                    names = rest;
                    if t == 0x86 {
                        if let Ok(s) = std::str::from_utf8(n) {
                            if s.starts_with("spiffe://") {
                                out.push(s.to_string());
                            }
                        }
                    }
                }
            }
        }
        Some(())
    }
    let mut out = Vec::new();
    let _ = walk(der, &mut out);
    out
}

fn trust_domain(id: &str) -> &str {
    let rest = id.strip_prefix("spiffe://").unwrap_or("");
    rest.split('/').next().unwrap_or("")
}

/// ztunnel's IdentityVerifier: the chain (webpki, serverAuth), then the
/// SPIFFE identity, never a DNS name.
struct IdentityVerifier {
    roots: Vec<Vec<u8>>,
    want: String,
}

impl ServerCertVerifier for IdentityVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &Certificate,
        intermediates: &[Certificate],
        _name: &ServerName,
        _scts: &mut dyn Iterator<Item = &[u8]>,
        _ocsp: &[u8],
        now: SystemTime,
    ) -> Result<ServerCertVerified, Error> {
        let anchors = self
            .roots
            .iter()
            .map(|d| webpki::TrustAnchor::try_from_cert_der(d))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::General(format!("trust anchor: {:?}", e)))?;
        let chain: Vec<&[u8]> = intermediates.iter().map(|c| c.0.as_ref()).collect();
        let cert = webpki::EndEntityCert::try_from(end_entity.0.as_ref())
            .map_err(|_| Error::InvalidCertificateEncoding)?;
        let t = webpki::Time::try_from(now).map_err(|_| Error::FailedToGetCurrentTime)?;
        cert.verify_is_valid_tls_server_cert(SIG_ALGS, &webpki::TlsServerTrustAnchors(&anchors), &chain, t)
            .map_err(|e| Error::InvalidCertificateData(format!("{:?}", e)))?;
        let ids = spiffe_ids(&end_entity.0);
        if ids.iter().any(|i| *i == self.want) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(Error::InvalidCertificateData(format!(
                "identity mismatch: want {}, got {:?}",
                self.want, ids
            )))
        }
    }
}

/// ztunnel's TrustDomainVerifier: the chain (webpki, clientAuth), then the
/// client's trust domain must be ours.
struct TrustDomainVerifier {
    base: Arc<dyn ClientCertVerifier>,
    trust_domain: String,
}

impl ClientCertVerifier for TrustDomainVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> Option<bool> {
        Some(true)
    }

    fn client_auth_root_subjects(&self) -> Option<DistinguishedNames> {
        self.base.client_auth_root_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &Certificate,
        intermediates: &[Certificate],
        now: SystemTime,
    ) -> Result<ClientCertVerified, Error> {
        let ok = self.base.verify_client_cert(end_entity, intermediates, now)?;
        let ids = spiffe_ids(&end_entity.0);
        if ids.iter().any(|i| trust_domain(i) == self.trust_domain) {
            Ok(ok)
        } else {
            Err(Error::InvalidCertificateData(format!(
                "client identities {:?} outside trust domain {}",
                ids, self.trust_domain
            )))
        }
    }
}

pub fn client_config(cert: &str, key: &str, ca: &str, want: &str, kx: Option<&str>) -> Result<ClientConfig, String> {
    let roots = load_certs(ca)?.into_iter().map(|c| c.0).collect();
    let verifier = Arc::new(IdentityVerifier { roots, want: want.to_string() });
    let mut cc = ClientConfig::builder()
        .with_cipher_suites(SUITES)
        .with_kx_groups(&kx_groups(kx)?)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_custom_certificate_verifier(verifier)
        .with_single_cert(load_certs(cert)?, load_key(key)?)
        .map_err(|e| e.to_string())?;
    cc.alpn_protocols = vec![b"h2".to_vec()];
    cc.session_storage = Arc::new(rustls::client::NoClientSessionStorage {});
    cc.enable_tickets = false;
    cc.enable_sni = false;
    Ok(cc)
}

pub fn server_config(cert: &str, key: &str, ca: &str, kx: Option<&str>) -> Result<ServerConfig, String> {
    let chain = load_certs(cert)?;
    let ids = spiffe_ids(&chain[0].0);
    let td = ids.first().map(|i| trust_domain(i).to_string()).ok_or("own certificate has no spiffe identity")?;
    let verifier = Arc::new(TrustDomainVerifier {
        base: AllowAnyAuthenticatedClient::new(root_store(ca)?),
        trust_domain: td,
    });
    let mut sc = ServerConfig::builder()
        .with_cipher_suites(SUITES)
        .with_kx_groups(&kx_groups(kx)?)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, load_key(key)?)
        .map_err(|e| e.to_string())?;
    sc.alpn_protocols = vec![b"h2".to_vec()];
    Ok(sc)
}
