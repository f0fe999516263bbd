//! Persistence of the operator service: requests, batches and what the
//! service keeps about its certificates. The certificates themselves are
//! rows of the shared certificates table, so ACME and the service list,
//! revoke and publish them the same way.

use super::StoreFuture;
use crate::model::service::{
    Batch, CertFilter, CertRow, Delivery, Recovery, RecoveryStatus, Request, RequestFilter,
    RequestStatus, ServiceCert,
};
use crate::model::{Certificate, Timestamp};

/// The id of the account that service-issued certificates belong to
/// (created by the schema migration; no key can sign for it).
pub(crate) const SERVICE_ACCOUNT: &str = "service";

pub(crate) trait ServiceStore: Send + Sync + 'static {
    /// Inserts requests (and the batch they belong to, if any) in one
    /// transaction.
    fn insert_requests<'a>(
        &'a self,
        batch: Option<&'a Batch>,
        requests: &'a [Request],
    ) -> StoreFuture<'a, ()>;
    fn request<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Request>>;
    /// A page of requests, newest first, and how many match in all.
    fn requests<'a>(&'a self, filter: &'a RequestFilter) -> StoreFuture<'a, (Vec<Request>, u64)>;
    /// Moves a request from `from` to `to` (pending → approved or
    /// rejected; approved → failed), recording who decided and why; false
    /// if it was no longer `from` (exactly one concurrent caller wins).
    #[allow(clippy::too_many_arguments)]
    fn move_request<'a>(
        &'a self,
        id: &'a str,
        from: RequestStatus,
        to: RequestStatus,
        by: Option<&'a str>,
        at: Timestamp,
        note: Option<&'a str>,
    ) -> StoreFuture<'a, bool>;
    /// Records an issued certificate with the service's data about it, and
    /// moves its request (if any) from approved to issued, in one durable
    /// write.
    fn record_issued<'a>(
        &'a self,
        cert: &'a Certificate,
        meta: &'a ServiceCert,
    ) -> StoreFuture<'a, ()>;
    fn service_cert<'a>(&'a self, serial: &'a str) -> StoreFuture<'a, Option<ServiceCert>>;
    /// A page of certificates (ACME and service), newest first, and how
    /// many match in all.
    fn certificates<'a>(&'a self, filter: &'a CertFilter) -> StoreFuture<'a, (Vec<CertRow>, u64)>;
    /// Records that `old` was renewed by `new`, unless it already was;
    /// false then.
    fn mark_renewed<'a>(&'a self, old: &'a str, new: &'a str) -> StoreFuture<'a, bool>;
    fn batch<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Batch>>;
    fn insert_recovery<'a>(&'a self, r: &'a Recovery) -> StoreFuture<'a, ()>;
    fn recovery<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Recovery>>;
    /// Recoveries, newest first (by status and requester when given), and
    /// how many match.
    fn recoveries<'a>(
        &'a self,
        status: Option<RecoveryStatus>,
        requester: Option<&'a str>,
        offset: u32,
        limit: u32,
    ) -> StoreFuture<'a, (Vec<Recovery>, u64)>;
    /// Adds `agent`'s approval to a pending recovery; false if that agent
    /// already approved or it is no longer pending. The recovery becomes
    /// approved, in the same transaction, once it has `required` approvals.
    fn approve_recovery<'a>(
        &'a self,
        id: &'a str,
        agent: &'a str,
        at: Timestamp,
    ) -> StoreFuture<'a, bool>;
    /// Moves a recovery from `from` to `to` (pending → rejected with a
    /// reason, approved → completed); false if it was no longer `from`.
    fn move_recovery<'a>(
        &'a self,
        id: &'a str,
        from: RecoveryStatus,
        to: RecoveryStatus,
        by: Option<&'a str>,
        at: Timestamp,
        reason: Option<&'a str>,
    ) -> StoreFuture<'a, bool>;
    fn insert_deliveries<'a>(&'a self, d: &'a [Delivery]) -> StoreFuture<'a, ()>;
    /// Pending deliveries due by `now`, oldest first.
    fn due_deliveries(&self, now: Timestamp, limit: u32) -> StoreFuture<'_, Vec<Delivery>>;
    /// Records an attempt: delivered, or failed with the next attempt's
    /// time (None: given up).
    fn record_attempt<'a>(
        &'a self,
        id: &'a str,
        delivered: bool,
        error: Option<&'a str>,
        next_attempt_at: Option<Timestamp>,
    ) -> StoreFuture<'a, ()>;
    fn deliveries<'a>(
        &'a self,
        status: Option<&'a str>,
        offset: u32,
        limit: u32,
    ) -> StoreFuture<'a, (Vec<Delivery>, u64)>;
    /// Service certificates marked auto-renew, not renewed, not revoked,
    /// expiring before `before`.
    fn due_for_renewal<'a>(
        &'a self,
        before: Timestamp,
        now: Timestamp,
    ) -> StoreFuture<'a, Vec<ServiceCert>>;
}
