//! One client connection, through either protocol, with the handful of operations the
//! workloads use. Errors are reduced to a short kind (`BadVersion`, `zk-4`, `ConnectionLoss`,
//! ...) for the report's error counts.

use std::sync::Arc;

use corral_client::{Client, CreateMode, CreateOptions, Op};
use corral_proto::jute::{self, Acl, Id, MultiOp, Request, Response};

use crate::zk::ZkConn;

/// Which wire the load goes through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
pub enum Protocol {
    /// ZooKeeper's client protocol (jute over TCP): Apache ZooKeeper and Corral alike.
    Zk,
    /// Corral's native gRPC API, through `corral-client`.
    Grpc,
}

pub type OpResult<T = ()> = Result<T, String>;

/// A session on one member.
#[derive(Clone)]
pub enum Conn {
    Zk(Arc<ZkConn>),
    Grpc(Client),
}

fn open_acl() -> Vec<Acl> {
    vec![Acl { perms: 31, id: Id { scheme: "world".into(), id: "anyone".into() } }]
}

fn grpc_err(e: corral_client::Error) -> String {
    e.code().name().to_string()
}

impl Conn {
    /// Opens a session on `endpoint` (a ZooKeeper port or a gRPC address).
    pub async fn open(protocol: Protocol, endpoint: &str, session_timeout_ms: i32) -> OpResult<Conn> {
        match protocol {
            Protocol::Zk => {
                let c = ZkConn::connect(endpoint, session_timeout_ms).await.map_err(|e| e.kind())?;
                Ok(Conn::Zk(Arc::new(c)))
            }
            Protocol::Grpc => {
                let c = Client::connect(vec![endpoint.to_string()]).await.map_err(grpc_err)?;
                c.start_session(session_timeout_ms).await.map_err(grpc_err)?;
                Ok(Conn::Grpc(c))
            }
        }
    }

    pub async fn close(self) -> OpResult {
        match self {
            Conn::Zk(c) => match Arc::try_unwrap(c) {
                Ok(c) => c.close().await.map_err(|e| e.kind()),
                Err(c) => c.call(&Request::CloseSession).await.map(drop).map_err(|e| e.kind()),
            },
            Conn::Grpc(c) => c.close_session().await.map_err(grpc_err),
        }
    }

    async fn zk(c: &ZkConn, req: Request) -> OpResult<Response> {
        c.call(&req).await.map(|(_, r)| r).map_err(|e| e.kind())
    }

    /// A multi that must succeed as a whole: its first failing op's code is the error.
    async fn zk_multi(c: &ZkConn, ops: Vec<MultiOp>) -> OpResult {
        match Self::zk(c, Request::Multi(ops)).await? {
            Response::Multi(results) => match results.iter().find_map(|r| match r {
                jute::MultiResult::Error { err } if *err != 0 => Some(*err),
                _ => None,
            }) {
                Some(err) => Err(crate::zk::code_name(err)),
                None => Ok(()),
            },
            other => Err(format!("unexpected reply {other:?}")),
        }
    }

    pub async fn create(&self, path: &str, data: &[u8]) -> OpResult {
        match self {
            Conn::Zk(c) => {
                let req = jute::CreateRequest { path: path.into(), data: jute::Buffer(data.to_vec()), acl: open_acl(), flags: 0 };
                Self::zk(c, Request::Create { op: jute::op::CREATE, req }).await.map(drop)
            }
            Conn::Grpc(c) => {
                c.create(path, data, CreateOptions::new(CreateMode::Persistent)).await.map(drop).map_err(grpc_err)
            }
        }
    }

    /// Creates `path` unless it exists.
    pub async fn ensure(&self, path: &str, data: &[u8]) -> OpResult {
        match self.create(path, data).await {
            Err(e) if e == "NodeExists" => Ok(()),
            other => other,
        }
    }

    pub async fn set(&self, path: &str, data: &[u8]) -> OpResult {
        match self {
            Conn::Zk(c) => {
                let req = jute::SetDataRequest { path: path.into(), data: jute::Buffer(data.to_vec()), version: -1 };
                Self::zk(c, Request::SetData(req)).await.map(drop)
            }
            Conn::Grpc(c) => c.set_data(path, data, None).await.map(drop).map_err(grpc_err),
        }
    }

