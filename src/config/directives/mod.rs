//! The directive table: every directive ringproxy reads, where it may appear, and the
//! builder that takes it, grouped by family (one file each). Access directives (`Require`,
//! `Order`, `Allow`, `Deny`, `Satisfy`) and what `<Location>` allows are taken before the
//! table, since their meaning depends on the section they are in.

mod accepted;
mod connections;
mod files;
mod observe;
mod paths;
mod proxy;
mod refused;
mod rewrite;
mod server;
mod tls;

pub(super) use accepted::{accepted_names, accepted_reason};
pub(super) use files::{dir_match, index_names, name_match};
pub(super) use refused::{refused_names, refused_reason};
pub(super) use tls::verify_client_arg;

use super::lexer::Directive;
use super::{Builder, Ctx};

/// Server config (outside any section).
const MAIN: u8 = 1;
/// Inside `<VirtualHost>`.
const VHOST: u8 = 2;
/// Inside `<Proxy balancer://…>`.
const BALANCER: u8 = 4;

/// One directive: its name as Apache spells it, the contexts it is allowed in, and its
/// builder.
pub(super) struct Spec {
    pub name: &'static str,
    contexts: u8,
    pub run: fn(&mut Builder, &Directive, Ctx),
}

impl Spec {
    /// Why the directive cannot appear in `ctx` (Apache's "not allowed here"), if so.
    pub fn refused_in(&self, ctx: Ctx) -> Option<String> {
        let (flag, place) = match ctx {
            Ctx::Server(0) => (MAIN, ""),
            Ctx::Server(_) => (VHOST, "<VirtualHost>"),
            Ctx::Balancer(..) => (BALANCER, "<Proxy balancer://…>"),
            // Handled before the table.
            Ctx::Location(_) | Ctx::ProxyOther(..) => return None,
        };
        (self.contexts & flag == 0).then(|| format!("{} is not allowed inside {place}", self.name))
    }
}

/// The directive named `name` (any case).
pub(super) fn find(name: &str) -> Option<&'static Spec> {
    TABLE.iter().find(|s| s.name.eq_ignore_ascii_case(name))
}

/// Every name in the table, for "did you mean" hints.
pub(super) fn names() -> impl Iterator<Item = &'static str> {
    TABLE.iter().map(|s| s.name)
}

macro_rules! spec {
    ($name:literal, $contexts:expr, $run:path) => {
        Spec {
            name: $name,
            contexts: $contexts,
            run: $run,
        }
    };
}

