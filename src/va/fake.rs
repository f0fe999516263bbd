//! Test helpers shared by the DNS validators' unit tests: a resolver with
//! canned TXT answers and a validation request to go with it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use crate::model::{AccountId, Authz, AuthzId, AuthzState, ChallengeType};
use crate::protocol::Identifier;
use crate::va::dns::{CaaRecord, DnsError, DnsFuture, Resolver};
use crate::va::ValidationRequest;

/// The account URL of [`request`].
pub const ACCOUNT_URI: &str = "https://ca.test/acme/acct/acct1";

/// The key authorization of [`request`].
pub const KEY_AUTHZ: &str = "token123.thumbprint456";

/// Canned TXT answers by name; any other name is NXDOMAIN. Remembers the
/// names asked.
#[derive(Default)]
pub struct FakeResolver {
    txt: HashMap<String, Result<Vec<String>, DnsError>>,
    asked: Mutex<Vec<String>>,
}

impl FakeResolver {
    /// Adds the answer for TXT at `name`.
    pub fn txt(mut self, name: &str, answer: Result<Vec<&str>, DnsError>) -> Self {
        self.txt.insert(
            name.to_owned(),
            answer.map(|v| v.into_iter().map(str::to_owned).collect()),
        );
        self
    }

    /// The names asked so far, in order.
    pub fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }
}

impl Resolver for FakeResolver {
    fn lookup_ip<'a>(&'a self, _name: &'a str) -> DnsFuture<'a, Vec<IpAddr>> {
        Box::pin(async { Err(DnsError::NxDomain) })
    }
    fn lookup_txt<'a>(&'a self, name: &'a str) -> DnsFuture<'a, Vec<String>> {
        self.asked.lock().unwrap().push(name.to_owned());
        let answer = self.txt.get(name).cloned();
        Box::pin(async move { answer.unwrap_or(Err(DnsError::NxDomain)) })
    }
    fn lookup_caa<'a>(&'a self, _name: &'a str) -> DnsFuture<'a, Vec<CaaRecord>> {
        Box::pin(async { Ok(Vec::new()) })
    }
    fn describe(&self) -> String {
        "10.0.0.53:53".to_owned()
    }
}

/// A request to validate `identifier` by `kind` for the account
/// [`ACCOUNT_URI`] with key authorization [`KEY_AUTHZ`].
pub fn request(kind: ChallengeType, identifier: Identifier, wildcard: bool) -> ValidationRequest {
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
