//! The role matrix over every operation of the served OpenAPI document: each
//! operation is called with no credential, with a key of each role (the proxy's
//! included) and with a login session of each role, and must refuse exactly the
//! callers below its least role — 401 without a credential, 403 below the role
//! — and let the others through to the handler (whatever it then answers).
//!
//! The least role of each operation is written here from the documented policy
//! (reads need a viewer, changes an engineer; keys, users and environment
//! changes an admin; the proxy's two routes a proxy or an engineer; a few
//! routes are public), independently of the server's `required_role`, so a
//! route that forgets the policy, or a policy that drifts, fails here.

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{ADMIN, Server, get, post, send_as};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Least {
    Public,
    Proxy,
    Viewer,
    Engineer,
    Admin,
}

fn least(method: &Method, path: &str) -> Least {
    let read = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    match path {
        "/api/v1/health" | "/api/v1/ready" | "/openapi.json" | "/metrics" | "/api/v1/metrics"
        | "/api/v1/auth/login" | "/" | "/docs" | "/redoc" | "/admin/canary" => {
            return Least::Public;
        }
        "/api/v1/proxy/routes" | "/api/v1/proxy/metrics" => return Least::Proxy,
        "/api/v1/users/me" | "/api/v1/auth/logout" => return Least::Viewer,
        _ => {}
    }
    if path.starts_with("/api/v1/api-keys")
        || path.starts_with("/api/v1/users")
        || path.starts_with("/api/v1/secrets")
    {
        return Least::Admin;
    }
    if !read && path.starts_with("/api/v1/products/") && path.contains("/environments") {
        return Least::Admin;
    }
    // Flagger's webhooks are POSTs that only read a verdict.
    if path.starts_with("/api/v1/integrations/flagger/") {
        return Least::Viewer;
    }
    if read { Least::Viewer } else { Least::Engineer }
}

/// Whether a caller of `role` ("anonymous", "proxy", "viewer", "engineer",
/// "admin") passes `need`.
fn passes(role: &str, need: Least) -> bool {
    match need {
        Least::Public => true,
        Least::Proxy => matches!(role, "proxy" | "engineer" | "admin"),
        Least::Viewer => matches!(role, "viewer" | "engineer" | "admin"),
        Least::Engineer => matches!(role, "engineer" | "admin"),
        Least::Admin => role == "admin",
    }
}

async fn key(s: &Server, role: &str) -> String {
    let (code, k) = post(
        &format!("{}/api/v1/api-keys", s.url),
        json!({"name": format!("matrix-{role}"), "role": role}),
    )
    .await;
    assert_eq!(code, 201, "{k}");
    k["key"].as_str().unwrap().to_string()
}

async fn session(s: &Server, role: &str) -> String {
    let email = format!("{role}@matrix.example");
    let (code, u) = post(
        &format!("{}/api/v1/users", s.url),
        json!({"email": email, "name": role, "role": role, "password": "matrix password"}),
    )
    .await;
    assert_eq!(code, 201, "{u}");
    let (code, l) = post(
        &format!("{}/api/v1/auth/login", s.url),
        json!({"email": email, "password": "matrix password"}),
    )
    .await;
    assert_eq!(code, 200, "{l}");
    l["token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn every_operation_refuses_exactly_the_roles_below_it() {
    let s = Server::sqlite();
    let (_, doc) = get(&format!("{}/openapi.json", s.url)).await;
    let mut callers: Vec<(String, String)> = vec![("anonymous".into(), String::new())];
    for role in ["proxy", "viewer", "engineer"] {
        callers.push((role.into(), key(&s, role).await));
    }
    callers.push(("admin".into(), ADMIN.into()));
    for role in ["viewer", "engineer", "admin"] {
        callers.push((format!("{role} session"), session(&s, role).await));
    }
    let mut operations = 0;
    let mut wrong = Vec::new();
    for (template, item) in doc["paths"].as_object().unwrap() {
        // Path parameters get values that name nothing: the handler answers
        // 404 or 400, and nothing is changed.
        let path = template
            .split('/')
            .map(|seg| {
                if seg.starts_with('{') {
                    "matrix-none"
                } else {
                    seg
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        for (m, _) in item.as_object().unwrap() {
            let Ok(method) = m.to_uppercase().parse::<Method>() else {
                continue;
            };
            if !matches!(
                method,
                Method::GET | Method::POST | Method::PUT | Method::PATCH | Method::DELETE
            ) {
                continue;
            }
            // Logging out would end the sessions the matrix goes on using.
            if template == "/api/v1/auth/logout" {
                continue;
            }
            operations += 1;
            let need = least(&method, template);
            for (who, credential) in &callers {
                let role = who.split(' ').next().unwrap();
                let body = (method != Method::GET && method != Method::DELETE).then(|| json!({}));
                let (code, answer): (u16, Value) = send_as(
                    credential,
                    method.clone(),
                    &format!("{}{path}", s.url),
                    body,
                )
                .await;
                let refused_by_guard = match code {
                    401 => answer["code"] == "UNAUTHORIZED",
                    403 => {
                        answer["code"] == "FORBIDDEN"
                            && answer["details"]["required_role"].is_string()
                    }
                    _ => false,
                };
                let ok = if passes(role, need) {
                    !refused_by_guard && code < 500
                } else if role == "anonymous" {
                    code == 401
                } else {
                    code == 403 && refused_by_guard
                };
                if !ok {
                    wrong.push(format!(
                        "{who} {method} {template} (least {need:?}): {code} {answer}"
                    ));
                }
            }
        }
    }
    assert!(
        operations >= 75,
        "only {operations} operations in the document"
    );
    assert!(
        wrong.is_empty(),
        "{} wrong answers:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    println!(
        "role matrix: {operations} operations × {} callers",
        callers.len()
    );
}
