use crate::{
    base::{Address, CommunicationChannel, CommunicationError, Message, ProtocolClient},
    websocket::auth::{self, ClientHandshake, HANDSHAKE_TIMEOUT},
    websocket::base::parse_ws_address,
};
use burn_std::future::DynFut;
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, connect_async_with_config,
    tungstenite::{self, protocol::WebSocketConfig},
};

#[derive(Clone)]
pub struct WsClient;

impl ProtocolClient for WsClient {
    type Channel = WsClientChannel;
    type Error = WsClientError;

    fn connect(address: Address, route: &str) -> DynFut<Option<WsClientChannel>> {
        Box::pin(connect_ws(address, route.to_owned()))
    }
}

/// Open a new WebSocket connection to the address
async fn connect_ws(address: Address, route: String) -> Option<WsClientChannel> {
    let address = parse_ws_address(address).ok()?;
    let address = format!("{address}/{route}");
    const MB: usize = 1024 * 1024;
    // quill: the bound quill sets from the model's size (none as published).
    let (max_message, max_frame) = match auth::max_message_bytes() {
        Some(max) => (Some(max), Some(max)),
        None => (None, Some(MB * 512)),
    };
    let (mut stream, _) = connect_async_with_config(
        address.clone(),
        Some(
            WebSocketConfig::default()
                .write_buffer_size(0)
                .max_message_size(max_message)
                .max_frame_size(max_frame)
                .accept_unmasked_frames(true)
                .read_buffer_size(64 * 1024), // 64 KiB (previous default)
        ),
        true,
    )
    .await
    .ok()?;
    if let Some(secret) = auth::secret()
        && let Err(reason) = authenticate(&mut stream, secret).await
    {
        let message = format!("quill: refused the connection to {address}: {reason}");
        crate::util::report(log::Level::Warn, &message);
        let _ = stream.close(None).await;
        return None;
    }

    Some(WsClientChannel {
        inner: stream,
        peer: address,
    })
}

/// quill: the client's side of [`auth`]'s handshake; `Err` is why the server is refused.
async fn authenticate(stream: &mut WsStream, secret: &[u8]) -> Result<(), String> {
    let challenge = next_binary(stream).await?;
    let (handshake, answer) = ClientHandshake::answer(secret, &challenge)?;
    stream
        .send(tungstenite::Message::Binary(answer.into()))
        .await
        .map_err(|e| format!("cannot answer the challenge: {e}"))?;
    let proof = next_binary(stream).await?;
    Ok(handshake.check(secret, &proof)?)
}

async fn next_binary(stream: &mut WsStream) -> Result<bytes::Bytes, String> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.next()).await {
        Err(_) => Err("the server did not go on with the handshake in time".to_owned()),
        Ok(Some(Ok(tungstenite::Message::Binary(data)))) => Ok(data),
        Ok(Some(Ok(_))) => Err("the server sent a message that is not binary".to_owned()),
        Ok(Some(Err(e))) => Err(format!("the connection failed: {e}")),
        Ok(None) => Err("the server closed the connection".to_owned()),
    }
}

type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub struct WsClientChannel {
    inner: WebSocketStream<MaybeTlsStream<TcpStream>>,
    peer: String,
}

impl CommunicationChannel for WsClientChannel {
    type Error = WsClientError;

    fn peer(&self) -> String {
        self.peer.clone()
    }

    async fn send(&mut self, msg: Message) -> Result<(), WsClientError> {
        self.inner
            .send(tungstenite::Message::Binary(msg.data))
            .await?;

        Ok(())
    }

    async fn recv(&mut self) -> Result<Option<Message>, WsClientError> {
        match self.inner.next().await {
            Some(next) => match next {
                Ok(tungstenite::Message::Binary(data)) => Ok(Some(Message { data })),
                Ok(tungstenite::Message::Close(_close_frame)) => Ok(None),
                Err(err) => Err(WsClientError::Tungstenite(err)),
                msg => Err(WsClientError::UnknownMessage(format!("{msg:?}"))),
            },
            // quill: the stream ended without a close frame (the peer died).
            None => Ok(None),
        }
    }

    async fn close(&mut self) -> Result<(), WsClientError> {
        let reason = "Peer is closing".to_string();

        self.inner
            .send(tungstenite::Message::Close(Some(
                tungstenite::protocol::CloseFrame {
                    code: tungstenite::protocol::frame::coding::CloseCode::Normal,
                    reason: reason.clone().into(),
                },
            )))
            .await?;

        Ok(())
    }
}

#[derive(Debug)]
pub enum WsClientError {
    Io(std::io::Error),
    Tungstenite(tungstenite::Error),
    UnknownMessage(String),
    Other(String),
}
impl CommunicationError for WsClientError {}

impl From<std::io::Error> for WsClientError {
    fn from(err: std::io::Error) -> Self {
        Self::Io(err)
    }
}

impl From<tungstenite::Error> for WsClientError {
    fn from(err: tungstenite::Error) -> Self {
        Self::Tungstenite(err)
    }
}
