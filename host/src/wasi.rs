//! The parts of WASI preview 1 Weft provides itself rather than take from wasmtime-wasi, because a
//! guest could use wasmtime-wasi's to escape a limit or to flood the worker:
//!
//! - `poll_oneoff`, the only way a guest sleeps: wasmtime-wasi's blocks the thread for the whole
//!   timeout, beyond the reach of epoch interruption, so a guest sleeping in it ignored its time
//!   limit and a cancel. Here a sleep is taken in slices of at most one epoch tick, with the
//!   instance's limits and interrupt checked between them.
//! - `sock_accept`, `sock_recv`, `sock_send`, `sock_shutdown`: a guest has no sockets, and
//!   wasmtime-wasi logs a warning at every call of these (100,000 calls wrote 12.9 MB to a worker's
//!   log). Here they fail quietly.
//! - stdout and stderr ([`CapturePipe`]): wasmtime-wasi's memory pipe fails every write once full,
//!   and a Rust guest's `println!` then panics. Here what is past the limit is dropped, the write
//!   succeeds, and the output is marked truncated.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use wasmtime::{Caller, Extern, Linker};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{HostMonotonicClock, async_trait};

use crate::engine::{EPOCH_TICK, Sandbox};

const ERRNO_SUCCESS: u32 = 0;
const ERRNO_BADF: u32 = 8;
const ERRNO_FAULT: u32 = 21;
const ERRNO_INVAL: u32 = 28;
const ERRNO_NOTSOCK: u32 = 57;

const SUBSCRIPTION_SIZE: u64 = 48;
/// The most subscriptions one `poll_oneoff` takes: the host reads them into memory of its own, so
/// a guest must not make it allocate in proportion to the guest's memory. (Rust's std uses one or
/// two; WASI sets no bound of its own.)
const MAX_SUBSCRIPTIONS: u32 = 1024;
const EVENT_SIZE: u64 = 32;
const EVENTTYPE_CLOCK: u8 = 0;
const EVENTTYPE_FD_READ: u8 = 1;
const EVENTTYPE_FD_WRITE: u8 = 2;
const SUBCLOCKFLAGS_ABSTIME: u16 = 1;
const EVENTRWFLAGS_HANGUP: u16 = 1;
const CLOCK_REALTIME: u32 = 0;
const CLOCK_MONOTONIC: u32 = 1;

/// Replaces wasmtime-wasi's `poll_oneoff` and socket functions in `linker` with Weft's.
pub(crate) fn shadow(linker: &mut Linker<Sandbox>) -> wasmtime::Result<()> {
    let wasi = weft_abi::WASI_MODULE;
    linker.allow_shadowing(true);
    linker.func_wrap(wasi, "poll_oneoff", poll_oneoff)?;
    linker.func_wrap(wasi, "sock_accept", |fd: u32, _flags: u32, _fd_out: u32| {
        no_socket(fd)
    })?;
    linker.func_wrap(
        wasi,
        "sock_recv",
        |fd: u32, _iovs: u32, _len: u32, _flags: u32, _nread: u32, _flags_out: u32| no_socket(fd),
    )?;
    linker.func_wrap(
        wasi,
        "sock_send",
        |fd: u32, _iovs: u32, _len: u32, _flags: u32, _nwritten: u32| no_socket(fd),
    )?;
    linker.func_wrap(wasi, "sock_shutdown", |fd: u32, _how: u32| no_socket(fd))?;
    linker.allow_shadowing(false);
    Ok(())
}

/// What a socket call on `fd` answers: no open descriptor is a socket.
fn no_socket(fd: u32) -> u32 {
    if fd <= 2 { ERRNO_NOTSOCK } else { ERRNO_BADF }
}

/// One subscription, read from guest memory.
enum Subscription {
    /// Due after `after` (already past if zero).
    Clock { userdata: u64, after: Duration },
    /// Ready or failed at once: stdin at its end, stdout and stderr writable, or a bad descriptor.
    Now {
        userdata: u64,
        event: u8,
        error: u32,
    },
}

