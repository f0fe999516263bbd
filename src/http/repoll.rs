//! A connection's wakes of itself, answered by polling it again at once.
//!
//! hyper reads an HTTP/1.1 request body into a channel whose reader wakes
//! the writer's last waker each time it takes a chunk. The writer is the
//! connection's own task, which is being polled at that moment (the
//! handler runs inside it), so every request with a body wakes the task
//! that is running. Tokio's multi-thread runtime treats a task woken
//! during its own poll as one that yielded: it puts it at the back of the
//! queue and wakes a parked worker to help, which at concurrency 1 finds
//! nothing to do and parks again: a futex wake and two context switches
//! per request, for no work (docs/PERFORMANCE.md, "A connection's wakes of
//! itself").
//!
//! [`Repoll`] gives the future a waker of its own. A wake while the future
//! is being polled is noted, and the future is polled again before
//! returning, up to [`AGAIN`] times; any other wake goes to the task's
//! waker as before. A future that keeps waking itself (one that yields on
//! purpose for fairness, or that ran out of Tokio's cooperative budget)
//! gets the task's waker woken after those polls, so it yields as it
//! asked, and no wake is ever lost.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;

/// Polls in a row a future that woke itself in each gets before it yields
/// to the runtime.
const AGAIN: usize = 1;

/// `F`, polled again at once when it wakes itself while being polled.
pub(crate) struct Repoll<F> {
    inner: Pin<Box<F>>,
    hub: Arc<Hub>,
    waker: Waker,
}

/// The waker the future is polled with.
struct Hub {
    /// The task's waker, from its latest poll.
    task: AtomicWaker,
    /// Set while the future is being polled.
    polling: AtomicBool,
    /// Set by a wake that came while `polling`.
    woken: AtomicBool,
}

impl<F: Future> Repoll<F> {
    pub(crate) fn new(inner: F) -> Repoll<F> {
        let hub = Arc::new(Hub {
            task: AtomicWaker::new(),
            polling: AtomicBool::new(false),
            woken: AtomicBool::new(false),
        });
        Repoll {
            inner: Box::pin(inner),
            waker: Waker::from(hub.clone()),
            hub,
        }
    }
}

impl Wake for Hub {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.polling.load(SeqCst) {
            self.woken.store(true, SeqCst);
            // Still polling: the poll sees `woken` when it ends. Otherwise
            // it may have looked already, so the task is woken (at worst
            // once more than needed).
            if self.polling.load(SeqCst) {
                return;
            }
        }
        self.task.wake();
    }
}

impl<F: Future> Future for Repoll<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        this.hub.task.register(cx.waker());
        let mut own = Context::from_waker(&this.waker);
        for _ in 0..=AGAIN {
            this.hub.woken.store(false, SeqCst);
            this.hub.polling.store(true, SeqCst);
            let polled = this.inner.as_mut().poll(&mut own);
            this.hub.polling.store(false, SeqCst);
            if polled.is_ready() {
                return polled;
            }
            if !this.hub.woken.swap(false, SeqCst) {
                return Poll::Pending;
            }
        }
        // It woke itself in each poll: let the runtime poll it again later.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Counts the wakes of the task's waker.
    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    fn task() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count::default());
        (count.clone(), Waker::from(count))
    }

    /// A future that wakes itself in its first `wakes` polls, then is
    /// ready; it counts its polls.
    struct SelfWaking {
        wakes: usize,
        polls: Arc<AtomicUsize>,
    }

    impl Future for SelfWaking {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.polls.fetch_add(1, SeqCst);
            if self.wakes == 0 {
                return Poll::Ready(());
            }
            self.wakes -= 1;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }

    #[test]
    fn a_wake_of_itself_is_answered_in_the_same_poll() {
        let polls = Arc::new(AtomicUsize::new(0));
        let mut f = Repoll::new(SelfWaking {
            wakes: 1,
            polls: polls.clone(),
        });
        let (count, waker) = task();
        let polled = Pin::new(&mut f).poll(&mut Context::from_waker(&waker));
        assert!(polled.is_ready());
        assert_eq!(polls.load(SeqCst), 2);
        assert_eq!(count.0.load(SeqCst), 0, "the task was not woken");
    }

    #[test]
    fn a_future_that_keeps_waking_itself_yields_to_the_runtime() {
        let polls = Arc::new(AtomicUsize::new(0));
        let mut f = Repoll::new(SelfWaking {
            wakes: usize::MAX,
            polls: polls.clone(),
        });
        let (count, waker) = task();
        for round in 1..=3 {
            let polled = Pin::new(&mut f).poll(&mut Context::from_waker(&waker));
            assert!(polled.is_pending());
            assert_eq!(polls.load(SeqCst), round * (AGAIN + 1));
            assert_eq!(count.0.load(SeqCst), round, "woken to be polled again");
        }
    }

    #[test]
    fn a_wake_from_elsewhere_reaches_the_task() {
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let mut f = Repoll::new(async move { (&mut rx).await.is_ok() });
        let (count, waker) = task();
        assert!(Pin::new(&mut f)
            .poll(&mut Context::from_waker(&waker))
            .is_pending());
        assert_eq!(count.0.load(SeqCst), 0);
        tx.send(()).unwrap();
        assert_eq!(count.0.load(SeqCst), 1);
        let polled = Pin::new(&mut f).poll(&mut Context::from_waker(&waker));
        assert_eq!(polled, Poll::Ready(true));
    }

    /// Wakes from another thread, racing with the polls, are never lost:
    /// every one is seen by a poll or reaches the task.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wakes_racing_with_polls_are_not_lost() {
        for _ in 0..200 {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<usize>();
            let sender = std::thread::spawn(move || {
                for i in 0..100 {
                    tx.send(i).unwrap();
                    if i % 7 == 0 {
                        std::thread::yield_now();
                    }
                }
            });
            let received = tokio::time::timeout(
                std::time::Duration::from_secs(10),
                tokio::spawn(Repoll::new(async move {
                    let mut rx = rx;
                    let mut n = 0;
                    while rx.recv().await.is_some() {
                        n += 1;
                    }
                    n
                })),
            )
            .await
            .expect("a wake was lost")
            .unwrap();
            sender.join().unwrap();
            assert_eq!(received, 100);
        }
    }
}
