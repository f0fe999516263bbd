//! This instance among those sharing a database, and the jobs that must
//! run once over all of them: its name (`<data_dir>/instance-id`), the job
//! leases it takes, the service's renewal scheduler and the sweeper of
//! validations a dead instance abandoned.

use std::sync::Arc;
use std::time::Duration;

use super::setup;
use crate::clock::Clock;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::ra::Ra;
use crate::store::shared::{JobLease, SharedStore};
use crate::store::{Database, Store};
use crate::va::Va;

/// How often the renewal scheduler looks for certificates to renew.
const RENEWAL_PERIOD: Duration = Duration::from_secs(600);
/// How often it renews its lease (when the database is shared).
const RENEWAL_TICK: Duration = Duration::from_secs(30);

/// Renews the operator service's auto-renew certificates as they enter
/// their renewal window: a check at start, then every ten minutes, by the
/// one instance holding `lease` (a new holder checks at once).
pub(super) fn spawn_renewal_scheduler(service: Arc<crate::service::Service>, lease: JobLease) {
    tokio::spawn(async move {
        let mut last_run: Option<tokio::time::Instant> = None;
        loop {
            if !lease.hold().await {
                last_run = None;
            } else if last_run.is_none_or(|t| t.elapsed() >= RENEWAL_PERIOD) {
                last_run = Some(tokio::time::Instant::now());
                match service.renew_due().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(renewed = n, "renewal scheduler"),
                    Err(e) => tracing::warn!(error = %e, "renewal scheduler"),
                }
            }
            tokio::time::sleep(RENEWAL_TICK).await;
        }
    });
}

/// How often the validation sweeper looks for abandoned attempts.
const SWEEP_TICK: Duration = Duration::from_secs(60);

/// On a shared database: validates again, once a minute, by the one
/// instance holding `lease`, the attempts left processing for longer than
/// a validation can take (`stale`): their instance died with them. A
/// younger attempt may be in a live peer's hands, and is left alone.
fn spawn_validation_sweeper(
    store: Arc<dyn Store>,
    va: Arc<Va>,
    ra: Arc<Ra>,
    lease: JobLease,
    clock: Arc<dyn Clock>,
    stale: Duration,
) {
    tokio::spawn(async move {
        loop {
            if lease.hold().await {
                let before = clock.now() - i64::try_from(stale.as_secs()).unwrap_or(i64::MAX);
                if let Err(e) = setup::resume_validations(&store, &va, &ra, Some(before)).await {
                    tracing::warn!(error = %e.cause(), "validation sweeper");
                }
            }
            tokio::time::sleep(SWEEP_TICK).await;
        }
    });
}

/// An instance id as `instance-id` may hold (an operator may set one).
fn valid_instance_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// This instance among those sharing the database: its name in leases,
/// and the store that keeps them (None when the database is its alone).
pub(crate) struct Fleet {
    pub(super) instance: String,
    shared: Option<Arc<dyn SharedStore>>,
    clock: Arc<dyn Clock>,
    /// The jobs this instance runs under a lease, released at shutdown.
    jobs: std::sync::Mutex<Vec<&'static str>>,
}

impl Fleet {
    /// The instance is named by `<data_dir>/instance-id`, made at its
    /// first start: the data directory's lock lets one process at a time
    /// use a name, so a restarted instance knows the leases that carry its
    /// name are its dead predecessor's.
    pub(super) fn new(
        config: &Config,
        store: &Arc<dyn Database>,
        clock: &Arc<dyn Clock>,
    ) -> Result<Fleet> {
        let path = config.server.data_dir.join("instance-id");
        let instance = match std::fs::read_to_string(&path) {
            Ok(text) if valid_instance_id(text.trim()) => text.trim().to_owned(),
            Ok(_) => {
                return Err(Error::internal(format_args!(
                    "{} is not an instance id (1 to 64 letters, digits, '-' or '_')",
                    path.display()
                )))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut raw = [0u8; 8];
                crate::rand::fill(&mut raw);
                let id: String = raw.iter().map(|b| format!("{b:02x}")).collect();
                std::fs::write(&path, format!("{id}\n")).map_err(|e| {
                    Error::internal(format_args!("cannot write {}: {e}", path.display()))
                })?;
                id
            }
            Err(e) => {
                return Err(Error::internal(format_args!(
                    "cannot read {}: {e}",
                    path.display()
                )))
            }
        };
        Ok(Fleet {
            instance,
            shared: store
                .is_shared()
                .then(|| -> Arc<dyn SharedStore> { store.clone() }),
            clock: clock.clone(),
            jobs: Default::default(),
        })
    }

    /// This instance, with the finalize leases its previous run left on a
    /// shared database released (on SQLite, `open_store` released them all).
    pub(super) async fn join(
        config: &Config,
        store: &Arc<dyn Database>,
        clock: &Arc<dyn Clock>,
    ) -> Result<Fleet> {
        let fleet = Fleet::new(config, store, clock)?;
        if store.is_shared() {
            let released = store.release_leases_of(&fleet.instance).await?;
            if released > 0 {
                tracing::warn!(
                    orders = released,
                    instance = %fleet.instance,
                    "released finalize leases this instance's previous run left"
                );
            }
        }
        Ok(fleet)
    }

    /// Validations left processing: on a database of its own, this
    /// instance's previous run left them, and they are resumed now; on a
    /// shared one, the sweeper resumes those abandoned long enough.
    pub(super) async fn resume_validations(
        &self,
        config: &Config,
        store: &Arc<dyn Database>,
        va: &Arc<Va>,
        ra: &Arc<Ra>,
    ) -> Result<()> {
        let store: Arc<dyn Store> = store.clone();
        if self.shared.is_none() {
            return setup::resume_validations(&store, va, ra, None).await;
        }
        spawn_validation_sweeper(
            store,
            va.clone(),
            ra.clone(),
            self.lease("validation-sweep", Duration::from_secs(180)),
            self.clock.clone(),
            super::settings::stale_validation(config),
        );
        Ok(())
    }

    /// The lease of singleton job `job` for this instance.
    pub(super) fn lease(&self, job: &'static str, ttl: Duration) -> JobLease {
        self.jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(job);
        JobLease::new(
            self.shared.clone(),
            job,
            &self.instance,
            ttl,
            self.clock.clone(),
        )
    }

    /// Gives back every lease this instance may hold, so that another
    /// instance takes the jobs over at once rather than at expiry.
    pub(super) async fn release_all(&self) {
        let Some(store) = &self.shared else {
            return;
        };
        let jobs = self
            .jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        for job in jobs {
            if let Err(e) = store.release_job(job, &self.instance).await {
                tracing::warn!(job, error = %e.cause(), "releasing a job lease");
            }
        }
    }
}
