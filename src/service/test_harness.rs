//! The harness the service's in-process tests share (the REST API's in
//! `http_tests`, the console's in `console::tests`): a server built in a
//! temporary directory with the service on and one token per role (two
//! agents, two requesters), and its router driven without a socket.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;

use super::config::TokenConfig;
use super::Service;
use crate::config::Config;
use crate::model::service::Role;
use crate::server::Server;

pub(crate) const ADMIN: &str = "admin-token-0123456789";
pub(crate) const AGENT: &str = "agent-token-0123456789";
pub(crate) const AGENT2: &str = "agent2-token-012345678";
pub(crate) const ALICE: &str = "alice-token-0123456789";
pub(crate) const BOB: &str = "bob-token-012345678901";
pub(crate) const KEK: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// A server with the service on, and the service's router.
pub(crate) struct Harness {
    pub(crate) router: Router,
    pub(crate) server: Server,
    pub(crate) service: Arc<Service>,
    _dir: tempfile::TempDir,
}

/// An answer, its body read whole.
pub(crate) struct R {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

/// A server whose configuration `adjust` changes before it is validated:
/// tokens root (admin), ann and art (agents), alice and bob (requesters);
/// every challenge valid, listeners on ports the OS picks.
pub(crate) async fn harness(adjust: impl FnOnce(&mut Config)) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.server.data_dir = dir.path().to_path_buf();
    config.validation.always_valid = true;
    config.status.listen = "127.0.0.1:0".parse().unwrap();
    config.service.enabled = true;
    config.service.listen = "127.0.0.1:0".parse().unwrap();
    config.service.kek = Some(KEK.into());
    let token = |name: &str, token: &str, role| TokenConfig {
        name: name.into(),
        token: token.into(),
        role,
    };
    config.service.tokens = vec![
        token("root", ADMIN, Role::Admin),
        token("ann", AGENT, Role::Agent),
        token("art", AGENT2, Role::Agent),
        token("alice", ALICE, Role::Requester),
        token("bob", BOB, Role::Requester),
    ];
    adjust(&mut config);
    config.validate().unwrap();
    let server = Server::build(&config, "127.0.0.1:14000".parse().unwrap())
        .await
        .unwrap();
    let service = server.service.as_ref().unwrap().1.clone();
    Harness {
        router: super::http::router(service.clone()),
        server,
        service,
        _dir: dir,
    }
}

impl Harness {
    /// Sends `req` through the router and reads the whole answer.
    pub(crate) async fn send(&self, req: Request<Body>) -> R {
        let (status, headers, body) =
            crate::test_support::read_answer(self.router.clone(), req).await;
        R {
            status,
            headers,
            body,
        }
    }
}
