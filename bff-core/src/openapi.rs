//! Completes a gateway's OpenAPI document with what core owns: the security scheme of `auth.mode`, the error
//! responses every operation can get from the edge, and the config's declarative routes and aggregations.
//!
//! A gateway's handlers describe their own success and domain errors; what the edge can answer on any route
//! (401/403 for a bad credential or missing scope, 429 rate limit, 502/503/504 downstream trouble, load
//! shedding or a spent deadline) is added here once, so no handler restates it and no document drifts from
//! the configured authentication. The result is checked with a real OpenAPI 3.1 validator in
//! `tests/tests/openapi.rs`.

use serde_json::{Map, Value, json};

use crate::api::Operation;
use crate::config::{AuthMode, BffConfig};

/// The name of the problem+json schema in `components.schemas`.
const PROBLEM: &str = "Problem";

/// The responses core adds to an operation that does not describe them itself: (status, description,
/// only on operations that need a credential).
const EDGE_RESPONSES: &[(&str, &str, bool)] = &[
    (
        "400",
        "Malformed request: a path not in canonical form, bad percent-encoding, an invalid parameter (`bad_request`)",
        false,
    ),
    (
        "401",
        "Missing, invalid or expired credential (`unauthorized`)",
        true,
    ),
    (
        "403",
        "The credential lacks a scope this operation requires (`forbidden`)",
        true,
    ),
    (
        "429",
        "Rate limit reached (`rate_limited`); `Retry-After` says when to retry",
        false,
    ),
    (
        "502",
        "A downstream service answered with an error (`bad_gateway`)",
        false,
    ),
    (
        "503",
        "A downstream service is unavailable or the gateway sheds load (`service_unavailable`)",
        false,
    ),
    (
        "504",
        "The request's deadline was spent (`deadline_exceeded`)",
        false,
    ),
];

/// The responses of [`crate::idempotency`], added to operations that take an `Idempotency-Key` header.
const IDEMPOTENCY_RESPONSES: &[(&str, &str)] = &[
    (
        "409",
        "A request with this `Idempotency-Key` is still in flight (`idempotency_key_in_flight`)",
    ),
    (
        "422",
        "This `Idempotency-Key` was used for a different request (`idempotency_key_reused`)",
    ),
];

/// The responses of [`crate::body::JsonBody`], added to operations that take a request body.
const BODY_RESPONSES: &[(&str, &str)] = &[
    (
        "413",
        "The body is larger than allowed, after decompression (`payload_too_large`)",
    ),
    (
        "415",
        "The body is not `application/json` (`unsupported_media_type`)",
    ),
    (
        "422",
        "The body is well-formed JSON but invalid (`invalid_body`, fields by JSON Pointer in `errors`)",
    ),
];

