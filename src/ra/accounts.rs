//! Accounts (RFC 8555 §7.3): newAccount with its external account
//! binding and rate limit, account updates and deactivation, keyChange,
//! the account a `kid` names, and the rules for contact URLs.

use super::{policy, Ra};
use crate::error::{Error, ErrorKind, Result};
use crate::jose::eab;
use crate::jose::{Jwk, Jws, KeyRef};
use crate::model::{Account, AccountId, AccountStatus};
use crate::protocol::{KeyChange, NewAccount};
use crate::store::shared::{Found, Lookup};
use crate::store::AccountCreation;

/// The most contacts an account may list.
pub(super) const MAX_CONTACTS: usize = 10;

/// Checks an account's contact URLs (RFC 8555 §7.3: "mailto:" URLs; other
/// schemes are unsupportedContact, bad addresses invalidContact).
pub(super) fn check_contacts(contacts: &[String]) -> Result<()> {
    if contacts.len() > MAX_CONTACTS {
        return Err(Error::new(
            ErrorKind::InvalidContact,
            format!("at most {MAX_CONTACTS} contacts are allowed"),
        ));
    }
    for c in contacts {
        let Some(addr) = c.strip_prefix("mailto:") else {
            let scheme = c.split(':').next().unwrap_or("");
            return Err(Error::new(
                ErrorKind::UnsupportedContact,
                format!(
                    "contact scheme {:?} is not supported; use mailto:",
                    scheme.chars().take(20).collect::<String>()
                ),
            ));
        };
        let invalid = |why: &str| {
            Error::new(
                ErrorKind::InvalidContact,
                format!(
                    "contact {:?} is invalid: {why}",
                    c.chars().take(100).collect::<String>()
                ),
            )
        };
        if addr.contains(['?', ',', '%', ' ', '<', '>', '"']) || addr.len() > 254 {
            return Err(invalid(
                "one plain e-mail address per mailto: URL, without header fields",
            ));
        }
        // CR/LF (header injection), NUL, TAB, DEL and every other control
        // character; one '@' only.
        if addr.chars().any(char::is_control) {
            return Err(invalid("control characters are not allowed"));
        }
        if addr.matches('@').count() != 1 {
            return Err(invalid("an address has exactly one '@'"));
        }
        let Some((local, domain)) = addr.rsplit_once('@') else {
            return Err(invalid("missing '@'"));
        };
        if local.is_empty() || local.len() > 64 || !local.is_ascii() {
            return Err(invalid("bad local part"));
        }
        if policy::check_dns_name(domain).is_err() || domain.starts_with("*.") {
            return Err(invalid("the domain is not a valid DNS name"));
        }
    }
    Ok(())
}

impl Ra {
    /// newAccount (RFC 8555 §7.3): returns the account and whether it was
    /// created by this request. `url` is the newAccount URL the request was
    /// posted to (an external account binding must name it); `client` the
    /// address it came from, for `new_accounts_per_ip` (None: not counted).
    pub(crate) async fn new_account(
        &self,
        jwk: &Jwk,
        url: &str,
        req: &NewAccount,
        client: Option<std::net::IpAddr>,
    ) -> Result<(Account, bool)> {
        if let Some(existing) = self.store.account_by_thumbprint(jwk.thumbprint()).await? {
            return Ok((existing, false));
        }
        if req.only_return_existing == Some(true) {
            return Err(Error::new(
                ErrorKind::AccountDoesNotExist,
                "no account exists with this key",
            ));
        }
        jwk.check_rsa_size(self.settings.min_rsa_bits)?;
        let contact = req.contact.clone().unwrap_or_default();
        check_contacts(&contact)?;
        let tos_agreed = req.terms_of_service_agreed == Some(true);
        if self.settings.require_tos && !tos_agreed {
            return Err(Error::malformed(
                "the terms of service must be agreed to (termsOfServiceAgreed: true)",
            ));
        }
        // RFC 8555 §7.3.4. Without configured keys a binding is ignored.
        let eab_kid = match &req.external_account_binding {
            Some(binding) if !self.settings.eab_keys.is_empty() => Some(
                eab::verify_binding(binding, jwk, url, |kid| self.settings.eab_keys.get(kid))?.kid,
            ),
            _ if self.settings.eab_required => {
                return Err(Error::new(
                    ErrorKind::ExternalAccountRequired,
                    "this server requires an external account binding (externalAccountBinding)",
                ))
            }
            _ => None,
        };
        let account = Account {
            id: AccountId::random(),
            status: AccountStatus::Valid,
            jwk: jwk.canonical_json().to_owned(),
            thumbprint: jwk.thumbprint().to_owned(),
            contact,
            tos_agreed,
            created_at: self.now(),
        };
        // Only a request that would create an account spends from its
        // address's bucket; one that creates none gets it back.
        let spent = match (&self.limits, client) {
            (Some(limits), Some(ip)) => {
                Some(limits.spend(&limits.new_account_transactions(ip)).await?)
            }
            _ => None,
        };
        // With reuse, a key id is checked but not bound (Pebble).
        let bind_kid = eab_kid.as_deref().filter(|_| !self.settings.eab_key_reuse);
        let created = self.store.create_account(&account, bind_kid).await;
        if !matches!(created, Ok(AccountCreation::Created)) {
            self.refund(spent).await;
        }
        match created? {
            AccountCreation::Created => Ok((account, true)),
            AccountCreation::Existing(a) => Ok((a, false)),
            AccountCreation::KeyIdTaken => Err(Error::unauthorized(
                "this external account key is already bound to another account",
            )),
        }
    }

