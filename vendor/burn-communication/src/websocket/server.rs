use std::net::SocketAddr;

use crate::{
    base::{CommunicationChannel, CommunicationError, Message, ProtocolServer},
    util::init_logging,
    websocket::auth::{self, HANDSHAKE_TIMEOUT, ServerHandshake},
};
use axum::{
    Router,
    extract::{
        ConnectInfo, WebSocketUpgrade,
        ws::{self, WebSocket},
    },
    routing::get,
};
use futures::StreamExt;

#[derive(Clone, Debug)]
pub struct WsServer {
    host: String,
    port: u16,
    router: Router<()>,
}

pub struct WsServerChannel {
    inner: WebSocket,
    peer: SocketAddr,
}

impl WsServer {
    pub fn new(port: u16) -> Self {
        Self::bind("0.0.0.0", port)
    }

    /// quill: a server that listens on `host` only (an address of this machine, or a name
    /// that resolves to one), not on every interface.
    pub fn bind(host: &str, port: u16) -> Self {
        Self {
            host: host.to_owned(),
            port,
            router: Router::new(),
        }
    }
}

/// quill: the server's side of [`auth`]'s handshake; `Err` is why the peer is refused.
async fn authenticate(socket: &mut WebSocket, secret: &[u8]) -> Result<(), String> {
    let (handshake, challenge) = ServerHandshake::new();
    socket
        .send(ws::Message::Binary(challenge.into()))
        .await
        .map_err(|e| format!("cannot send the challenge: {e}"))?;
    let answer = match tokio::time::timeout(HANDSHAKE_TIMEOUT, socket.next()).await {
        Err(_) => return Err("it did not answer the challenge in time".into()),
        Ok(Some(Ok(ws::Message::Binary(answer)))) => answer,
        Ok(Some(Ok(_))) => return Err("its answer to the challenge is not binary".into()),
        Ok(Some(Err(e))) => return Err(format!("its connection failed: {e}")),
        Ok(None) => return Err("it closed the connection".into()),
    };
    let reply = handshake.check(secret, &answer)?;
    socket
        .send(ws::Message::Binary(reply.into()))
        .await
        .map_err(|e| format!("cannot send the proof: {e}"))
}

impl ProtocolServer for WsServer {
    type Channel = WsServerChannel;
    type Error = WsServerError;

    async fn serve<F>(self, shutdown: F) -> Result<(), Self::Error>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        init_logging();

        let address = format!("{}:{}", self.host, self.port);
        log::info!("Starting server {address}");

        let listener = tokio::net::TcpListener::bind(address).await?;

        axum::serve(
            listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await?;

        Ok(())
    }

    fn route<C, Fut>(mut self, path: &str, callback: C) -> Self
    where
        C: FnOnce(WsServerChannel) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        // Format path: should start with a /
        let path = if path.starts_with("/") {
            path.to_owned()
        } else {
            format!("/{path}")
        };

        // quill: the peer's address names it in the log, and no message is handed to
        // `callback` before the peer has proven it knows the secret (when one is set).
        let route = path.clone();
        let method = get(
            |ws: WebSocketUpgrade, ConnectInfo(peer): ConnectInfo<SocketAddr>| async move {
                let ws = match auth::max_message_bytes() {
                    Some(max) => ws.max_message_size(max).max_frame_size(max),
                    None => ws,
                };
                ws.on_upgrade(async move |mut socket| {
                    if let Some(secret) = auth::secret()
                        && let Err(reason) = authenticate(&mut socket, secret).await
                    {
                        let message =
                            format!("quill: refused a connection from {peer} to {route}: {reason}");
                        crate::util::report(log::Level::Warn, &message);
                        let _ = socket.send(ws::Message::Close(None)).await;
                        return;
                    }
                    callback(WsServerChannel {
                        inner: socket,
                        peer,
                    })
                    .await;
                })
            },
        );

        self.router = self.router.route(&path, method);

        self
    }
}

impl CommunicationChannel for WsServerChannel {
    type Error = WsServerError;

    fn peer(&self) -> String {
        self.peer.to_string()
    }

    async fn send(&mut self, message: Message) -> Result<(), WsServerError> {
        self.inner.send(ws::Message::Binary(message.data)).await?;

        Ok(())
    }

    async fn recv(&mut self) -> Result<Option<Message>, WsServerError> {
        match self.inner.next().await {
            Some(next) => match next {
                Ok(ws::Message::Binary(data)) => Ok(Some(Message { data })),
                Ok(ws::Message::Close(_close_frame)) => Ok(None),
                Err(err) => Err(WsServerError::Axum(err)),
                msg => Err(WsServerError::UnknownMessage(format!("{msg:?}"))),
            },
            // quill: the stream ended without a close frame (the peer died).
            None => Ok(None),
        }
    }

    async fn close(&mut self) -> Result<(), WsServerError> {
        let reason = "Peer is closing".to_string();

        self.inner
            .send(ws::Message::Close(Some(ws::CloseFrame {
                code: 1000, // code: Normal
                reason: reason.clone().into(),
            })))
            .await?;

        Ok(())
    }
}

#[derive(Debug)]
pub enum WsServerError {
    Io(std::io::Error),
    Axum(axum::Error),
    UnknownMessage(String),
    Other(String),
}

impl CommunicationError for WsServerError {}

impl From<std::io::Error> for WsServerError {
    fn from(err: std::io::Error) -> Self {
        Self::Io(err)
    }
}

impl From<axum::Error> for WsServerError {
    fn from(err: axum::Error) -> Self {
        Self::Axum(err)
    }
}
