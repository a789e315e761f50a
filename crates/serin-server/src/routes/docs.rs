//! The API reference, served by the binary with nothing from a CDN.
//!
//! - `/redoc`: a readable reference rendered here, once, from the same OpenAPI
//!   document as `/openapi.json`: operations by tag with their parameters,
//!   bodies and answers, then every schema with its fields. Plain HTML and CSS,
//!   no script, so it reads anywhere (and prints).
//! - `/docs`: an interactive explorer: a small script of Serin's own
//!   (`assets/explorer.js`) loads `/openapi.json`, lists the operations, and
//!   sends requests from a form with the caller's API key or session token.
//!
//! Both are public, like `/openapi.json`: the document describes the API, it
//! grants nothing.

use std::fmt::Write as _;
use std::sync::OnceLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde_json::Value;

use crate::state::AppState;

const EXPLORER_HTML: &str = include_str!("../../assets/docs.html");
const EXPLORER_JS: &str = include_str!("../../assets/explorer.js");
const STYLE_CSS: &str = include_str!("../../assets/docs.css");

/// The documentation routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/docs", get(explorer))
        .route("/docs/assets/{file}", get(asset))
        .route("/redoc", get(reference))
}

async fn explorer() -> Html<&'static str> {
    Html(EXPLORER_HTML)
}

async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "explorer.js" => (EXPLORER_JS, "text/javascript; charset=utf-8"),
        "docs.css" => (STYLE_CSS, "text/css; charset=utf-8"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

async fn reference() -> Html<&'static str> {
    static PAGE: OnceLock<String> = OnceLock::new();
    Html(PAGE.get_or_init(|| {
        let doc: Value =
            serde_json::from_str(&crate::openapi::document_json()).unwrap_or(Value::Null);
        render(&doc)
    }))
}

/// Escapes text for HTML.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Prose from doc comments: escaped, `code` spans kept, blank lines as paragraphs.
fn prose(s: &str) -> String {
    s.split("\n\n")
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let mut html = String::new();
            for (i, part) in esc(p.trim()).split('`').enumerate() {
                if i % 2 == 1 {
                    let _ = write!(html, "<code>{part}</code>");
                } else {
                    html.push_str(part);
                }
            }
            format!("<p>{html}</p>")
        })
        .collect()
}

/// The schema's name from a `$ref`.
fn ref_name(r: &str) -> &str {
    r.rsplit('/').next().unwrap_or(r)
}

/// A schema's type, in a few words, with links to named schemas.
fn ty(s: &Value) -> String {
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        let n = esc(ref_name(r));
        return format!("<a href=\"#schema-{n}\">{n}</a>");
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(alts) = s.get(key).and_then(Value::as_array) {
            let sep = if key == "allOf" { " and " } else { " or " };
            return alts.iter().map(ty).collect::<Vec<_>>().join(sep);
        }
    }
    if let Some(values) = s.get("enum").and_then(Value::as_array) {
        let vs: Vec<String> = values
            .iter()
            .map(|v| format!("<code>{}</code>", esc(v.as_str().unwrap_or(&v.to_string()))))
            .collect();
        return format!("one of {}", vs.join(", "));
    }
    let one = |t: &str| -> String {
        match t {
            "array" => format!(
                "array of {}",
                s.get("items").map(ty).unwrap_or_else(|| "anything".into())
            ),
            "object" if s.get("additionalProperties").is_some_and(Value::is_object) => {
                format!("map of {}", ty(&s["additionalProperties"]))
            }
            other => match s.get("format").and_then(Value::as_str) {
                Some(f) => format!("{other} ({})", esc(f)),
                None => esc(other),
            },
        }
    };
    match s.get("type") {
        Some(Value::String(t)) => one(t),
        Some(Value::Array(ts)) => {
            let names: Vec<String> = ts
                .iter()
                .filter_map(Value::as_str)
                .filter(|t| *t != "null")
                .map(one)
                .collect();
            let nullable = ts.iter().any(|t| t == "null");
            format!(
                "{}{}",
                names.join(" or "),
                if nullable { " or null" } else { "" }
            )
        }
        _ => "any".into(),
    }
}

