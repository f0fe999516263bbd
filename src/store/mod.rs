//! Persistence: the only module that talks to a database.
//!
//! [`Store`] is the interface the rules (`ra`) use. Every state transition is
//! a conditional update that succeeds for exactly one caller: the loser of a
//! race learns it from the return value and answers with an ACME error, so
//! no order is ever left stuck. [`sqlite::SqliteStore`] is the embedded
//! default; the trait is shaped (no SQLite types, no connection handles) so a
//! PostgreSQL backend can be added for deployments with several instances.

pub(crate) mod postgres;
pub(crate) mod ratelimit;
pub(crate) mod reuse;
pub(crate) mod rows;
pub(crate) mod service;
pub(crate) mod shared;
pub(crate) mod sqlite;

#[cfg(test)]
mod conformance;

use std::future::Future;
use std::pin::Pin;

use crate::error::Result;
use crate::model::{
    Account, AccountId, Attempt, AttemptState, Authz, AuthzId, AuthzState, CertId, Certificate,
    ChallengeType, Order, OrderId, Revocation, Timestamp,
};
use crate::protocol::Identifier;

/// The future every store method returns.
pub(crate) type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// What [`Store::create_account`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AccountCreation {
    Created,
    /// An account with this key already existed (RFC 8555 §7.3.1: answer
    /// with it); this covers two concurrent registrations of one key.
    Existing(Account),
    /// The external account binding key id is bound to another account.
    KeyIdTaken,
}

/// A revoked certificate, as a CRL lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RevokedCert {
    /// Lowercase hex serial.
    pub serial: String,
    pub revocation: Revocation,
    pub not_after: Timestamp,
}

/// The outcome of a validation, written by [`Store::finish_challenge`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ValidationResult {
    pub state: AttemptState,
    pub validated_at: Timestamp,
    pub error: Option<serde_json::Value>,
    pub records: Option<serde_json::Value>,
    /// The authorization's new expiry (a valid one lives longer).
    pub expires: Timestamp,
}

/// The authorization state a settled attempt leaves; an error for a
/// result still "processing".
pub(crate) fn settled_state(state: AttemptState) -> Result<AuthzState> {
    match state {
        AttemptState::Valid => Ok(AuthzState::Valid),
        AttemptState::Invalid => Ok(AuthzState::Invalid),
        AttemptState::Processing => Err(crate::error::Error::internal(
            "a validation result cannot be 'processing'",
        )),
    }
}

/// `authz` as [`Store::start_challenge`] leaves it when it returns true,
/// so the caller need not read it back.
pub(crate) fn challenge_started(
    authz: &Authz,
    kind: ChallengeType,
    now: Timestamp,
    settled: Option<&ValidationResult>,
) -> Result<Authz> {
    let mut a = authz.clone();
    a.attempt = Some(match settled {
        None => Attempt {
            kind,
            state: AttemptState::Processing,
            started_at: now,
            validated_at: None,
            error: None,
            records: None,
        },
        Some(r) => {
            a.state = settled_state(r.state)?;
            a.expires = r.expires;
            Attempt {
                kind,
                state: r.state,
                started_at: now,
                validated_at: Some(r.validated_at),
                error: r.error.clone(),
                records: r.records.clone(),
            }
        }
    });
    Ok(a)
}

/// An entry of an account's orders list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OrderListEntry {
    /// Opaque, increasing cursor for pagination.
    pub cursor: i64,
    pub id: OrderId,
}

/// A whole database: every store interface, plus what the server needs to
/// run on it. [`sqlite::SqliteStore`] and [`postgres::PgStore`] are the
/// two.
pub(crate) trait Database:
    Store + service::ServiceStore + ratelimit::RateLimitStore + shared::SharedStore
{
    /// Whether several instances may share this database (then nothing a
    /// process holds may be taken for the fleet's state, and start-up must
    /// not touch what a live peer holds).
    fn is_shared(&self) -> bool;
    /// Closes the connections, waiting for those in use.
    fn close(&self) -> StoreFuture<'_, ()>;
}

