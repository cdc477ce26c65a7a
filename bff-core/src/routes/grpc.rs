//! Declarative REST→gRPC routes: a `[[routes]]` entry with a `grpc_method` builds the method's request message
//! from a descriptor set at run time (path parameters and allow-listed query parameters fill the fields of
//! their name), sends it down the call stack as one unary call, and renders the answer in the proto3 JSON
//! mapping. Everything that can be judged from the config is checked at load, naming the key.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use bytes::Bytes;
use prost_reflect::{
    DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MethodDescriptor, SerializeOptions,
    Value,
};

use super::config::{RouteConfig, path_params};
use crate::config::error::ConfigError;
use crate::downstream::config::{DownstreamConfig, Protocol};
use crate::error::BffError;

/// Reads and decodes the descriptor set at `path`; the error is the reason, for the config key.
pub(crate) fn load_pool(path: &Path) -> Result<DescriptorPool, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot be read: {e}"))?;
    DescriptorPool::decode(bytes.as_slice())
        .map_err(|e| format!("is not a protobuf descriptor set: {e}"))
}

/// The descriptor sets of the downstreams naming one, by downstream (each readable, on a gRPC downstream).
pub(crate) fn descriptor_sets(
    downstreams: &BTreeMap<String, DownstreamConfig>,
) -> Result<BTreeMap<String, DescriptorPool>, ConfigError> {
    let mut pools = BTreeMap::new();
    for (name, d) in downstreams {
        let Some(path) = &d.descriptor_set else {
            continue;
        };
        let key = format!("downstreams.{name}.descriptor_set");
        if d.protocol != Protocol::Grpc {
            return Err(ConfigError::invalid(
                key,
                "only a `protocol = \"grpc\"` downstream has a descriptor set",
            ));
        }
        pools.insert(
            name.clone(),
            load_pool(path).map_err(|r| ConfigError::invalid(key, r))?,
        );
    }
    Ok(pools)
}

/// Checks route `index` with its `grpc_method` `method`: no `downstream_path` nor `header_allow`, a gRPC
/// downstream with a descriptor set holding the unary method, and every path parameter and allowed query
/// parameter a request field fillable from text.
pub(crate) fn validate(
    index: usize,
    route: &RouteConfig,
    method: &str,
    downstreams: &BTreeMap<String, DownstreamConfig>,
    pools: &BTreeMap<String, DescriptorPool>,
) -> Result<(), ConfigError> {
    let key = |k: &str| format!("routes[{index}].{k}");
    if !route.downstream_path.is_empty() {
        return Err(ConfigError::invalid(
            key("downstream_path"),
            "a route has either a `downstream_path` or a `grpc_method`",
        ));
    }
    if !route.header_allow.is_empty() {
        return Err(ConfigError::invalid(
            key("header_allow"),
            "headers are not forwarded to a `grpc_method`",
        ));
    }
    let Some(downstream) = downstreams.get(&route.downstream) else {
        return Err(ConfigError::invalid(
            key("downstream"),
            "names no configured downstream",
        ));
    };
    if downstream.protocol != Protocol::Grpc {
        return Err(ConfigError::invalid(
            key("grpc_method"),
            format!(
                "the downstream `{}` is not `protocol = \"grpc\"`",
                route.downstream
            ),
        ));
    }
    let Some(pool) = pools.get(&route.downstream) else {
        return Err(ConfigError::invalid(
            key("grpc_method"),
            format!(
                "needs `downstreams.{}.descriptor_set` to describe the method",
                route.downstream
            ),
        ));
    };
    GrpcTarget::new(pool, method, &route.path, &route.query_allow)
        .map(|_| ())
        .map_err(|(k, reason)| ConfigError::invalid(key(&k), reason))
}

/// A resolved `grpc_method`: the method, and which request field each parameter fills.
#[derive(Debug)]
pub(crate) struct GrpcTarget {
    /// The unary method.
    method: MethodDescriptor,
    /// `/package.Service/Method`.
    path: String,
    /// Path parameter → request field.
    path_fields: Vec<(String, FieldDescriptor)>,
    /// Allowed query parameter → request field (a repeated field takes every occurrence).
    query_fields: Vec<(String, FieldDescriptor)>,
}

/// Whether a field can be filled from the text of a parameter: a scalar (not bytes) or an enum, singular —
/// or repeated when `repeated_ok` (query parameters) — never a map or message.
fn fillable(field: &FieldDescriptor, repeated_ok: bool) -> Result<(), String> {
    if field.is_map() || matches!(field.kind(), Kind::Message(_) | Kind::Bytes) {
        return Err(format!(
            "fills the field `{}`, whose type cannot be given as text (a message, map or bytes)",
            field.name()
        ));
    }
    if field.is_list() && !repeated_ok {
        return Err(format!(
            "fills the repeated field `{}` (only a query parameter can)",
            field.name()
        ));
    }
    Ok(())
}

