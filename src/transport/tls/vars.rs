//! mod_ssl's variables, for `RequestHeader`/`Header` values (`%{NAME}s`), `LogFormat`
//! (`%{NAME}x`) and `RewriteCond %{HTTPS}`: what the TLS layer negotiated, named as
//! mod_ssl names it.

use crate::transport::TlsFacts;

/// The variables ringproxy sets.
pub const NAMES: &[&str] = &[
    "HTTPS",
    "SSL_PROTOCOL",
    "SSL_CIPHER",
    "SSL_TLS_SNI",
    "SSL_SESSION_RESUMED",
    "SSL_CLIENT_S_DN",
    "SSL_CLIENT_I_DN",
    "SSL_CLIENT_M_SERIAL",
    "SSL_CLIENT_VERIFY",
];

/// The variable `name` (one of [`NAMES`]) for a connection with `facts` (`None`: plain
/// TCP). Empty where mod_ssl leaves a variable unset; `HTTPS` is `on` or `off`.
pub fn value(facts: Option<&TlsFacts>, name: &str) -> String {
    let Some(f) = facts else {
        return if name == "HTTPS" { "off" } else { "" }.to_string();
    };
    let client = f.client.as_ref();
    match name {
        "HTTPS" => "on".into(),
        "SSL_PROTOCOL" => f.protocol.into(),
        "SSL_CIPHER" => f.cipher.into(),
        "SSL_TLS_SNI" => f.server_name.clone().unwrap_or_default(),
        "SSL_SESSION_RESUMED" => if f.resumed { "Resumed" } else { "Initial" }.into(),
        "SSL_CLIENT_S_DN" => client.map(|c| c.subject.clone()).unwrap_or_default(),
        "SSL_CLIENT_I_DN" => client.map(|c| c.issuer.clone()).unwrap_or_default(),
        "SSL_CLIENT_M_SERIAL" => client.map(|c| c.serial.clone()).unwrap_or_default(),
        // A certificate that failed verification ends the handshake, so there is no
        // FAILED here.
        "SSL_CLIENT_VERIFY" => if client.is_some() { "SUCCESS" } else { "NONE" }.into(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::ClientCert;

    #[test]
    fn variables_as_mod_ssl_names_them() {
        assert_eq!(value(None, "HTTPS"), "off");
        assert_eq!(value(None, "SSL_PROTOCOL"), "");
        let mut f = TlsFacts {
            server_name: Some("a.test".into()),
            protocol: "TLSv1.3",
            cipher: "TLS_AES_128_GCM_SHA256",
            ..Default::default()
        };
        let v = |f: &TlsFacts, n| value(Some(f), n);
        assert_eq!(v(&f, "HTTPS"), "on");
        assert_eq!(v(&f, "SSL_PROTOCOL"), "TLSv1.3");
        assert_eq!(v(&f, "SSL_TLS_SNI"), "a.test");
        assert_eq!(v(&f, "SSL_CLIENT_VERIFY"), "NONE");
        f.client = Some(ClientCert {
            subject: "CN=alice,O=Example".into(),
            issuer: "CN=Example CA".into(),
            serial: "0A1B".into(),
            pem: String::new(),
        });
        assert_eq!(v(&f, "SSL_CLIENT_VERIFY"), "SUCCESS");
        assert_eq!(v(&f, "SSL_CLIENT_S_DN"), "CN=alice,O=Example");
    }
}
