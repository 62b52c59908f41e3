//! The orders service against a real authority: the authority in-process
//! (castellan-testkit), the service in-process on a loopback port, HTTP
//! between them. Proves that a permission change, by policy push or by data
//! change, takes effect for a token already issued, that `forbid` overrides
//! `permit`, and that every decision reaches the authority's decision log.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // tests may unwrap

use castellan_testkit::TestAuthority;
use castellan_verify::Verifier;
use orders_service::data::Directory;
use orders_service::{ClientCredentials, Settings};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

const POLICIES: &str = include_str!("../policies/orders.cedar");
const SCHEMA: &str = include_str!("../policies/orders.cedarschema");

/// The change the admin pushes: members of the owner's team read the
/// team's orders too.
const TEAM_READS: &str = r#"
// Members of the owner's team read the team's orders.
@id("team-reads")
permit (principal, action == Action::"read", resource is Order)
when { principal in resource.team };
"#;

struct Caller {
    sub: String,
    token: String,
}

async fn person(ta: &TestAuthority, name: &str, scopes: &[&str]) -> Caller {
    let (id, secret) = ta.client(name, &["orders"], scopes).await;
    let extra: Vec<(&str, &str)> = if scopes.is_empty() {
        vec![]
    } else {
        vec![("scope", scopes[0])]
    };
    let token = ta.access_token(&id, &secret, &extra).await;
    // A client-credentials token's subject is the client id.
    Caller { sub: id, token }
}

struct Orders {
    url: String,
    http: reqwest::Client,
    /// Decisions the service has been asked for so far.
    decisions: usize,
}

