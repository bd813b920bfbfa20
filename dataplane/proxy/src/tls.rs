//! TLS termination: certificates from the table, chosen per handshake by SNI, and the rustls
//! server configuration (TLS 1.2 and 1.3 only, ALPN h2 and http/1.1, ring provider).
//!
//! The resolver reads the table in force at each handshake, so a certificate applied
//! through the API is served on the next handshake without restarting anything.

use crate::hostname::HostPattern;
use crate::table::{SocketKey, SocketRoutes, Table};
use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;

/// A loaded certificate and the DNS names (SAN) it is valid for.
#[derive(Debug)]
pub struct CertEntry {
    pub name: String,
    pub key: Arc<CertifiedKey>,
    pub names: Vec<HostPattern>,
}

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Parses a PEM chain and key; checks that the key belongs to the leaf.
pub fn load(
    name: &str,
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<CertEntry, (&'static str, String)> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| ("cert_pem", format!("not a PEM certificate chain: {e}")))?;
    if chain.is_empty() {
        return Err(("cert_pem", "no CERTIFICATE block".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| {
        (
            "key_pem",
            format!("not a PEM private key (PKCS#8, PKCS#1 or SEC1): {e}"),
        )
    })?;
    let names = {
        let leaf = webpki::EndEntityCert::try_from(&chain[0]).map_err(|e| {
            (
                "cert_pem",
                format!("the leaf certificate does not parse: {e}"),
            )
        })?;
        leaf.valid_dns_names()
            .filter_map(|n| crate::hostname::parse(&n.to_ascii_lowercase()).ok())
            .collect()
    };
    let key = CertifiedKey::from_der(chain, key, &provider()).map_err(|e| {
        (
            "key_pem",
            format!("unusable key or key does not match the certificate: {e}"),
        )
    })?;
    Ok(CertEntry {
        name: name.to_string(),
        key: Arc::new(key),
        names,
    })
}

impl CertEntry {
    /// How well this certificate covers `sni`: exact SAN beats wildcard, longer beats shorter.
    fn score(&self, sni: &str) -> Option<(u8, usize)> {
        self.names
            .iter()
            .filter(|n| n.matches(sni))
            .map(HostPattern::specificity)
            .max()
    }
}

impl SocketRoutes {
    /// The certificate for a handshake: the listener with the most specific hostname that
    /// accepts the SNI and has certificates, and among its certificates the longest SAN match;
    /// without SNI or match, the default.
    pub fn certificate(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        if let Some(sni) = sni {
            let sni = sni.to_ascii_lowercase();
            if let Some(listener) = self
                .listeners
                .iter()
                .find(|l| !l.certs.is_empty() && l.hostname.matches(&sni))
            {
                let best = listener
                    .certs
                    .iter()
                    .filter_map(|c| c.score(&sni).map(|s| (s, c)))
                    // max_by_key keeps the last of equals; reverse so the first listed wins.
                    .rev()
                    .max_by_key(|(s, _)| *s)
                    .map(|(_, c)| c)
                    .unwrap_or(&listener.certs[0]);
                return Some(best.key.clone());
            }
        }
        self.default_cert.as_ref().map(|c| c.key.clone())
    }
}

/// Resolves certificates for one bound socket from the table in force.
#[derive(Debug)]
pub struct SniResolver {
    pub socket: SocketKey,
    pub table: Arc<ArcSwap<Table>>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let table = self.table.load();
        let routes = table.sockets.get(&self.socket)?;
        let cert = routes.certificate(hello.server_name());
        if cert.is_none() {
            tracing::debug!(socket = %self.socket, sni = ?hello.server_name(), "no certificate");
        }
        cert
    }
}

/// The server configuration of one HTTPS socket.
pub fn server_config(socket: SocketKey, table: Arc<ArcSwap<Table>>) -> Arc<rustls::ServerConfig> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("ring supports TLS 1.2 and 1.3")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver { socket, table }));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}
