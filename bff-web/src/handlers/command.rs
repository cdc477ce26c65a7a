//! Sending one command and reading its answer, the same way for every write of the web gateway.

use axum::http::Method;
use bff_core::downstream::command::command_error;
use bff_core::downstream::{Downstream, encode_segment};
use bff_core::idempotency::ForwardedKey;
use bff_core::{BffError, RequestContext};
use serde::Serialize;
use serde::de::DeserializeOwned;
use shared_schemas::downstream::ServiceError;

use crate::commands::REFUSALS;

/// Sends the command of `part` (one attempt; see `bff_core::downstream::command`): a 2xx answer decoded as
/// `T`, a refusal named by [`REFUSALS`], a failure as a problem (504 `outcome_unknown` when it may have
/// taken effect).
pub(crate) async fn send<B: Serialize + ?Sized, T: DeserializeOwned>(
    ctx: &RequestContext,
    downstream: &Downstream,
    part: &'static str,
    method: Method,
    path: &str,
    body: Option<&B>,
    key: ForwardedKey,
) -> Result<T, BffError> {
    let extra: Vec<_> = key.into_iter().collect();
    let reply = downstream
        .command(ctx, method, path, body, &extra)
        .await
        .map_err(|e| command_error(part, &e))?;
    if reply.is_success() {
        return reply
            .json(downstream)
            .map_err(|e| BffError::from_part(part, &e));
    }
    let code = reply.json::<ServiceError>(downstream).ok().map(|e| e.error);
    Err(reply.refusal(part, code.as_deref(), REFUSALS))
}

/// The caller's user id, encoded as a path segment.
pub(crate) fn caller(ctx: &RequestContext) -> Result<String, BffError> {
    Ok(encode_segment(&ctx.require_scopes(&[])?.subject))
}
