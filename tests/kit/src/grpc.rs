//! A gRPC service served on `127.0.0.1:0` for a test, the way the scheduler and workers serve
//! theirs (a listener bound first, so there is no port race), until the test stops it.

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::Routes;

/// A running server.
#[derive(Debug)]
pub struct Served {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

/// Serves `routes` (e.g. `Routes::new(service.server())`) on a fresh loopback port.
pub async fn serve(routes: Routes) -> Served {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_routes(routes)
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    Served {
        url,
        shutdown: Some(tx),
        task,
    }
}

impl Served {
    /// Stops serving and waits until the server is gone. (Dropping a `Served` stops it too,
    /// without waiting.)
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        (&mut self.task).await.unwrap();
    }
}
