//! [`Store`] on PostgreSQL: accounts, orders, authorizations, certificates
//! and CRL numbers.
//!
//! Unlike SQLite's store there is no writer task and no read cache: several
//! instances write to one database, so every read goes to it and every
//! write is a statement (or a transaction) of its own on the pool. Every
//! value is a bound parameter.
//!
//! Races are decided by the database under its default isolation, READ
//! COMMITTED, between any number of processes:
//! - A single `UPDATE … WHERE <condition on the updated row>` has exactly
//!   one winner: an updater that waited for a concurrent one re-checks the
//!   condition on the row as that one committed it.
//! - A condition on other rows (`NOT EXISTS`) is not re-checked that way.
//!   Where one decides a race, the transaction first locks the row both
//!   sides write (`FOR UPDATE`, `FOR NO KEY UPDATE`); its next statement
//!   then reads everything committed before the lock was granted.
//! - Uniqueness is the constraints' (`ON CONFLICT … DO NOTHING`, which
//!   waits for a concurrent inserter of the same key to finish).
//!
//! Each operation of several statements is one transaction: an error, or
//! the future being dropped, rolls it back whole.

use sqlx::Row;

use super::inserts::{
    account_where_thumbprint, count, insert_authzs, insert_order, json_text, INSERT_ACCOUNT,
    ORDER_SELECT,
};
use super::{db_err, PgStore};
use crate::error::Error;
use crate::model::{
    Account, AccountId, Authz, AuthzId, CertId, Certificate, ChallengeType, Order, OrderId,
    Revocation, Timestamp,
};
use crate::protocol::Identifier;
use crate::store::rows::{
    account_from_row, authz_from_row, cert_from_row, json_err, order_from_row, revoked_from_row,
};
use crate::store::{
    settled_state, AccountCreation, OrderListEntry, RevokedCert, Store, StoreFuture,
    ValidationResult,
};