/// `poll_oneoff(in, out, nsubscriptions, nevents) -> errno`: answers descriptor subscriptions at
/// once; otherwise sleeps until the first clock is due, a slice at a time, and stops the call (as
/// its time limit or interrupt would in guest code) if the instance is stopped meanwhile.
fn poll_oneoff(
    mut caller: Caller<'_, Sandbox>,
    subscriptions: u32,
    events: u32,
    count: u32,
    nevents: u32,
) -> wasmtime::Result<u32> {
    let Some(Extern::Memory(memory)) = caller.get_export(weft_abi::MEMORY_EXPORT) else {
        return Ok(ERRNO_FAULT);
    };
    if count == 0 || count > MAX_SUBSCRIPTIONS {
        return Ok(ERRNO_INVAL);
    }
    let clock_start = caller.data().clock_start;
    let subs = {
        let mem = memory.data(&caller);
        let Some(bytes) = range(mem, subscriptions, u64::from(count) * SUBSCRIPTION_SIZE) else {
            return Ok(ERRNO_FAULT);
        };
        let mut subs = Vec::new();
        for sub in bytes.chunks_exact(SUBSCRIPTION_SIZE as usize) {
            match read_subscription(sub, clock_start) {
                Some(sub) => subs.push(sub),
                None => return Ok(ERRNO_INVAL),
            }
        }
        subs
    };
    let ready_now = subs.iter().any(|s| match s {
        Subscription::Now { .. } => true,
        Subscription::Clock { after, .. } => after.is_zero(),
    });
    let started = Instant::now();
    if !ready_now {
        let first = subs
            .iter()
            .filter_map(|s| match s {
                Subscription::Clock { after, .. } => Some(*after),
                Subscription::Now { .. } => None,
            })
            .min()
            .unwrap_or_default();
        loop {
            caller.data_mut().check_stop()?;
            let elapsed = started.elapsed();
            if elapsed >= first {
                break;
            }
            std::thread::sleep((first - elapsed).min(EPOCH_TICK));
        }
    }
    let elapsed = started.elapsed();
    let mut out = Vec::new();
    for sub in &subs {
        let mut event = [0u8; EVENT_SIZE as usize];
        match *sub {
            Subscription::Clock { userdata, after } if after <= elapsed => {
                event[..8].copy_from_slice(&userdata.to_le_bytes());
                event[10] = EVENTTYPE_CLOCK;
            }
            Subscription::Clock { .. } => continue,
            Subscription::Now {
                userdata,
                event: kind,
                error,
            } => {
                event[..8].copy_from_slice(&userdata.to_le_bytes());
                event[8..10].copy_from_slice(&(error as u16).to_le_bytes());
                event[10] = kind;
                if kind == EVENTTYPE_FD_READ && error == ERRNO_SUCCESS {
                    event[24..26].copy_from_slice(&EVENTRWFLAGS_HANGUP.to_le_bytes());
                }
            }
        }
        out.extend_from_slice(&event);
    }
    let written = (out.len() as u64 / EVENT_SIZE) as u32;
    let mem = memory.data_mut(&mut caller);
    let Some(dst) = range_mut(mem, events, out.len() as u64) else {
        return Ok(ERRNO_FAULT);
    };
    dst.copy_from_slice(&out);
    let Some(dst) = range_mut(mem, nevents, 4) else {
        return Ok(ERRNO_FAULT);
    };
    dst.copy_from_slice(&written.to_le_bytes());
    Ok(ERRNO_SUCCESS)
}

