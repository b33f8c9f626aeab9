//! The pubsub requests on an account (XEP-0060 §6–§8 as XEP-0163 uses them): publish (with
//! publish-options), retract, create, items; and the owner's configure, delete and purge.

use jid::BareJid;

use super::caps::Caps;
use super::notify::{broadcast, broadcast_to, subscribers};
use super::server;
use super::{DEFAULT_NODE, NS, NS_EVENT, NS_OWNER, may_see, pubsub_error};
use crate::ext::{Ctx, account};
use crate::router::Router;
use crate::stanza::{ErrorCondition, form, iq_error, iq_result};
use crate::storage::pep::{Access, NodeConfig, PepItem};
use crate::xml::{Element, Limits, parse_fragment};

/// A request's answer: the result, or the error reply (`?` returns it from a step).
pub(super) type Reply = Result<Element, Element>;

const NODE_CONFIG: &str = "http://jabber.org/protocol/pubsub#node_config";
const PUBLISH_OPTIONS: &str = "http://jabber.org/protocol/pubsub#publish-options";

/// One request.
pub struct Op<'a> {
    pub ctx: &'a Ctx,
    pub router: &'a Router,
    pub caps: &'a Caps,
    pub iq: &'a Element,
    /// The account whose nodes these are.
    pub owner: &'a BareJid,
    /// Who asks.
    pub requester: &'a BareJid,
    /// The asking session (an item's publisher).
    pub publisher: String,
}

/// The options a form sets (`None`: not given).
#[derive(Debug, Default)]
struct Options {
    access: Option<Access>,
    persist: Option<bool>,
    max_items: Option<u32>,
    notify_retract: Option<bool>,
}

impl Options {
    /// Reads the node-configuration or publish-options fields of `x`; `None` if one is invalid.
    fn read(x: &Element, max_items: u32) -> Option<Options> {
        let mut o = Options::default();
        if let Some(a) = form::value(x, "pubsub#access_model") {
            o.access = Some(Access::parse(a.trim())?);
        }
        if let Some(b) = form::boolean(x, "pubsub#persist_items") {
            o.persist = Some(b.ok()?);
        }
        if let Some(b) = form::boolean(x, "pubsub#notify_retract") {
            o.notify_retract = Some(b.ok()?);
        }
        if let Some(m) = form::value(x, "pubsub#max_items") {
            let n = match m.trim() {
                "max" => max_items,
                n => n.parse::<u32>().ok()?,
            };
            if n == 0 || n > max_items {
                return None;
            }
            o.max_items = Some(n);
        }
        Some(o)
    }

    /// `base` with these options applied.
    fn apply(&self, base: NodeConfig) -> NodeConfig {
        NodeConfig {
            access: self.access.unwrap_or(base.access),
            persist_items: self.persist.unwrap_or(base.persist_items),
            max_items: self.max_items.unwrap_or(base.max_items),
            notify_retract: self.notify_retract.unwrap_or(base.notify_retract),
        }
    }
}

/// The node configuration as a form.
fn config_form(c: &NodeConfig) -> Element {
    let b = |v: bool| if v { "1" } else { "0" };
    form::new("form", NODE_CONFIG)
        .with_child(form::list(
            "pubsub#access_model",
            "list-single",
            "Who may subscribe and retrieve items",
            &[c.access.as_str()],
            &[
                ("open", "Anyone"),
                ("presence", "Contacts"),
                ("whitelist", "Only me"),
            ],
        ))
        .with_child(form::field(
            "pubsub#persist_items",
            Some("boolean"),
            Some("Keep items"),
            &[b(c.persist_items)],
        ))
        .with_child(form::field(
            "pubsub#max_items",
            Some("text-single"),
            Some("Items kept at most"),
            &[&c.max_items.to_string()],
        ))
        .with_child(form::field(
            "pubsub#notify_retract",
            Some("boolean"),
            Some("Notify retractions"),
            &[b(c.notify_retract)],
        ))
}

