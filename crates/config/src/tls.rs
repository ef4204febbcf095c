//! `[sip.tls]` and the trunk's TLS keys: PEM files read and checked at load, so a missing,
//! unreadable or wrong file is reported with its key before anything listens.

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde::Deserialize;

use crate::{invalid, ConfigError, SipConfig};

/// `sip.tls.handshake_timeout_secs` when the key is left out.
pub const DEFAULT_TLS_HANDSHAKE_SECS: u64 = 10;

/// `[sip.tls]`: the server certificate of the `tls:` listeners.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SipTlsConfig {
    /// PEM file with the certificate chain, the server's own certificate first.
    #[serde(default)]
    pub certificate: Option<String>,
    /// PEM file with the certificate's private key (PKCS#8, PKCS#1 or SEC1).
    #[serde(default)]
    pub private_key: Option<String>,
    /// Seconds a new connection gets to complete its TLS handshake before it is closed.
    #[serde(default = "default_handshake_secs")]
    pub handshake_timeout_secs: u64,
}

fn default_handshake_secs() -> u64 {
    DEFAULT_TLS_HANDSHAKE_SECS
}

/// Reads every certificate of a PEM file; the error says what is wrong with it.
pub fn load_certificates(path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read the file: {e}"))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not a valid PEM certificate file: {e}"))?;
    if certs.is_empty() {
        return Err("no PEM certificate (-----BEGIN CERTIFICATE-----) in the file".into());
    }
    Ok(certs)
}

/// Reads the first private key of a PEM file; the error says what is wrong with it.
pub fn load_private_key(path: &str) -> Result<PrivateKeyDer<'static>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read the file: {e}"))?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        pem::Error::NoItemsFound => {
            "no PEM private key (-----BEGIN PRIVATE KEY-----, RSA or EC) in the file".into()
        }
        e => format!("not a valid PEM private key file: {e}"),
    })
}