/// Reads one 48-byte subscription; `None` if its tag is not one WASI defines.
fn read_subscription(sub: &[u8], clock_start: Instant) -> Option<Subscription> {
    let u64_at = |at: usize| u64::from_le_bytes(sub[at..at + 8].try_into().unwrap());
    let u32_at = |at: usize| u32::from_le_bytes(sub[at..at + 4].try_into().unwrap());
    let userdata = u64_at(0);
    match sub[8] {
        EVENTTYPE_CLOCK => {
            let (id, timeout) = (u32_at(16), Duration::from_nanos(u64_at(24)));
            let flags = u16::from_le_bytes([sub[40], sub[41]]);
            if flags & SUBCLOCKFLAGS_ABSTIME == 0 {
                return Some(Subscription::Clock {
                    userdata,
                    after: timeout,
                });
            }
            let after = match id {
                CLOCK_REALTIME => (SystemTime::UNIX_EPOCH + timeout)
                    .duration_since(SystemTime::now())
                    .unwrap_or_default(),
                CLOCK_MONOTONIC => timeout.saturating_sub(clock_start.elapsed()),
                _ => {
                    return Some(Subscription::Now {
                        userdata,
                        event: EVENTTYPE_CLOCK,
                        error: ERRNO_INVAL,
                    });
                }
            };
            Some(Subscription::Clock { userdata, after })
        }
        kind @ (EVENTTYPE_FD_READ | EVENTTYPE_FD_WRITE) => {
            let fd = u32_at(16);
            let usable = match kind {
                EVENTTYPE_FD_READ => fd == 0,
                _ => fd == 1 || fd == 2,
            };
            Some(Subscription::Now {
                userdata,
                event: kind,
                error: if usable { ERRNO_SUCCESS } else { ERRNO_BADF },
            })
        }
        _ => None,
    }
}

fn range(mem: &[u8], ptr: u32, len: u64) -> Option<&[u8]> {
    let start = ptr as usize;
    mem.get(start..start.checked_add(usize::try_from(len).ok()?)?)
}

fn range_mut(mem: &mut [u8], ptr: u32, len: u64) -> Option<&mut [u8]> {
    let start = ptr as usize;
    mem.get_mut(start..start.checked_add(usize::try_from(len).ok()?)?)
}

/// The guest's monotonic clock: time since its instance was made. [`poll_oneoff`] reads absolute
/// monotonic deadlines against the same start.
pub(crate) struct GuestClock {
    pub(crate) start: Instant,
}

impl HostMonotonicClock for GuestClock {
    fn resolution(&self) -> u64 {
        1
    }

    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// A guest's stdout or stderr: keeps the first `limit` bytes and drops the rest, marking the
/// output truncated; every write succeeds in full, so a chatty guest never sees an error for it.
#[derive(Clone)]
pub(crate) struct CapturePipe {
    inner: Arc<Capture>,
}

struct Capture {
    kept: Mutex<Vec<u8>>,
    limit: usize,
    truncated: AtomicBool,
}

impl CapturePipe {
    pub(crate) fn new(limit: usize) -> CapturePipe {
        CapturePipe {
            inner: Arc::new(Capture {
                kept: Mutex::new(Vec::new()),
                limit,
                truncated: AtomicBool::new(false),
            }),
        }
    }

    /// What was kept.
    pub(crate) fn contents(&self) -> Vec<u8> {
        self.kept().clone()
    }

    /// Whether anything written was dropped.
    pub(crate) fn truncated(&self) -> bool {
        self.inner.truncated.load(Ordering::Relaxed)
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        self.inner.kept.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn keep(&self, bytes: &[u8]) {
        let mut kept = self.kept();
        let room = self.inner.limit.saturating_sub(kept.len());
        if bytes.len() > room {
            self.inner.truncated.store(true, Ordering::Relaxed);
        }
        kept.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }
}

/// How much one write may carry; a guest writing more is simply asked to write again.
const WRITE_PERMIT: usize = 64 << 10;

impl OutputStream for CapturePipe {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.keep(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

#[async_trait]
impl Pollable for CapturePipe {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for CapturePipe {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.keep(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

impl wasmtime_wasi::cli::IsTerminal for CapturePipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl wasmtime_wasi::cli::StdoutStream for CapturePipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}