/// The value of `field` written as `text`, or `None` when it is not one.
fn parse(field: &FieldDescriptor, text: &str) -> Option<Value> {
    Some(match field.kind() {
        Kind::String => Value::String(text.to_owned()),
        Kind::Bool => Value::Bool(text.parse().ok()?),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Value::I32(text.parse().ok()?),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Value::I64(text.parse().ok()?),
        Kind::Uint32 | Kind::Fixed32 => Value::U32(text.parse().ok()?),
        Kind::Uint64 | Kind::Fixed64 => Value::U64(text.parse().ok()?),
        Kind::Float => Value::F32(text.parse().ok().filter(|f: &f32| f.is_finite())?),
        Kind::Double => Value::F64(text.parse().ok().filter(|f: &f64| f.is_finite())?),
        Kind::Enum(e) => {
            let value = e
                .get_value_by_name(text)
                .or_else(|| text.parse().ok().and_then(|n: i32| e.get_value(n)))?;
            Value::EnumNumber(value.number())
        }
        Kind::Bytes | Kind::Message(_) => return None,
    })
}

impl GrpcTarget {
    /// Resolves `method` (`package.Service/Method`) in `pool` for a route at `template` allowing `query`; the
    /// error is the route key (`grpc_method`, `path`, `query_allow[j]`) and the reason.
    pub(crate) fn new(
        pool: &DescriptorPool,
        method: &str,
        template: &str,
        query: &[String],
    ) -> Result<Self, (String, String)> {
        let bad = |k: &str, r: String| (k.to_owned(), r);
        let (service, name) = method.split_once('/').ok_or_else(|| {
            bad(
                "grpc_method",
                "must be `package.Service/Method`, e.g. `shop.inventory.Inventory/GetStock`".into(),
            )
        })?;
        let service = pool.get_service_by_name(service).ok_or_else(|| {
            bad(
                "grpc_method",
                format!("the descriptor set has no service `{service}`"),
            )
        })?;
        let method = service
            .methods()
            .find(|m| m.name() == name)
            .ok_or_else(|| {
                bad(
                    "grpc_method",
                    format!(
                        "the service `{}` has no method `{name}`",
                        service.full_name()
                    ),
                )
            })?;
        if method.is_client_streaming() || method.is_server_streaming() {
            return Err(bad(
                "grpc_method",
                "is a streaming method (only unary methods can be routed)".into(),
            ));
        }
        let input = method.input();
        let field = |param: &str| {
            input.get_field_by_name(param).ok_or_else(|| {
                format!(
                    "parameter `{param}` is not a field of the request `{}`",
                    input.full_name()
                )
            })
        };
        let mut path_fields = Vec::new();
        for param in path_params(template) {
            let f = field(param).map_err(|r| bad("path", r))?;
            fillable(&f, false).map_err(|r| bad("path", format!("parameter `{param}` {r}")))?;
            path_fields.push((param.to_owned(), f));
        }
        let mut query_fields = Vec::new();
        for (j, param) in query.iter().enumerate() {
            let k = format!("query_allow[{j}]");
            let f = field(param).map_err(|r| bad(&k, r))?;
            fillable(&f, true).map_err(|r| bad(&k, format!("parameter `{param}` {r}")))?;
            query_fields.push((param.clone(), f));
        }
        Ok(Self {
            path: format!("/{}/{}", service.full_name(), method.name()),
            method,
            path_fields,
            query_fields,
        })
    }

    /// `/package.Service/Method`.
    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    /// The request message of a call with these path `params` and raw `query` (other query parameters are
    /// dropped); a value that is not of its field's type is a 400 naming the parameter.
    pub(crate) fn request(
        &self,
        params: &HashMap<String, String>,
        query: Option<&str>,
    ) -> Result<DynamicMessage, BffError> {
        let invalid = |param: &str, field: &FieldDescriptor| BffError::BadRequest {
            detail: format!(
                "parameter `{param}` is not a valid {}",
                type_name(&field.kind())
            ),
        };
        let mut message = DynamicMessage::new(self.method.input());
        for (param, field) in &self.path_fields {
            let text = params.get(param).ok_or(BffError::NotFound)?;
            let value = parse(field, text).ok_or_else(|| invalid(param, field))?;
            message.set_field(field, value);
        }
        for (k, v) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            let Some((param, field)) = self.query_fields.iter().find(|(p, _)| *p == k) else {
                continue;
            };
            let value = parse(field, &v).ok_or_else(|| invalid(param, field))?;
            if field.is_list() {
                if let Value::List(list) = message.get_field_mut(field) {
                    list.push(value);
                }
            } else {
                message.set_field(field, value);
            }
        }
        Ok(message)
    }

    /// The answer `body` in the proto3 JSON mapping (proto field names, fields at their default value
    /// included, 64-bit integers as strings); `None` when it is not a message of the method's output type.
    pub(crate) fn render(&self, body: Bytes) -> Option<serde_json::Value> {
        let message = DynamicMessage::decode(self.method.output(), body).ok()?;
        let options = SerializeOptions::new()
            .use_proto_field_name(true)
            .skip_default_fields(false);
        message
            .serialize_with_options(serde_json::value::Serializer, &options)
            .ok()
    }
}

