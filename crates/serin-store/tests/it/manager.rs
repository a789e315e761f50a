//! The release manager's storage on both backends: users and sessions,
//! environments, approvals, the release list and draft deletion.

use chrono::{Duration, TimeZone, Utc};
use serin_core::auth::Role;
use serin_core::release::environment::{Approval, Decision, EnvironmentSpec, tally};
use serin_core::user::User;
use serin_core::{DomainError, NewProduct, NewRelease, ReleasePatch, ReleaseStatus, Timestamp};
use serin_store::manager::{Credentials, NewSession, ReleaseFilter, UserChange};
use serin_store::{Entity, Store, StoreError};

use crate::both;

fn t(secs: i64) -> Timestamp {
    Utc.timestamp_opt(1_757_851_200 + secs, 0).unwrap()
}

fn user(id: &str, email: &str, role: Role) -> Credentials {
    Credentials {
        user: User {
            id: id.into(),
            email: email.into(),
            name: "N".into(),
            role,
            created_at: t(0),
            last_login: None,
            disabled_at: None,
            failed_logins: 0,
        },
        password_hash: "$argon2id$fake".into(),
    }
}

both!(users_and_sessions, users_and_sessions_body);
async fn users_and_sessions_body(s: &Store) {
    let ada = s
        .create_user(user("user_1", "ada@example.com", Role::Engineer), "admin")
        .await
        .unwrap();
    assert!(matches!(
        s.create_user(user("user_2", "ada@example.com", Role::Viewer), "admin")
            .await,
        Err(StoreError::Conflict {
            entity: Entity::User,
            ..
        })
    ));
    let found = s.credentials("ada@example.com").await.unwrap().unwrap();
    assert_eq!(
        (found.user, found.password_hash.as_str()),
        (ada.clone(), "$argon2id$fake")
    );
    assert!(s.credentials("bob@example.com").await.unwrap().is_none());
    assert_eq!(s.record_login("user_1", false, t(1)).await.unwrap(), 1);
    assert_eq!(s.record_login("user_1", false, t(2)).await.unwrap(), 2);
    assert_eq!(s.record_login("user_1", true, t(3)).await.unwrap(), 0);
    assert_eq!(s.get_user("user_1").await.unwrap().last_login, Some(t(3)));

    let session = NewSession {
        id: "session_1".into(),
        token_hash: "cd".repeat(32),
        user_id: "user_1".into(),
        created_at: t(3),
        expires_at: t(3) + Duration::hours(1),
    };
    s.create_session(session.clone(), "ada@example.com")
        .await
        .unwrap();
    let live = s
        .live_session(&session.token_hash, t(10))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (live.id.as_str(), live.user.email.as_str()),
        ("session_1", "ada@example.com")
    );
    assert!(
        s.live_session(&session.token_hash, t(3 + 3600))
            .await
            .unwrap()
            .is_none(),
        "expired"
    );
    assert!(
        s.live_session(&"ef".repeat(32), t(10))
            .await
            .unwrap()
            .is_none()
    );

    // A role change ends the user's sessions, in the same transaction.
    let viewer = s
        .update_user(
            "user_1",
            UserChange {
                role: Some(Role::Viewer),
                ..UserChange::default()
            },
            "admin",
            t(20),
        )
        .await
        .unwrap();
    assert_eq!(viewer.role, Role::Viewer);
    assert!(
        s.live_session(&session.token_hash, t(21))
            .await
            .unwrap()
            .is_none()
    );
    let again = NewSession {
        id: "session_2".into(),
        token_hash: "ab".repeat(32),
        ..session
    };
    s.create_session(again.clone(), "ada@example.com")
        .await
        .unwrap();
    let live = s
        .live_session(&again.token_hash, t(22))
        .await
        .unwrap()
        .unwrap();
    for at in [23, 24] {
        s.end_session(&live.id, &live.user.id, &live.user.email, t(at))
            .await
            .unwrap();
    }
    assert!(
        s.live_session(&again.token_hash, t(25))
            .await
            .unwrap()
            .is_none()
    );
    let disabled = s
        .update_user(
            "user_1",
            UserChange {
                disabled: Some(true),
                ..UserChange::default()
            },
            "admin",
            t(30),
        )
        .await
        .unwrap();
    assert_eq!(disabled.disabled_at, Some(t(30)));
    assert_eq!(s.list_users(0, 10).await.unwrap().total, 1);
    let events = s
        .list_events(
            &serin_store::canary::EventFilter {
                resource_type: Some("user".into()),
                ..Default::default()
            },
            0,
            20,
        )
        .await
        .unwrap();
    let kinds: Vec<&str> = events.items.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "user_updated",
            "user_logged_out",
            "user_logged_in",
            "user_updated",
            "user_logged_in",
            "user_created"
        ],
        "a second logout of the same session writes nothing"
    );
}

