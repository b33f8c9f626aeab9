//! XEP-0077 In-Band Registration for logged-in users: see the account, change the password,
//! remove the account (its streams are then closed). Creating accounts before login is done in
//! the c2s negotiation (`session/c2s/register.rs`) and is off unless `c2s.allow_registration`.

use std::sync::Arc;

use super::{Ctx, IqFuture, IqHandler, Registrar, account, sender};
use crate::router::Router;
use crate::session::SessionMsg;
use crate::stanza::{ErrorCondition, iq_error, iq_result};
use crate::stream::sasl::scram::{DEFAULT_ITERATIONS, ScramCredentials};
use crate::stream::{Condition, StreamError};
use crate::xml::Element;

/// `jabber:iq:register`
pub use crate::stanza::NS_REGISTER as NS;

struct Register;

impl IqHandler for Register {
    fn handle_opt<'a>(
        &'a self,
        ctx: &'a Ctx,
        router: &'a Router,
        iq: &'a Element,
    ) -> super::OptIqFuture<'a> {
        Box::pin(async move {
            let removing = iq.attr("type") == Some("set")
                && iq
                    .get_child("query", NS)
                    .is_some_and(|q| q.get_child("remove", NS).is_some())
                && sender(iq).is_some_and(|f| to_self_or_server(iq, &f.to_bare()));
            if removing {
                self.remove(ctx, router, iq).await
            } else {
                Some(self.handle(ctx, router, iq).await)
            }
        })
    }

    fn handle<'a>(&'a self, ctx: &'a Ctx, _router: &'a Router, iq: &'a Element) -> IqFuture<'a> {
        Box::pin(async move {
            let Some(from) = sender(iq) else {
                return iq_error(iq, ErrorCondition::BadRequest, None);
            };
            let me = from.to_bare();
            // Addressed to the server, to the account itself, or to nobody; never to another.
            if !to_self_or_server(iq, &me) {
                return iq_error(iq, ErrorCondition::Forbidden, None);
            }
            let (host, user) = account(&me);
            let Some(q) = iq.get_child("query", NS) else {
                return iq_error(iq, ErrorCondition::BadRequest, None);
            };
            match iq.attr("type") {
                Some("get") => iq_result(iq).with_child(
                    Element::new("query", NS)
                        .with_child(Element::new("registered", NS))
                        .with_child(Element::new("username", NS).with_text(user.to_string())),
                ),
                // Removal is answered by `handle_opt`, which must order the reply and the close.
                Some("set") if q.get_child("remove", NS).is_some() => {
                    iq_error(iq, ErrorCondition::InternalServerError, None)
                }
                Some("set") => {
                    let name = q.get_child("username", NS).map(|u| u.text());
                    let Some(password) = q.get_child("password", NS).map(|p| p.text()) else {
                        return iq_error(iq, ErrorCondition::BadRequest, None);
                    };
                    if name.as_deref().is_some_and(|n| n != user) || password.is_empty() {
                        return iq_error(iq, ErrorCondition::NotAcceptable, None);
                    }
                    let creds = match tokio::task::spawn_blocking(move || {
                        ScramCredentials::new_set(&password, DEFAULT_ITERATIONS)
                    })
                    .await
                    {
                        Ok(Ok(c)) => c,
                        _ => return iq_error(iq, ErrorCondition::NotAcceptable, None),
                    };
                    match ctx
                        .storage
                        .accounts
                        .set_credentials(host, user, &creds)
                        .await
                    {
                        Ok(true) => iq_result(iq),
                        Ok(false) => iq_error(iq, ErrorCondition::ItemNotFound, None),
                        Err(_) => iq_error(iq, ErrorCondition::InternalServerError, None),
                    }
                }
                _ => iq_error(iq, ErrorCondition::BadRequest, None),
            }
        })
    }
}

impl Register {
    /// Removes the sender's account: the result goes to the sender, then every stream of the
    /// account is closed with `<not-authorized/>` (XEP-0077 §3.2).
    async fn remove(&self, ctx: &Ctx, router: &Router, iq: &Element) -> Option<Element> {
        let from = sender(iq)?;
        let me = from.to_bare();
        let (host, user) = account(&me);
        if let Err(e) = ctx.storage.accounts.delete(host, user).await {
            tracing::error!("removing {me}: {e}");
            return Some(iq_error(iq, ErrorCondition::InternalServerError, None));
        }
        // A new account of the same name starts without this one's cached preferences.
        ctx.storage.archive.forget(host, user);
        tracing::info!(account = %me, "account removed by its owner");
        let mut result = iq_result(iq);
        result.remove_attr("from");
        for s in router.registry.sessions(&me) {
            if s.handle.jid == from {
                router.deliver(&s.handle, result.clone());
            }
            if s.handle
                .try_send(SessionMsg::Close(Box::new(removed())))
                .is_err()
            {
                s.handle.kick();
            }
        }
        None
    }
}

/// Whether `iq` is addressed to nobody, a server domain, or `me`'s bare JID.
fn to_self_or_server(iq: &Element, me: &jid::BareJid) -> bool {
    match iq.attr("to") {
        None => true,
        Some(t) => t == me.as_str() || !(t.contains('@') || t.contains('/')),
    }
}

fn removed() -> StreamError {
    StreamError::with_text(Condition::NotAuthorized, "the account was removed")
}

/// Registers the handler and the feature.
pub fn register(r: &mut Registrar) {
    r.iq(NS, Arc::new(Register));
    r.feature(NS);
}
