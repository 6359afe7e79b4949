//! mod_proxy's ProxyVia and ProxyErrorOverride, as Apache applies them.

mod common;

use common::*;

fn site(member: &Backend, lines: &str) -> ringproxy::runtime::Server {
    proxy(&format!(
        "Listen 127.0.0.1:0\nServerName lb.example\n{lines}\nProxyPass / http://127.0.0.1:{}/\n",
        member.port()
    ))
}

fn get(p: &ringproxy::runtime::Server, path: &str, extra: &str) -> Response {
    let mut c = Client::connect(p.addrs[0]);
    c.send(format!("GET {path} HTTP/1.1\r\nHost: t\r\n{extra}\r\n").as_bytes());
    c.read_response(false).unwrap()
}

#[test]
fn proxy_via_adds_this_hop_or_blocks_the_header() {
    let member = named("app");
    let port = |p: &ringproxy::runtime::Server| p.addrs[0].port();
    // Off (the default): Via passes as sent, nothing added either way.
    let p = site(&member, "");
    let r = get(&p, "/", "Via: 1.0 upstream\r\n");
    assert_eq!(member.last().header("via").as_deref(), Some("1.0 upstream"));
    assert_eq!(r.header("via"), None);
    // On: this hop, after the client's, on the request; on the response too.
    let p = site(&member, "ProxyVia On");
    let r = get(&p, "/", "Via: 1.0 upstream\r\n");
    let hop = format!("1.1 lb.example:{}", port(&p));
    assert_eq!(
        member.last().header("via"),
        Some(format!("1.0 upstream, {hop}"))
    );
    assert_eq!(r.header("via"), Some(hop));
    // Full: with the version.
    let p = site(&member, "ProxyVia Full");
    get(&p, "/", "");
    let via = member.last().header("via").unwrap();
    assert!(
        via.ends_with(&format!("(ringproxy/{})", env!("CARGO_PKG_VERSION"))),
        "{via}"
    );
    // Block: the member gets no Via at all.
    let p = site(&member, "ProxyVia Block");
    let r = get(&p, "/", "Via: 1.0 upstream\r\n");
    assert_eq!(member.last().header("via"), None);
    assert_eq!(r.header("via"), None);
}

#[test]
fn proxy_error_override_answers_the_members_errors_itself() {
    let member = backend(|req| {
        let status = req
            .request_line()
            .split('/')
            .nth(1)
            .unwrap_or("200")
            .split(' ')
            .next()
            .unwrap_or("200")
            .to_string();
        let body = "<stack trace with secrets>";
        Action::Respond(
            format!(
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nX-Member: yes\r\n\r\n{body}",
                body.len()
            )
            .into_bytes(),
        )
    });
    let p = site(&member, "ProxyErrorOverride On 500 503");
    let r = get(&p, "/500", "");
    assert_eq!(r.status, 500);
    assert!(
        !r.text().contains("secrets") && r.header("x-member").is_none(),
        "{}",
        r.text()
    );
    // A status not listed, and a success, pass as the member sent them.
    let r = get(&p, "/404", "");
    assert_eq!((r.status, r.text().contains("secrets")), (404, true));
    assert_eq!(get(&p, "/200", "").status, 200);
    // Without codes, every 4xx and 5xx.
    let p = site(&member, "ProxyErrorOverride On");
    let r = get(&p, "/404", "");
    assert_eq!((r.status, r.text().contains("secrets")), (404, false));
    assert_eq!(
        get(&p, "/302", "").header("x-member").as_deref(),
        Some("yes")
    );
}

#[test]
fn proxy_source_address_is_refused_with_its_reason() {
    let errs = ringproxy::config::load_str(
        "Listen 127.0.0.1:0\nProxySourceAddress 127.0.0.2\nProxyPass / http://127.0.0.1:9/\n",
        "t.conf",
        &ringproxy::config::LoadOptions::default(),
    )
    .err()
    .unwrap();
    assert!(
        errs[0]
            .to_string()
            .starts_with("t.conf:2: ProxySourceAddress is not available"),
        "{errs:?}"
    );
}

#[test]
fn proxy_add_headers_off_passes_the_clients_x_forwarded_headers_and_adds_none() {
    let member = named("app");
    let p = site(&member, "ProxyAddHeaders Off");
    get(&p, "/", "X-Forwarded-For: 192.0.2.1\r\n");
    let seen = member.last();
    assert_eq!(seen.header("x-forwarded-for").as_deref(), Some("192.0.2.1"));
    assert_eq!(seen.header("x-forwarded-host"), None);
    assert_eq!(seen.header("x-forwarded-server"), None);
    let p = site(&member, "");
    get(&p, "/", "X-Forwarded-For: 192.0.2.1\r\n");
    assert_eq!(
        member.last().header("x-forwarded-for").as_deref(),
        Some("192.0.2.1, 127.0.0.1")
    );
}

