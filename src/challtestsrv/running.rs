//! Starting the servers of a [`Config`]: each kind bound in turn, its
//! address kept and its task spawned, and the [`Running`] handle that
//! reads the addresses and stops the servers.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use rustls::ServerConfig;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{bind_tcp, dns, http, management, tlsalpn, ChallTestSrv, Config};

impl ChallTestSrv {
    /// Binds and starts every server of `config`. Fails if any address
    /// cannot be bound (servers already started are then stopped).
    pub async fn start(config: Config) -> io::Result<Running> {
        let mut srv = ChallTestSrv::new(config.default_ipv4, config.default_ipv6);
        srv.verbose = config.verbose;
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut running = Running {
            srv,
            stop: stop_tx,
            tasks: Vec::new(),
            dns_addrs: Vec::new(),
            http01_addrs: Vec::new(),
            https01_addrs: Vec::new(),
            tlsalpn01_addrs: Vec::new(),
            management_addr: None,
        };
        running.start_dns(&config, &stop_rx).await?;
        running.start_http01(&config.http01, None, &stop_rx).await?;
        if !config.https01.is_empty() {
            let tls = http::https_config().map_err(io::Error::other)?;
            running
                .start_http01(&config.https01, Some(tls), &stop_rx)
                .await?;
        }
        running.start_tlsalpn01(&config.tlsalpn01, &stop_rx).await?;
        if let Some(addr) = config
            .management
            .as_deref()
            .filter(|a| !a.trim().is_empty())
        {
            running.start_management(addr, &stop_rx).await?;
        }
        Ok(running)
    }
}

/// Running challenge servers, started by [`ChallTestSrv::start`]. Derefs to
/// the [`ChallTestSrv`] handle to set mock data. Dropping it stops the
/// servers too (without waiting for them).
pub struct Running {
    srv: ChallTestSrv,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    dns_addrs: Vec<SocketAddr>,
    http01_addrs: Vec<SocketAddr>,
    https01_addrs: Vec<SocketAddr>,
    tlsalpn01_addrs: Vec<SocketAddr>,
    management_addr: Option<SocketAddr>,
}

impl std::ops::Deref for Running {
    type Target = ChallTestSrv;
    fn deref(&self) -> &ChallTestSrv {
        &self.srv
    }
}

impl Running {
    /// The mock data handle (a clone shares the data).
    pub fn handle(&self) -> ChallTestSrv {
        self.srv.clone()
    }

    /// Address of the first DNS server (UDP and TCP share it).
    pub fn dns_addr(&self) -> Option<SocketAddr> {
        self.dns_addrs.first().copied()
    }

    /// Addresses of every DNS server.
    pub fn dns_addrs(&self) -> &[SocketAddr] {
        &self.dns_addrs
    }

    /// Address of the first HTTP-01 server.
    pub fn http01_addr(&self) -> Option<SocketAddr> {
        self.http01_addrs.first().copied()
    }

    /// Addresses of every HTTP-01 server.
    pub fn http01_addrs(&self) -> &[SocketAddr] {
        &self.http01_addrs
    }

    /// Address of the first HTTPS HTTP-01 server.
    pub fn https01_addr(&self) -> Option<SocketAddr> {
        self.https01_addrs.first().copied()
    }

    /// Addresses of every HTTPS HTTP-01 server.
    pub fn https01_addrs(&self) -> &[SocketAddr] {
        &self.https01_addrs
    }

    /// Address of the first TLS-ALPN-01 server.
    pub fn tlsalpn01_addr(&self) -> Option<SocketAddr> {
        self.tlsalpn01_addrs.first().copied()
    }

    /// Addresses of every TLS-ALPN-01 server.
    pub fn tlsalpn01_addrs(&self) -> &[SocketAddr] {
        &self.tlsalpn01_addrs
    }

    /// Address of the management server.
    pub fn management_addr(&self) -> Option<SocketAddr> {
        self.management_addr
    }

    /// Stops every server and waits until their sockets are closed.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

impl Running {
    /// The DNS servers, UDP and TCP on each address.
    async fn start_dns(&mut self, config: &Config, stop: &watch::Receiver<bool>) -> io::Result<()> {
        for addr in &config.dns01 {
            let (udp, tcp) = dns::bind(addr).await?;
            let local = udp.local_addr()?;
            self.srv
                .log(format_args!("DNS server (UDP and TCP) on {local}"));
            self.dns_addrs.push(local);
            let ttl = config.dns_ttl;
            self.tasks.push(tokio::spawn(dns::serve_udp(
                self.srv.clone(),
                udp,
                ttl,
                stop.clone(),
            )));
            self.tasks.push(tokio::spawn(dns::serve_tcp(
                self.srv.clone(),
                tcp,
                ttl,
                stop.clone(),
            )));
        }
        Ok(())
    }

    /// The HTTP-01 servers on `addrs`: over HTTPS with `tls`, else plain
    /// HTTP.
    async fn start_http01(
        &mut self,
        addrs: &[String],
        tls: Option<Arc<ServerConfig>>,
        stop: &watch::Receiver<bool>,
    ) -> io::Result<()> {
        for addr in addrs {
            let listener = bind_tcp(addr).await?;
            let local = listener.local_addr()?;
            if tls.is_some() {
                self.srv
                    .log(format_args!("HTTPS HTTP-01 server on {local}"));
                self.https01_addrs.push(local);
            } else {
                self.srv.log(format_args!("HTTP-01 server on {local}"));
                self.http01_addrs.push(local);
            }
            self.tasks.push(tokio::spawn(http::serve(
                self.srv.clone(),
                listener,
                tls.clone(),
                stop.clone(),
            )));
        }
        Ok(())
    }

    /// The TLS-ALPN-01 servers, sharing one responder.
    async fn start_tlsalpn01(
        &mut self,
        addrs: &[String],
        stop: &watch::Receiver<bool>,
    ) -> io::Result<()> {
        if addrs.is_empty() {
            return Ok(());
        }
        let responder = Arc::new(tlsalpn::Responder::new().map_err(io::Error::other)?);
        for addr in addrs {
            let listener = bind_tcp(addr).await?;
            let local = listener.local_addr()?;
            self.srv.log(format_args!("TLS-ALPN-01 server on {local}"));
            self.tlsalpn01_addrs.push(local);
            self.tasks.push(tokio::spawn(tlsalpn::serve(
                self.srv.clone(),
                responder.clone(),
                listener,
                stop.clone(),
            )));
        }
        Ok(())
    }

    /// The management API server.
    async fn start_management(
        &mut self,
        addr: &str,
        stop: &watch::Receiver<bool>,
    ) -> io::Result<()> {
        let listener = bind_tcp(addr).await?;
        let local = listener.local_addr()?;
        self.srv.log(format_args!("management server on {local}"));
        self.management_addr = Some(local);
        self.tasks.push(tokio::spawn(management::serve(
            self.srv.clone(),
            listener,
            stop.clone(),
        )));
        Ok(())
    }
}