/// The security schemes `auth.mode` accepts: (name in `components.securitySchemes`, scheme).
fn security_schemes(config: &BffConfig) -> Vec<(&'static str, Value)> {
    let mtls = (
        "mutual_tls",
        json!({"type": "mutualTLS", "description": "A client certificate listed in `[[auth.client_certs]]`"}),
    );
    match config.auth.mode {
        AuthMode::None => Vec::new(),
        AuthMode::Jwt if config.auth.session.enabled => {
            let session = (
                "session",
                json!({"type": "apiKey", "in": "cookie", "name": config.auth.session.cookie_name,
                       "description": "The session cookie set by `/bff/callback` (`__Host-` prefixed over TLS); every request also sends `X-CSRF: 1`, unsafe ones an allowed `Origin`"}),
            );
            let bearer = (
                "bearer",
                json!({"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}),
            );
            if config.auth.session.bearer {
                vec![bearer, session]
            } else {
                vec![session]
            }
        }
        AuthMode::Jwt => vec![(
            "bearer",
            json!({"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}),
        )],
        AuthMode::ApiKey => {
            let key = (
                "api_key",
                json!({"type": "apiKey", "in": "header", "name": crate::auth::API_KEY_HEADER}),
            );
            if config.auth.client_certs.is_empty() {
                vec![key]
            } else {
                vec![key, mtls]
            }
        }
        AuthMode::ClientCert => vec![mtls],
    }
}

/// `doc` completed for `config` (see the module documentation), as the JSON served at `/openapi.json`.
pub(crate) fn complete(
    doc: utoipa::openapi::OpenApi,
    config: &BffConfig,
    operations: &[Operation],
    ticket_paths: &[String],
) -> Value {
    let mut doc = serde_json::to_value(doc).unwrap_or_else(|_| json!({}));
    let Some(root) = doc.as_object_mut() else {
        return doc;
    };
    let schemes = security_schemes(config);
    add_route_security(root, operations);
    add_config_operations(root, config);
    add_screen_streams(root, operations, config);
    if config.auth.session.enabled {
        add_session_operations(root);
    }
    let components = object(root, "components");
    add_problem_schemas(object(components, "schemas"));
    components.remove("securitySchemes");
    if !schemes.is_empty() {
        let declared = object(components, "securitySchemes");
        for (name, scheme) in &schemes {
            declared.insert((*name).to_owned(), scheme.clone());
        }
    }
    if !ticket_paths.is_empty() && !schemes.is_empty() {
        object(components, "securitySchemes").insert("ticket".into(), json!({
            "type": "apiKey", "in": "query", "name": "ticket",
            "description": "A single-use ticket from the gateway's ticket endpoint (WebSocket routes; see docs/websocket.md)"}));
    }
    for (path, item) in object(root, "paths").iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        let ticket_path = ticket_paths.contains(path);
        for (method, operation) in item.iter_mut() {
            if let (true, Some(operation)) = (is_method(method), operation.as_object_mut()) {
                add_path_parameters(operation, path);
                if ticket_path && method == "get" {
                    // A WebSocket route: its ticket instead of the gateway's credential, same scopes.
                    complete_operation(operation, &[("ticket", Value::Null)]);
                    if schemes.is_empty() {
                        operation.remove("security");
                    }
                    continue;
                }
                complete_operation(operation, &schemes);
                if path_parameters(path).next().is_some() {
                    object(operation, "responses")
                        .entry("404")
                        .or_insert_with(|| {
                            problem_response(
                                "No resource has this id, or the id is malformed (`not_found`)",
                            )
                        });
                }
                if method == "get" {
                    object(operation, "responses")
                        .entry("304")
                        .or_insert_with(|| json!({"description": "Not modified: the `If-None-Match` tag names the current answer (empty body)"}));
                }
            }
        }
    }
    doc
}

/// The access rules of the gateway's routes ([`crate::api::Api`]) are the only source of its operations'
/// security requirements: whatever a handler's annotation says is replaced, and a route the document does
/// not describe is added with its path parameters and a bare `200`.
fn add_route_security(root: &mut Map<String, Value>, operations: &[Operation]) {
    let paths = object(root, "paths");
    for item in paths.values_mut().filter_map(Value::as_object_mut) {
        for (method, operation) in item.iter_mut() {
            if let (true, Some(operation)) = (is_method(method), operation.as_object_mut()) {
                operation.remove("security");
            }
        }
    }
    for op in operations {
        let method = op.method.as_str().to_ascii_lowercase();
        let operation = object(object(paths, &op.path), &method);
        if operation.is_empty() {
            let id: String = format!("{method}{}", op.path)
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            operation.insert("operationId".into(), json!(id));
            operation.insert(
                "responses".into(),
                json!({"200": {"description": "Success"}}),
            );
        }
        operation.insert("security".into(), json!([{ "caller": op.scopes }]));
    }
}

/// Declares the path parameters of `template` the operation does not declare itself (as strings).
fn add_path_parameters(operation: &mut Map<String, Value>, template: &str) {
    let Some(parameters) = operation
        .entry("parameters")
        .or_insert_with(|| json!([]))
        .as_array_mut()
    else {
        return;
    };
    for name in path_parameters(template) {
        let declared = parameters
            .iter()
            .any(|p| p["in"] == "path" && p["name"] == name);
        if !declared {
            parameters.push(json!({"name": name, "in": "path", "required": true,
                                   "schema": {"type": "string"}}));
        }
    }
    if parameters.is_empty() {
        operation.remove("parameters");
    }
}

/// Whether a path item key names an operation (rather than `parameters`, `summary`, ...).
fn is_method(key: &str) -> bool {
    matches!(
        key,
        "get" | "put" | "post" | "delete" | "options" | "head" | "patch" | "trace"
    )
}

/// One operation: its security requirement rewritten to the configured schemes (keeping its scopes), and
/// the edge's responses added where the operation does not describe them.
fn complete_operation(operation: &mut Map<String, Value>, schemes: &[(&'static str, Value)]) {
    let scopes: Vec<Value> = operation
        .get("security")
        .and_then(Value::as_array)
        .map(|reqs| {
            let mut all: Vec<Value> = reqs
                .iter()
                .filter_map(Value::as_object)
                .flat_map(|req| req.values())
                .filter_map(Value::as_array)
                .flatten()
                .cloned()
                .collect();
            all.dedup();
            all
        })
        .unwrap_or_default();
    let secured = operation.contains_key("security") && !schemes.is_empty();
    if secured {
        let requirements = schemes
            .iter()
            .map(|(name, _)| json!({ *name: scopes }))
            .collect();
        operation.insert("security".into(), Value::Array(requirements));
    } else {
        operation.remove("security");
    }
    let idempotent = operation
        .get("parameters")
        .and_then(Value::as_array)
        .is_some_and(|params| {
            params.iter().any(|p| {
                p["in"] == "header"
                    && p["name"]
                        .as_str()
                        .is_some_and(|n| n.eq_ignore_ascii_case("idempotency-key"))
            })
        });
    let takes_body = operation.contains_key("requestBody");
    let responses = object(operation, "responses");
    for (status, response) in responses.iter_mut() {
        problem_media_type(response);
        // OpenAPI requires a description; an annotation without one gets the status' meaning.
        if let Some(response) = response.as_object_mut() {
            response.entry("description").or_insert_with(|| {
                let reason = status
                    .parse::<u16>()
                    .ok()
                    .and_then(|s| axum::http::StatusCode::from_u16(s).ok()?.canonical_reason());
                json!(reason.unwrap_or("Response"))
            });
        }
    }
    let edge = EDGE_RESPONSES
        .iter()
        .filter(|(_, _, needs_credential)| secured || !needs_credential)
        .map(|(status, description, _)| (status, description));
    let idempotency = IDEMPOTENCY_RESPONSES
        .iter()
        .filter(|_| idempotent)
        .map(|(status, description)| (status, description));
    let body = BODY_RESPONSES.iter().filter(|_| takes_body);
    for (status, description) in edge.chain(idempotency).chain(body.map(|(s, d)| (s, d))) {
        responses
            .entry((*status).to_owned())
            .or_insert_with(|| problem_response(description));
    }
}

/// A response with a problem+json body.
fn problem_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": format!("#/components/schemas/{PROBLEM}")}}},
    })
}

/// A response whose body is a `Problem` is sent as `application/problem+json` (utoipa writes
/// `application/json` for any `body =`).
fn problem_media_type(response: &mut Value) {
    let Some(content) = response.get_mut("content").and_then(Value::as_object_mut) else {
        return;
    };
    let problem_ref = format!("#/components/schemas/{PROBLEM}");
    let is_problem =
        |media: &Value| media.pointer("/schema/$ref").and_then(Value::as_str) == Some(&problem_ref);
    if content.get("application/json").is_some_and(is_problem)
        && let Some(media) = content.remove("application/json")
    {
        content.insert("application/problem+json".into(), media);
    }
}

/// The problem+json schemas (`Problem` and what it refers to), unless the gateway registered them already.
fn add_problem_schemas(schemas: &mut Map<String, Value>) {
    #[derive(utoipa::OpenApi)]
    #[openapi(components(schemas(crate::error::Problem, crate::error::FieldError)))]
    struct CoreSchemas;
    let core =
        serde_json::to_value(<CoreSchemas as utoipa::OpenApi>::openapi()).unwrap_or_default();
    if let Some(core) = core
        .pointer("/components/schemas")
        .and_then(Value::as_object)
    {
        for (name, schema) in core {
            schemas
                .entry(name.clone())
                .or_insert_with(|| schema.clone());
        }
    }
}

/// The `[[routes]]` and `[[aggregates]]` of the config as `GET` operations (a gateway's own description of
/// the same path wins).
fn add_config_operations(root: &mut Map<String, Value>, config: &BffConfig) {
    let routes = config.routes.iter().map(|r| {
        let query = r.query_allow.iter().map(|name| {
            json!({"name": name, "in": "query", "required": false, "schema": {"type": "string"},
                   "description": "Passed through to the downstream service"})
        });
        let summary = "Declarative route (`[[routes]]`)".to_owned();
        (&r.path, summary, query.collect::<Vec<_>>(), &r.scopes)
    });
    let aggregates = config.aggregates.iter().map(|a| {
        let summary = format!(
            "Declarative aggregation (`[[aggregates]]`) of {} parts",
            a.parts.len()
        );
        (&a.path, summary, Vec::new(), &a.scopes)
    });
    let paths = object(root, "paths");
    for (index, (path, summary, query, scopes)) in routes.chain(aggregates).enumerate() {
        let item = object(paths, path);
        if item.contains_key("get") {
            continue;
        }
        let mut parameters: Vec<Value> = path_parameters(path)
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        parameters.extend(query);
        item.insert(
            "get".into(),
            json!({
                "tags": ["config"],
                "summary": summary,
                "operationId": format!("config_{index}"),
                "parameters": parameters,
                "responses": {
                    "200": {"description": "The shaped JSON body",
                            "content": {"application/json": {"schema": {"type": "object"}}}},
                    "404": problem_response("Not found (`not_found`)"),
                },
                "security": [{"config": scopes}],
            }),
        );
    }
}

/// What a streamed screen sends, as the description of its `text/event-stream` alternative.
const SCREEN_STREAM: &str = "With `Accept: text/event-stream`, the same screen streamed: \
`required` (the view without its optional parts) as soon as the required parts have answered, then per \
optional part an event named after it (a JSON Merge Patch of the view) or `partial` (`{\"part\": name}`) \
when it failed, then `end` (`{\"partial\": [...]}`); see docs/streams.md";

/// The screens (the `GET` routes of [`crate::api::Api`] that do not stream themselves, and `[[aggregates]]`)
/// get `text/event-stream` as an alternative of their JSON `200` (see [`crate::streams::screen`]).
fn add_screen_streams(root: &mut Map<String, Value>, operations: &[Operation], config: &BffConfig) {
    let screens = operations
        .iter()
        .filter(|op| op.streamed && op.method == axum::http::Method::GET)
        .map(|op| op.path.as_str())
        .chain(config.aggregates.iter().map(|a| a.path.as_str()));
    let paths = object(root, "paths");
    for path in screens {
        let Some(ok) = paths
            .get_mut(path)
            .and_then(|item| item.pointer_mut("/get/responses/200"))
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        let Some(content) = ok.get_mut("content").and_then(Value::as_object_mut) else {
            continue;
        };
        if !content.contains_key("application/json") {
            continue;
        }
        content.insert(
            "text/event-stream".into(),
            json!({"schema": {"type": "string", "description": SCREEN_STREAM}}),
        );
    }
}

/// The session endpoints of [`crate::session`] (no security requirement: they authenticate themselves).
fn add_session_operations(root: &mut Map<String, Value>) {
    let query = |name: &str, description: &str| {
        json!({"name": name, "in": "query", "required": false, "schema": {"type": "string"},
               "description": description})
    };
    let redirect = |description: &str| {
        json!({"description": description,
               "headers": {"Location": {"schema": {"type": "string"}}}})
    };
    let csrf = json!({"name": "X-CSRF", "in": "header", "required": true,
                      "schema": {"type": "string", "enum": ["1"]},
                      "description": "Anti-forgery header: always `1`"});
    let paths = object(root, "paths");
    let operations = [
        (
            "/bff/login",
            "get",
            json!({
                "summary": "Starts a login (OpenID Connect code flow with PKCE) and redirects to the identity provider",
                "parameters": [query("returnUrl", "Local path to return to after login (default `/`)"),
                               query("login_hint", "Passed to the identity provider")],
                "responses": {"302": redirect("To the identity provider's authorization endpoint; sets the login cookie"),
                              "400": problem_response("`returnUrl` is not a local path (`invalid_return_url`)")},
            }),
        ),
        (
            "/bff/callback",
            "get",
            json!({
                "summary": "The identity provider's answer: completes the login, sets the session cookie",
                "parameters": [query("code", "Authorization code"), query("state", "The login's state"),
                               query("error", "The provider's refusal")],
                "responses": {"302": redirect("To the login's `returnUrl`; sets the session cookie"),
                              "400": problem_response("The login cannot be completed (`login_failed`)")},
            }),
        ),
        (
            "/bff/user",
            "get",
            json!({
                "summary": "The logged-in user's claims (never a token)",
                "parameters": [csrf],
                "responses": {"200": {"description": "The user's claims and the session's remaining lifetime",
                                      "content": {"application/json": {"schema": {"type": "object", "properties": {
                                          "claims": {"type": "object"},
                                          "session_expires_in": {"type": "integer", "minimum": 0}}}}}},
                              "401": problem_response("No live session (`session_expired`)"),
                              "403": problem_response("`X-CSRF: 1` missing (`csrf_header_required`)")},
            }),
        ),
        (
            "/bff/logout",
            "post",
            json!({
                "summary": "Ends the session, then the identity provider's session",
                "responses": {"303": redirect("To the identity provider's end-session endpoint; clears the cookie"),
                              "403": problem_response("`Origin` missing or not allowed (`origin_not_allowed`)")},
            }),
        ),
        (
            "/bff/backchannel-logout",
            "post",
            json!({
                "summary": "OpenID Connect Back-Channel Logout: ends the sessions a valid logout token names",
                "requestBody": {"required": true, "content": {"application/x-www-form-urlencoded": {"schema": {
                    "type": "object", "required": ["logout_token"],
                    "properties": {"logout_token": {"type": "string"}}}}}},
                "responses": {"200": {"description": "The sessions named by the token have ended"},
                              "400": problem_response("The logout token is missing or not valid (`invalid_logout_token`)")},
            }),
        ),
    ];
    for (path, method, mut operation) in operations {
        operation["tags"] = json!(["session"]);
        operation["operationId"] = json!(format!(
            "session_{}",
            path.trim_start_matches("/bff/").replace('-', "_")
        ));
        object(paths, path).insert(method.into(), operation);
    }
}

/// The `{name}` parameters of a path template, in order.
fn path_parameters(template: &str) -> impl Iterator<Item = &str> {
    template.split('/').filter_map(|segment| {
        segment
            .strip_prefix('{')
            .and_then(|s| s.strip_suffix('}'))
            .map(|s| s.trim_start_matches('*'))
    })
}

/// The object under `key` in `map`, created (or replacing a non-object) when missing.
fn object<'a>(map: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let slot = map
        .entry(key.to_owned())
        .or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    match slot {
        Value::Object(map) => map,
        _ => unreachable!("replaced by an object above"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_parameters_are_read_in_order() {
        let names: Vec<_> = path_parameters("/api/users/{id}/orders/{order}").collect();
        assert_eq!(names, ["id", "order"]);
        assert_eq!(path_parameters("/api/home").count(), 0);
    }

    #[test]
    fn secured_operations_get_the_configured_scheme_and_edge_responses() {
        let mut config = BffConfig::default();
        config.auth.mode = AuthMode::ApiKey;
        let mut doc = utoipa::openapi::OpenApi::default();
        doc.paths.paths.insert("/v1/x".into(), Default::default());
        let mut value = serde_json::to_value(&doc).unwrap();
        let problem =
            json!({"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}});
        value["paths"]["/v1/x"] = json!({"get": {"responses": {"200": {"description": "ok"},
                                                                 "404": {"description": "no", "content": problem}},
                                                   "security": [{"bearer": ["stale:scope"]}]}});
        let doc: utoipa::openapi::OpenApi = serde_json::from_value(value).unwrap();
        let routes = [
            Operation {
                method: axum::http::Method::GET,
                path: "/v1/x".into(),
                scopes: &["catalog:read"],
                streamed: true,
            },
            Operation {
                method: axum::http::Method::DELETE,
                path: "/v1/y/{id}".into(),
                scopes: &[],
                streamed: false,
            },
        ];
        let out = complete(doc, &config, &routes, &[]);
        // The route's declared scopes win over the annotation.
        let op = &out["paths"]["/v1/x"]["get"];
        assert_eq!(op["security"], json!([{"api_key": ["catalog:read"]}]));
        assert!(op["responses"]["304"].is_object());
        // A registered route the document does not describe is added, secured, with its path parameter.
        let added = &out["paths"]["/v1/y/{id}"]["delete"];
        assert_eq!(added["security"], json!([{"api_key": []}]));
        assert_eq!(added["parameters"][0]["name"], "id");
        assert_eq!(added["parameters"][0]["in"], "path");
        assert!(added["responses"]["404"].is_object());
        assert!(added["responses"]["403"].is_object());
        assert!(added["responses"].get("304").is_none());
        let not_found = op["responses"]["404"]["content"].as_object().unwrap();
        assert_eq!(
            not_found.keys().collect::<Vec<_>>(),
            ["application/problem+json"]
        );
        for status in ["200", "400", "401", "403", "429", "502", "503", "504"] {
            assert!(op["responses"].get(status).is_some(), "{status}");
        }
        assert_eq!(
            out["components"]["securitySchemes"],
            json!({"api_key": {"type": "apiKey", "in": "header", "name": "x-api-key"}})
        );
        assert!(out["components"]["schemas"].get(PROBLEM).is_some());

        config.auth.mode = AuthMode::None;
        let out = complete(serde_json::from_value(out).unwrap(), &config, &routes, &[]);
        let op = &out["paths"]["/v1/x"]["get"];
        assert!(op.get("security").is_none());
        assert!(op["responses"].get("429").is_some());
        assert!(out["components"].get("securitySchemes").is_none());
    }
}
