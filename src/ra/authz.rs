//! Authorizations and challenges (RFC 8555 §7.5): reading and
//! deactivating an authorization, answering a challenge (the VA validates
//! it, inline or queued), the challenge types offered, newAuthz
//! (§7.4.1), and failed validations counted against the rate limits.

use super::state;
use super::{secs, Ra};
use crate::error::{Error, ErrorKind, Result};
use crate::jose::Jwk;
use crate::model::{Account, Authz, AuthzId, AuthzState, ChallengeType, Timestamp};
use crate::protocol::{Identifier, IdentifierType};
use crate::store::challenge_started;
use crate::store::shared::Found;
use crate::va::ValidationRequest;

impl Ra {
    /// An authorization of `account`: as `found` if the request's nonce
    /// step read it already, else read now.
    pub(crate) async fn authz(
        &self,
        account: &Account,
        id: &AuthzId,
        found: Option<Found>,
    ) -> Result<Authz> {
        let authz = match found.and_then(|f| f.authz(id)) {
            Some(read) => read,
            None => self.store.authz_by_id(id).await?,
        }
        .ok_or_else(|| Error::not_found("no such authorization"))?;
        Self::check_owner(account, &authz.account_id, "authorization")?;
        Ok(authz)
    }

    /// Authorization deactivation (RFC 8555 §7.5.2): a pending or valid
    /// authorization of `account` becomes deactivated.
    pub(crate) async fn deactivate_authz(
        &self,
        account: &Account,
        id: &AuthzId,
        found: Option<Found>,
    ) -> Result<Authz> {
        let authz = self.authz(account, id, found).await?;
        let status = state::authz_status(&authz, self.now());
        let live = matches!(
            status,
            state::AuthzStatus::Pending | state::AuthzStatus::Valid
        );
        if !live || !self.store.deactivate_authz(&authz.id).await? {
            return Err(Error::malformed(format!(
                "only a pending or valid authorization can be deactivated; this one is {}",
                status.as_str()
            )));
        }
        self.authz(account, id, None).await
    }

    /// POST to a challenge (RFC 8555 §7.5.1): starts its validation if the
    /// authorization is pending and has no attempt yet; otherwise the
    /// challenge is returned as it stands.
    ///
    /// `account_url` is the account's URL as the client was given it (the
    /// request's base, which is `server.external_url` when set): the
    /// dns-account-01 label and the dns-persist-01 `accounturi` are derived
    /// from the URL the client knows.
    pub(crate) async fn answer_challenge(
        &self,
        account: &Account,
        jwk: &Jwk,
        id: &AuthzId,
        kind: ChallengeType,
        account_url: String,
        found: Option<Found>,
    ) -> Result<Authz> {
        let authz = self.authz(account, id, found).await?;
        if !authz.offered.contains(&kind) {
            return Err(Error::not_found("no such challenge"));
        }
        let now = self.now();
        if authz.state != AuthzState::Pending || authz.attempt.is_some() || now >= authz.expires {
            // Already settled or in progress: report it as it is (the
            // client polls the authorization anyway).
            return Ok(authz);
        }
        let reservation = self.va.reserve()?;
        let req = ValidationRequest {
            key_authorization: crate::jose::key_authorization(&authz.token, jwk),
            account_uri: account_url,
            authz,
            kind,
        };
        // The authorization as this request's attempt leaves it, or, if
        // another request started one first, as stored.
        if self.va.is_inline() {
            let result = self.va.validate_now(&req).await;
            if self
                .store
                .start_challenge(&req.authz.id, kind, now, Some(&result))
                .await?
            {
                self.va.recorded_inline(&result);
                if result.state == crate::model::AttemptState::Invalid {
                    self.validation_failed(&req.authz).await;
                }
                return challenge_started(&req.authz, kind, now, Some(&result));
            }
        } else if self
            .store
            .start_challenge(&req.authz.id, kind, now, None)
            .await?
        {
            let started = challenge_started(&req.authz, kind, now, None)?;
            self.va.submit(reservation, req);
            return Ok(started);
        }
        self.store
            .authz_by_id(id)
            .await?
            .ok_or_else(|| Error::internal("authorization vanished"))
    }

    /// The challenge types a new authorization for `identifier` offers:
    /// for a wildcard the DNS-based types only (RFC 8555 §7.1.3, and the
    /// dns-account-01 and dns-persist-01 drafts), for an IP address http-01
    /// and tls-alpn-01 (RFC 8738 §7), else every type; the two draft types
    /// only where the config enables them.
    pub(crate) fn offered_challenges(
        &self,
        identifier: &Identifier,
        wildcard: bool,
    ) -> Vec<ChallengeType> {
        ChallengeType::ALL
            .into_iter()
            .filter(|t| match t {
                ChallengeType::DnsAccount01 => self.settings.dns_account_01,
                ChallengeType::DnsPersist01 => self.settings.dns_persist_01,
                _ => true,
            })
            .filter(|t| match identifier.kind {
                IdentifierType::Ip => {
                    matches!(t, ChallengeType::Http01 | ChallengeType::TlsAlpn01)
                }
                IdentifierType::Dns => !wildcard || t.validates_wildcards(),
                IdentifierType::Unknown => false,
            })
            .collect()
    }

    /// The issuer domain names dns-persist-01 challenges list.
    pub(crate) fn issuer_domain_names(&self) -> &[String] {
        &self.settings.issuer_domain_names
    }

    /// newAuthz (RFC 8555 §7.4.1): a pending authorization for one DNS name
    /// or IP address, outside any order.
    pub(crate) async fn new_authz(
        &self,
        account: &Account,
        identifier: &Identifier,
    ) -> Result<Authz> {
        if identifier.kind == IdentifierType::Dns && identifier.value.starts_with("*.") {
            return Err(Error::new(
                ErrorKind::RejectedIdentifier,
                "pre-authorization is not available for wildcard names; order them instead",
            ));
        }
        let c = self.policy.check(identifier)?;
        let identifier = c.authz_identifier();
        let offered = self.offered_challenges(&identifier, false);
        let now = self.now();
        let expires = now + secs(self.pending_authz_lifetime());
        let authz = new_authz(account, identifier, false, offered, expires, now);
        self.store.create_authz(&authz).await?;
        Ok(authz)
    }

    /// Counts a failed validation against its account and hostname
    /// (`failed_validations`). Successes do not refill the bucket, as in
    /// Boulder: it refills with time only.
    pub(crate) async fn validation_failed(&self, authz: &Authz) {
        if let Some(limits) = &self.limits {
            limits.validation_failed(authz).await;
        }
    }
}

/// A new pending authorization.
pub(super) fn new_authz(
    account: &Account,
    identifier: Identifier,
    wildcard: bool,
    offered: Vec<ChallengeType>,
    expires: Timestamp,
    now: Timestamp,
) -> Authz {
    let mut token = [0u8; 32];
    crate::rand::fill(&mut token);
    Authz {
        id: AuthzId::random(),
        account_id: account.id.clone(),
        identifier,
        wildcard,
        state: AuthzState::Pending,
        expires,
        token: crate::jose::b64::encode(token),
        offered,
        attempt: None,
        created_at: now,
    }
}
