//! Directives of stock Apache trees that ringproxy accepts without acting on them, each
//! with its reason (given once per directive name, see `Builder::note_once`). A directive
//! whose silent omission could open something the admin closed is never here: those are
//! refused where they are read.

/// (directive names, lower case; why ringproxy has nothing to do for them).
const ACCEPTED: &[(&[&str], &str)] = &[
    (
        &[
            "addlanguage",
            "addcharset",
            "addencoding",
            "addinputfilter",
            "addoutputfilter",
            "removehandler",
            "removeinputfilter",
            "removeoutputfilter",
            "removecharset",
            "removeencoding",
            "removelanguage",
            "defaultlanguage",
            "multiviewsmatch",
            "modmimeusepathinfo",
            "forcetype",
        ],
        "files are sent as they are, typed by TypesConfig and AddType; no negotiation, filters or encodings by extension",
    ),
    (
        &["languagepriority", "forcelanguagepriority", "cachenegotiateddocs"],
        "ringproxy does no content negotiation (mod_negotiation); files are sent as named",
    ),
    (
        &[
            "indexoptions",
            "indexignore",
            "indexignorereset",
            "indexorderdefault",
            "indexstylesheet",
            "indexheadinsert",
            "addicon",
            "addiconbyencoding",
            "addiconbytype",
            "addalt",
            "addaltbyencoding",
            "addaltbytype",
            "adddescription",
            "defaulticon",
            "readmename",
            "headername",
        ],
        "ringproxy's listing for Options Indexes is a plain one (dot files hidden), without mod_autoindex's icons and options",
    ),
    (
        &[
            "browsermatch",
            "browsermatchnocase",
            "setenvif",
            "setenvifnocase",
            "setenvifexpr",
            "setenv",
            "unsetenv",
            "passenv",
        ],
        "ringproxy keeps no per-request environment (mod_setenvif, mod_env)",
    ),
    (
        &[
            "addoutputfilterbytype",
            "deflatecompressionlevel",
            "deflatebuffersize",
            "deflatememlevel",
            "deflatewindowsize",
            "deflatefilternote",
            "filterdeclare",
            "filterprovider",
            "filterchain",
            "filterprotocol",
            "filtertrace",
        ],
        "ringproxy does not compress or filter responses; members' compression passes through",
    ),
    (
        &["accessfilename"],
        "ringproxy reads no .htaccess files; what they would say must be in the configuration",
    ),
    (
        &["mimemagicfile"],
        "types come from TypesConfig and AddType, not from file contents",
    ),
    (
        &["userdir"],
        "ringproxy serves no user directories (mod_userdir)",
    ),
    (
        &["errorlogformat"],
        "ringproxy's error log has its own line format (time, level, message)",
    ),
    (
        &["errordocument"],
        "ringproxy answers errors with its own short pages",
    ),
    (
        &["scriptsock", "scriptlog", "scriptlogbuffer", "scriptloglength"],
        "ringproxy runs no CGI programs",
    ),
    (
        &["proxyreceivebuffersize"],
        "the kernel sizes member sockets' buffers (autotuning)",
    ),
    (
        &["proxymaxforwards"],
        "Max-Forwards is passed as the client sent it, never added (Apache's default since 2.4)",
    ),
    (
        &["proxy100continue"],
        "ringproxy answers `Expect: 100-continue` itself and sends the body to the member without it",
    ),
    (
        &["proxyasyncdelay", "proxyasyncidletimeout", "proxywebsocketasyncdelay"],
        "tunnels always run on the event loop, never holding a worker",
    ),
    (
        &["proxywebsocketidletimeout"],
        "a tunnel closes after the member's timeout (ProxyTimeout, Timeout) with nothing moving either way",
    ),
    (
        &["proxywebsocketfallbacktoproxyhttp"],
        "upgrades are always handled with the HTTP request (mod_proxy_http's way)",
    ),
    (
        &["seerequesttail"],
        "server-status shows no request lines",
    ),
    (
        &["sslsessionticketkeyfile"],
        "ticket keys are made in the process and rotate every 6 hours",
    ),
    (
        &["sslcadnrequestpath", "sslcadnrequestfile"],
        "the CA names sent to clients are those of SSLCACertificateFile/Path",
    ),
    (
        &["sslclienthellovars", "sslrenegbuffersize", "sslpolicy"],
        "not available with rustls (renegotiation never happens; policies are SSLProtocol and SSLCipherSuite)",
    ),
    (
        &[
            "sslstaplingresponsetimeskew",
            "sslstaplingresponsemaxage",
            "sslstaplingstandardcachetimeout",
            "sslstaplingreturnrespondererrors",
            "sslstaplingfaketrylater",
            "sslstaplingerrorcachetimeout",
            "sslstaplingforceurl",
            "sslocspdefaultresponder",
            "sslocspoverrideresponder",
            "sslocspresponsetimeskew",
            "sslocspresponsemaxage",
            "sslocsprespondertimeout",
            "sslocspuserequestnonce",
            "sslocspproxyurl",
            "sslocspnoverify",
            "sslocsprespondercertificatefile",
        ],
        "OCSP stapling and OCSP checks are not done (SSLOCSPEnable on is refused)",
    ),
    (
        &["enablesendfile", "enablemmap"],
        "ringproxy always sends files with sendfile(2) on plain connections (read and encrypted on TLS ones), never mmap",
    ),
];

/// Why a directive is accepted without effect, if it is one of those.
pub(in super::super) fn accepted_reason(lower_name: &str) -> Option<&'static str> {
    ACCEPTED
        .iter()
        .find(|(names, _)| names.contains(&lower_name))
        .map(|(_, why)| *why)
}

/// Every accepted name (for "did you mean" and the README's table check).
pub(in super::super) fn accepted_names() -> impl Iterator<Item = &'static str> {
    ACCEPTED.iter().flat_map(|(names, _)| names.iter().copied())
}