impl Op<'_> {
    /// Answers the request.
    pub async fn run(&self) -> Element {
        let iq = self.iq;
        let Some(ps) = iq.children().next() else {
            return iq_error(iq, ErrorCondition::BadRequest, None);
        };
        let Some(action) = ps.children().find(|c| c.name() != "publish-options") else {
            return iq_error(iq, ErrorCondition::BadRequest, None);
        };
        let mine = self.owner == self.requester;
        let set = iq.attr("type") == Some("set");
        // Anyone who may see a node subscribes to it; everything else that changes a node, and
        // the owner's requests, are the owner's.
        let subscribing = ps.ns() == NS && matches!(action.name(), "subscribe" | "unsubscribe");
        if (set || ps.ns() == NS_OWNER) && !mine && !subscribing {
            return iq_error(iq, ErrorCondition::Forbidden, None);
        }
        if (ps.ns(), set, action.name()) == (NS, false, "subscriptions") {
            return self.subscriptions(action.attr("node")).await;
        }
        let Some(node) = action.attr("node").filter(|n| !n.is_empty()) else {
            return pubsub_error(iq, ErrorCondition::BadRequest, "nodeid-required");
        };
        let reply = match (ps.ns(), set, action.name()) {
            (NS, true, "subscribe") => self.subscribe(action, node, true).await,
            (NS, true, "unsubscribe") => self.subscribe(action, node, false).await,
            (NS, true, "publish") => self.publish(ps, action, node).await,
            (NS, true, "retract") => self.retract(action, node).await,
            (NS, true, "create") => self.create(ps, node).await,
            (NS, false, "items") => self.items(action, node).await,
            (NS_OWNER, false, "configure") => self.node(node).await.map(|c| {
                iq_result(iq).with_child(
                    Element::new("pubsub", NS_OWNER).with_child(
                        Element::new("configure", NS_OWNER)
                            .with_attr("node", node)
                            .with_child(config_form(&c)),
                    ),
                )
            }),
            (NS_OWNER, true, "configure") => self.configure(action, node).await,
            (NS_OWNER, true, "delete") => self.clear(node, true).await,
            (NS_OWNER, true, "purge") => self.clear(node, false).await,
            _ => Err(pubsub_error(
                iq,
                ErrorCondition::FeatureNotImplemented,
                "unsupported",
            )),
        };
        reply.unwrap_or_else(|error| error)
    }

    /// An existing node's configuration, or the `item-not-found` reply.
    pub(super) async fn node(&self, node: &str) -> Result<NodeConfig, Element> {
        let (host, user) = account(self.owner);
        match self.ctx.storage.pep.node(host, user, node).await {
            Ok(Some(c)) => Ok(c),
            Ok(None) => Err(iq_error(self.iq, ErrorCondition::ItemNotFound, None)),
            Err(e) => Err(self.failed(e)),
        }
    }

    pub(super) fn failed(&self, e: crate::storage::StoreError) -> Element {
        tracing::error!("pep of {}: {e}", self.owner);
        iq_error(self.iq, ErrorCondition::InternalServerError, None)
    }

    /// Creates `node` with `config`, within `pep.max_nodes`.
    async fn make(&self, node: &str, config: &NodeConfig) -> Result<(), Element> {
        let (host, user) = account(self.owner);
        let pep = &self.ctx.storage.pep;
        let count = pep
            .nodes(host, user)
            .await
            .map_err(|e| self.failed(e))?
            .len();
        if count >= self.ctx.config.pep.max_nodes {
            return Err(iq_error(self.iq, ErrorCondition::ResourceConstraint, None));
        }
        pep.save_node(host, user, node, config)
            .await
            .map_err(|e| self.failed(e))
    }

    /// The options of the form in `parent` (`<publish-options/>`, `<configure/>`) of type
    /// `form_type`; `Err` with the reply if they are invalid.
    fn options(&self, parent: Option<&Element>, form_type: &str) -> Result<Options, Element> {
        let Some(x) = parent.and_then(|p| p.get_child("x", form::NS)) else {
            return Ok(Options::default());
        };
        if form::form_type(x).is_some_and(|t| t != form_type) {
            return Err(pubsub_error(
                self.iq,
                ErrorCondition::BadRequest,
                "invalid-options",
            ));
        }
        Options::read(x, self.ctx.config.pep.max_items)
            .ok_or_else(|| pubsub_error(self.iq, ErrorCondition::NotAcceptable, "invalid-options"))
    }

    async fn publish(&self, ps: &Element, action: &Element, node: &str) -> Reply {
        let iq = self.iq;
        let cfg = &self.ctx.config.pep;
        let item = action.get_child("item", NS);
        let payload: Vec<&Element> = item.iter().flat_map(|i| i.children()).collect();
        let [payload] = payload.as_slice() else {
            return Err(pubsub_error(
                iq,
                ErrorCondition::BadRequest,
                "payload-required",
            ));
        };
        let xml = payload.to_string_in("");
        if xml.len() > cfg.max_item_size {
            return Err(pubsub_error(
                iq,
                ErrorCondition::NotAcceptable,
                "payload-too-big",
            ));
        }
        let options = self.options(ps.get_child("publish-options", NS), PUBLISH_OPTIONS)?;
        let (host, user) = account(self.owner);
        let pep = &self.ctx.storage.pep;
        let config = match pep.node(host, user, node).await {
            Err(e) => return Err(self.failed(e)),
            Ok(None) => {
                let c = options.apply(DEFAULT_NODE);
                self.make(node, &c).await?;
                c
            }
            // Publish-options on an existing node are preconditions (XEP-0060 §7.1.5).
            Ok(Some(c)) if options.apply(c) != c => {
                return Err(pubsub_error(
                    iq,
                    ErrorCondition::Conflict,
                    "precondition-not-met",
                ));
            }
            Ok(Some(c)) => c,
        };
        let held = pep.bytes(host, user).await.map_err(|e| self.failed(e))?;
        if held.saturating_add(xml.len() as u64) > cfg.quota_bytes {
            return Err(iq_error(iq, ErrorCondition::ResourceConstraint, None));
        }
        let id = item
            .and_then(|i| i.attr("id"))
            .filter(|i| !i.is_empty())
            .map(str::to_string)
            .unwrap_or_else(crate::stream::random_id);
        let stored = PepItem {
            id: id.clone(),
            publisher: self.publisher.clone(),
            ts_ms: crate::storage::now_ms(),
            xml,
        };
        let (ctx, router) = (self.ctx, self.router);
        server::commit(ctx, router, self.caps, self.owner, node, config, &stored)
            .await
            .map_err(|e| self.failed(e))?;
        super::published(ctx, router, self.owner, node, &id, Some(payload)).await;
        Ok(iq_result(iq).with_child(
            Element::new("pubsub", NS).with_child(
                Element::new("publish", NS)
                    .with_attr("node", node)
                    .with_child(Element::new("item", NS).with_attr("id", id)),
            ),
        ))
    }

    async fn retract(&self, action: &Element, node: &str) -> Reply {
        let iq = self.iq;
        let config = self.node(node).await?;
        let Some(id) = action.get_child("item", NS).and_then(|i| i.attr("id")) else {
            return Err(pubsub_error(
                iq,
                ErrorCondition::BadRequest,
                "item-required",
            ));
        };
        let (host, user) = account(self.owner);
        match self.ctx.storage.pep.retract(host, user, node, id).await {
            Ok(true) => super::published(self.ctx, self.router, self.owner, node, id, None).await,
            Ok(false) => return Err(iq_error(iq, ErrorCondition::ItemNotFound, None)),
            Err(e) => return Err(self.failed(e)),
        }
        let asked = matches!(action.attr("notify"), Some("1" | "true"));
        if config.notify_retract || asked {
            let ev = Element::new("items", NS_EVENT)
                .with_attr("node", node)
                .with_child(Element::new("retract", NS_EVENT).with_attr("id", id));
            broadcast(
                self.ctx,
                self.router,
                self.caps,
                self.owner,
                node,
                config.access,
                ev,
            )
            .await;
        }
        Ok(iq_result(iq))
    }

    async fn create(&self, ps: &Element, node: &str) -> Reply {
        let (host, user) = account(self.owner);
        match self.ctx.storage.pep.node(host, user, node).await {
            Ok(Some(_)) => return Err(iq_error(self.iq, ErrorCondition::Conflict, None)),
            Ok(None) => {}
            Err(e) => return Err(self.failed(e)),
        }
        let options = self.options(ps.get_child("configure", NS), NODE_CONFIG)?;
        self.make(node, &options.apply(DEFAULT_NODE)).await?;
        Ok(iq_result(self.iq))
    }

    /// An existing node the requester may see (XEP-0060 §6.1.3, §6.5.9), or the error reply.
    pub(super) async fn visible(&self, node: &str) -> Result<NodeConfig, Element> {
        let iq = self.iq;
        let config = self.node(node).await?;
        if !may_see(self.ctx, self.owner, self.requester, config.access).await {
            return Err(match config.access {
                Access::Whitelist => pubsub_error(iq, ErrorCondition::NotAllowed, "closed-node"),
                _ => pubsub_error(
                    iq,
                    ErrorCondition::NotAuthorized,
                    "presence-subscription-required",
                ),
            });
        }
        Ok(config)
    }

    async fn items(&self, action: &Element, node: &str) -> Reply {
        let iq = self.iq;
        self.visible(node).await?;
        let max = self.ctx.config.pep.max_items as usize;
        let max = action
            .attr("max_items")
            .and_then(|m| m.parse::<usize>().ok())
            .map_or(max, |m| m.min(max));
        let ids: Vec<String> = action
            .children()
            .filter(|c| c.is("item", NS))
            .filter_map(|c| c.attr("id").map(str::to_string))
            .take(max)
            .collect();
        let (host, user) = account(self.owner);
        let pep = &self.ctx.storage.pep;
        let items = pep
            .items(host, user, node, max, &ids)
            .await
            .map_err(|e| self.failed(e))?;
        let mut list = Element::new("items", NS).with_attr("node", node);
        for it in items {
            let mut el = Element::new("item", NS).with_attr("id", it.id);
            if let Ok(p) = parse_fragment(&it.xml, Limits::stored()) {
                el.append_child(p);
            }
            list.append_child(el);
        }
        Ok(iq_result(iq).with_child(Element::new("pubsub", NS).with_child(list)))
    }

    async fn configure(&self, action: &Element, node: &str) -> Reply {
        let config = self.node(node).await?;
        let options = self.options(Some(action), NODE_CONFIG)?;
        let (host, user) = account(self.owner);
        let new = options.apply(config);
        let pep = &self.ctx.storage.pep;
        pep.save_node(host, user, node, &new)
            .await
            .map_err(|e| self.failed(e))?;
        Ok(iq_result(self.iq))
    }

    /// The owner deletes the node (`delete`) or empties it; either is notified.
    async fn clear(&self, node: &str, delete: bool) -> Reply {
        let config = self.node(node).await?;
        // Read first: deleting the node deletes its subscriptions.
        let subscribers = subscribers(self.ctx, self.owner, node, config.access).await;
        let (host, user) = account(self.owner);
        let pep = &self.ctx.storage.pep;
        let done = match delete {
            true => pep.delete_node(host, user, node).await.map(|_| ()),
            false => pep.purge(host, user, node).await.map(|_| ()),
        };
        done.map_err(|e| self.failed(e))?;
        let name = if delete { "delete" } else { "purge" };
        let ev = Element::new(name, NS_EVENT).with_attr("node", node);
        broadcast_to(
            self.ctx,
            self.router,
            self.caps,
            self.owner,
            node,
            config.access,
            ev,
            &subscribers,
        )
        .await;
        Ok(iq_result(self.iq))
    }
}
