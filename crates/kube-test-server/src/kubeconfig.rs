//! Serving on a real socket (for kubectl or an operator running as a separate process) and
//! writing a kubeconfig that points at it.

use std::net::SocketAddr;
use std::path::Path;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::error::Error;

/// A [`crate::TestServer`] listening on a TCP port. Dropping it stops the server.
#[derive(Debug)]
pub struct ListeningServer {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The bound address (port 0 in the request is resolved here).
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl ListeningServer {
    pub(crate) async fn start(router: axum::Router, addr: SocketAddr) -> Result<Self, Error> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| Error::Bind { addr, source })?;
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(ListeningServer {
            url: format!("http://{addr}"),
            addr,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// The kubeconfig text (cluster, user without credentials, context with namespace `default`).
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: kube-test-server\n  cluster:\n    server: {url}\ncontexts:\n- name: kube-test-server\n  context:\n    cluster: kube-test-server\n    user: kube-test-server\n    namespace: default\ncurrent-context: kube-test-server\nusers:\n- name: kube-test-server\n  user:\n    token: kube-test-server\npreferences: {{}}\n",
            url = self.url
        )
    }

    /// Write [`Self::kubeconfig`] to `path` (for `KUBECONFIG=path kubectl ...`).
    pub fn write_kubeconfig(&self, path: impl AsRef<Path>) -> Result<(), Error> {
        let path = path.as_ref();
        std::fs::write(path, self.kubeconfig()).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })
    }

    /// Stop accepting connections and wait for the server task (open watches end).
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }
}

impl Drop for ListeningServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}
