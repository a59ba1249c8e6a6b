//! The request policies, one module each, in the order they run (see
//! `stack.rs`). Most policies are "look at the request, maybe answer it,
//! maybe adjust the response": they implement [`Policy`] and are wrapped by
//! the generic [`PolicyLayer`]. Policies *respond* (a rejection is an
//! ordinary `Ok(Response)`); only infrastructure failures travel as `Err`.

pub(crate) mod access_log;
pub mod auth;
pub(crate) mod body_limit;
pub(crate) mod client_ip;
pub mod cors;
pub mod ctx;
pub(crate) mod error_page;
pub(crate) mod forward_auth;
pub(crate) mod framing;
#[cfg(test)]
mod layer_tests;
pub mod rate_limit;
pub mod request_id;
pub(crate) mod rescue;
pub mod route;
pub(crate) mod sanitize;
pub(crate) mod security_headers;
pub mod session;
pub(crate) mod upload;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower::{Layer, Service};

use crate::body::Body;
use crate::error::{BoxError, Reason};
use crate::policy::ctx::Ctx;

/// The readiness contract of the stack: every service in it is always
/// ready (`poll_ready` returns `Ready(Ok(()))` at once and never polls the
/// inner service), so a layer may call its inner service, or a clone of
/// it, without asking first. Backpressure is done by policies that answer
/// (429, 503) and by the listener's connection cap, never by `poll_ready`.
///
/// The contract is enforced where the stack is built: `stack::build_with`
/// accepts only services that implement this marker, so a tower layer that
/// relies on `poll_ready` (a concurrency limit, a buffer) cannot be added
/// to the stack by mistake; it would need its own design.
pub trait AlwaysReady {}

impl<S: AlwaysReady, P> AlwaysReady for PolicyService<S, P> {}
impl<F> AlwaysReady for tower::util::ServiceFn<F> {}

/// The future every stack service returns.
pub type BoxFuture = Pin<Box<dyn Future<Output = Result<Response<Body>, BoxError>> + Send>>;

/// The outcome of a policy's request check.
pub enum Verdict {
    /// Go on to the inner service.
    Pass,
    /// Answer now with this response.
    Respond(Response<Body>),
}

/// A request policy.
///
/// A policy that decides without waiting implements [`Policy::check`] only:
/// its layer then costs no future of its own per request. One that may wait
/// (a Redis call, a password hash) implements [`Policy::request`], and
/// `check` for the requests it can decide at once.
pub trait Policy: Send + Sync + 'static {
    /// Decides now, when the policy can without waiting: `Some(verdict)`.
    /// `None` (without having changed anything) sends the request through
    /// [`Policy::request`].
    fn check(&self, _req: &mut Request<Body>, _ctx: &Arc<Ctx>) -> Option<Verdict> {
        None
    }

    /// Checks (and may adjust) the request before the inner service, waiting if it must.
    fn request(&self, req: &mut Request<Body>, ctx: &Arc<Ctx>) -> impl Future<Output = Verdict> + Send {
        let verdict = self.check(req, ctx).unwrap_or(Verdict::Pass);
        std::future::ready(verdict)
    }

    /// Whether [`Policy::response`] does anything (when not, a passed request's
    /// response goes out through the inner service's own future).
    const ADJUSTS_RESPONSE: bool = true;

    /// Whether the response of a request [`Policy::check`] let through needs
    /// [`Policy::response`] (when not, it goes out through the inner
    /// service's own future).
    fn adjusts_checked(&self, _ctx: &Ctx) -> bool {
        Self::ADJUSTS_RESPONSE
    }

    /// Adjusts the response (the inner service's, or this policy's own rejection).
    fn response(&self, _res: &mut Response<Body>, _ctx: &Arc<Ctx>) {}
}

/// A policy that always decides at once and leaves responses alone
/// (framing, routing, client IP, CORS, body limit, upload). Each is a
/// [`Policy`]; several in a tuple are one too, run in the tuple's order in
/// one layer (one context lookup, one call of the service below), each
/// seeing only the requests the ones before it let through.
pub trait Decide: Send + Sync + 'static {
    /// The verdict on the request (which the policy may adjust).
    fn decide(&self, req: &mut Request<Body>, ctx: &Arc<Ctx>) -> Verdict;
}

