//! One call leg's life: routing, answer_url, and what the leg runs (today: the echo test).

pub mod answer_url;
pub mod leg;
pub mod manager;
pub mod media_setup;
pub mod router;

pub use manager::{run, CallContext, MediaSettings};
pub use router::{RouteAction, RouteMatch, RouteRule, Router};