impl Orders {
    async fn read(&mut self, who: &Caller, order: &str) -> (StatusCode, Value) {
        let resp = self
            .http
            .get(format!("{}/orders/{order}", self.url))
            .bearer_auth(&who.token)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        if status != StatusCode::NOT_FOUND && status != StatusCode::UNAUTHORIZED {
            self.decisions += 1;
        }
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn create(&mut self, who: &Caller, body: Value) -> (StatusCode, Value) {
        let resp = self
            .http
            .post(format!("{}/orders", self.url))
            .bearer_auth(&who.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        self.decisions += 1;
        let status = resp.status();
        (status, resp.json().await.unwrap())
    }
}

async fn push(ta: &TestAuthority, policies: &str) -> u64 {
    let (status, v) = ta
        .admin(
            Method::POST,
            "/policies/orders",
            Some(json!({"policies": policies, "schema": SCHEMA})),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    v["version"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permission_changes_reach_tokens_already_issued() {
    let ta = TestAuthority::start().await;
    assert_eq!(push(&ta, POLICIES).await, 1);

    let alice = person(&ta, "alice", &["orders.write"]).await;
    let bob = person(&ta, "bob", &[]).await;
    let dave = person(&ta, "dave", &[]).await;
    let (log_id, log_secret) = ta
        .client("orders-decisions", &[], &["castellan.decisions:orders"])
        .await;

    // The service's own data: Alice and Bob in emea, Dave in apac, nobody
    // manages emea yet; Alice owns o-1 and the confidential o-2.
    let data = json!({
        "teams": [{"id": "emea"}, {"id": "apac"}],
        "people": [
            {"sub": alice.sub, "name": "Alice", "team": "emea"},
            {"sub": bob.sub, "name": "Bob", "team": "emea"},
            {"sub": dave.sub, "name": "Dave", "team": "apac"},
        ],
        "orders": [
            {"id": "o-1", "owner": alice.sub, "item": "printer paper"},
            {"id": "o-2", "owner": alice.sub, "item": "a laptop", "confidential": true},
        ],
    });
    let directory = Arc::new(Directory::from_json(&data.to_string()).unwrap());
    let clock = Arc::new(ta.clock.clone());
    let verifier = Verifier::builder(&ta.url, "orders")
        .clock(clock.clone())
        .connect()
        .await
        .unwrap();
    let settings = Settings {
        decision_log: Some(ClientCredentials {
            client_id: log_id.clone(),
            client_secret: log_secret,
        }),
        ship_interval: Duration::from_millis(100),
        ..Settings::default()
    };
    let service = orders_service::start(verifier, directory.clone(), settings, clock).unwrap();
    let authz = service.authorizer().clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(orders_service::serve(listener, service, async {
        let _ = stopped.await;
    }));
    let mut orders = Orders {
        url,
        http: castellan_testkit::http_client(),
        decisions: 0,
    };

    // Ready once the first bundle is in force.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let resp = orders.http.get(format!("{}/healthz", orders.url)).send().await.unwrap();
        if resp.status() == StatusCode::OK {
            let v: Value = resp.json().await.unwrap();
            assert_eq!(v["policy_version"], 1, "{v}");
            break;
        }
        assert!(Instant::now() < deadline, "the service never became ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // No token, unknown order.
    let resp = orders
        .http
        .get(format!("{}/orders/o-1", orders.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let (status, v) = orders.read(&alice, "o-404").await;
    assert_eq!(
        (status, v["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );

    // The owner reads their orders, the confidential one too.
    let (status, v) = orders.read(&alice, "o-1").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        (v["owner"].as_str(), v["team"].as_str()),
        (Some(alice.sub.as_str()), Some("emea"))
    );
    assert_eq!(orders.read(&alice, "o-2").await.0, StatusCode::OK);

    // A team member who is no manager: default deny.
    let (status, v) = orders.read(&bob, "o-1").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["error"], "access_denied");
    assert!(
        v["error_description"].as_str().unwrap().contains("no policy permits"),
        "{v}"
    );

    // The admin pushes a change; Bob's token, unchanged, gets in.
    assert_eq!(push(&ta, &format!("{POLICIES}\n{TEAM_READS}")).await, 2);
    // From the moment the authority has stored the new version.
    let pushed = Instant::now();
    let live_after = loop {
        let (status, v) = orders.read(&bob, "o-1").await;
        if status == StatusCode::OK {
            break pushed.elapsed();
        }
        assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
        assert!(
            pushed.elapsed() < Duration::from_secs(2),
            "the change took longer than 2s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    println!("permission change live after {} ms", live_after.as_millis());
    assert_eq!(authz.version(), Some(2));

    // ... but a `forbid` overrides the new `permit` on the confidential order.
    let (status, v) = orders.read(&bob, "o-2").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    assert!(
        v["error_description"]
            .as_str()
            .unwrap()
            .contains("confidential-owner-only"),
        "{v}"
    );

    // A data change alone: Dave (apac) becomes a manager of emea. Same token.
    assert_eq!(orders.read(&dave, "o-1").await.0, StatusCode::FORBIDDEN);
    directory.set_manager("emea", &dave.sub, true).unwrap();
    assert_eq!(orders.read(&dave, "o-1").await.0, StatusCode::OK);
    assert_eq!(orders.read(&dave, "o-2").await.0, StatusCode::FORBIDDEN);

    // Creating needs `orders.write`.
    let (status, v) = orders.create(&alice, json!({"item": "staples"})).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let created = v["id"].as_str().unwrap().to_owned();
    assert_eq!(orders.read(&alice, &created).await.0, StatusCode::OK);
    let (status, v) = orders.create(&bob, json!({"item": "staples"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");

    // Every decision reaches the authority's decision log, newest first.
    let deadline = Instant::now() + Duration::from_secs(5);
    let rows = loop {
        let (status, v) = ta.admin(Method::GET, "/decisions/orders?limit=1000", None).await;
        assert_eq!(status, 200, "{v}");
        let rows = v["decisions"].as_array().unwrap().clone();
        if rows.len() >= orders.decisions {
            break rows;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} decisions shipped",
            rows.len(),
            orders.decisions
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(rows.len(), orders.decisions);
    let ids: Vec<i64> = rows.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    for r in &rows {
        assert_eq!(r["reporter"], log_id.as_str());
    }
    let principal = |c: &Caller| format!("Principal::\"{}\"", c.sub);
    let find = |who: &Caller, resource: &str, decision: &str| {
        rows.iter()
            .find(|r| {
                r["principal"] == principal(who).as_str() && r["resource"] == resource && r["decision"] == decision
            })
            .unwrap_or_else(|| panic!("no {decision} row for {resource}: {rows:#?}"))
    };
    // Newest first, so each `find` is the latest such decision.
    let denied = find(&bob, "Order::\"o-2\"", "deny");
    assert_eq!(denied["action"], "Action::\"read\"");
    assert_eq!(denied["reason"], "forbidden");
    assert_eq!(denied["policies"], json!(["confidential-owner-only"]));
    assert_eq!(denied["policy_version"], 2);
    let allowed = find(&bob, "Order::\"o-1\"", "allow");
    assert_eq!(allowed["policies"], json!(["team-reads"]));
    assert_eq!(allowed["policy_version"], 2);
    let before = rows
        .iter()
        .rev()
        .find(|r| r["principal"] == principal(&bob).as_str() && r["resource"] == "Order::\"o-1\"")
        .unwrap();
    assert_eq!(
        (&before["decision"], &before["reason"], &before["policy_version"]),
        (&json!("deny"), &json!("no_permit"), &json!(1))
    );
    let managed = find(&dave, "Order::\"o-1\"", "allow");
    assert_eq!(managed["policies"], json!(["manager-reads-team"]));
    let created_row = find(&alice, &format!("Order::\"{created}\""), "allow");
    assert_eq!(created_row["action"], "Action::\"read\"");
    let create = rows
        .iter()
        .find(|r| r["action"] == "Action::\"create\"" && r["principal"] == principal(&alice).as_str())
        .unwrap();
    assert_eq!(create["policies"], json!(["writers-create"]));
    let refused = rows
        .iter()
        .find(|r| r["action"] == "Action::\"create\"" && r["principal"] == principal(&bob).as_str())
        .unwrap();
    assert_eq!(refused["reason"], "no_permit");

    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
