//! ringproxy: a thread-per-core io_uring HTTP/1.1 reverse proxy and load balancer that reads
//! Apache mod_proxy_balancer configuration.
//!
//! A request flows one way through the modules:
//! [`runtime`] (a pinned thread per core) accepts ->
//! [`transport`] carries the bytes (plain TCP or TLS) ->
//! [`http::server`] reads the head on the client connection (HTTP/1.1; HTTP/2 will sit
//! beside it) into a per-request context ->
//! [`proxy`] routes it with [`routing`] (virtual host, normalized path, access,
//! RewriteRule, ProxyPass), has [`balancer`] choose a member and runs the attempt loop
//! (or [`files`] answers it from disk) ->
//! [`upstream`] speaks the member's protocol on a session from its pool (HTTP/1.1 over
//! plain TCP or TLS, or AJP) -> the response goes back through [`http::write`] and
//! [`http::relay`] -> [`http::server`] waits for the next request, or
//! [`transport::park`] holds the idle connection. [`admin`] answers the pages ringproxy
//! serves itself; [`observe`] logs; [`health`] checks members; [`config`] reads Apache's
//! configuration.

pub mod admin;
pub mod balancer;
pub mod cli;
pub mod config;
pub mod demo;
pub mod error;
pub mod files;
pub mod health;
pub mod http;
pub mod observe;
pub mod proxy;
pub mod routing;
pub mod runtime;
pub mod transport;
pub mod upstream;

#[cfg(test)]
mod testutil;