/// The persistence interface. All methods are cancel-safe at their await
/// points: a transaction either commits whole or not at all.
pub(crate) trait Store: Send + Sync + 'static {
    /// Inserts an account unless one with the same key thumbprint exists.
    /// With `eab_kid`, binds that external account key id to the new
    /// account, and creates nothing if the id is bound already.
    fn create_account<'a>(
        &'a self,
        account: &'a Account,
        eab_kid: Option<&'a str>,
    ) -> StoreFuture<'a, AccountCreation>;
    /// Inserts a standalone authorization (newAuthz, RFC 8555 §7.4.1).
    fn create_authz<'a>(&'a self, authz: &'a Authz) -> StoreFuture<'a, ()>;
    /// A valid authorization of `account` for `identifier` (with the same
    /// wildcard flag) that expires after `min_expires`, the latest-expiring
    /// one if several.
    fn reusable_authz<'a>(
        &'a self,
        account: &'a AccountId,
        identifier: &'a Identifier,
        wildcard: bool,
        min_expires: Timestamp,
    ) -> StoreFuture<'a, Option<Authz>>;
    /// The order that replaces certificate `cert` (RFC 9773), if any.
    fn replacement_of<'a>(&'a self, cert: &'a CertId) -> StoreFuture<'a, Option<OrderId>>;
    /// Revoked certificates that have not expired by `now`, by serial.
    fn revoked_certificates(&self, now: Timestamp) -> StoreFuture<'_, Vec<RevokedCert>>;
    fn account_by_id<'a>(&'a self, id: &'a AccountId) -> StoreFuture<'a, Option<Account>>;
    fn account_by_thumbprint<'a>(&'a self, thumbprint: &'a str)
        -> StoreFuture<'a, Option<Account>>;
    /// Replaces the contact list of a valid account; false if not valid.
    fn update_account_contact<'a>(
        &'a self,
        id: &'a AccountId,
        contact: &'a [String],
    ) -> StoreFuture<'a, bool>;
    /// Moves a valid account to deactivated, and its pending authorizations
    /// with it; false if it was not valid.
    fn deactivate_account<'a>(&'a self, id: &'a AccountId) -> StoreFuture<'a, bool>;

    /// Deactivates a pending or valid authorization; false otherwise.
    fn deactivate_authz<'a>(&'a self, id: &'a AuthzId) -> StoreFuture<'a, bool>;

    /// Inserts an order with its new authorizations in one transaction.
    /// With `replaces` (a certificate and the replacement it must still
    /// have), the same transaction makes the order the certificate's
    /// replacement (RFC 9773), and nothing is created (false) if the
    /// certificate's replacement has changed.
    fn create_order<'a>(
        &'a self,
        order: &'a Order,
        authzs: &'a [Authz],
        replaces: Option<(&'a CertId, Option<&'a OrderId>)>,
    ) -> StoreFuture<'a, bool>;
    fn order_by_id<'a>(&'a self, id: &'a OrderId) -> StoreFuture<'a, Option<Order>>;
    /// Authorizations by id, in the order asked; missing ids are skipped.
    fn authzs_by_ids<'a>(&'a self, ids: &'a [AuthzId]) -> StoreFuture<'a, Vec<Authz>>;
    /// An order and its authorizations (as [`Store::authzs_by_ids`] of its
    /// `authz_ids`), read together: one round trip where the backend has
    /// them.
    fn order_with_authzs<'a>(
        &'a self,
        id: &'a OrderId,
    ) -> StoreFuture<'a, Option<(Order, Vec<Authz>)>>;
    fn authz_by_id<'a>(&'a self, id: &'a AuthzId) -> StoreFuture<'a, Option<Authz>>;
    /// One page of an account's orders that are not known to be stale
    /// (unexpired, or with a certificate), after `after` (exclusive).
    fn orders_for_account<'a>(
        &'a self,
        account: &'a AccountId,
        after: i64,
        limit: u32,
        now: Timestamp,
    ) -> StoreFuture<'a, Vec<OrderListEntry>>;

    /// Starts the one challenge attempt of a pending, unexpired authorization
    /// with no attempt yet: as processing, or already `settled` when the
    /// outcome is known at once (always-valid). False if another request got
    /// there first or the authorization is no longer pending.
    fn start_challenge<'a>(
        &'a self,
        authz: &'a AuthzId,
        kind: ChallengeType,
        now: Timestamp,
        settled: Option<&'a ValidationResult>,
    ) -> StoreFuture<'a, bool>;
    /// Records a validation's outcome on an attempt still processing.
    fn finish_challenge<'a>(
        &'a self,
        authz: &'a AuthzId,
        result: &'a ValidationResult,
    ) -> StoreFuture<'a, bool>;
    /// Authorizations whose attempt is still processing (to resume after a
    /// restart).
    fn authzs_processing(&self) -> StoreFuture<'_, Vec<Authz>>;

    /// Takes the finalize lease of an order that has no certificate, no
    /// error and no live lease, for instance `owner`, until `until`.
    /// Exactly one concurrent caller gets true. A lease whose holder died
    /// is taken over once it expires.
    fn claim_order<'a>(
        &'a self,
        id: &'a OrderId,
        owner: &'a str,
        now: Timestamp,
        until: Timestamp,
    ) -> StoreFuture<'a, bool>;
    /// Gives the lease back after a failed issuance, if `owner` still holds
    /// it (an expired lease another instance took over is left alone).
    fn release_order<'a>(&'a self, id: &'a OrderId, owner: &'a str) -> StoreFuture<'a, ()>;
    /// Records an issued certificate, which makes its order valid, in one
    /// durable write (flushed to disk before returning). Returns false if the
    /// order already had a certificate; the new one is still recorded.
    fn store_certificate<'a>(
        &'a self,
        cert: &'a Certificate,
        order: &'a OrderId,
    ) -> StoreFuture<'a, bool>;
    fn certificate_by_id<'a>(&'a self, id: &'a CertId) -> StoreFuture<'a, Option<Certificate>>;

    /// Replaces a valid account's key if it is still `old_thumbprint` and no
    /// account has the new key; false otherwise.
    fn change_account_key<'a>(
        &'a self,
        id: &'a AccountId,
        old_thumbprint: &'a str,
        new_jwk: &'a str,
        new_thumbprint: &'a str,
    ) -> StoreFuture<'a, bool>;
    /// A certificate by its lowercase hex serial.
    fn certificate_by_serial<'a>(&'a self, serial: &'a str)
        -> StoreFuture<'a, Option<Certificate>>;
    /// Marks a certificate revoked unless it already is; false if it was.
    fn revoke_certificate<'a>(
        &'a self,
        id: &'a CertId,
        revocation: Revocation,
    ) -> StoreFuture<'a, bool>;
    /// Whether `account` holds a valid, unexpired authorization for
    /// `identifier` (RFC 8555 §7.6: revocation by another account).
    fn has_valid_authz<'a>(
        &'a self,
        account: &'a AccountId,
        identifier: &'a Identifier,
        now: Timestamp,
    ) -> StoreFuture<'a, bool>;

    /// Drops every finalize lease (a single-instance server calls this at
    /// start: no process of it can still be signing).
    fn release_all_leases(&self) -> StoreFuture<'_, u64>;
    /// Drops the finalize leases instance `owner` holds on orders without a
    /// certificate (an instance sharing the database calls this at start:
    /// its previous run, the only process with its name, is gone).
    fn release_leases_of<'a>(&'a self, owner: &'a str) -> StoreFuture<'a, u64>;

    /// A trivial read: the store answers (readiness checks).
    fn ping(&self) -> StoreFuture<'_, ()>;
    /// How many unrevoked certificates expire after `now` and at or before
    /// `soon`, and after `now` and at or before `later` (`soon <= later`).
    fn certificates_expiring(
        &self,
        now: Timestamp,
        soon: Timestamp,
        later: Timestamp,
    ) -> StoreFuture<'_, (u64, u64)>;
}
