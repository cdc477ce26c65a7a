//! Types shared by the mock services and the gateways: the downstream DTOs (what services send) and the
//! client views (what each gateway returns), with the conversions that shape one into the other.
//!
//! # Layout
//! - [`downstream`]: the rich JSON of the domain services.
//! - [`grpc`]: the gRPC messages of `proto/` (generated, checked in), their methods and DTO conversions.
//! - [`services`]: the names and default ports of the domain services.
//! - [`gateway`]: what every gateway of the domain starts from: default configuration (downstreams, cache
//!   policy, rate limits), the ids, the batch endpoints, sending a command.
//! - [`views`]: one module per client (`web`, `mobile`, `partner`), each type a `ToSchema` for OpenAPI.

pub mod downstream;
pub mod gateway;
pub mod grpc;
pub mod services;
pub mod views;
