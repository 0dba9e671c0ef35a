//! HAProxy's runtime API (the `stats socket ... level admin`): `set weight be/srv N` and
//! `get weight be/srv`, over a unix socket or `tcp://127.0.0.1:PORT`. The canary server gets
//! weight w and the baseline server 100 − w.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{BoxFuture, RouterError, TrafficRouter};

const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
enum Admin {
    Unix(String),
    Tcp(String),
}

/// Sets weights through HAProxy's runtime API.
#[derive(Debug, Clone)]
pub struct HaproxyRouter {
    admin: Admin,
    backend: String,
    baseline: String,
    canary: String,
}

impl HaproxyRouter {
    pub fn new(
        admin: &str,
        backend: &str,
        baseline: &str,
        canary: &str,
    ) -> Result<Self, RouterError> {
        let admin = match admin.strip_prefix("tcp://") {
            Some(addr) => Admin::Tcp(addr.to_owned()),
            None => Admin::Unix(admin.strip_prefix("unix://").unwrap_or(admin).to_owned()),
        };
        for name in [backend, baseline, canary] {
            if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == ';') {
                return Err(RouterError::Failed {
                    router: "haproxy".into(),
                    message: format!("{name:?} is not a valid backend or server name"),
                });
            }
        }
        Ok(HaproxyRouter {
            admin,
            backend: backend.to_owned(),
            baseline: baseline.to_owned(),
            canary: canary.to_owned(),
        })
    }

    fn fail(&self, message: String) -> RouterError {
        RouterError::Failed {
            router: self.describe(),
            message,
        }
    }

    /// Sends one command and returns HAProxy's answer (it closes the connection after it).
    pub async fn command(&self, line: &str) -> Result<String, RouterError> {
        let exchange = async {
            let mut out = Vec::new();
            match &self.admin {
                Admin::Unix(path) => {
                    #[cfg(unix)]
                    {
                        let mut s = tokio::net::UnixStream::connect(path).await?;
                        s.write_all(format!("{line}\n").as_bytes()).await?;
                        s.read_to_end(&mut out).await?;
                    }
                    #[cfg(not(unix))]
                    {
                        let _ = path;
                        return Err(std::io::Error::other("unix sockets need a unix system"));
                    }
                }
                Admin::Tcp(addr) => {
                    let mut s = tokio::net::TcpStream::connect(addr).await?;
                    s.write_all(format!("{line}\n").as_bytes()).await?;
                    s.read_to_end(&mut out).await?;
                }
            }
            Ok::<_, std::io::Error>(String::from_utf8_lossy(&out).trim().to_owned())
        };
        match tokio::time::timeout(TIMEOUT, exchange).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => Err(self.fail(format!("`{line}`: {e}"))),
            Err(_) => Err(self.fail(format!("`{line}`: no answer within {TIMEOUT:?}"))),
        }
    }

    /// The current weight of one server (`get weight` answers `20 (initial 1)`).
    pub async fn server_weight(&self, server: &str) -> Result<u32, RouterError> {
        let line = format!("get weight {}/{server}", self.backend);
        let answer = self.command(&line).await?;
        answer
            .split_whitespace()
            .next()
            .and_then(|w| w.parse().ok())
            .ok_or_else(|| self.fail(format!("`{line}` answered {answer:?}")))
    }

    /// Sets one server's weight (0–256 in HAProxy); an empty answer is success.
    pub async fn set_server_weight(&self, server: &str, weight: u32) -> Result<(), RouterError> {
        let line = format!("set weight {}/{server} {weight}", self.backend);
        let answer = self.command(&line).await?;
        if answer.is_empty() {
            Ok(())
        } else {
            Err(self.fail(format!("`{line}` answered {answer:?}")))
        }
    }
}

impl TrafficRouter for HaproxyRouter {
    fn describe(&self) -> String {
        let via = match &self.admin {
            Admin::Unix(p) => p.clone(),
            Admin::Tcp(a) => format!("tcp://{a}"),
        };
        format!(
            "haproxy {}/{{{},{}}} via {via}",
            self.backend, self.baseline, self.canary
        )
    }

    /// Both servers must agree (canary w, baseline 100 − w); anything else is drift, which
    /// reads as `None` so that the next reconcile rewrites both.
    fn current_weight(&self) -> BoxFuture<'_, Result<Option<u32>, RouterError>> {
        Box::pin(async move {
            let canary = self.server_weight(&self.canary).await?;
            let baseline = self.server_weight(&self.baseline).await?;
            Ok((canary <= 100 && canary + baseline == 100).then_some(canary))
        })
    }

    /// Raises the side that grows last so that at no moment both are 0.
    fn set_weight(&self, canary: u32) -> BoxFuture<'_, Result<(), RouterError>> {
        Box::pin(async move {
            let canary = canary.min(100);
            let (first, second) = if canary >= 50 {
                ((&self.canary, canary), (&self.baseline, 100 - canary))
            } else {
                ((&self.baseline, 100 - canary), (&self.canary, canary))
            };
            self.set_server_weight(first.0, first.1).await?;
            self.set_server_weight(second.0, second.1).await?;
            tracing::info!(router = %self.describe(), canary, "set weights");
            Ok(())
        })
    }
}
