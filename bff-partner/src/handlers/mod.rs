//! The partner API's handlers, one module per resource; each takes a sparse fieldset of its view.

pub(crate) mod orders;
pub(crate) mod place_order;
pub(crate) mod products;
