//! Opens a fresh store of each kind.

use serin_store::{Store, StoreOptions};

pub struct Fresh {
    pub store: Store,
    cleanup: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl Fresh {
    /// The PostgreSQL URL of this store's schema (none for SQLite).
    pub fn scoped_url(&self) -> Option<String> {
        self.cleanup.as_ref().map(|(url, schema)| {
            let sep = if url.contains('?') { '&' } else { '?' };
            format!("{url}{sep}options=-csearch_path%3D{schema}")
        })
    }

    pub async fn drop_schema(self) {
        if let Some((url, schema)) = self.cleanup
            && let Ok((client, conn)) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await
        {
            tokio::spawn(conn);
            let _ = client
                .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                .await;
        }
    }
}

pub async fn sqlite() -> Fresh {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/serin.db", dir.path().display());
    let store = Store::connect(&url, &StoreOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    Fresh {
        store,
        cleanup: None,
        _dir: Some(dir),
    }
}

pub fn postgres_url() -> String {
    std::env::var("SERIN_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A store on PostgreSQL in a new schema, or `None` (outside CI) if unreachable.
pub async fn postgres() -> Option<Fresh> {
    let url = postgres_url();
    let (client, conn) = match tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
        Ok(c) => c,
        Err(e) => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("PostgreSQL at {url} is required in CI: {e}");
            }
            eprintln!("SKIPPED the PostgreSQL half: {url} unreachable: {e}");
            return None;
        }
    };
    tokio::spawn(conn);
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let schema = format!(
        "serin_it_{}_{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
        ))
        .await
        .unwrap();
    let sep = if url.contains('?') { '&' } else { '?' };
    let scoped = format!("{url}{sep}options=-csearch_path%3D{schema}");
    let store = Store::connect(&scoped, &StoreOptions { max_connections: 4 })
        .await
        .unwrap();
    store.migrate().await.unwrap();
    Some(Fresh {
        store,
        cleanup: Some((url, schema)),
        _dir: None,
    })
}

/// Defines `mod NAME { sqlite, postgres }` running `body(store)` on each backend.
#[macro_export]
macro_rules! both {
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                let f = $crate::harness::sqlite().await;
                super::$body(&f.store).await;
            }
            #[tokio::test]
            async fn postgres() {
                if let Some(f) = $crate::harness::postgres().await {
                    super::$body(&f.store).await;
                    f.drop_schema().await;
                }
            }
        }
    };
}
