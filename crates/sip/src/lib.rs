//! SIP for huddle: message codec, stream framing, sans-IO transactions and dialogs, digest
//! authentication, flood limits, and the UDP/TCP/TLS transport shell.

pub mod access;
pub mod address;
pub mod auth;
pub mod dialog;
pub mod digest;
pub mod endpoint;
pub mod error;
pub mod framing;
pub mod headers;
pub mod ids;
pub mod limits;
pub mod message;
pub mod service;
pub mod tls;
pub mod transaction;