/// The order row with its certificate's id, if one was issued.
impl Store for PgStore {
    fn create_account<'a>(
        &'a self,
        a: &'a Account,
        eab_kid: Option<&'a str>,
    ) -> StoreFuture<'a, AccountCreation> {
        Box::pin(async move {
            let contact = serde_json::to_string(&a.contact).map_err(json_err)?;
            // The account first, then its binding: two registrations of one
            // key meet at the thumbprint's unique index (the second waits
            // for the first to commit or roll back), and two of one key id
            // at the binding's. Every registration takes the two in that
            // order, so none waits for another in a cycle.
            let mut lease = self.pool().lease().await.map_err(db_err)?;
            let mut tx = lease.begin().await.map_err(db_err)?;
            let inserted = sqlx::query(INSERT_ACCOUNT)
                .bind(&a.id.0)
                .bind(a.status.as_str())
                .bind(&a.jwk)
                .bind(&a.thumbprint)
                .bind(&contact)
                .bind(a.tos_agreed)
                .bind(a.created_at)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?
                .rows_affected();
            if inserted == 0 {
                // The key has a committed account (ON CONFLICT DO NOTHING
                // waited for its transaction); this statement's snapshot,
                // taken after, sees it. An account with the key wins over a
                // taken key id, as RFC 8555 §7.3.1 answers with it.
                let existing = account_where_thumbprint(&mut tx, &a.thumbprint).await?;
                tx.rollback().await.map_err(db_err)?;
                return match existing {
                    Some(e) => Ok(AccountCreation::Existing(e)),
                    None => Err(Error::internal("account insert did nothing")),
                };
            }
            if let Some(kid) = eab_kid {
                let bound = sqlx::query(
                    "INSERT INTO eab_bindings (kid, account_id, bound_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (kid) DO NOTHING",
                )
                .bind(kid)
                .bind(&a.id.0)
                .bind(a.created_at)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?
                .rows_affected();
                if bound == 0 {
                    // The account goes with the binding it could not have.
                    tx.rollback().await.map_err(db_err)?;
                    return Ok(AccountCreation::KeyIdTaken);
                }
            }
            tx.commit().await.map_err(db_err)?;
            lease.keep();
            Ok(AccountCreation::Created)
        })
    }

    fn create_authz<'a>(&'a self, authz: &'a Authz) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut lease = self.pool().lease().await.map_err(db_err)?;
            insert_authzs(&mut lease, std::slice::from_ref(authz)).await?;
            lease.keep();
            Ok(())
        })
    }

    fn reusable_authz<'a>(
        &'a self,
        account: &'a AccountId,
        identifier: &'a Identifier,
        wildcard: bool,
        min_expires: Timestamp,
    ) -> StoreFuture<'a, Option<Authz>> {
        Box::pin(async move {
            let row = sqlx::query(
                "SELECT * FROM authzs WHERE account_id = $1 AND ident_value = $2 \
                 AND ident_type = $3 AND wildcard = $4 AND state = 'valid' AND expires > $5 \
                 ORDER BY expires DESC LIMIT 1",
            )
            .bind(&account.0)
            .bind(&identifier.value)
            .bind(identifier.kind.as_str())
            .bind(wildcard)
            .bind(min_expires)
            .fetch_optional(self.pool())
            .await
            .map_err(db_err)?;
            row.as_ref().map(authz_from_row).transpose()
        })
    }

    fn replacement_of<'a>(&'a self, cert: &'a CertId) -> StoreFuture<'a, Option<OrderId>> {
        Box::pin(async move {
            let id: Option<Option<String>> =
                sqlx::query_scalar("SELECT replaced_by FROM certificates WHERE id = $1")
                    .bind(&cert.0)
                    .fetch_optional(self.pool())
                    .await
                    .map_err(db_err)?;
            Ok(id.flatten().map(OrderId))
        })
    }

    fn revoked_certificates(&self, now: Timestamp) -> StoreFuture<'_, Vec<RevokedCert>> {
        Box::pin(async move {
            // Serials in byte order whatever the database's collation, as
            // SQLite sorts them.
            let rows = sqlx::query(
                "SELECT serial, revoked_at, revocation_reason, not_after FROM certificates \
                 WHERE revoked_at IS NOT NULL AND not_after > $1 ORDER BY serial COLLATE \"C\"",
            )
            .bind(now)
            .fetch_all(self.pool())
            .await
            .map_err(db_err)?;
            rows.iter().map(revoked_from_row).collect()
        })
    }

    fn account_by_id<'a>(&'a self, id: &'a AccountId) -> StoreFuture<'a, Option<Account>> {
        Box::pin(async move {
            let row = sqlx::query("SELECT * FROM accounts WHERE id = $1")
                .bind(&id.0)
                .fetch_optional(self.pool())
                .await
                .map_err(db_err)?;
            row.as_ref().map(account_from_row).transpose()
        })
    }

    fn account_by_thumbprint<'a>(
        &'a self,
        thumbprint: &'a str,
    ) -> StoreFuture<'a, Option<Account>> {
        Box::pin(async move {
            let mut lease = self.pool().lease().await.map_err(db_err)?;
            let account = account_where_thumbprint(&mut lease, thumbprint).await?;
            lease.keep();
            Ok(account)
        })
    }

    fn update_account_contact<'a>(
        &'a self,
        id: &'a AccountId,
        contact: &'a [String],
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let contact = serde_json::to_string(contact).map_err(json_err)?;
            let done =
                sqlx::query("UPDATE accounts SET contact = $1 WHERE id = $2 AND status = 'valid'")
                    .bind(contact)
                    .bind(&id.0)
                    .execute(self.pool())
                    .await
                    .map_err(db_err)?;
            Ok(done.rows_affected() == 1)
        })
    }

    fn deactivate_account<'a>(&'a self, id: &'a AccountId) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut lease = self.pool().lease().await.map_err(db_err)?;
            let mut tx = lease.begin().await.map_err(db_err)?;
            // FOR UPDATE conflicts with the key-share lock a new
            // authorization's foreign key takes on its account: an order
            // being created for this account commits before the update
            // below looks (and its pending authorizations go too), or
            // waits until this transaction has committed.
            sqlx::query("SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE")
                .bind(&id.0)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            let done = sqlx::query(
                "UPDATE accounts SET status = 'deactivated' WHERE id = $1 AND status = 'valid'",
            )
            .bind(&id.0)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            // RFC 8555 §7.3.6: the account's pending authorizations go with
            // it (as in SQLite, also on a repeated call, which sweeps any
            // made meanwhile).
            sqlx::query(
                "UPDATE authzs SET state = 'deactivated' \
                 WHERE account_id = $1 AND state = 'pending'",
            )
            .bind(&id.0)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            tx.commit().await.map_err(db_err)?;
            lease.keep();
            Ok(done.rows_affected() == 1)
        })
    }

    fn deactivate_authz<'a>(&'a self, id: &'a AuthzId) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let done = sqlx::query(
                "UPDATE authzs SET state = 'deactivated' \
                 WHERE id = $1 AND state IN ('pending', 'valid')",
            )
            .bind(&id.0)
            .execute(self.pool())
            .await
            .map_err(db_err)?;
            Ok(done.rows_affected() == 1)
        })
    }

    fn create_order<'a>(
        &'a self,
        o: &'a Order,
        authzs: &'a [Authz],
        replaces: Option<(&'a CertId, Option<&'a OrderId>)>,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let Some((cert, expected)) = replaces else {
                // One statement: atomic, one round trip.
                insert_order(self.pool(), o, authzs).await?;
                return Ok(true);
            };
            let mut lease = self.pool().lease().await.map_err(db_err)?;
            let mut tx = lease.begin().await.map_err(db_err)?;
            // RFC 9773: the certificate's replacement moves from the one
            // the caller saw to this order. The condition is on the
            // certificate's own row, so of concurrent orders replacing
            // one certificate exactly one matches: the others, having
            // waited for its commit, see the new replacement.
            let claim = match expected {
                None => sqlx::query(
                    "UPDATE certificates SET replaced_by = $1 \
                     WHERE id = $2 AND replaced_by IS NULL",
                )
                .bind(&o.id.0)
                .bind(&cert.0),
                Some(old) => sqlx::query(
                    "UPDATE certificates SET replaced_by = $1 \
                     WHERE id = $2 AND replaced_by = $3",
                )
                .bind(&o.id.0)
                .bind(&cert.0)
                .bind(&old.0),
            };
            let claimed = claim.execute(&mut *tx).await.map_err(db_err)?;
            if claimed.rows_affected() == 0 {
                tx.rollback().await.map_err(db_err)?;
                return Ok(false);
            }
            insert_order(&mut *tx, o, authzs).await?;
            tx.commit().await.map_err(db_err)?;
            lease.keep();
            Ok(true)
        })
    }

    fn order_by_id<'a>(&'a self, id: &'a OrderId) -> StoreFuture<'a, Option<Order>> {
        Box::pin(async move {
            let row = sqlx::query(ORDER_SELECT)
                .bind(&id.0)
                .fetch_optional(self.pool())
                .await
                .map_err(db_err)?;
            row.as_ref().map(order_from_row).transpose()
        })
    }

    fn authzs_by_ids<'a>(&'a self, ids: &'a [AuthzId]) -> StoreFuture<'a, Vec<Authz>> {
        Box::pin(async move {
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let wanted: Vec<&str> = ids.iter().map(|i| i.0.as_str()).collect();
            let rows = sqlx::query("SELECT * FROM authzs WHERE id = ANY($1)")
                .bind(wanted)
                .fetch_all(self.pool())
                .await
                .map_err(db_err)?;
            let mut found = std::collections::HashMap::with_capacity(rows.len());
            for row in &rows {
                let a = authz_from_row(row)?;
                found.insert(a.id.clone(), a);
            }
            // In the order asked (an id asked twice comes twice).
            Ok(ids.iter().filter_map(|id| found.get(id).cloned()).collect())
        })
    }

    fn order_with_authzs<'a>(
        &'a self,
        id: &'a OrderId,
    ) -> StoreFuture<'a, Option<(Order, Vec<Authz>)>> {
        // Batched with the reads of the moment (batch.rs).
        Box::pin(self.orders.ask(id.clone()))
    }

    fn authz_by_id<'a>(&'a self, id: &'a AuthzId) -> StoreFuture<'a, Option<Authz>> {
        // Batched with the reads of the moment (batch.rs).
        Box::pin(self.authzs.ask(id.clone()))
    }

    fn orders_for_account<'a>(
        &'a self,
        account: &'a AccountId,
        after: i64,
        limit: u32,
        now: Timestamp,
    ) -> StoreFuture<'a, Vec<OrderListEntry>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT o.seq, o.id FROM orders o WHERE o.account_id = $1 AND o.seq > $2 \
                 AND (EXISTS (SELECT 1 FROM certificates c WHERE c.order_id = o.id) \
                      OR (o.expires > $3 AND o.error IS NULL)) \
                 ORDER BY o.seq LIMIT $4",
            )
            .bind(&account.0)
            .bind(after)
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await
            .map_err(db_err)?;
            rows.iter()
                .map(|r| {
                    Ok(OrderListEntry {
                        cursor: r.try_get("seq").map_err(db_err)?,
                        id: OrderId(r.try_get("id").map_err(db_err)?),
                    })
                })
                .collect()
        })
    }

    fn start_challenge<'a>(
        &'a self,
        authz: &'a AuthzId,
        kind: ChallengeType,
        now: Timestamp,
        settled: Option<&'a ValidationResult>,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            // Every condition is on the authorization's row: one winner.
            let query = match settled {
                None => sqlx::query(
                    "UPDATE authzs SET attempt_type = $2, attempt_started = $3, \
                     attempt_state = 'processing' \
                     WHERE id = $1 AND state = 'pending' AND attempt_type IS NULL \
                     AND expires > $3",
                )
                .bind(&authz.0)
                .bind(kind.as_str())
                .bind(now),
                Some(r) => sqlx::query(
                    "UPDATE authzs SET attempt_type = $2, attempt_started = $3, \
                     attempt_state = $4, attempt_validated = $5, attempt_error = $6, \
                     attempt_records = $7, state = $8, expires = $9 \
                     WHERE id = $1 AND state = 'pending' AND attempt_type IS NULL \
                     AND expires > $3",
                )
                .bind(&authz.0)
                .bind(kind.as_str())
                .bind(now)
                .bind(r.state.as_str())
                .bind(r.validated_at)
                .bind(json_text(&r.error))
                .bind(json_text(&r.records))
                .bind(settled_state(r.state)?.as_str())
                .bind(r.expires),
            };
            let done = query.execute(self.pool()).await.map_err(db_err)?;
            Ok(done.rows_affected() == 1)
        })
    }

    fn finish_challenge<'a>(
        &'a self,
        authz: &'a AuthzId,
        r: &'a ValidationResult,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let state = settled_state(r.state)?;
            let done = sqlx::query(
                "UPDATE authzs SET attempt_state = $2, attempt_validated = $3, \
                 attempt_error = $4, attempt_records = $5, state = $6, expires = $7 \
                 WHERE id = $1 AND attempt_state = 'processing' AND state = 'pending'",
            )
            .bind(&authz.0)
            .bind(r.state.as_str())
            .bind(r.validated_at)
            .bind(json_text(&r.error))
            .bind(json_text(&r.records))
            .bind(state.as_str())
            .bind(r.expires)
            .execute(self.pool())
            .await
            .map_err(db_err)?;
            Ok(done.rows_affected() == 1)
        })
    }

    fn authzs_processing(&self) -> StoreFuture<'_, Vec<Authz>> {
        Box::pin(async move {
            let rows = sqlx::query("SELECT * FROM authzs WHERE attempt_state = 'processing'")
                .fetch_all(self.pool())
                .await
                .map_err(db_err)?;
            rows.iter().map(authz_from_row).collect()
        })
    }

    fn claim_order<'a>(
        &'a self,
        id: &'a OrderId,
        owner: &'a str,
        now: Timestamp,
        until: Timestamp,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            // One statement: `certified` is on the row the UPDATE locks,
            // so a claim that waited for store_certificate's commit
            // re-checks it on the new row version. Concurrent claims queue
            // on the row; the first sets the lease the others see.
            let done = sqlx::query(
                "UPDATE orders SET processing_until = $2, processing_owner = $4 \
                 WHERE id = $1 AND error IS NULL AND NOT certified \
                 AND (processing_until IS NULL OR processing_until <= $3)",
            )
            .bind(&id.0)
            .bind(until)
            .bind(now)
            .bind(owner)
            .execute(self.pool())
            .await
            .map_err(db_err)?;
            Ok(done.rows_affected() == 1)
        })
    }

    fn release_order<'a>(&'a self, id: &'a OrderId, owner: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            sqlx::query(
                "UPDATE orders SET processing_until = NULL, processing_owner = NULL \
                 WHERE id = $1 AND processing_owner = $2",
            )
            .bind(&id.0)
            .bind(owner)
            .execute(self.pool())
            .await
            .map_err(db_err)?;
            Ok(())
        })
    }

    fn store_certificate<'a>(
        &'a self,
        c: &'a Certificate,
        order: &'a OrderId,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            // One statement, so one round trip and atomic: the UPDATE marks
            // the order certified and ends its lease, unless it has a
            // certificate already (the row lock makes concurrent calls
            // queue, and each re-checks `certified` on the row it waited
            // for); the INSERT links the certificate to the order only if
            // the UPDATE did. Either way the certificate is recorded: every
            // signed certificate is kept. The commit is durable
            // (synchronous_commit): the certificate is on disk before the
            // client sees it.
            let row = sqlx::query(
                "WITH o AS (UPDATE orders SET certified = true, processing_until = NULL \
                 WHERE id = $9 AND NOT certified RETURNING id) \
                 INSERT INTO certificates (id, serial, account_id, order_id, der, not_before, \
                 not_after, issued_at, common_name) \
                 SELECT $1, $2, $3, (SELECT id FROM o), $4, $5, $6, $7, $8 \
                 RETURNING order_id IS NOT NULL",
            )
            .bind(&c.id.0)
            .bind(&c.serial)
            .bind(&c.account_id.0)
            .bind(&c.der)
            .bind(c.not_before)
            .bind(c.not_after)
            .bind(c.issued_at)
            .bind(c.common_name.as_deref())
            .bind(&order.0)
            .fetch_one(self.pool())
            .await
            .map_err(db_err)?;
            let linked: bool = row.try_get(0).map_err(db_err)?;
            Ok(linked)
        })
    }

    fn certificate_by_id<'a>(&'a self, id: &'a CertId) -> StoreFuture<'a, Option<Certificate>> {
        // Batched with the reads of the moment (batch.rs).
        Box::pin(self.certs.ask(id.clone()))
    }

    fn change_account_key<'a>(
        &'a self,
        id: &'a AccountId,
        old_thumbprint: &'a str,
        new_jwk: &'a str,
        new_thumbprint: &'a str,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let done = sqlx::query(
                "UPDATE accounts SET jwk = $1, thumbprint = $2 \
                 WHERE id = $3 AND status = 'valid' AND thumbprint = $4 \
                 AND NOT EXISTS (SELECT 1 FROM accounts a WHERE a.thumbprint = $2)",
            )
            .bind(new_jwk)
            .bind(new_thumbprint)
            .bind(&id.0)
            .bind(old_thumbprint)
            .execute(self.pool())
            .await;
            match done {
                Ok(done) => Ok(done.rows_affected() == 1),
                // NOT EXISTS does not see an account given the new key by a
                // transaction still running; the thumbprint's unique index
                // waits for it, then refuses this one. Another account has
                // the key: the same answer as when NOT EXISTS sees it.
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(false),
                Err(e) => Err(db_err(e)),
            }
        })
    }

    fn certificate_by_serial<'a>(
        &'a self,
        serial: &'a str,
    ) -> StoreFuture<'a, Option<Certificate>> {
        Box::pin(async move {
            let row = sqlx::query("SELECT * FROM certificates WHERE serial = $1")
                .bind(serial)
                .fetch_optional(self.pool())
                .await
                .map_err(db_err)?;
            row.as_ref().map(cert_from_row).transpose()
        })
    }

    fn revoke_certificate<'a>(
        &'a self,
        id: &'a CertId,
        revocation: Revocation,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let done = sqlx::query(
                "UPDATE certificates SET revoked_at = $1, revocation_reason = $2 \
                 WHERE id = $3 AND revoked_at IS NULL",
            )
            .bind(revocation.at)
            .bind(i64::from(revocation.reason.code()))
            .bind(&id.0)
            .execute(self.pool())
            .await
            .map_err(db_err)?;
            Ok(done.rows_affected() == 1)
        })
    }

    fn has_valid_authz<'a>(
        &'a self,
        account: &'a AccountId,
        identifier: &'a Identifier,
        now: Timestamp,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let row = sqlx::query(
                "SELECT 1 FROM authzs WHERE account_id = $1 AND ident_type = $2 \
                 AND ident_value = $3 AND state = 'valid' AND expires > $4 LIMIT 1",
            )
            .bind(&account.0)
            .bind(identifier.kind.as_str())
            .bind(&identifier.value)
            .bind(now)
            .fetch_optional(self.pool())
            .await
            .map_err(db_err)?;
            Ok(row.is_some())
        })
    }

    fn release_all_leases(&self) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let done = sqlx::query(
                "UPDATE orders SET processing_until = NULL \
                 WHERE processing_until IS NOT NULL AND NOT EXISTS \
                 (SELECT 1 FROM certificates c WHERE c.order_id = orders.id)",
            )
            .execute(self.pool())
            .await
            .map_err(db_err)?;
            Ok(done.rows_affected())
        })
    }

    fn release_leases_of<'a>(&'a self, owner: &'a str) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            // Only this owner's rows: a live peer's leases are never touched.
            let done = sqlx::query(
                "UPDATE orders SET processing_until = NULL, processing_owner = NULL \
                 WHERE processing_owner = $1 AND processing_until IS NOT NULL AND NOT EXISTS \
                 (SELECT 1 FROM certificates c WHERE c.order_id = orders.id)",
            )
            .bind(owner)
            .execute(self.pool())
            .await
            .map_err(db_err)?;
            Ok(done.rows_affected())
        })
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            sqlx::query("SELECT 1")
                .execute(self.pool())
                .await
                .map_err(db_err)?;
            Ok(())
        })
    }

    fn certificates_expiring(
        &self,
        now: Timestamp,
        soon: Timestamp,
        later: Timestamp,
    ) -> StoreFuture<'_, (u64, u64)> {
        Box::pin(async move {
            // One range scan of certificates_by_not_after.
            let (soon_n, later_n): (i64, i64) = sqlx::query_as(
                "SELECT COUNT(*) FILTER (WHERE not_after <= $1), COUNT(*) FROM certificates \
                 WHERE not_after > $2 AND not_after <= $3 AND revoked_at IS NULL",
            )
            .bind(soon)
            .bind(now)
            .bind(later)
            .fetch_one(self.pool())
            .await
            .map_err(db_err)?;
            Ok((count(soon_n), count(later_n)))
        })
    }
}