    /// The account a `kid` names, if it exists and is valid (RFC 8555 §6.2).
    pub(crate) async fn account_for_kid(&self, id: &AccountId) -> Result<Account> {
        usable_for_kid(self.store.account_by_id(id).await?)
    }

    /// [`Ra::account_for_kid`] with a fleet nonce spent, and the record
    /// `lookup` names read, in the same database step (one round trip on
    /// PostgreSQL): the account, whether the nonce was fresh, and what the
    /// lookup found (for [`Ra::authz`], [`Ra::order`] and
    /// [`Ra::certificate`], which check it is the account's). The nonce is
    /// spent even when the account turns out unusable.
    pub(crate) async fn account_for_kid_spending_nonce(
        &self,
        id: &AccountId,
        nonce: &[u8],
        keep_until_ms: i64,
        lookup: Option<&Lookup>,
    ) -> Result<(Account, bool, Option<Found>)> {
        let spent = self
            .shared
            .spend_nonce_reading_account(nonce, keep_until_ms, id, lookup)
            .await?;
        Ok((usable_for_kid(spent.account)?, spent.fresh, spent.found))
    }

    /// Account update or deactivation (RFC 8555 §7.3.2, §7.3.6).
    pub(crate) async fn update_account(
        &self,
        account: &Account,
        contact: Option<&[String]>,
        status: Option<&str>,
    ) -> Result<Account> {
        match status {
            None | Some("valid") => {}
            Some("deactivated") => {
                if !self.store.deactivate_account(&account.id).await? {
                    return Err(Error::unauthorized("the account is not valid"));
                }
            }
            Some(other) => {
                return Err(Error::malformed(format!(
                    "an account's status can only be set to \"deactivated\", not {:?}",
                    other.chars().take(30).collect::<String>()
                )))
            }
        }
        if let (Some(contact), None | Some("valid")) = (contact, status) {
            check_contacts(contact)?;
            if !self
                .store
                .update_account_contact(&account.id, contact)
                .await?
            {
                return Err(Error::unauthorized("the account is not valid"));
            }
        }
        self.store
            .account_by_id(&account.id)
            .await?
            .ok_or_else(|| Error::internal("account vanished during update"))
    }