/// A table of an object schema's fields.
fn fields(s: &Value) -> String {
    let Some(props) = s.get("properties").and_then(Value::as_object) else {
        return String::new();
    };
    let required: Vec<&str> = s
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut out = String::from(
        "<table><thead><tr><th>Field</th><th>Type</th><th>Description</th></tr></thead><tbody>",
    );
    for (name, p) in props {
        let _ = write!(
            out,
            "<tr><td><code>{}</code>{}</td><td>{}</td><td>{}</td></tr>",
            esc(name),
            if required.contains(&name.as_str()) {
                " <span class=\"req\">required</span>"
            } else {
                ""
            },
            ty(p),
            prose(p.get("description").and_then(Value::as_str).unwrap_or(""))
        );
    }
    out.push_str("</tbody></table>");
    out
}

fn operation(path: &str, method: &str, op: &Value) -> String {
    let id = op["operationId"].as_str().unwrap_or("");
    let mut out = format!(
        "<section class=\"op\" id=\"op-{id}\"><h3><span class=\"method {m}\">{M}</span> <code>{p}</code></h3>",
        id = esc(id),
        m = esc(method),
        M = esc(&method.to_uppercase()),
        p = esc(path)
    );
    out.push_str(&prose(op["summary"].as_str().unwrap_or("")));
    out.push_str(&prose(op["description"].as_str().unwrap_or("")));
    if op
        .get("security")
        .and_then(Value::as_array)
        .is_some_and(|s| {
            s.iter()
                .all(|r| r.as_object().is_some_and(|o| o.is_empty()))
        })
    {
        out.push_str("<p class=\"note\">No credentials needed.</p>");
    }
    if let Some(params) = op["parameters"].as_array().filter(|p| !p.is_empty()) {
        out.push_str("<h4>Parameters</h4><table><thead><tr><th>Name</th><th>In</th><th>Type</th><th>Description</th></tr></thead><tbody>");
        for p in params {
            let _ = write!(
                out,
                "<tr><td><code>{}</code>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(p["name"].as_str().unwrap_or("")),
                if p["required"] == true {
                    " <span class=\"req\">required</span>"
                } else {
                    ""
                },
                esc(p["in"].as_str().unwrap_or("")),
                ty(&p["schema"]),
                prose(p["description"].as_str().unwrap_or(""))
            );
        }
        out.push_str("</tbody></table>");
    }
    if let Some(schema) = op.pointer("/requestBody/content/application~1json/schema") {
        let _ = write!(out, "<h4>Body</h4><p>JSON: {}</p>", ty(schema));
    }
    if let Some(responses) = op["responses"].as_object() {
        out.push_str("<h4>Answers</h4><table><thead><tr><th>Status</th><th>Body</th><th>Meaning</th></tr></thead><tbody>");
        for (code, r) in responses {
            let body = r
                .pointer("/content/application~1json/schema")
                .map(ty)
                .unwrap_or_else(|| "—".into());
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(code),
                body,
                prose(r["description"].as_str().unwrap_or(""))
            );
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("</section>");
    out
}

/// A tag: its name, its description, and its operations (path, method, operation).
type Tag = (String, String, Vec<(String, String, Value)>);

/// The whole reference page.
pub fn render(doc: &Value) -> String {
    let title = esc(doc
        .pointer("/info/title")
        .and_then(Value::as_str)
        .unwrap_or("API"));
    let version = esc(doc
        .pointer("/info/version")
        .and_then(Value::as_str)
        .unwrap_or(""));
    let mut by_tag: Vec<Tag> = doc["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            (
                t["name"].as_str().unwrap_or("").to_string(),
                t["description"].as_str().unwrap_or("").to_string(),
                Vec::new(),
            )
        })
        .collect();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for (method, op) in item.as_object().into_iter().flatten() {
            let tag = op["tags"][0].as_str().unwrap_or("other").to_string();
            let i = match by_tag.iter().position(|(t, _, _)| *t == tag) {
                Some(i) => i,
                None => {
                    by_tag.push((tag, String::new(), Vec::new()));
                    by_tag.len() - 1
                }
            };
            by_tag[i].2.push((path.clone(), method.clone(), op.clone()));
        }
    }
    let mut nav = String::new();
    let mut body = String::new();
    for (tag, about, ops) in &by_tag {
        if ops.is_empty() {
            continue;
        }
        let _ = write!(nav, "<li><a href=\"#tag-{t}\">{t}</a><ul>", t = esc(tag));
        let _ = write!(
            body,
            "<h2 id=\"tag-{t}\">{t}</h2>{}",
            prose(about),
            t = esc(tag)
        );
        for (path, method, op) in ops {
            let _ = write!(
                nav,
                "<li><a href=\"#op-{}\"><span class=\"method {m}\">{M}</span> {}</a></li>",
                esc(op["operationId"].as_str().unwrap_or("")),
                esc(path),
                m = esc(method),
                M = esc(&method.to_uppercase())
            );
            body.push_str(&operation(path, method, op));
        }
        nav.push_str("</ul></li>");
    }
    nav.push_str("<li><a href=\"#schemas\">schemas</a></li>");
    body.push_str("<h2 id=\"schemas\">Schemas</h2>");
    for (name, s) in doc
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let _ = write!(
            body,
            "<section class=\"schema\" id=\"schema-{n}\"><h3>{n}</h3>{}<p>{}</p>{}</section>",
            prose(s["description"].as_str().unwrap_or("")),
            ty(&Value::Object(
                s.as_object()
                    .map(|o| {
                        o.iter()
                            .filter(|(k, _)| *k != "properties")
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect()
                    })
                    .unwrap_or_default()
            )),
            fields(s),
            n = esc(name)
        );
    }
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} API reference</title><link rel=\"stylesheet\" href=\"/docs/assets/docs.css\"></head>\
         <body class=\"reference\"><nav><h1>{title} <small>{version}</small></h1><p><a href=\"/docs\">Try it</a> · <a href=\"/openapi.json\">openapi.json</a></p><ul>{nav}</ul></nav>\
         <main>{}{body}</main></body></html>",
        prose(
            doc.pointer("/info/description")
                .and_then(Value::as_str)
                .unwrap_or("")
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn types_read_as_words() {
        assert_eq!(
            ty(&json!({"$ref": "#/components/schemas/Release"})),
            "<a href=\"#schema-Release\">Release</a>"
        );
        assert_eq!(ty(&json!({"type": ["string", "null"]})), "string or null");
        assert_eq!(
            ty(&json!({"type": "array", "items": {"type": "integer", "format": "int64"}})),
            "array of integer (int64)"
        );
        assert_eq!(
            ty(&json!({"type": "string", "enum": ["a", "b"]})),
            "one of <code>a</code>, <code>b</code>"
        );
        assert_eq!(prose("use `x<y`"), "<p>use <code>x&lt;y</code></p>");
    }

    #[test]
    fn the_reference_covers_every_operation_and_schema() {
        let doc: Value = serde_json::from_str(&crate::openapi::document_json()).unwrap();
        let page = render(&doc);
        for (path, item) in doc["paths"].as_object().unwrap() {
            for op in item.as_object().unwrap().values() {
                let id = op["operationId"].as_str().unwrap();
                assert!(page.contains(&format!("id=\"op-{id}\"")), "{path} {id}");
            }
        }
        for name in doc["components"]["schemas"].as_object().unwrap().keys() {
            assert!(page.contains(&format!("id=\"schema-{name}\"")), "{name}");
        }
        for outside in ["src=\"http", "href=\"http", "src=\"//", "href=\"//"] {
            assert!(
                !page.contains(outside),
                "nothing loaded from elsewhere: {outside}"
            );
        }
    }
}
