//! SIP over TLS (RFC 3261 §26.2, RFC 5630): the rustls settings of the `tls:` listeners and of
//! the connections huddle opens itself, to a `;transport=tls` trunk.
//!
//! TLS only wraps the byte stream: framing, the per-connection reader and writer tasks, the
//! source access check and the transaction rules are the TCP ones (`crate::service`). Both
//! sides use the aws-lc-rs provider explicitly (the one reqwest already brings), so nothing
//! depends on which process-wide default provider is installed.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::net::TcpStream;
use tokio_rustls::{client, server, TlsAcceptor, TlsConnector};

pub use rustls::pki_types::ServerName as TlsServerName;

/// How long a TLS handshake may take when nothing else is said.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The TLS side of the SIP service: the listeners' certificate and the client settings for
/// connections huddle opens.
#[derive(Clone)]
pub struct SipTls {
    acceptor: Option<TlsAcceptor>,
    connector: TlsConnector,
    handshake_timeout: Duration,
    /// Names to check servers' certificates against, by address (the IP itself otherwise).
    server_names: HashMap<SocketAddr, ServerName<'static>>,
}

impl fmt::Debug for SipTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SipTls")
            .field("listens", &self.acceptor.is_some())
            .field("handshake_timeout", &self.handshake_timeout)
            .field("server_names", &self.server_names)
            .finish()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Installs aws-lc-rs as the process-wide rustls provider, the one reqwest uses too, so that no
/// library that asks for the default finds two or none. Call it first thing in `main`; a second
/// call changes nothing.
pub fn install_default_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// The operating system's trusted CAs plus `extra` (a private CA, say); certificates the
/// system store holds that rustls cannot parse are skipped with a log line.
pub fn root_store(extra: Vec<CertificateDer<'static>>) -> RootCertStore {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        tracing::debug!(error = %e, "system CA store");
    }
    let (_, skipped) = roots.add_parsable_certificates(native.certs);
    if skipped > 0 {
        tracing::debug!(skipped, "system CA certificates rustls cannot use");
    }
    let (_, bad) = roots.add_parsable_certificates(extra);
    if bad > 0 {
        tracing::warn!(bad, "CA certificates that could not be used");
    }
    roots
}

impl SipTls {
    /// Client settings only (no TLS listener): servers' certificates are checked against
    /// `roots`.
    pub fn client(roots: RootCertStore) -> Result<SipTls, rustls::Error> {
        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(SipTls {
            acceptor: None,
            connector: TlsConnector::from(Arc::new(config)),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            server_names: HashMap::new(),
        })
    }

    /// Adds the listeners' certificate chain (own certificate first) and its private key; an
    /// error when the key does not match the certificate or is of an unsupported kind.
    pub fn with_certificate(
        mut self,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<SipTls, rustls::Error> {
        let config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        self.acceptor = Some(TlsAcceptor::from(Arc::new(config)));
        Ok(self)
    }

    /// Sets how long a handshake (accepted or initiated) may take before the connection is
    /// closed.
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> SipTls {
        self.handshake_timeout = timeout;
        self
    }

    /// Checks the certificate of the server at `addr` against `name` instead of its IP.
    pub fn with_server_name(mut self, addr: SocketAddr, name: ServerName<'static>) -> SipTls {
        self.server_names.insert(addr, name);
        self
    }

    /// True when a certificate for listeners is set.
    pub fn can_listen(&self) -> bool {
        self.acceptor.is_some()
    }

    /// The handshake timeout.
    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// The server side of a handshake on an accepted connection, bounded by the timeout.
    pub(crate) async fn accept(
        &self,
        stream: TcpStream,
    ) -> Result<server::TlsStream<TcpStream>, String> {
        let acceptor = self
            .acceptor
            .as_ref()
            .ok_or_else(|| "no certificate".to_string())?;
        match tokio::time::timeout(self.handshake_timeout, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => Ok(tls),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("handshake timed out".into()),
        }
    }

    /// Opens a connection to `addr` and runs the client side of a handshake, checking the
    /// server's certificate; connect and handshake together are bounded by the timeout.
    pub(crate) async fn connect(
        &self,
        addr: SocketAddr,
    ) -> Result<client::TlsStream<TcpStream>, String> {
        let name = self
            .server_names
            .get(&addr)
            .cloned()
            .unwrap_or_else(|| ServerName::IpAddress(addr.ip().into()));
        let connector = self.connector.clone();
        let attempt = async move {
            let tcp = TcpStream::connect(addr)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            connector
                .connect(name, tcp)
                .await
                .map_err(|e| format!("handshake: {e}"))
        };
        tokio::time::timeout(self.handshake_timeout, attempt)
            .await
            .unwrap_or_else(|_| Err("connect and handshake timed out".into()))
    }
}