    /// keyChange (RFC 8555 §7.3.5), after the outer JWS was verified with
    /// `account`'s key: checks the inner JWS and moves the account to the
    /// new key. `Ok(Err(id))`: the new key already belongs to account `id`
    /// (the caller answers 409 with its URL).
    pub(crate) async fn change_key(
        &self,
        account: &Account,
        account_url: &str,
        outer_url: &str,
        inner: &Jws,
    ) -> Result<std::result::Result<Account, AccountId>> {
        let KeyRef::Jwk(new_key) = &inner.protected.key else {
            return Err(Error::malformed(
                "the inner JWS of keyChange must carry the new key as \"jwk\"",
            ));
        };
        if inner.protected.nonce.is_some() {
            return Err(Error::malformed(
                "the inner JWS of keyChange must not have a nonce",
            ));
        }
        if inner.protected.url != outer_url {
            return Err(Error::malformed(
                "the inner and outer JWS of keyChange must have the same url",
            ));
        }
        inner
            .verify(new_key)
            .map_err(|e| Error::new(e.kind, format!("inner JWS of keyChange: {}", e.detail)))?;
        let req: KeyChange = serde_json::from_slice(inner.payload())
            .map_err(|e| Error::malformed(format!("the keyChange payload is not valid: {e}")))?;
        if req.account != account_url {
            return Err(Error::unauthorized(
                "the keyChange payload names another account than the outer JWS's kid",
            ));
        }
        new_key.check_rsa_size(self.settings.min_rsa_bits)?;
        let old_key = Jwk::from_json(&req.old_key)?;
        if old_key.canonical_json() != account.jwk {
            return Err(Error::unauthorized(
                "oldKey in the keyChange payload is not the account's current key",
            ));
        }
        if new_key.thumbprint() == account.thumbprint {
            return Err(Error::malformed("the new key is the account's current key"));
        }
        if let Some(other) = self
            .store
            .account_by_thumbprint(new_key.thumbprint())
            .await?
        {
            return Ok(Err(other.id));
        }
        let changed = self
            .store
            .change_account_key(
                &account.id,
                &account.thumbprint,
                new_key.canonical_json(),
                new_key.thumbprint(),
            )
            .await?;
        if !changed {
            // A concurrent request took the key, or changed or deactivated
            // the account.
            if let Some(other) = self
                .store
                .account_by_thumbprint(new_key.thumbprint())
                .await?
            {
                return Ok(Err(other.id));
            }
            return Err(Error::unauthorized(
                "the account changed while its key was being replaced",
            ));
        }
        let updated = self
            .store
            .account_by_id(&account.id)
            .await?
            .ok_or_else(|| Error::internal("account vanished during key change"))?;
        tracing::info!(account = %account.id, "account key changed");
        Ok(Ok(updated))
    }
}

/// The account a `kid` names, if it exists and is valid (RFC 8555 §6.2).
fn usable_for_kid(account: Option<Account>) -> Result<Account> {
    let account = account.ok_or_else(|| {
        Error::new(
            ErrorKind::AccountDoesNotExist,
            "the account in kid does not exist",
        )
    })?;
    if account.status != AccountStatus::Valid {
        return Err(Error::unauthorized(format!(
            "the account is {}",
            account.status.as_str()
        )));
    }
    Ok(account)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contacts() {
        let ok = |c: &str| check_contacts(&[c.to_string()]);
        assert!(ok("mailto:admin@example.com").is_ok());
        assert_eq!(
            ok("tel:+1555").unwrap_err().kind,
            ErrorKind::UnsupportedContact
        );
        assert_eq!(
            ok("admin@example.com").unwrap_err().kind,
            ErrorKind::UnsupportedContact
        );
        for bad in [
            "mailto:",
            "mailto:admin",
            "mailto:@example.com",
            "mailto:a@b",
            "mailto:a@example..com",
            "mailto:a@example.com?subject=x",
            "mailto:a@example.com,b@example.com",
            "mailto:a b@example.com",
            // Header injection and other control characters; two '@'.
            "mailto:a\r\nBcc:victim@evil.com\r\n@example.com",
            "mailto:a\0b@example.com",
            "mailto:a\tb@example.com",
            "mailto:a\x7fb@example.com",
            "mailto:a@example.com\n",
            "mailto:a@b@example.com",
        ] {
            assert_eq!(
                ok(bad).unwrap_err().kind,
                ErrorKind::InvalidContact,
                "{bad}"
            );
        }
        let many: Vec<String> = (0..11)
            .map(|i| format!("mailto:a{i}@example.com"))
            .collect();
        assert_eq!(
            check_contacts(&many).unwrap_err().kind,
            ErrorKind::InvalidContact
        );
    }
}