/// Every directive of the modules ringproxy stands in for, from Apache 2.4's directive
/// index: each is known (supported, accepted with its reason, or refused with its reason;
/// never "unknown"), and the README's directive table names it.
#[test]
fn every_directive_of_the_modules_ringproxy_replaces_is_known_and_documented() {
    const MODULES: &[(&str, &[&str])] = &[
        (
            "mod_proxy",
            &[
                "BalancerGrowth",
                "BalancerInherit",
                "BalancerMember",
                "BalancerPersist",
                "NoProxy",
                "ProxyAddHeaders",
                "ProxyBadHeader",
                "ProxyBlock",
                "ProxyDomain",
                "ProxyErrorOverride",
                "ProxyIOBufferSize",
                "ProxyMaxForwards",
                "ProxyPass",
                "ProxyPassInherit",
                "ProxyPassInterpolateEnv",
                "ProxyPassMatch",
                "ProxyPassReverse",
                "ProxyPassReverseCookieDomain",
                "ProxyPassReverseCookiePath",
                "ProxyPreserveHost",
                "ProxyReceiveBufferSize",
                "ProxyRemote",
                "ProxyRemoteMatch",
                "ProxyRequests",
                "ProxySet",
                "ProxySourceAddress",
                "ProxyStatus",
                "ProxyTimeout",
                "ProxyVia",
                "Proxy100Continue",
                "ProxyAsyncDelay",
                "ProxyAsyncIdleTimeout",
            ],
        ),
        (
            "mod_proxy_hcheck",
            &["ProxyHCExpr", "ProxyHCTemplate", "ProxyHCTPsize"],
        ),
        (
            "mod_proxy_wstunnel",
            &[
                "ProxyWebsocketFallbackToProxyHttp",
                "ProxyWebsocketIdleTimeout",
                "ProxyWebsocketAsyncDelay",
            ],
        ),
        ("mod_headers", &["Header", "RequestHeader"]),
        (
            "mod_remoteip",
            &[
                "RemoteIPHeader",
                "RemoteIPInternalProxy",
                "RemoteIPInternalProxyList",
                "RemoteIPProxiesHeader",
                "RemoteIPProxyProtocol",
                "RemoteIPProxyProtocolExceptions",
                "RemoteIPTrustedProxy",
                "RemoteIPTrustedProxyList",
            ],
        ),
        ("mod_reqtimeout", &["RequestReadTimeout"]),
        ("mod_status", &["ExtendedStatus", "SeeRequestTail"]),
        (
            "mod_alias",
            &[
                "Alias",
                "AliasMatch",
                "AliasPreservePath",
                "Redirect",
                "RedirectMatch",
                "RedirectPermanent",
                "RedirectRelative",
                "RedirectTemp",
                "ScriptAlias",
                "ScriptAliasMatch",
            ],
        ),
        (
            "mod_ssl",
            &[
                "SSLCACertificateFile",
                "SSLCACertificatePath",
                "SSLCADNRequestFile",
                "SSLCADNRequestPath",
                "SSLCARevocationCheck",
                "SSLCARevocationFile",
                "SSLCARevocationPath",
                "SSLCertificateChainFile",
                "SSLCertificateFile",
                "SSLCertificateKeyFile",
                "SSLCipherSuite",
                "SSLClientHelloVars",
                "SSLCompression",
                "SSLCryptoDevice",
                "SSLEngine",
                "SSLFIPS",
                "SSLHonorCipherOrder",
                "SSLInsecureRenegotiation",
                "SSLOCSPDefaultResponder",
                "SSLOCSPEnable",
                "SSLOCSPNoVerify",
                "SSLOCSPOverrideResponder",
                "SSLOCSPProxyURL",
                "SSLOCSPResponderCertificateFile",
                "SSLOCSPResponderTimeout",
                "SSLOCSPResponseMaxAge",
                "SSLOCSPResponseTimeSkew",
                "SSLOCSPUseRequestNonce",
                "SSLOpenSSLConfCmd",
                "SSLOptions",
                "SSLPassPhraseDialog",
                "SSLPolicy",
                "SSLProtocol",
                "SSLProxyCACertificateFile",
                "SSLProxyCACertificatePath",
                "SSLProxyCARevocationCheck",
                "SSLProxyCARevocationFile",
                "SSLProxyCARevocationPath",
                "SSLProxyCheckPeerCN",
                "SSLProxyCheckPeerExpire",
                "SSLProxyCheckPeerName",
                "SSLProxyCipherSuite",
                "SSLProxyEngine",
                "SSLProxyMachineCertificateChainFile",
                "SSLProxyMachineCertificateFile",
                "SSLProxyMachineCertificatePath",
                "SSLProxyProtocol",
                "SSLProxyVerify",
                "SSLProxyVerifyDepth",
                "SSLRandomSeed",
                "SSLRenegBufferSize",
                "SSLRequire",
                "SSLRequireSSL",
                "SSLSessionCache",
                "SSLSessionCacheTimeout",
                "SSLSessionTicketKeyFile",
                "SSLSessionTickets",
                "SSLSRPUnknownUserSeed",
                "SSLSRPVerifierFile",
                "SSLStaplingCache",
                "SSLStaplingErrorCacheTimeout",
                "SSLStaplingFakeTryLater",
                "SSLStaplingForceURL",
                "SSLStaplingResponderTimeout",
                "SSLStaplingResponseMaxAge",
                "SSLStaplingResponseTimeSkew",
                "SSLStaplingReturnResponderErrors",
                "SSLStaplingStandardCacheTimeout",
                "SSLStrictSNIVHostCheck",
                "SSLUserName",
                "SSLUseStapling",
                "SSLVerifyClient",
                "SSLVerifyDepth",
            ],
        ),
    ];
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let mut missing = Vec::new();
    for (module, names) in MODULES {
        for name in *names {
            let text = format!("Listen 127.0.0.1:0\n{name} x\n");
            let errs: Vec<String> =
                ringproxy::config::load_str(&text, "t.conf", &Default::default())
                    .err()
                    .unwrap_or_default()
                    .iter()
                    .map(ToString::to_string)
                    .collect();
            if errs
                .iter()
                .any(|e| e.contains("unknown or unsupported directive"))
            {
                missing.push(format!("{module} {name}: unknown to ringproxy"));
            }
            if !readme.contains(&format!("`{name}")) && !readme.contains(&format!("`<{name}")) {
                missing.push(format!(
                    "{module} {name}: not in the README's directive table"
                ));
            }
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}
