//! The release manager: sessions, users, environments, deploying releases,
//! approvals.

#[allow(unused_imports)]
use super::*;

/// The release manager: sessions, users, environments, deploying releases,
/// approvals and deployments to environments.
impl Client {
    /// `POST /api/v1/auth/login`: a session (its `token` is a bearer credential).
    pub async fn login(&self, email: &str, password: &str) -> Result<Value, ClientError> {
        self.call(
            Method::POST,
            "/api/v1/auth/login",
            Some(&json!({"email": email, "password": password})),
        )
        .await
    }

    /// `POST /api/v1/auth/logout`: ends the session this client sends.
    pub async fn logout(&self) -> Result<(), ClientError> {
        self.call_empty(Method::POST, "/api/v1/auth/logout").await
    }

    /// `GET /api/v1/users/me`.
    pub async fn me(&self) -> Result<Value, ClientError> {
        self.call::<(), _>(Method::GET, "/api/v1/users/me", None)
            .await
    }

    /// The replicas on the server's database, the leader and its epoch.
    pub async fn cluster(&self) -> Result<Value, ClientError> {
        self.call::<(), _>(Method::GET, "/api/v1/cluster", None)
            .await
    }

    /// Creates a user (admin).
    pub async fn create_user(&self, body: &Value) -> Result<Value, ClientError> {
        self.call(Method::POST, "/api/v1/users", Some(body)).await
    }

    /// Every user (admin).
    pub async fn list_users(&self) -> Result<Vec<Value>, ClientError> {
        self.all_pages("/api/v1/users", "items").await
    }

    /// Changes a user (admin).
    pub async fn update_user(&self, id: &str, patch: &Value) -> Result<Value, ClientError> {
        self.call(
            Method::PATCH,
            &format!("/api/v1/users/{}", seg(id)),
            Some(patch),
        )
        .await
    }

    /// A product's environments, in order.
    pub async fn environments(&self, product: &str) -> Result<Value, ClientError> {
        self.call::<(), _>(
            Method::GET,
            &format!("/api/v1/products/{}/environments", seg(product)),
            None,
        )
        .await
    }

    /// Adds an environment to a product.
    pub async fn add_environment(&self, product: &str, spec: &Value) -> Result<Value, ClientError> {
        self.call(
            Method::POST,
            &format!("/api/v1/products/{}/environments", seg(product)),
            Some(spec),
        )
        .await
    }

    /// Changes an environment.
    pub async fn update_environment(
        &self,
        product: &str,
        env: &str,
        spec: &Value,
    ) -> Result<Value, ClientError> {
        self.call(
            Method::PATCH,
            &format!(
                "/api/v1/products/{}/environments/{}",
                seg(product),
                seg(env)
            ),
            Some(spec),
        )
        .await
    }

    /// A product's release by version (`RELEASE_NOT_FOUND` when it has none).
    pub async fn find_release(&self, product: &str, version: &str) -> Result<Release, ClientError> {
        let all: Vec<Release> = self
            .all_pages(
                &format!("/api/v1/products/{}/releases", seg(product)),
                "items",
            )
            .await?;
        all.into_iter()
            .find(|r| r.version == version)
            .ok_or_else(|| ClientError::Api {
                status: 404,
                code: "RELEASE_NOT_FOUND".into(),
                message: format!("{product} has no release {version}"),
                details: json!({"product": product, "version": version}),
            })
    }

    /// `POST /api/v1/releases/{id}/deploy`: the deployment it started.
    pub async fn deploy(&self, release_id: i64, req: &Value) -> Result<Value, ClientError> {
        self.call(
            Method::POST,
            &format!("/api/v1/releases/{release_id}/deploy"),
            Some(req),
        )
        .await
    }

    /// Approves (`approved`) or rejects (`rejected`) a release for an environment.
    pub async fn decide(
        &self,
        release_id: i64,
        environment: &str,
        decision: &str,
        comment: Option<&str>,
    ) -> Result<Value, ClientError> {
        self.call(
            Method::POST,
            &format!("/api/v1/releases/{release_id}/approvals"),
            Some(&json!({"environment": environment, "decision": decision, "comment": comment})),
        )
        .await
    }

    /// One deployment of a release to an environment.
    pub async fn release_deployment(&self, id: &str) -> Result<Value, ClientError> {
        self.call::<(), _>(
            Method::GET,
            &format!("/api/v1/deployments/{}", seg(id)),
            None,
        )
        .await
    }

    /// Deployments of releases to environments, newest first (one page of up to 100).
    pub async fn release_deployments(
        &self,
        product: Option<&str>,
        environment: Option<&str>,
    ) -> Result<Value, ClientError> {
        let mut q = vec!["page_size=100".to_string()];
        if let Some(p) = product {
            q.push(format!("product={}", seg(p)));
        }
        if let Some(e) = environment {
            q.push(format!("environment={}", seg(e)));
        }
        self.call::<(), _>(
            Method::GET,
            &format!("/api/v1/deployments?{}", q.join("&")),
            None,
        )
        .await
    }

    /// A release's notes (for an environment), published when `publish`.
    pub async fn release_notes(
        &self,
        release_id: i64,
        environment: Option<&str>,
        publish: bool,
    ) -> Result<Value, ClientError> {
        if publish {
            return self
                .call(
                    Method::POST,
                    &format!("/api/v1/releases/{release_id}/notes/publish"),
                    Some(&json!({"environment": environment})),
                )
                .await;
        }
        let q = environment
            .map(|e| format!("?environment={}", seg(e)))
            .unwrap_or_default();
        self.call::<(), _>(
            Method::GET,
            &format!("/api/v1/releases/{release_id}/notes{q}"),
            None,
        )
        .await
    }

    /// One-click rollback of a deployment.
    pub async fn rollback_deployment(
        &self,
        id: &str,
        reason: Option<&str>,
    ) -> Result<Value, ClientError> {
        self.call(
            Method::POST,
            &format!("/api/v1/deployments/{}/rollback", seg(id)),
            Some(&json!({"reason": reason})),
        )
        .await
    }
}
