#![allow(clippy::unwrap_used)]
use castellan_authz::*;
use castellan_verify::{VerifiedClaims, VerifiedToken};
use std::time::Instant;
fn main() {
    let token = VerifiedToken::new(VerifiedClaims { iss: "i".into(), sub: "alice".into(), aud: "a".into(), client_id: "c".into(), sid: "s".into(), jti: "j".into(), scope: Some("openid orders:read team-3:read team-3:write".into()), iat: 0, exp: 1, kid: "k".into(), act: None, cnf_x5t_s256: None });
    let n = 2_000_000;
    let t = Instant::now();
    for _ in 0..n { std::hint::black_box(gate_request(&token, None, "GET", "/team-3/orders/1").unwrap()); }
    println!("gate_request {:.2} us", t.elapsed().as_secs_f64() * 1e6 / n as f64);
    let t = Instant::now();
    for _ in 0..n { std::hint::black_box(principal_entity(&token, None).unwrap()); }
    println!("principal_entity {:.2} us", t.elapsed().as_secs_f64() * 1e6 / n as f64);
}