both!(environments_approvals_and_releases, environments_body);
async fn environments_body(s: &Store) {
    assert!(matches!(
        s.environments("shop").await,
        Err(StoreError::NotFound {
            entity: Entity::Product,
            ..
        })
    ));
    for p in ["shop", "web"] {
        s.create_product(
            &NewProduct {
                name: p.into(),
                description: None,
            },
            "ada",
            t(0),
        )
        .await
        .unwrap();
    }
    let defaults = s.environments("shop").await.unwrap();
    assert_eq!(defaults.len(), 3);
    assert!(defaults.iter().all(|e| !e.configured));
    let spec = EnvironmentSpec {
        position: Some(0),
        require_previous: Some(false),
        ..EnvironmentSpec::default()
    };
    let qa = s
        .change_environment("shop", "qa", &spec, true, "ada", t(1))
        .await
        .unwrap();
    assert_eq!(qa.position, 0);
    let names: Vec<String> = s
        .environments("shop")
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["qa", "development", "staging", "production"]);
    assert_eq!(s.environments("web").await.unwrap().len(), 3, "per product");
    let refused = s
        .change_environment("shop", "qa", &spec, true, "ada", t(2))
        .await;
    assert!(matches!(
        refused,
        Err(StoreError::Domain(DomainError::Refused {
            code: "ENVIRONMENT_EXISTS",
            ..
        }))
    ));

    // Releases: author, the cross-product list, draft-only deletion.
    let mut ids = Vec::new();
    for (p, v) in [("shop", "1.0.0"), ("web", "1.0.0"), ("shop", "2.0.0")] {
        let r = s
            .create_release(
                &NewRelease {
                    product_name: p.into(),
                    version: v.into(),
                    description: None,
                },
                "ada@example.com",
                t(3),
            )
            .await
            .unwrap();
        assert_eq!(r.created_by.as_deref(), Some("ada@example.com"));
        assert_eq!(s.get_release(r.id).await.unwrap().created_by, r.created_by);
        ids.push(r.id);
    }
    let all = s
        .list_all_releases(&ReleaseFilter::default(), 0, 10)
        .await
        .unwrap();
    assert_eq!(all.total, 3);
    let shop = ReleaseFilter {
        product: Some("shop".into()),
        status: Some(ReleaseStatus::Draft),
    };
    assert_eq!(s.list_all_releases(&shop, 0, 10).await.unwrap().total, 2);
    s.update_release(
        ids[0],
        &ReleasePatch {
            status: Some(ReleaseStatus::Approved),
            description: None,
            override_reason: None,
        },
        "ada",
        t(4),
    )
    .await
    .unwrap();
    assert!(matches!(
        s.delete_release(ids[0], "ada", t(5)).await,
        Err(StoreError::Domain(DomainError::Refused {
            code: "RELEASE_NOT_DRAFT",
            ..
        }))
    ));
    s.delete_release(ids[2], "ada", t(5)).await.unwrap();
    assert!(matches!(
        s.get_release(ids[2]).await,
        Err(StoreError::NotFound { .. })
    ));

    // Approvals are appended; the tally reads each person's latest.
    let release = s.get_release(ids[0]).await.unwrap();
    for (i, (actor, d)) in [
        ("bob", Decision::Rejected),
        ("bob", Decision::Approved),
        ("cy", Decision::Approved),
    ]
    .into_iter()
    .enumerate()
    {
        s.record_approval(
            Approval {
                id: format!("approval_{i}"),
                release_id: release.id,
                environment: "production".into(),
                actor: actor.into(),
                role: Role::Engineer,
                decision: d,
                comment: Some("why".into()),
                created_at: t(10 + i as i64),
            },
            &release,
        )
        .await
        .unwrap();
    }
    let got = s.approvals(release.id, Some("production")).await.unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].decision, Decision::Rejected);
    let policy = &s.environments("shop").await.unwrap()[3].approvals;
    assert!(tally(policy, &got).met);
    assert!(
        s.approvals(release.id, Some("staging"))
            .await
            .unwrap()
            .is_empty()
    );
}

