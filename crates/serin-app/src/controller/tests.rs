use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serin_core::canary::NewDeployment;
use serin_store::{Store, StoreOptions};

use super::*;

async fn app() -> (App, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/serin.db", dir.path().display());
    let store = Store::connect(&url, &StoreOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    (App::new(store, crate::Config::default()), dir)
}

/// A gate being asked when the leader's term ended (its task aborted) is
/// asked again by the next term, not waited for forever; within one term a
/// question in flight is not asked twice.
#[tokio::test]
async fn a_question_left_by_an_ended_term_is_asked_again() {
    let (base, _dir) = app().await;
    let (d, _) = NewDeployment {
        queue_name: "q".into(),
        stable_version: "1".into(),
        canary_version: "2".into(),
        ..NewDeployment::default()
    }
    .resolve("canary_q".into(), "t", chrono::Utc::now())
    .unwrap();
    let asked = Arc::new(AtomicUsize::new(0));
    let ask = |asked: Arc<AtomicUsize>| {
        move || {
            asked.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(std::future::pending::<Answer>())
        }
    };
    let first = base.fenced(1);
    let key = "gate:0:http://x".to_string();
    assert!(answer(&first, &d, key.clone(), ask(asked.clone())).is_none());
    assert!(answer(&first, &d, key.clone(), ask(asked.clone())).is_none());
    assert_eq!(
        asked.load(Ordering::SeqCst),
        1,
        "in flight: not asked twice"
    );
    first.term.end();
    let second = base.fenced(2);
    assert!(answer(&second, &d, key.clone(), ask(asked.clone())).is_none());
    assert_eq!(asked.load(Ordering::SeqCst), 2, "the next term asks again");
}
