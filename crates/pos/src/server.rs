//! The TCP listener: accepts terminals, frames their bytes, hands each whole request to the
//! [`Host`] and writes replies in whatever order they are decided. Limits ([`Limits`]): open
//! connections, requests in flight per connection, frame length (checked as soon as the prefix
//! is read), the frame read timeout (from a frame's first byte) and the idle timeout (from the
//! last complete request). A connection that breaks a limit is closed; others are unaffected.

use std::net::SocketAddr;
use std::sync::Arc;

use iso8583::{FrameDecoder, FrameLimits, FrameStatus};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::{Host, Limits, Outcome, PosError};

/// Bytes read from the socket at a time (bounds what the frame decoder buffers).
const READ_CHUNK_BYTES: usize = 4_096;

/// A running listener.
pub struct Listener {
    pub local_addr: SocketAddr,
    pub task: JoinHandle<()>,
}

/// Binds `addr` and serves in a background task until the runtime stops or the task is aborted.
pub async fn spawn(addr: &str, host: Arc<Host>, limits: Limits) -> Result<Listener, PosError> {
    let listener =
        TcpListener::bind(addr).await.map_err(|e| PosError::Bind { addr: addr.to_owned(), source: e })?;
    let local_addr = listener.local_addr().map_err(|e| PosError::Bind { addr: addr.to_owned(), source: e })?;
    info!(%local_addr, "POS front end listening");
    let task = tokio::spawn(serve(listener, host, limits));
    Ok(Listener { local_addr, task })
}

/// Accepts connections forever.
pub async fn serve(listener: TcpListener, host: Arc<Host>, limits: Limits) {
    let connections = Arc::new(Semaphore::new(limits.connections_max));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Out of descriptors and the like: back off instead of spinning.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            warn!(%peer, connections_max = limits.connections_max, "connection limit reached; closing");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (host, limits) = (host.clone(), limits.clone());
        tokio::spawn(async move {
            connection(stream, peer, host, limits).await;
            drop(permit);
        });
    }
}

async fn connection(stream: TcpStream, peer: SocketAddr, host: Arc<Host>, limits: Limits) {
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(limits.in_flight_per_connection_max.max(1));
    let (close_tx, mut close_rx) = watch::channel(false);
    let writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if wr.write_all(&frame).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    let in_flight = Arc::new(Semaphore::new(limits.in_flight_per_connection_max.max(1)));
    let mut decoder = FrameDecoder::with_limits(FrameLimits { len_min: limits.frame_len_min, len_max: limits.frame_len_max });
    let mut buf = vec![0u8; READ_CHUNK_BYTES];
    let mut idle_deadline = Instant::now() + limits.idle_timeout;
    let mut frame_deadline: Option<Instant> = None;
    let reason = 'conn: loop {
        // Hand out every whole frame already buffered.
        loop {
            match decoder.next_frame() {
                Ok(FrameStatus::Frame(body)) => {
                    idle_deadline = Instant::now() + limits.idle_timeout;
                    frame_deadline = None;
                    let Ok(permit) = in_flight.clone().acquire_owned().await else { break 'conn "closing" };
                    let (host, tx, close_tx) = (host.clone(), tx.clone(), close_tx.clone());
                    tokio::spawn(async move {
                        match host.handle_frame(&body).await {
                            Outcome::Reply(frame) => {
                                let _ = tx.send(frame).await;
                            }
                            Outcome::Silent => {}
                            Outcome::Close(why) => {
                                info!(%peer, why, "closing connection");
                                let _ = close_tx.send(true);
                            }
                        }
                        drop(permit);
                    });
                }
                Ok(FrameStatus::NeedMore { .. }) => break,
                Err(e) => {
                    warn!(%peer, error = %e, "bad length prefix; closing");
                    break 'conn "bad length prefix";
                }
            }
        }
        if decoder.is_mid_frame() && frame_deadline.is_none() {
            frame_deadline = Some(Instant::now() + limits.frame_read_timeout);
        }
        let deadline = frame_deadline.unwrap_or(idle_deadline);
        tokio::select! {
            r = rd.read(&mut buf) => match r {
                Ok(0) | Err(_) => break 'conn "peer closed",
                Ok(n) => decoder.push(&buf[..n]),
            },
            _ = tokio::time::sleep_until(deadline) => {
                break 'conn if frame_deadline.is_some() { "frame read timeout" } else { "idle timeout" };
            }
            _ = close_rx.changed() => break 'conn "request could not be answered",
        }
    };
    info!(%peer, reason, "connection ends");
    // Requests already decided still get their replies (the writer drains), unless the close
    // was forced by a bad frame: then stop at once.
    let forced = reason != "peer closed";
    drop(tx);
    if forced {
        writer.abort();
    } else {
        // Wait for in-flight requests: each holds a permit until its reply is queued.
        let n = limits.in_flight_per_connection_max.max(1) as u32;
        let _ = in_flight.acquire_many(n).await;
        let _ = writer.await;
    }
}
