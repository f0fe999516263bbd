//! Orders (RFC 8555 §7.4): newOrder with its authorizations (new or
//! reused), requested validity and rate limits; `replaces` (RFC 9773 §5);
//! certificate profiles; one order and an account's orders list.

use super::ari::CertIdent;
use super::authz::new_authz;
use super::policy::CheckedIdentifier;
use super::profile::Profile;
use super::state::{order_status, OrderStatus};
use super::{secs, Ra};
use crate::ca::csr;
use crate::error::{Error, ErrorKind, Result};
use crate::model::{Account, Authz, CertId, ChallengeType, Order, OrderId, Timestamp};
use crate::protocol::{Identifier, NewOrder};
use crate::store::shared::Found;
use crate::store::OrderListEntry;

impl Ra {
    /// The profile named `name`, or the default one (a random one under
    /// `random_profile`).
    pub(crate) fn profile(&self, name: Option<&str>) -> Result<&Profile> {
        if name.is_none() && self.settings.random_profile && !self.settings.profiles.is_empty() {
            let mut b = [0u8; 4];
            crate::rand::fill(&mut b);
            let i = u32::from_le_bytes(b) as usize % self.settings.profiles.len();
            if let Some(p) = self.settings.profiles.values().nth(i) {
                return Ok(p);
            }
        }
        let name = name.unwrap_or(&self.settings.default_profile);
        self.settings.profiles.get(name).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidProfile,
                format!(
                    "there is no profile {:?}; the directory lists the profiles ({})",
                    name.chars().take(64).collect::<String>(),
                    self.settings
                        .profiles
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })
    }

    /// newOrder (RFC 8555 §7.4): an authorization per identifier, new or
    /// (under `authz_reuse`) one of the account's still-valid ones.
    pub(crate) async fn new_order(
        &self,
        account: &Account,
        req: &NewOrder,
    ) -> Result<(Order, Vec<Authz>)> {
        let checked = self.policy.check_order(&req.identifiers)?;
        let profile = self.profile(req.profile.as_deref())?;
        profile.check_identifiers(&req.identifiers)?;
        let now = self.now();
        let (not_before, not_after) = self.requested_validity(req, profile, now)?;
        let order_id = OrderId::random();
        let replaces = match &req.replaces {
            Some(text) => Some(self.check_replaces(account, text, &checked).await?),
            None => None,
        };
        let (authzs, new_authzs) = self.order_authzs(account, &checked, now).await?;
        let order = Order {
            id: order_id,
            account_id: account.id.clone(),
            identifiers: checked.into_iter().map(|c| c.identifier).collect(),
            authz_ids: authzs.iter().map(|a| a.id.clone()).collect(),
            // An order never outlives its authorizations (§7.1.3).
            expires: authzs
                .iter()
                .map(|a| a.expires)
                .fold(now + secs(self.settings.order_lifetime), i64::min),
            not_before,
            not_after,
            processing_until: None,
            cert_id: None,
            error: None,
            created_at: now,
            profile: profile.name.clone(),
            replaces: replaces.as_ref().map(|r| r.text.clone()),
        };
        let spent = self
            .order_limits(account, &order.identifiers, new_authzs.len())
            .await?;
        let claim = replaces.as_ref().map(|r| (&r.cert, r.expected.as_ref()));
        let created = self.store.create_order(&order, &new_authzs, claim).await;
        if !matches!(created, Ok(true)) {
            self.refund(spent).await;
        }
        if !created? {
            // Another order took the replacement since it was checked.
            return Err(already_replaced());
        }
        Ok((order, authzs))
    }

    /// The authorizations of a new order, one per identifier: with
    /// `authz_reuse`'s chance, the account's still-valid ones where there
    /// are; new pending ones for the rest. Returns all of them, in the
    /// order's identifier order, and the new ones (to be written).
    async fn order_authzs(
        &self,
        account: &Account,
        checked: &[CheckedIdentifier],
        now: Timestamp,
    ) -> Result<(Vec<Authz>, Vec<Authz>)> {
        let authz_expires = now + secs(self.pending_authz_lifetime());
        let reuse = crate::rand::percent_chance(self.settings.authz_reuse);
        // A reused authorization must stay valid a while: a day, or half
        // its lifetime if that is shorter.
        let min_expires = now + secs(self.settings.valid_authz_lifetime / 2).min(86400);
        let mut authzs = Vec::with_capacity(checked.len());
        let mut new_authzs = Vec::with_capacity(checked.len());
        for c in checked {
            let identifier = c.authz_identifier();
            if reuse {
                if let Some(a) = self.reusable_authz(account, c, min_expires).await? {
                    authzs.push(a);
                    continue;
                }
            }
            let offered = self.offered_challenges(&identifier, c.wildcard);
            let authz = new_authz(account, identifier, c.wildcard, offered, authz_expires, now);
            new_authzs.push(authz.clone());
            authzs.push(authz);
        }
        Ok((authzs, new_authzs))
    }

    /// A valid authorization of `account` for `c` that lasts until
    /// `min_expires`, if one may be reused.
    async fn reusable_authz(
        &self,
        account: &Account,
        c: &CheckedIdentifier,
        min_expires: Timestamp,
    ) -> Result<Option<Authz>> {
        let found = self
            .store
            .reusable_authz(&account.id, &c.authz_identifier(), c.wildcard, min_expires)
            .await?;
        // draft-ietf-acme-dns-persist caps the reuse of its validations at
        // the record's TTL, which the VA does not learn: as Boulder, such
        // authorizations are not reused (the record, still there,
        // validates a new one at once).
        Ok(found.filter(|a| {
            !a.attempt
                .as_ref()
                .is_some_and(|t| t.kind == ChallengeType::DnsPersist01)
        }))
    }

    /// RFC 9773 §5: `replaces` must name a certificate of this account that
    /// shares an identifier with the new order and that no order which is
    /// not invalid replaces. The order's creation then claims it, if its
    /// replacement is still the one seen here.
    async fn check_replaces(
        &self,
        account: &Account,
        text: &str,
        checked: &[CheckedIdentifier],
    ) -> Result<ReplaceCheck> {
        let ident = CertIdent::parse(text)?;
        let (cert, parsed) = self.certificate_for_ari(&ident).await?.ok_or_else(|| {
            Error::malformed("replaces: this CA issued no certificate with that identifier")
        })?;
        if cert.account_id != account.id {
            return Err(Error::unauthorized(
                "replaces: the certificate belongs to another account",
            ));
        }
        let names = csr::certificate_identifiers(&parsed)?;
        if !checked.iter().any(|c| names.contains(&c.identifier)) {
            return Err(Error::malformed(
                "replaces: the certificate shares no identifier with this order",
            ));
        }
        let current = self.store.replacement_of(&cert.id).await?;
        if let Some(previous) = &current {
            // The replacing order is written with the claim, in one
            // transaction: it exists.
            if let Some((o, authzs)) = self.store.order_with_authzs(previous).await? {
                if order_status(&o, &authzs, self.now()) != OrderStatus::Invalid {
                    return Err(already_replaced());
                }
            }
        }
        Ok(ReplaceCheck {
            text: ident.encode(),
            cert: cert.id,
            expected: current,
        })
    }

    fn requested_validity(
        &self,
        req: &NewOrder,
        profile: &Profile,
        now: Timestamp,
    ) -> Result<(Option<Timestamp>, Option<Timestamp>)> {
        let parse = |field: &str, v: &Option<String>| -> Result<Option<Timestamp>> {
            v.as_deref()
                .map(|s| {
                    crate::clock::parse_rfc3339(s).ok_or_else(|| {
                        Error::malformed(format!("{field} is not an RFC 3339 date-time"))
                    })
                })
                .transpose()
        };
        let nb = parse("notBefore", &req.not_before)?;
        let na = parse("notAfter", &req.not_after)?;
        let start = nb.unwrap_or(now);
        let end = na.unwrap_or(start + secs(profile.validity) - 1);
        if nb.is_some_and(|t| t < now - secs(self.settings.backdate).max(3600)) {
            return Err(Error::malformed(
                "notBefore is in the past; certificates are not backdated on request",
            ));
        }
        if end <= start {
            return Err(Error::malformed("notAfter must be later than notBefore"));
        }
        if end <= now {
            return Err(Error::malformed("notAfter is in the past"));
        }
        if nb.is_some_and(|t| t > now + secs(self.settings.order_lifetime)) {
            return Err(Error::malformed("notBefore is too far in the future"));
        }
        // Both ends count (RFC 5280 §4.1.2.5): the span is end - start + 1.
        if end - start + 1 > secs(profile.validity) {
            return Err(Error::malformed(format!(
                "the requested validity is longer than the {:?} profile's maximum of {} seconds",
                profile.name,
                profile.validity.as_secs()
            )));
        }
        Ok((nb, na))
    }

    /// An order of `account` with its authorizations.
    pub(crate) async fn order(
        &self,
        account: &Account,
        id: &OrderId,
        found: Option<Found>,
    ) -> Result<(Order, Vec<Authz>)> {
        let (order, authzs) = match found.and_then(|f| f.order(id)) {
            Some(read) => read,
            None => self.store.order_with_authzs(id).await?,
        }
        .ok_or_else(|| Error::not_found("no such order"))?;
        Self::check_owner(account, &order.account_id, "order")?;
        Ok((order, authzs))
    }

    /// One page of the account's orders: entries plus the cursor of the next
    /// page, if there is one.
    pub(crate) async fn orders_page(
        &self,
        account: &Account,
        after: i64,
    ) -> Result<(Vec<OrderListEntry>, Option<i64>)> {
        let per_page = self.settings.orders_per_page;
        let mut entries = self
            .store
            .orders_for_account(&account.id, after, per_page + 1, self.now())
            .await?;
        let next = if entries.len() > per_page as usize {
            entries.truncate(per_page as usize);
            entries.last().map(|e| e.cursor)
        } else {
            None
        };
        Ok((entries, next))
    }

    /// newOrder's rate limits (as Boulder checks them): the certificate
    /// limits and failed validations are checked, not spent (certificates
    /// are spent at finalize), the pending-authorization ceiling is
    /// checked, then one new order is spent from the account's bucket.
    async fn order_limits(
        &self,
        account: &Account,
        identifiers: &[Identifier],
        new_authzs: usize,
    ) -> Result<Option<crate::ratelimit::Spent>> {
        let Some(limits) = &self.limits else {
            return Ok(None);
        };
        let mut checks = limits
            .issuance_transactions(&account.id, identifiers)
            .await?;
        checks.extend(
            identifiers
                .iter()
                .map(|i| limits.failed_validation_transaction(&account.id, i)),
        );
        limits.check(&checks).await?;
        limits
            .check_pending_authorizations(&account.id, new_authzs)
            .await?;
        Ok(Some(
            limits
                .spend(&limits.new_order_transactions(&account.id))
                .await?,
        ))
    }
}

/// A `replaces` that passed the checks: the certificate, and the
/// replacement it had then (which the order's creation swaps out).
struct ReplaceCheck {
    text: String,
    cert: CertId,
    expected: Option<OrderId>,
}

fn already_replaced() -> Error {
    Error::new(
        ErrorKind::AlreadyReplaced,
        "replaces: another order already replaces this certificate",
    )
}
