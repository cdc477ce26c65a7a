//! What a gateway author writes handlers with: `use bff_core::prelude::*;`.
//!
//! The router with declared scopes ([`Api`], [`CALLER`]), the extractors ([`Caller`], [`Id`], [`Path`],
//! [`Query`], [`Fields`], [`RequestContext`], `State`, [`JsonBody`]), the error ([`BffError`]), composition
//! helpers ([`unique_ids`]) and the gateway itself ([`Gateway`], [`BffConfig`]).

pub use std::sync::Arc;

pub use axum::Json;
pub use axum::Router;
pub use axum::extract::State;
pub use axum::response::{IntoResponse, Response};

pub use crate::api::extract::{Caller, Digits, Id, IdFormat, Opaque, Path, Query};
pub use crate::api::fields::Fields;
pub use crate::api::write::{Command, Write};
pub use crate::api::{Api, CALLER, Scopes};
pub use crate::body::JsonBody;
pub use crate::cache::Batcher;
pub use crate::compose::unique_ids;
pub use crate::config::ConfigError;
pub use crate::downstream::Downstream;
pub use crate::downstream::command::created;
pub use crate::idempotency::KeyRule;
pub use crate::live::{Live, Outbox, Session, Ticket};
pub use crate::streams::{SseEvent, Streams, last_event_id};
pub use crate::{BffConfig, BffError, Gateway, RequestContext};
pub use axum::extract::ws::WebSocketUpgrade;

/// What a handler answers: `T` (by default any response), or a problem.
pub type Reply<T = Response> = Result<T, BffError>;
