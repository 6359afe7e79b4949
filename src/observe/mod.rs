//! What ringproxy tells the operator: access logs (Apache's LogFormat, buffered per core,
//! never a lock on a worker) and the error log.

pub mod accesslog;
pub mod logging;