    pub async fn get(&self, path: &str) -> OpResult<Vec<u8>> {
        match self {
            Conn::Zk(c) => match Self::zk(c, Request::GetData(jute::PathWatchRequest { path: path.into(), watch: false })).await? {
                Response::GetData { data, .. } => Ok(data),
                other => Err(format!("unexpected reply {other:?}")),
            },
            Conn::Grpc(c) => c.get_data(path).await.map(|(d, _)| d).map_err(grpc_err),
        }
    }

    /// One multi of setData on every path; a failed multi is an error.
    pub async fn multi_set(&self, paths: &[String], data: &[u8]) -> OpResult {
        match self {
            Conn::Zk(c) => {
                let ops = paths
                    .iter()
                    .map(|p| MultiOp::SetData(jute::SetDataRequest { path: p.clone(), data: jute::Buffer(data.to_vec()), version: -1 }))
                    .collect();
                Self::zk_multi(c, ops).await
            }
            Conn::Grpc(c) => {
                let ops = paths.iter().map(|p| Op::set_data(p.clone(), data.to_vec(), None)).collect();
                c.multi(ops).await.map(drop).map_err(grpc_err)
            }
        }
    }

    /// Creates every path in one multi (bulk loading).
    pub async fn multi_create(&self, paths: &[String], data: &[u8]) -> OpResult {
        match self {
            Conn::Zk(c) => {
                let ops = paths
                    .iter()
                    .map(|p| MultiOp::Create {
                        op: jute::op::CREATE,
                        req: jute::CreateTtlRequest { path: p.clone(), data: jute::Buffer(data.to_vec()), acl: open_acl(), flags: 0, ttl: 0 },
                    })
                    .collect();
                Self::zk_multi(c, ops).await
            }
            Conn::Grpc(c) => {
                let ops = paths.iter().map(|p| Op::create(p.clone(), data.to_vec(), CreateOptions::default())).collect();
                c.multi(ops).await.map(drop).map_err(grpc_err)
            }
        }
    }

    pub async fn children_count(&self, path: &str) -> OpResult<i32> {
        match self {
            Conn::Zk(c) => match Self::zk(c, Request::GetAllChildrenNumber(jute::PathRequest { path: path.into() })).await? {
                Response::GetAllChildrenNumber(n) => Ok(n),
                other => Err(format!("unexpected reply {other:?}")),
            },
            Conn::Grpc(c) => c.get_all_children_number(path).await.map_err(grpc_err),
        }
    }
}

/// Waits for the next data-change notification of a one-shot watch, through either protocol.
pub enum DataWatcher {
    Zk { conn: Arc<ZkConn>, events: tokio::sync::mpsc::UnboundedReceiver<jute::WatcherEvent> },
    Grpc { client: Client, watch: Option<corral_client::Watch> },
}

impl DataWatcher {
    pub fn new(conn: &Conn) -> OpResult<DataWatcher> {
        Ok(match conn {
            Conn::Zk(c) => {
                let events = c.take_events().ok_or("events already taken")?;
                DataWatcher::Zk { conn: c.clone(), events }
            }
            Conn::Grpc(c) => DataWatcher::Grpc { client: c.clone(), watch: None },
        })
    }

    /// Sets a one-shot data watch on `path` (getData with watch).
    pub async fn arm(&mut self, path: &str) -> OpResult {
        match self {
            DataWatcher::Zk { conn, .. } => {
                Conn::zk(conn, Request::GetData(jute::PathWatchRequest { path: path.into(), watch: true })).await.map(drop)
            }
            DataWatcher::Grpc { client, watch } => {
                let (_, _, w) = client.get_data_watch(path).await.map_err(grpc_err)?;
                *watch = Some(w);
                Ok(())
            }
        }
    }

    /// The next notification of the armed watch.
    pub async fn fired(&mut self) -> OpResult {
        match self {
            DataWatcher::Zk { events, .. } => events.recv().await.map(drop).ok_or_else(|| "ConnectionLoss".to_string()),
            DataWatcher::Grpc { watch, .. } => {
                let w = watch.take().ok_or("no watch armed")?;
                w.await.map(drop).map_err(grpc_err)
            }
        }
    }
}
