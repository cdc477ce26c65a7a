//! Route handlers: each composes downstream calls through the request context and shapes a web view.

pub(crate) mod cart;
pub(crate) mod catalog;
pub(crate) mod checkout;
pub(crate) mod command;
pub(crate) mod home;
pub(crate) mod orders;
pub(crate) mod products;
pub(crate) mod reviews;
