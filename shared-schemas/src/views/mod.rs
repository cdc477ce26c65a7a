//! Client views: what each gateway returns, one module per client. Each is built from downstream DTOs by a
//! `From`/constructor here, so shaping is plain, compiler-checked Rust.

pub mod mobile;
pub mod partner;
pub mod web;
