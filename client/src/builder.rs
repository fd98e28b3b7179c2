//! Building a [`Client`]: the endpoint list and the timeouts.

use std::time::Duration;

use tonic::transport::Endpoint;

use crate::client::Client;
use crate::connection::Timeouts;
use crate::error::Error;

/// How long one call may take, failover and backoff included, by default.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long opening a connection to one member may take by default. Short, so
/// a member that is down (or cut off) costs little before the next is tried.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Configures and builds a [`Client`].
///
/// ```no_run
/// # async fn demo() -> Result<(), corral_client::Error> {
/// use std::time::Duration;
/// let client = corral_client::ClientBuilder::new(["10.0.0.1:7001", "10.0.0.2:7001"])
///     .request_timeout(Duration::from_secs(5))
///     .connect_timeout(Duration::from_secs(1))
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    endpoints: Vec<String>,
    request_timeout: Duration,
    connect_timeout: Duration,
}

impl ClientBuilder {
    /// `endpoints` are the members' client addresses, `host:port` (an
    /// `http://` prefix is accepted). Blank entries are ignored, so a
    /// comma-separated list with a trailing comma is fine.
    pub fn new<I, S>(endpoints: I) -> ClientBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ClientBuilder {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }

    /// The budget of one call, including failover to other members and
    /// backoff. When it runs out the call fails with `Error::Timeout`
    /// (ambiguous for writes). Default [`DEFAULT_REQUEST_TIMEOUT`].
    pub fn request_timeout(mut self, timeout: Duration) -> ClientBuilder {
        self.request_timeout = timeout;
        self
    }

    /// How long opening a connection to one member may take before the next
    /// member is tried. Default [`DEFAULT_CONNECT_TIMEOUT`].
    pub fn connect_timeout(mut self, timeout: Duration) -> ClientBuilder {
        self.connect_timeout = timeout;
        self
    }

    /// Validates the endpoints and starts the client's dispatch task on the
    /// current runtime. No connection is opened yet: the first request
    /// connects, so a member being down shows up as that request's failover
    /// (or error), not here.
    ///
    /// # Errors
    /// [`Error::NoEndpoints`] for an empty list, [`Error::InvalidArgument`] for
    /// an endpoint that isn't `host:port` or a zero timeout.
    pub async fn connect(self) -> Result<Client, Error> {
        if self.request_timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err(Error::InvalidArgument("timeouts must be greater than zero".into()));
        }
        let mut members = Vec::new();
        for raw in &self.endpoints {
            let raw = raw.trim();
            if raw.is_empty() {
                continue;
            }
            let addr = parse_endpoint(raw)?;
            let endpoint = Endpoint::from_shared(format!("http://{addr}"))
                .map_err(|e| Error::InvalidArgument(format!("endpoint {raw:?}: {e}")))?
                .connect_timeout(self.connect_timeout);
            members.push((addr, endpoint));
        }
        if members.is_empty() {
            return Err(Error::NoEndpoints);
        }
        let timeouts = Timeouts { request: self.request_timeout, connect: self.connect_timeout };
        Ok(Client::start(members, timeouts))
    }
}

/// `host:port` (or `http://host:port`) → `host:port`.
pub(crate) fn parse_endpoint(raw: &str) -> Result<String, Error> {
    let bad = |why: &str| Err(Error::InvalidArgument(format!("endpoint {raw:?}: {why}")));
    let addr = match raw.split_once("://") {
        None => raw,
        Some(("http", rest)) => rest.trim_end_matches('/'),
        Some((scheme, _)) => return bad(&format!("unsupported scheme {scheme:?}, use host:port")),
    };
    let Some((host, port)) = addr.rsplit_once(':') else {
        return bad("expected host:port");
    };
    if host.is_empty() || host.contains('/') {
        return bad("expected host:port");
    }
    if port.parse::<u16>().is_err() {
        return bad("the port must be a number from 0 to 65535");
    }
    Ok(addr.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_host_and_port() {
        assert_eq!(parse_endpoint("127.0.0.1:7001"), Ok("127.0.0.1:7001".to_string()));
        assert_eq!(parse_endpoint("http://db1:7001/"), Ok("db1:7001".to_string()));
        assert_eq!(parse_endpoint("[::1]:7001"), Ok("[::1]:7001".to_string()));
        for bad in ["db1", "db1:", ":7001", "db1:port", "db1:70000", "https://db1:7001", "a/b:1"] {
            assert!(matches!(parse_endpoint(bad), Err(Error::InvalidArgument(_))), "{bad}");
        }
    }

    #[tokio::test]
    async fn empty_lists_and_bad_timeouts_are_rejected() {
        let none: [&str; 0] = [];
        assert_eq!(ClientBuilder::new(none).connect().await.err(), Some(Error::NoEndpoints));
        assert_eq!(ClientBuilder::new([" ", ""]).connect().await.err(), Some(Error::NoEndpoints));
        let zero = ClientBuilder::new(["a:1"]).request_timeout(Duration::ZERO).connect().await;
        assert!(matches!(zero, Err(Error::InvalidArgument(_))));
        let ok = ClientBuilder::new(["a:1", " b:2 ", ""]).connect().await;
        assert_eq!(ok.map(|c| c.endpoints()), Ok(vec!["a:1".to_string(), "b:2".to_string()]));
    }
}
