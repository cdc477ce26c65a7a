//! The composed endpoints of the mobile gateway, one module per screen; each takes a sparse fieldset of its
//! view (`Fields<View>`) and answers with a strong ETag (core).

pub(crate) mod checkout;
pub(crate) mod home;
pub(crate) mod live;
pub(crate) mod order;
pub(crate) mod product;
