//! ringproxy: a thread-per-core io_uring HTTP/1.1 reverse proxy and load balancer that reads
//! Apache mod_proxy_balancer configuration.
//!
//! A request flows one way through the modules: [`worker`] accepts ->
//! [`conn`] reads the head ([`http::head`]) -> [`route`] picks a rule ->
//! [`balancer`] picks a member -> [`pool`] lends a backend connection -> [`proxy`] forwards
//! (rewriting heads with [`http::write`], framing bodies with [`http::body`]) -> back to
//! [`conn`] for the next request on the connection, or to [`park`] while it idles.

pub mod admin;
pub mod balancer;
pub mod config;
pub mod conn;
pub mod demo;
pub mod dns;
pub mod error;
pub mod health;
pub mod http;
pub mod observe;
pub mod proxy;
pub mod reqtimeout;
pub mod routing;
pub mod runtime;
pub mod transport;
pub mod upstream;

#[cfg(test)]
mod testutil;