/// A client-facing name of a field type (for a 400's detail).
fn type_name(kind: &Kind) -> &'static str {
    match kind {
        Kind::Bool => "boolean (`true` or `false`)",
        Kind::Int32
        | Kind::Sint32
        | Kind::Sfixed32
        | Kind::Int64
        | Kind::Sint64
        | Kind::Sfixed64 => "integer",
        Kind::Uint32 | Kind::Fixed32 | Kind::Uint64 | Kind::Fixed64 => "non-negative integer",
        Kind::Float | Kind::Double => "number",
        Kind::Enum(_) => "value of its enumeration",
        _ => "value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The descriptor set of the domain's protos (generated beside the Rust, see shared-schemas/codegen).
    fn pool() -> DescriptorPool {
        load_pool(
            &Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../shared-schemas/src/grpc/gen/descriptor.bin"),
        )
        .expect("descriptor set")
    }

    /// Methods and fields are resolved, and each wrong one is named by its key.
    #[test]
    fn methods_and_fields_are_resolved_or_refused() {
        let pool = pool();
        let ok = GrpcTarget::new(
            &pool,
            "shop.recommendations.Recommendations/ListRecommendations",
            "/r/{user_id}",
            &["limit".into()],
        )
        .expect("resolves");
        assert_eq!(
            ok.path(),
            "/shop.recommendations.Recommendations/ListRecommendations"
        );
        let key = |m: &str, t: &str, q: &[&str]| {
            let q: Vec<String> = q.iter().map(|s| s.to_string()).collect();
            GrpcTarget::new(&pool, m, t, &q).expect_err("refused").0
        };
        let stock = "shop.inventory.Inventory/GetStock";
        assert_eq!(key("shop.inventory.Inventory", "/a", &[]), "grpc_method");
        assert_eq!(
            key("shop.inventory.Nope/GetStock", "/a", &[]),
            "grpc_method"
        );
        assert_eq!(
            key("shop.inventory.Inventory/Nope", "/a", &[]),
            "grpc_method"
        );
        assert_eq!(
            key("shop.orders.Orders/WatchOrder", "/a", &[]),
            "grpc_method"
        );
        assert_eq!(key(stock, "/a/{id}", &[]), "path");
        assert_eq!(key(stock, "/a/{product_id}", &["x"]), "query_allow[0]");
        assert_eq!(
            key(
                "shop.inventory.Inventory/BatchGetStock",
                "/a/{product_ids}",
                &[]
            ),
            "path",
            "a repeated field from a path parameter"
        );
    }

    /// Parameters fill their fields by type; a value not of the type is a 400; repeated query fields collect.
    #[test]
    fn parameters_fill_fields() {
        let pool = pool();
        let t = GrpcTarget::new(
            &pool,
            "shop.recommendations.Recommendations/ListRecommendations",
            "/r/{user_id}",
            &["limit".into()],
        )
        .expect("resolves");
        let params = HashMap::from([("user_id".to_owned(), "7".to_owned())]);
        let m = t.request(&params, Some("limit=3&other=1")).expect("valid");
        assert_eq!(m.get_field_by_name("limit").unwrap().as_u32(), Some(3));
        assert_eq!(m.get_field_by_name("user_id").unwrap().as_str(), Some("7"));
        assert!(matches!(
            t.request(&params, Some("limit=-1")),
            Err(BffError::BadRequest { .. })
        ));
        let batch = GrpcTarget::new(
            &pool,
            "shop.inventory.Inventory/BatchGetStock",
            "/b",
            &["product_ids".into()],
        )
        .expect("resolves");
        let m = batch
            .request(&HashMap::new(), Some("product_ids=1&product_ids=2"))
            .expect("valid");
        assert_eq!(
            m.get_field_by_name("product_ids")
                .unwrap()
                .as_list()
                .map(<[_]>::len),
            Some(2)
        );
    }
}
