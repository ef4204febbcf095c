//! Requests huddle makes to its customers' URLs: the documents that drive calls and rooms
//! (answer_url, Redirect, onExitActionUrl, music and sounds, with Plivo's call parameters:
//! [`fetch`]) and the status and recording callbacks. Every one is signed like Plivo's (V3
//! and V2 headers), honours the URL's fragment options (timeouts, retries) and never sends the
//! fragment; callbacks are delivered in order per MPC through a bounded queue, and those that
//! fail while their receiver is down are tried again with backoff ([`retry`]).

pub mod clock;
pub mod fetch;
pub mod request;
pub mod retry;
pub mod signature;
pub mod url_options;
pub mod webhooks;

pub use fetch::{fetch_xml, CallParams};
pub use request::{HttpClient, RequestError, ATTEMPT_HEADER};
pub use retry::RetrySchedule;
pub use signature::Signer;
pub use webhooks::{DeliveryOptions, Journal, Webhook, Webhooks};