both!(a_transition_commits_its_release_effect, release_effect_body);
async fn release_effect_body(s: &Store) {
    use serin_core::canary::NewDeployment;
    s.create_product(
        &NewProduct {
            name: "shop".into(),
            description: None,
        },
        "ada",
        t(0),
    )
    .await
    .unwrap();
    let release = |v: &str| NewRelease {
        product_name: "shop".into(),
        version: v.into(),
        description: None,
    };
    let deploy = |id: &str, version: &str, env: Option<&str>| {
        let (mut d, ev) = NewDeployment {
            queue_name: format!("q-{id}"),
            stable_version: "1.0.0".into(),
            canary_version: version.into(),
            ..Default::default()
        }
        .resolve(id.into(), "ops", t(1))
        .unwrap();
        d.product = Some("shop".into());
        d.environment = env.map(str::to_string);
        (d, ev)
    };
    // Promoted in production: the draft is released by the same commit, and
    // the change's events carry the release's.
    let r2 = s
        .create_release(&release("2.0.0"), "ada", t(1))
        .await
        .unwrap();
    let (d, ev) = deploy("canary_prod", "2.0.0", Some("production"));
    s.create_deployment(d, ev, "ops", None).await.unwrap();
    let now = t(2);
    let (_, events) = s
        .update_deployment(
            "canary_prod",
            None,
            Box::new(move |d| d.promote(now)),
            "ops",
            now,
        )
        .await
        .unwrap();
    assert_eq!(
        s.get_release(r2.id).await.unwrap().status,
        ReleaseStatus::Released
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| e.resource_type == "release")
            .count(),
        2,
        "draft → approved → released, with the deployment's events"
    );
    assert_eq!(s.latest_stable("shop").await.unwrap().version, "2.0.0");

    // Promoted in staging: not the product's release yet.
    let r3 = s
        .create_release(&release("3.0.0"), "ada", t(3))
        .await
        .unwrap();
    let (d, ev) = deploy("canary_staging", "3.0.0", Some("staging"));
    s.create_deployment(d, ev, "ops", None).await.unwrap();
    s.update_deployment(
        "canary_staging",
        None,
        Box::new(move |d| d.promote(now)),
        "ops",
        now,
    )
    .await
    .unwrap();
    assert_eq!(
        s.get_release(r3.id).await.unwrap().status,
        ReleaseStatus::Draft
    );

    // Outside the environments, for a product that ships through them (it was
    // deployed to production): a hand promotion releases nothing.
    let (d, ev) = deploy("canary_outside", "3.0.0", None);
    s.create_deployment(d, ev, "ops", None).await.unwrap();
    s.update_deployment(
        "canary_outside",
        None,
        Box::new(move |d| d.promote(now)),
        "ops",
        now,
    )
    .await
    .unwrap();
    assert_eq!(
        s.get_release(r3.id).await.unwrap().status,
        ReleaseStatus::Draft
    );

    // A verdict's rollback in production fails the release; a person's doesn't.
    let r4 = s
        .create_release(&release("4.0.0"), "ada", t(4))
        .await
        .unwrap();
    let (d, ev) = deploy("canary_judged", "4.0.0", Some("production"));
    s.create_deployment(d, ev, "ops", None).await.unwrap();
    s.update_deployment(
        "canary_judged",
        None,
        Box::new(move |d| {
            let mut ev = d.rollback("p95 3x stable", now)?;
            ev[0].data["judgement"] = serde_json::json!({"outcome": "fail"});
            Ok(ev)
        }),
        "controller",
        now,
    )
    .await
    .unwrap();
    let failed = s.get_release(r4.id).await.unwrap();
    assert_eq!(failed.status, ReleaseStatus::RolledBack);
    let r5 = s
        .create_release(&release("5.0.0"), "ada", t(5))
        .await
        .unwrap();
    let (d, ev) = deploy("canary_manual", "5.0.0", Some("production"));
    s.create_deployment(d, ev, "ops", None).await.unwrap();
    s.update_deployment(
        "canary_manual",
        None,
        Box::new(move |d| d.rollback("by hand", now)),
        "ops",
        now,
    )
    .await
    .unwrap();
    assert_eq!(
        s.get_release(r5.id).await.unwrap().status,
        ReleaseStatus::Draft
    );
}