impl<T: Decide> Policy for T {
    fn check(&self, req: &mut Request<Body>, ctx: &Arc<Ctx>) -> Option<Verdict> {
        Some(self.decide(req, ctx))
    }

    const ADJUSTS_RESPONSE: bool = false;
}

/// [`Decide`] for tuples: the first verdict that answers, else `Pass`.
macro_rules! decide_in_order {
    ($($p:ident),+) => {
        impl<$($p: Decide),+> Decide for ($($p,)+) {
            #[allow(non_snake_case)]
            fn decide(&self, req: &mut Request<Body>, ctx: &Arc<Ctx>) -> Verdict {
                let ($($p,)+) = self;
                $(
                    if let Verdict::Respond(res) = $p.decide(req, ctx) {
                        return Verdict::Respond(res);
                    }
                )+
                Verdict::Pass
            }
        }
    };
}
decide_in_order!(A, B);
decide_in_order!(A, B, C);
decide_in_order!(A, B, C, D);

/// Wraps a service with a [`Policy`].
pub struct PolicyLayer<P> {
    policy: Arc<P>,
}

impl<P> Clone for PolicyLayer<P> {
    fn clone(&self) -> Self {
        Self { policy: self.policy.clone() }
    }
}

impl<P> PolicyLayer<P> {
    /// A layer applying `policy`.
    pub fn new(policy: P) -> Self {
        Self { policy: Arc::new(policy) }
    }
}

impl<S, P> Layer<S> for PolicyLayer<P> {
    type Service = PolicyService<S, P>;
    fn layer(&self, inner: S) -> Self::Service {
        PolicyService { inner, policy: self.policy.clone() }
    }
}

/// The service of a [`PolicyLayer`].
pub struct PolicyService<S, P> {
    inner: S,
    policy: Arc<P>,
}

impl<S: Clone, P> Clone for PolicyService<S, P> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone(), policy: self.policy.clone() }
    }
}

impl<S, P> Service<Request<Body>> for PolicyService<S, P>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = BoxError, Future = BoxFuture> + Clone + Send + 'static,
    P: Policy,
{
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = BoxFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let ctx = match ctx_of(&req) {
            Ok(ctx) => ctx,
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        };
        // Decided now: the inner service is called here (every service in the
        // stack is always ready), and its future is passed on as it is when
        // this policy leaves the response alone.
        if let Some(verdict) = self.policy.check(&mut req, &ctx) {
            return match verdict {
                Verdict::Pass if !self.policy.adjusts_checked(&ctx) => self.inner.call(req),
                Verdict::Pass => {
                    let fut = self.inner.call(req);
                    let policy = self.policy.clone();
                    Box::pin(async move {
                        let mut res = fut.await?;
                        policy.response(&mut res, &ctx);
                        Ok(res)
                    })
                }
                Verdict::Respond(mut res) => {
                    self.policy.response(&mut res, &ctx);
                    Box::pin(std::future::ready(Ok(res)))
                }
            };
        }
        // The clone is ready: every service in the stack is always ready.
        let mut inner = self.inner.clone();
        let policy = self.policy.clone();
        Box::pin(async move {
            let mut res = match policy.request(&mut req, &ctx).await {
                Verdict::Pass => inner.call(req).await?,
                Verdict::Respond(r) => r,
            };
            policy.response(&mut res, &ctx);
            Ok(res)
        })
    }
}

/// The request's context; every request below the request-id layer has one.
pub fn ctx_of<B>(req: &Request<B>) -> Result<Arc<Ctx>, BoxError> {
    req.extensions().get::<Arc<Ctx>>().cloned().ok_or_else(|| "request without context".into())
}

/// A rejection response for `reason`, with the request id.
pub fn reject(reason: Reason, ctx: &Ctx) -> Verdict {
    Verdict::Respond(ctx.reject(reason))
}
