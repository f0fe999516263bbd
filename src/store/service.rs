//! Persistence of the operator service: requests, batches and what the
//! service keeps about its certificates. The certificates themselves are
//! rows of the shared certificates table, so ACME and the service list,
//! revoke and publish them the same way.

use super::StoreFuture;
use crate::model::{Certificate, Timestamp};
use crate::service::types::{
    Batch, CertFilter, CertRow, Request, RequestFilter, RequestStatus, ServiceCert,
};

/// The id of the account that service-issued certificates belong to
/// (created by the schema migration; no key can sign for it).
pub const SERVICE_ACCOUNT: &str = "service";

pub trait ServiceStore: Send + Sync + 'static {
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
    /// Service certificates marked auto-renew, not renewed, not revoked,
    /// expiring before `before`.
    fn due_for_renewal<'a>(
        &'a self,
        before: Timestamp,
        now: Timestamp,
    ) -> StoreFuture<'a, Vec<ServiceCert>>;
}