const TABLE: &[Spec] = &[
    spec!("Listen", MAIN, server::listen),
    spec!("ServerName", MAIN | VHOST, server::servername),
    spec!("ServerAlias", MAIN | VHOST, server::serveralias),
    spec!("ProxyRequests", MAIN | VHOST, proxy::proxyrequests),
    spec!("ProxyPass", MAIN | VHOST, proxy::proxypass),
    spec!("ProxyPassMatch", MAIN | VHOST, proxy::proxypass),
    spec!("RewriteEngine", MAIN | VHOST, rewrite::rewriteengine),
    spec!("RewriteCond", MAIN | VHOST, rewrite::rewritecond),
    spec!("RewriteRule", MAIN | VHOST, rewrite::rewriterule),
    spec!("RewriteOptions", MAIN | VHOST, rewrite::rewriteoptions),
    spec!("RewriteBase", MAIN | VHOST, rewrite::rewriteoptions),
    spec!("RewriteMap", MAIN | VHOST, rewrite::rewriteoptions),
    spec!("ProxyPassReverse", MAIN | VHOST, proxy::proxypassreverse),
    spec!(
        "ProxyPassReverseCookieDomain",
        MAIN | VHOST,
        proxy::proxypassreversecookiedomain
    ),
    spec!(
        "ProxyPassReverseCookiePath",
        MAIN | VHOST,
        proxy::proxypassreversecookiedomain
    ),
    spec!("MergeSlashes", MAIN | VHOST, paths::mergeslashes),
    spec!(
        "AllowEncodedSlashes",
        MAIN | VHOST,
        paths::allowencodedslashes
    ),
    spec!(
        "ServletDotSegments",
        MAIN | VHOST,
        paths::servletdotsegments
    ),
    spec!("TraceEnable", MAIN | VHOST, paths::traceenable),
    spec!("ProxyPreserveHost", MAIN | VHOST, proxy::proxypreservehost),
    spec!("ProxyTimeout", MAIN | VHOST, proxy::proxytimeout),
    spec!("ProxyVia", MAIN | VHOST, proxy::proxyvia),
    spec!("ProxyAddHeaders", MAIN | VHOST, proxy::proxyaddheaders),
    spec!(
        "ProxyErrorOverride",
        MAIN | VHOST,
        proxy::proxyerroroverride
    ),
    spec!(
        "ProxySourceAddress",
        MAIN | VHOST,
        proxy::proxysourceaddress
    ),
    spec!("ProxySet", MAIN | VHOST | BALANCER, proxy::proxyset),
    spec!("LogFormat", MAIN | VHOST, observe::logformat),
    spec!("CustomLog", MAIN | VHOST, observe::customlog),
    spec!("ProxyStatus", MAIN | VHOST, proxy::proxystatus),
    spec!("ExtendedStatus", MAIN | VHOST, observe::extendedstatus),
    spec!("ProxyHCExpr", MAIN | VHOST, proxy::proxyhcexpr),
    spec!("ProxyHCTemplate", MAIN | VHOST, proxy::proxyhctemplate),
    spec!("ProxyHCTPsize", MAIN | VHOST, proxy::proxyhctpsize),
    spec!(
        "BalancerMember",
        MAIN | VHOST | BALANCER,
        proxy::balancermember
    ),
    spec!("Timeout", MAIN | VHOST, connections::timeout),
    spec!("KeepAlive", MAIN | VHOST, connections::keepalive),
    spec!(
        "KeepAliveTimeout",
        MAIN | VHOST,
        connections::keepalivetimeout
    ),
    spec!(
        "MaxKeepAliveRequests",
        MAIN | VHOST,
        connections::maxkeepaliverequests
    ),
    spec!(
        "LimitRequestLine",
        MAIN | VHOST,
        connections::limitrequestline
    ),
    spec!(
        "LimitRequestFieldSize",
        MAIN | VHOST,
        connections::limitrequestfieldsize
    ),
    spec!(
        "LimitRequestFields",
        MAIN | VHOST,
        connections::limitrequestfields
    ),
    spec!("ListenBacklog", MAIN | VHOST, connections::listenbacklog),
    spec!(
        "MaxRequestWorkers",
        MAIN | VHOST,
        connections::max_request_workers
    ),
    spec!("MaxClients", MAIN | VHOST, connections::max_request_workers),
    spec!(
        "AsyncRequestWorkerFactor",
        MAIN,
        connections::async_request_worker_factor
    ),
    spec!("WorkerThreads", MAIN | VHOST, server::workerthreads),
    spec!("CpuAffinity", MAIN | VHOST, server::cpuaffinity),
    spec!("IdleBuffers", MAIN | VHOST, connections::idlebuffers),
    spec!("IdleParkAfter", MAIN | VHOST, connections::idleparkafter),
    spec!("BusyPolling", MAIN | VHOST, connections::busypolling),
    spec!(
        "SpliceThreshold",
        MAIN | VHOST,
        connections::splicethreshold
    ),
    spec!(
        "RequestReadTimeout",
        MAIN | VHOST,
        connections::requestreadtimeout
    ),
    spec!(
        "ProxyRequestBuffer",
        MAIN | VHOST,
        proxy::proxyrequestbuffer
    ),
    spec!("ProxyIOBufferSize", MAIN | VHOST, proxy::proxyiobuffersize),
    spec!(
        "GracefulShutdownTimeout",
        MAIN | VHOST,
        server::gracefulshutdowntimeout
    ),
    spec!("ErrorLog", MAIN | VHOST, server::errorlog),
    spec!("LogLevel", MAIN | VHOST, server::loglevel),
    spec!("User", MAIN | VHOST, server::user_group),
    spec!("Group", MAIN | VHOST, server::user_group),
    spec!("SSLEngine", MAIN | VHOST, tls::sslengine),
    spec!(
        "SSLProxyEngine",
        MAIN | VHOST | BALANCER,
        tls::sslproxyengine
    ),
    spec!(
        "SSLProxyVerify",
        MAIN | VHOST | BALANCER,
        tls::sslproxyverify
    ),
    spec!(
        "SSLProxyVerifyDepth",
        MAIN | VHOST | BALANCER,
        tls::sslproxyverifydepth
    ),
    spec!(
        "SSLProxyCACertificateFile",
        MAIN | VHOST | BALANCER,
        tls::sslproxy_ca
    ),
    spec!(
        "SSLProxyCACertificatePath",
        MAIN | VHOST | BALANCER,
        tls::sslproxy_ca
    ),
    spec!(
        "SSLProxyCheckPeerName",
        MAIN | VHOST | BALANCER,
        tls::sslproxy_check
    ),
    spec!(
        "SSLProxyCheckPeerCN",
        MAIN | VHOST | BALANCER,
        tls::sslproxy_check
    ),
    spec!(
        "SSLProxyCheckPeerExpire",
        MAIN | VHOST | BALANCER,
        tls::sslproxy_check
    ),
    spec!(
        "SSLProxyMachineCertificateFile",
        MAIN | VHOST | BALANCER,
        tls::sslproxy_machine
    ),
    spec!(
        "SSLProxyMachineCertificateChainFile",
        MAIN | VHOST | BALANCER,
        tls::sslproxy_machine
    ),
    spec!(
        "SSLProxyMachineCertificatePath",
        MAIN | VHOST | BALANCER,
        tls::sslproxy_machine
    ),
    spec!(
        "SSLProxyProtocol",
        MAIN | VHOST | BALANCER,
        tls::sslproxyprotocol
    ),
    spec!(
        "SSLProxyCipherSuite",
        MAIN | VHOST | BALANCER,
        tls::sslproxyciphersuite
    ),
    spec!("SSLCertificateFile", MAIN | VHOST, tls::certificate),
    spec!("SSLCertificateKeyFile", MAIN | VHOST, tls::certificate),
    spec!("SSLCertificateChainFile", MAIN | VHOST, tls::certificate),
    spec!("SSLProtocol", MAIN | VHOST, tls::sslprotocol),
    spec!("SSLCipherSuite", MAIN | VHOST, tls::sslciphersuite),
    spec!("SSLHonorCipherOrder", MAIN | VHOST, tls::tls_flag),
    spec!("SSLSessionTickets", MAIN | VHOST, tls::tls_flag),
    spec!("SSLStrictSNIVHostCheck", MAIN | VHOST, tls::tls_flag),
    spec!("SSLSessionCache", MAIN, tls::sslsessioncache),
    spec!("SSLSessionCacheTimeout", MAIN | VHOST, tls::noted),
    spec!("SSLOpenSSLConfCmd", MAIN | VHOST, tls::noted),
    spec!("SSLUseStapling", MAIN | VHOST, tls::noted),
    spec!("SSLStaplingCache", MAIN, tls::noted),
    spec!("SSLStaplingResponderTimeout", MAIN | VHOST, tls::noted),
    spec!("SSLRandomSeed", MAIN, tls::noted),
    spec!("SSLPassPhraseDialog", MAIN, tls::noted),
    spec!("SSLCompression", MAIN | VHOST, tls::noted),
    spec!("SSLInsecureRenegotiation", MAIN | VHOST, tls::noted),
    spec!("SSLOptions", MAIN | VHOST, tls::noted),
    spec!("SSLCryptoDevice", MAIN, tls::noted),
    spec!("SSLVerifyClient", MAIN | VHOST, tls::sslverifyclient),
    spec!("SSLVerifyDepth", MAIN | VHOST, tls::sslverifydepth),
    spec!("SSLCACertificateFile", MAIN | VHOST, tls::ca_certificates),
    spec!("SSLCACertificatePath", MAIN | VHOST, tls::ca_certificates),
    spec!("Protocols", MAIN | VHOST, tls::protocols),
    spec!("Redirect", MAIN | VHOST, paths::redirect),
    spec!("RedirectMatch", MAIN | VHOST, paths::redirect),
    spec!("RedirectPermanent", MAIN | VHOST, paths::redirect),
    spec!("RedirectTemp", MAIN | VHOST, paths::redirect),
    spec!("Header", MAIN | VHOST | BALANCER, observe::header),
    spec!("RequestHeader", MAIN | VHOST | BALANCER, observe::header),
    spec!("ProxyPassInherit", MAIN | VHOST, proxy::proxypassinherit),
    spec!("BalancerInherit", MAIN | VHOST, proxy::balancerinherit),
    spec!("BalancerGrowth", MAIN | VHOST, proxy::balancergrowth),
    spec!("BalancerPersist", MAIN | VHOST, proxy::balancerpersist),
    spec!("PidFile", MAIN | VHOST, server::pidfile),
    spec!("RemoteIPHeader", MAIN | VHOST, server::remoteip_header),
    spec!(
        "RemoteIPProxiesHeader",
        MAIN | VHOST,
        server::remoteip_header
    ),
    spec!(
        "RemoteIPInternalProxy",
        MAIN | VHOST,
        server::remoteip_proxy
    ),
    spec!("RemoteIPTrustedProxy", MAIN | VHOST, server::remoteip_proxy),
    spec!(
        "RemoteIPInternalProxyList",
        MAIN | VHOST,
        server::remoteip_proxy
    ),
    spec!(
        "RemoteIPTrustedProxyList",
        MAIN | VHOST,
        server::remoteip_proxy
    ),
    spec!(
        "RemoteIPProxyProtocol",
        MAIN | VHOST,
        server::remoteip_proxy_protocol
    ),
    spec!(
        "RemoteIPProxyProtocolExceptions",
        MAIN | VHOST,
        server::remoteip_proxy_protocol
    ),
    spec!("DocumentRoot", MAIN | VHOST, files::documentroot),
    spec!("Alias", MAIN | VHOST, files::alias),
    spec!("AliasMatch", MAIN | VHOST, files::alias),
    spec!("ScriptAlias", MAIN | VHOST, files::alias),
    spec!("ScriptAliasMatch", MAIN | VHOST, files::alias),
    spec!("DirectoryIndex", MAIN | VHOST, files::directory_index),
    spec!("DirectorySlash", MAIN | VHOST, files::directory_slash),
    spec!("Options", MAIN | VHOST, files::options),
    spec!("TypesConfig", MAIN, files::typesconfig),
    spec!("AddType", MAIN | VHOST, files::addtype),
    spec!("RemoveType", MAIN | VHOST, files::addtype),
    spec!("AddHandler", MAIN | VHOST, files::addhandler),
    spec!("LoadModule", MAIN | VHOST, server::loadmodule),
];
