//! Every listener besides ACME's, bound in one place before anything
//! serves: status (first, since its address goes into certificates),
//! management, metrics and the operator service. A port in use ends the
//! start with one line naming the setting.

use std::net::SocketAddr;

use tokio::net::TcpListener;

use crate::config::Config;
use crate::error::{Error, Result};

/// The bound listeners of a config; `None` where the config asks for none.
pub(super) struct Listeners {
    /// The status listener and its base URL.
    pub(super) status: Option<(TcpListener, String)>,
    pub(super) management: Option<TcpListener>,
    pub(super) metrics: Option<TcpListener>,
    pub(super) service: Option<TcpListener>,
}

impl Listeners {
    pub(super) async fn bind(config: &Config) -> Result<Listeners> {
        let status = match config.status.enabled {
            true => {
                let l = bind(config.status.listen, "status.listen, or --status-listen").await?;
                let addr = l.local_addr().map_err(Error::internal)?;
                Some((l, config.status.base_url_for(addr)))
            }
            false => None,
        };
        let management = match config.management.listen {
            Some(addr) => Some(bind(addr, "management.listen").await?),
            None => None,
        };
        let metrics = match config.metrics.listen {
            Some(addr) => {
                let l = bind(addr, "metrics.listen").await?;
                let bound = l.local_addr().map_err(Error::internal)?;
                tracing::info!(addr = %bound, "metrics listener");
                Some(l)
            }
            None => None,
        };
        let service = match config.service.enabled {
            true => Some(bind(config.service.listen, "service.listen").await?),
            false => None,
        };
        Ok(Listeners {
            status,
            management,
            metrics,
            service,
        })
    }
}

/// Binds `addr`; `setting` names where it came from, for the error.
async fn bind(addr: SocketAddr, setting: &str) -> Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        Error::internal(format_args!(
            "cannot listen on {addr} ({setting}): {e}; stop what holds it or choose another address"
        ))
    })
}
