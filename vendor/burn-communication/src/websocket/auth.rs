//! quill: every websocket connection proves, before any message is read as a collective
//! message, that both of its ends know the run's shared secret, without sending it.
//!
//! The server opens with `HELLO` and a fresh random challenge `s`; the client answers with its
//! own challenge `c` and `HMAC-SHA256(secret, "client" | s | c)`; the server checks that and
//! answers `HMAC-SHA256(secret, "server" | s | c)`, which the client checks in turn. Fresh
//! challenges on both sides mean an answer overheard once proves nothing later. A connection
//! that fails is closed and logged; the server goes on serving.
//!
//! Set once per process ([`configure`]): the secret and the size bound belong to the run the
//! process trains, and burn-collective creates its clients and servers deep inside, through
//! `ProtocolClient::connect`, a function without a receiver.

use std::sync::OnceLock;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The first bytes of the server's challenge: a peer running anything else fails at once.
const HELLO: &[u8] = b"quill-node-auth-1\0";
const NONCE: usize = 32;
const PROOF: usize = 32;
/// How long either side waits for the other's part of the handshake.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

struct Security {
    secret: Option<Vec<u8>>,
    max_message_bytes: usize,
}

static SECURITY: OnceLock<Security> = OnceLock::new();

/// Sets this process's shared secret (`None`: connections are not authenticated) and the
/// largest message a peer may send. Fails when it was set already.
pub fn configure(secret: Option<Vec<u8>>, max_message_bytes: usize) -> Result<(), String> {
    SECURITY
        .set(Security {
            secret,
            max_message_bytes,
        })
        .map_err(|_| "the node security settings are set once per process".to_owned())
}

pub(crate) fn secret() -> Option<&'static [u8]> {
    SECURITY.get().and_then(|s| s.secret.as_deref())
}

/// The configured bound, else burn-communication's own (none for whole messages).
pub(crate) fn max_message_bytes() -> Option<usize> {
    SECURITY.get().map(|s| s.max_message_bytes)
}

fn mac(secret: &[u8], role: &[u8], server: &[u8], client: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(role);
    mac.update(server);
    mac.update(client);
    mac
}

fn nonce() -> [u8; NONCE] {
    let mut nonce = [0u8; NONCE];
    getrandom::fill(&mut nonce).expect("the OS gives random bytes");
    nonce
}

/// The server's side: its challenge, then (given the client's answer) its own proof.
pub(crate) struct ServerHandshake {
    nonce: [u8; NONCE],
}

impl ServerHandshake {
    pub(crate) fn new() -> (Self, Vec<u8>) {
        let nonce = nonce();
        (Self { nonce }, [HELLO, &nonce].concat())
    }

    /// The reply to the client's `answer`, or why the client is refused.
    pub(crate) fn check(&self, secret: &[u8], answer: &[u8]) -> Result<Vec<u8>, &'static str> {
        if answer.len() != NONCE + PROOF {
            return Err("its answer to the challenge has the wrong length");
        }
        let (client, proof) = answer.split_at(NONCE);
        mac(secret, b"client", &self.nonce, client)
            .verify_slice(proof)
            .map_err(|_| "it does not know the node secret")?;
        Ok(mac(secret, b"server", &self.nonce, client)
            .finalize()
            .into_bytes()
            .to_vec())
    }
}

/// The client's side: its answer to the server's `challenge`, then the check of the server's
/// proof.
pub(crate) struct ClientHandshake {
    server: [u8; NONCE],
    nonce: [u8; NONCE],
}

impl ClientHandshake {
    pub(crate) fn answer(secret: &[u8], challenge: &[u8]) -> Result<(Self, Vec<u8>), &'static str> {
        let server = challenge
            .strip_prefix(HELLO)
            .and_then(|n| <[u8; NONCE]>::try_from(n).ok())
            .ok_or("the server sent no quill challenge")?;
        let nonce = nonce();
        let proof = mac(secret, b"client", &server, &nonce).finalize().into_bytes();
        Ok((Self { server, nonce }, [&nonce[..], &proof[..]].concat()))
    }

    pub(crate) fn check(&self, secret: &[u8], proof: &[u8]) -> Result<(), &'static str> {
        mac(secret, b"server", &self.server, &self.nonce)
            .verify_slice(proof)
            .map_err(|_| "the server does not know the node secret")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_ends_with_the_secret_agree_and_anyone_else_is_refused() {
        let secret = b"correct horse battery staple";
        let (server, challenge) = ServerHandshake::new();
        let (client, answer) = ClientHandshake::answer(secret, &challenge).unwrap();
        let reply = server.check(secret, &answer).unwrap();
        client.check(secret, &reply).unwrap();

        // The wrong secret, on either side.
        let (_, wrong) = ClientHandshake::answer(b"guess", &challenge).unwrap();
        assert!(server.check(secret, &wrong).is_err());
        let (impostor, challenge2) = ServerHandshake::new();
        let (client2, answer2) = ClientHandshake::answer(secret, &challenge2).unwrap();
        assert!(impostor.check(b"guess", &answer2).is_err());
        assert!(client2.check(secret, &[0; PROOF]).is_err());

        // 64 random bytes, an answer replayed to a new challenge, a foreign server.
        assert!(server.check(secret, &[7; 64]).is_err());
        let (fresh, _) = ServerHandshake::new();
        assert!(fresh.check(secret, &answer).is_err());
        assert!(ClientHandshake::answer(secret, &[1; 50]).is_err());
    }
}