/// Checks `[sip.tls]` against the listeners and the trunk's TLS keys.
pub(crate) fn validate(sip: &SipConfig) -> Result<(), ConfigError> {
    let needed = sip.has_tls_listener();
    match &sip.tls {
        None if needed => {
            return Err(invalid(
                "sip.tls",
                "(missing)",
                "a [sip.tls] table with certificate and private_key (PEM files) is needed for the \"tls:\" entries of sip.listen",
            ))
        }
        None => {}
        Some(tls) => {
            match &tls.certificate {
                None if needed => {
                    return Err(invalid(
                        "sip.tls.certificate",
                        "(missing)",
                        "the path of a PEM certificate file, needed for the \"tls:\" entries of sip.listen",
                    ))
                }
                None => {}
                Some(path) => {
                    load_certificates(path)
                        .map_err(|why| invalid("sip.tls.certificate", path, &why))?;
                }
            }
            match &tls.private_key {
                None if needed => {
                    return Err(invalid(
                        "sip.tls.private_key",
                        "(missing)",
                        "the path of a PEM private key file, needed for the \"tls:\" entries of sip.listen",
                    ))
                }
                None => {}
                Some(path) => {
                    load_private_key(path)
                        .map_err(|why| invalid("sip.tls.private_key", path, &why))?;
                }
            }
            if !(1..=300).contains(&tls.handshake_timeout_secs) {
                return Err(invalid(
                    "sip.tls.handshake_timeout_secs",
                    tls.handshake_timeout_secs,
                    "1..=300 seconds",
                ));
            }
        }
    }
    if let Some(trunk) = &sip.trunk {
        if let Some(path) = &trunk.tls_ca {
            load_certificates(path).map_err(|why| invalid("sip.trunk.tls_ca", path, &why))?;
        }
        if let Some(name) = &trunk.tls_server_name {
            if ServerName::try_from(name.as_str()).is_err() {
                return Err(invalid(
                    "sip.trunk.tls_server_name",
                    name,
                    "a DNS name or an IP address",
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use crate::{from_toml_str, ConfigError, DEFAULT_TOML};

    /// A directory with a fresh self-signed certificate and key (test-only, generated here).
    struct Files {
        dir: PathBuf,
    }

    impl Files {
        fn new(tag: &str) -> Files {
            let dir = std::env::temp_dir()
                .join(format!("huddle-config-tls-{}-{tag}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let key = rcgen::KeyPair::generate().unwrap();
            let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
                .unwrap()
                .self_signed(&key)
                .unwrap();
            std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
            std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
            std::fs::write(dir.join("garbage.pem"), "not a pem file\n").unwrap();
            Files { dir }
        }

        fn path(&self, name: &str) -> String {
            self.dir.join(name).display().to_string()
        }
    }

    impl Drop for Files {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn with_tls(listen: &str, tls_table: &str) -> Result<crate::Config, ConfigError> {
        let text = DEFAULT_TOML
            .replacen(
                "listen = [\"udp:0.0.0.0:5060\", \"tcp:0.0.0.0:5060\"]",
                &format!("listen = [\"udp:0.0.0.0:5060\", {listen}]"),
                1,
            )
            .replacen("[sip.trunk]", &format!("{tls_table}\n[sip.trunk]"), 1);
        from_toml_str(&text)
    }

    fn err(r: Result<crate::Config, ConfigError>) -> String {
        r.expect_err("should be refused").to_string()
    }

    #[test]
    fn tls_listener_with_certificate_and_key_loads() {
        let f = Files::new("ok");
        let c = with_tls(
            "\"tls:127.0.0.1:5061\"",
            &format!(
                "[sip.tls]\ncertificate = {:?}\nprivate_key = {:?}\nhandshake_timeout_secs = 2",
                f.path("cert.pem"),
                f.path("key.pem")
            ),
        )
        .unwrap();
        assert!(c.sip.has_tls_listener());
        let tls = c.sip.tls.unwrap();
        assert_eq!(tls.handshake_timeout_secs, 2);
        assert_eq!(
            crate::load_certificates(tls.certificate.as_deref().unwrap())
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn tls_listener_without_table_or_keys_names_the_key() {
        let f = Files::new("missing");
        let e = err(with_tls("\"tls:127.0.0.1:5061\"", ""));
        assert!(e.starts_with("sip.tls:"), "{e}");
        assert!(e.contains("tls:"), "{e}");
        let e = err(with_tls(
            "\"tls:127.0.0.1:5061\"",
            &format!("[sip.tls]\nprivate_key = {:?}", f.path("key.pem")),
        ));
        assert!(e.starts_with("sip.tls.certificate:"), "{e}");
        let e = err(with_tls(
            "\"tls:127.0.0.1:5061\"",
            &format!("[sip.tls]\ncertificate = {:?}", f.path("cert.pem")),
        ));
        assert!(e.starts_with("sip.tls.private_key:"), "{e}");
    }

    #[test]
    fn unreadable_or_invalid_files_are_refused() {
        let f = Files::new("bad");
        let table = |cert: &str, key: &str| {
            format!(
                "[sip.tls]\ncertificate = {:?}\nprivate_key = {:?}",
                f.path(cert),
                f.path(key)
            )
        };
        let e = err(with_tls(
            "\"tls:127.0.0.1:5061\"",
            &table("nope.pem", "key.pem"),
        ));
        assert!(e.starts_with("sip.tls.certificate:"), "{e}");
        assert!(e.contains("cannot read"), "{e}");
        let e = err(with_tls(
            "\"tls:127.0.0.1:5061\"",
            &table("garbage.pem", "key.pem"),
        ));
        assert!(e.starts_with("sip.tls.certificate:"), "{e}");
        assert!(e.contains("no PEM certificate"), "{e}");
        // A certificate file holds no key.
        let e = err(with_tls(
            "\"tls:127.0.0.1:5061\"",
            &table("cert.pem", "cert.pem"),
        ));
        assert!(e.starts_with("sip.tls.private_key:"), "{e}");
        assert!(e.contains("no PEM private key"), "{e}");
        let e = err(with_tls(
            "\"tls:127.0.0.1:5061\"",
            &format!(
                "{}\nhandshake_timeout_secs = 0",
                table("cert.pem", "key.pem")
            ),
        ));
        assert!(e.starts_with("sip.tls.handshake_timeout_secs:"), "{e}");
    }

    #[test]
    fn no_tls_listener_needs_no_certificate() {
        let c = with_tls(
            "\"tcp:0.0.0.0:5060\"",
            "[sip.tls]\nhandshake_timeout_secs = 5",
        )
        .unwrap();
        assert!(!c.sip.has_tls_listener());
        assert!(crate::default_config().sip.tls.is_none());
        assert!(!crate::default_config().sip.has_tls_listener());
    }

    #[test]
    fn trunk_tls_keys_are_checked() {
        let f = Files::new("trunk");
        let base = "uri = \"sip:127.0.0.1:5070\"";
        let trunk = |extra: &str| {
            from_toml_str(&DEFAULT_TOML.replacen(
                base,
                &format!("uri = \"sip:127.0.0.1:5071;transport=tls\"\n{extra}"),
                1,
            ))
        };
        let c = trunk(&format!(
            "tls_ca = {:?}\ntls_server_name = \"localhost\"",
            f.path("cert.pem")
        ))
        .unwrap();
        assert_eq!(
            c.sip.trunk.unwrap().tls_server_name.as_deref(),
            Some("localhost")
        );
        let e = err(trunk(&format!("tls_ca = {:?}", f.path("garbage.pem"))));
        assert!(e.starts_with("sip.trunk.tls_ca:"), "{e}");
        let e = err(trunk("tls_server_name = \"not a name\""));
        assert!(e.starts_with("sip.trunk.tls_server_name:"), "{e}");
    }
}
