//! Test helpers shared by the validators' unit tests: one resolver with
//! canned A/AAAA, TXT and CAA answers, validation requests to go with it,
//! and for the validators that connect (http-01, tls-alpn-01) a listener on
//! a free loopback port, a policy that lets them reach it, and the two ways
//! to unpack an [`Outcome`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;

use crate::error::Error;
use crate::model::{AccountId, Authz, AuthzId, AuthzState, ChallengeType};
use crate::protocol::Identifier;
use crate::va::addr::AddressPolicy;
use crate::va::dns::{CaaRecord, DnsError, DnsFuture, Resolver};
use crate::va::{Outcome, ValidationRequest};

/// The account URL of [`request`].
pub(super) const ACCOUNT_URI: &str = "https://ca.test/acme/acct/acct1";

/// The key authorization of [`request`].
pub(super) const KEY_AUTHZ: &str = "token123.thumbprint456";

/// The token of [`token_request`]: base64url, as http-01 puts it in a URL
/// path.
pub(super) const TOKEN: &str = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA";

/// The key authorization of [`token_request`]: [`TOKEN`], a dot, and an
/// account key thumbprint.
pub(super) const KEY_AUTH: &str =
    "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA.9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI";

/// How [`FakeResolver`] describes itself unless told otherwise.
pub(super) const DESCRIBED: &str = "10.0.0.53:53";

/// Canned answers by name. A name without an A/AAAA or TXT answer is
/// NXDOMAIN; a name without a CAA answer has no CAA records (NOERROR).
/// Remembers the names asked for TXT and CAA records, in order.
#[derive(Default)]
pub(super) struct FakeResolver {
    ip: HashMap<String, Result<Vec<IpAddr>, DnsError>>,
    txt: HashMap<String, Result<Vec<String>, DnsError>>,
    caa: HashMap<String, Result<Vec<CaaRecord>, DnsError>>,
    described: Option<String>,
    asked: Mutex<Vec<String>>,
}

impl FakeResolver {
    /// Adds the A and AAAA records of `name`: `addrs`, each an IP address.
    pub(super) fn ip(mut self, name: &str, addrs: &[&str]) -> Self {
        let addrs = addrs.iter().map(|a| a.parse().expect("an IP address"));
        self.ip.insert(name.to_owned(), Ok(addrs.collect()));
        self
    }

    /// Adds the answer for TXT at `name`.
    pub(super) fn txt(mut self, name: &str, answer: Result<Vec<&str>, DnsError>) -> Self {
        self.txt.insert(
            name.to_owned(),
            answer.map(|v| v.into_iter().map(str::to_owned).collect()),
        );
        self
    }

    /// Adds the answer for CAA at `name`.
    pub(super) fn caa(mut self, name: &str, answer: Result<Vec<CaaRecord>, DnsError>) -> Self {
        self.caa.insert(name.to_owned(), answer);
        self
    }

    /// Adds CAA records at `name`, each `(critical, tag, value)`.
    pub(super) fn caa_records(self, name: &str, records: &[(bool, &str, &str)]) -> Self {
        let rrset = records
            .iter()
            .map(|(critical, tag, value)| CaaRecord {
                critical: *critical,
                tag: (*tag).to_owned(),
                value: value.as_bytes().to_vec(),
            })
            .collect();
        self.caa(name, Ok(rrset))
    }

    /// Describes itself as `servers` (the resolver addresses in error
    /// details and dns-01 records) instead of [`DESCRIBED`].
    pub(super) fn described_as(mut self, servers: &str) -> Self {
        self.described = Some(servers.to_owned());
        self
    }

    /// The resolver as the validators take it.
    pub(super) fn shared(self) -> Arc<dyn Resolver> {
        Arc::new(self)
    }

    /// The names asked for TXT or CAA records so far, in order.
    pub(super) fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }
}

impl Resolver for FakeResolver {
    fn lookup_ip<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Vec<IpAddr>> {
        let answer = self.ip.get(name).cloned();
        Box::pin(async move { answer.unwrap_or(Err(DnsError::NxDomain)) })
    }
    fn lookup_txt<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Vec<String>> {
        self.asked.lock().unwrap().push(name.to_owned());
        let answer = self.txt.get(name).cloned();
        Box::pin(async move { answer.unwrap_or(Err(DnsError::NxDomain)) })
    }
    fn lookup_caa<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Vec<CaaRecord>> {
        self.asked.lock().unwrap().push(name.to_owned());
        let answer = self.caa.get(name).cloned();
        Box::pin(async move { answer.unwrap_or(Ok(Vec::new())) })
    }
    fn describe(&self) -> String {
        self.described.as_deref().unwrap_or(DESCRIBED).to_owned()
    }
}

/// A request to validate `identifier` by `kind` for the account
/// [`ACCOUNT_URI`] with key authorization [`KEY_AUTHZ`].
pub(super) fn request(
    kind: ChallengeType,
    identifier: Identifier,
    wildcard: bool,
) -> ValidationRequest {
    ValidationRequest {
        account_uri: ACCOUNT_URI.to_owned(),
        authz: Authz {
            id: AuthzId("authz1".to_owned()),
            account_id: AccountId("acct1".to_owned()),
            identifier,
            wildcard,
            state: AuthzState::Pending,
            expires: 0,
            token: "token123".to_owned(),
            offered: vec![kind],
            attempt: None,
            created_at: 0,
        },
        kind,
        key_authorization: KEY_AUTHZ.to_owned(),
    }
}

/// A request to validate `identifier` (not a wildcard) by `kind`, with the
/// token [`TOKEN`] and the key authorization [`KEY_AUTH`].
pub(super) fn token_request(kind: ChallengeType, identifier: Identifier) -> ValidationRequest {
    let mut req = request(kind, identifier, false);
    req.authz.token = TOKEN.to_owned();
    req.key_authorization = KEY_AUTH.to_owned();
    req
}

/// A listener on a free port of 127.0.0.1, and the port.
pub(super) async fn local_listener() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

/// The address policy of test setups: loopback (where the test servers
/// listen) may be reached.
pub(super) fn reach_loopback() -> AddressPolicy {
    AddressPolicy {
        allow_reserved: true,
    }
}

/// The records of a valid outcome; panics on an invalid one.
#[track_caller]
pub(super) fn valid(outcome: Outcome) -> serde_json::Value {
    match outcome {
        Outcome::Valid { records } => records,
        Outcome::Invalid { error, records } => {
            panic!("expected valid, got {error} (records {records})")
        }
    }
}

/// The error and records of an invalid outcome; panics on a valid one.
#[track_caller]
pub(super) fn invalid(outcome: Outcome) -> (Error, serde_json::Value) {
    match outcome {
        Outcome::Invalid { error, records } => (error, records),
        Outcome::Valid { records } => panic!("expected invalid, got valid (records {records})"),
    }
}
