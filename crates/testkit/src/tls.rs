//! TLS for black-box tests: a throwaway CA and server certificate generated at test time
//! (never committed), written as PEM files for the server's `[sip.tls]`, and a SIP UA whose
//! link is TLS trusting that CA.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::RootCertStore;
use tokio::net::{TcpListener, TcpStream};

use crate::{Link, SipUa};

/// A test CA and a certificate for `127.0.0.1` and `localhost` it signed, with the key.
pub struct TestPki {
    ca: CertificateDer<'static>,
    cert: CertificateDer<'static>,
    key_der: Vec<u8>,
    /// The CA certificate, PEM.
    pub ca_pem: String,
    /// The server certificate, PEM.
    pub cert_pem: String,
    /// The server certificate's private key, PEM (PKCS#8).
    pub key_pem: String,
}

/// Paths of the PEM files [`TestPki::write`] made.
#[derive(Debug, Clone)]
pub struct PemFiles {
    /// CA certificate (for a client's or a trunk's `tls_ca`).
    pub ca: PathBuf,
    /// Server certificate (`sip.tls.certificate`).
    pub certificate: PathBuf,
    /// Private key (`sip.tls.private_key`).
    pub private_key: PathBuf,
}

impl TestPki {
    /// A fresh CA and server certificate.
    pub fn new() -> TestPki {
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "huddle test CA");
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
        let ca_pem = ca_cert.pem();
        let ca = ca_cert.der().clone();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().expect("key");
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
            .expect("params");
        let cert = params.signed_by(&key, &issuer).expect("certificate");
        TestPki {
            ca,
            cert: cert.der().clone(),
            key_der: key.serialize_der(),
            ca_pem,
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// Writes `ca.pem`, `cert.pem` and `key.pem` into `dir`.
    pub fn write(&self, dir: &Path) -> PemFiles {
        std::fs::create_dir_all(dir).expect("pem dir");
        let files = PemFiles {
            ca: dir.join("ca.pem"),
            certificate: dir.join("cert.pem"),
            private_key: dir.join("key.pem"),
        };
        std::fs::write(&files.ca, &self.ca_pem).expect("write ca");
        std::fs::write(&files.certificate, &self.cert_pem).expect("write cert");
        std::fs::write(&files.private_key, &self.key_pem).expect("write key");
        files
    }

    /// A rustls client trusting only the test CA (aws-lc-rs, the provider huddle uses).
    pub fn connector(&self) -> tokio_rustls::TlsConnector {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.clone()).expect("CA");
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }
}

impl TestPki {
    /// A rustls server presenting the test certificate (aws-lc-rs).
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        let key = PrivateKeyDer::try_from(self.key_der.clone()).expect("key");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![self.cert.clone()], key)
        .expect("certificate and key");
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    }
}

impl Default for TestPki {
    fn default() -> Self {
        TestPki::new()
    }
}

impl SipUa {
    /// A UA over TLS to `server`, checking its certificate (for 127.0.0.1) against `pki`'s CA.
    /// Panics when the connection or the handshake fails.
    pub async fn tls(server: SocketAddr, pki: &TestPki) -> SipUa {
        Self::try_tls(server, pki).await.expect("TLS connection")
    }

    /// Like [`SipUa::tls`], with the failure returned.
    pub async fn try_tls(server: SocketAddr, pki: &TestPki) -> std::io::Result<SipUa> {
        let tcp = TcpStream::connect(server).await?;
        let local = tcp.local_addr()?;
        let name = ServerName::IpAddress(server.ip().into());
        let stream = pki.connector().connect(name, tcp).await?;
        Ok(Self::new(
            Link::Tls(Box::new(stream.into()), Vec::new()),
            server,
            local,
        ))
    }

    /// A TLS "trunk": waits (up to `within`) for the server under test to connect to
    /// `listener`, completes the handshake with `pki`'s certificate and becomes a UA on that
    /// connection (`server` is the server's SIP address for the headers it writes). None when
    /// nobody connects or the handshake fails (for instance when the server does not trust the
    /// CA).
    pub async fn tls_accept(
        listener: &TcpListener,
        pki: &TestPki,
        server: SocketAddr,
        within: std::time::Duration,
    ) -> Option<SipUa> {
        let (tcp, _) = tokio::time::timeout(within, listener.accept())
            .await
            .ok()?
            .ok()?;
        let local = tcp.local_addr().ok()?;
        let stream = tokio::time::timeout(within, pki.acceptor().accept(tcp))
            .await
            .ok()?
            .ok()?;
        Some(Self::new(
            Link::Tls(Box::new(stream.into()), Vec::new()),
            server,
            local,
        ))
    }
}

impl TestPki {
    /// A TLS connection to `server` from the local address `ip` (e.g. `127.0.0.2`, a source
    /// the server may not trust), checking the server's certificate for its IP against the
    /// test CA; the stream and its local address, or the connection's or handshake's failure.
    /// A handshake that stalls for 5 s fails too.
    pub async fn connect_from(
        &self,
        ip: std::net::IpAddr,
        server: SocketAddr,
    ) -> std::io::Result<(tokio_rustls::client::TlsStream<TcpStream>, SocketAddr)> {
        let socket = match ip {
            std::net::IpAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            std::net::IpAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        socket.bind(SocketAddr::new(ip, 0))?;
        let tcp = socket.connect(server).await?;
        let local = tcp.local_addr()?;
        let name = ServerName::IpAddress(server.ip().into());
        let handshake = self.connector().connect(name, tcp);
        match tokio::time::timeout(std::time::Duration::from_secs(5), handshake).await {
            Ok(stream) => Ok((stream?, local)),
            Err(_) => Err(std::io::Error::other("TLS handshake stalled")),
        }
    }
}
