//! Avatars both ways (XEP-0398): a client that publishes its avatar to PEP (XEP-0084) also
//! gets it in its vCard (XEP-0153, what clients read for group-chat occupants and what older
//! clients use), and a client that sets a photo in its vCard also publishes it to PEP, with
//! notifications to its contacts. The server adds the photo's hash to each available presence
//! the account sends (broadcast and directed, so room joins carry it too) unless the client
//! put a `<photo/>` there itself.
//!
//! The photo's hash is the SHA-1 of the image, in hex: the XEP-0084 item id and the XEP-0153
//! `<photo/>` alike. Each account's hash is cached for the presence path (at most
//! `storage.roster_cache` accounts; past that the cache is emptied).

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine;
use jid::BareJid;
use sha1::{Digest, Sha1};

use super::{DEFAULT_NODE, server};
use crate::ext::hooks::{Flow, HookFut, PresenceOut};
use crate::ext::{Ctx, account};
use crate::router::Router;
use crate::xml::{Element, Limits, parse_fragment};

/// `urn:xmpp:pep-vcard-conversion:0`
pub const NS_CONVERSION: &str = "urn:xmpp:pep-vcard-conversion:0";
/// `urn:xmpp:avatar:data`, the node and the namespace.
pub const NODE_DATA: &str = "urn:xmpp:avatar:data";
/// `urn:xmpp:avatar:metadata`, the node and the namespace.
pub const NODE_METADATA: &str = "urn:xmpp:avatar:metadata";
/// `vcard-temp:x:update` (XEP-0153)
pub const NS_UPDATE: &str = "vcard-temp:x:update";
const NS_VCARD: &str = crate::ext::documents::NS_VCARD;

/// Each account's avatar hash (`None`: it has none), as far as known.
pub struct Hashes {
    map: Mutex<HashMap<String, Option<String>>>,
    cap: usize,
}

impl Hashes {
    /// An empty cache of at most `cap` accounts.
    pub fn new(cap: usize) -> Hashes {
        Hashes {
            map: Mutex::new(HashMap::new()),
            cap,
        }
    }

    fn get(&self, owner: &BareJid) -> Option<Option<String>> {
        self.map.lock().ok()?.get(owner.as_str()).cloned()
    }

    fn set(&self, owner: &BareJid, hash: Option<String>) {
        if let Ok(mut m) = self.map.lock() {
            if m.len() >= self.cap && !m.contains_key(owner.as_str()) {
                m.clear();
            }
            m.insert(owner.to_string(), hash);
        }
    }
}

fn sha1_hex(bytes: &[u8]) -> String {
    Sha1::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A vCard's photo: (its type, the image, its hash); `None` without one, or one that does not
/// decode.
fn photo(card: &Element) -> Option<(String, Vec<u8>, String)> {
    let p = card.get_child("PHOTO", NS_VCARD)?;
    let b64: String = p
        .get_child("BINVAL", NS_VCARD)?
        .text()
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.as_bytes())
        .ok()
        .filter(|b| !b.is_empty())?;
    let kind = p
        .get_child("TYPE", NS_VCARD)
        .map(|t| t.text().trim().to_string())
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "image/png".into());
    let hash = sha1_hex(&bytes);
    Some((kind, bytes, hash))
}

/// The stored vCard of `owner` (an empty one if none), or `None` if it cannot be read.
async fn vcard(ctx: &Ctx, owner: &BareJid) -> Option<Element> {
    let (host, user) = account(owner);
    match ctx.storage.documents.get(host, user, "vcard", "").await {
        Ok(Some(xml)) => parse_fragment(&xml, Limits::stored()).ok(),
        Ok(None) => Some(Element::new("vCard", NS_VCARD)),
        Err(e) => {
            tracing::error!("vCard of {owner}: {e}");
            None
        }
    }
}

/// `owner`'s avatar hash, from the cache or its stored vCard.
async fn hash_of(ctx: &Ctx, hashes: &Hashes, owner: &BareJid) -> Option<String> {
    if let Some(h) = hashes.get(owner) {
        return h;
    }
    let h = vcard(ctx, owner).await.and_then(|c| photo(&c)).map(|p| p.2);
    hashes.set(owner, h.clone());
    h
}

/// A client of `owner` published `metadata` to its avatar metadata node: its vCard's photo
/// becomes that avatar (the image from the data node, checked against its hash), or goes
/// when the metadata is empty (XEP-0084 §4.5: no avatar).
pub async fn metadata_published(ctx: &Ctx, owner: &BareJid, metadata: &Element) {
    let Some(hashes) = ctx.state::<Hashes>() else {
        return;
    };
    // XEP-0398 §3.1: the info that is not a link to elsewhere.
    let info = metadata
        .children()
        .find(|c| c.is("info", NODE_METADATA) && c.attr("url").is_none());
    let Some(mut card) = vcard(ctx, owner).await else {
        return;
    };
    card.retain_children(|c| !c.is("PHOTO", NS_VCARD));
    let hash = match info {
        None => None,
        Some(info) => {
            let (Some(id), kind) = (info.attr("id"), info.attr("type").unwrap_or("image/png"))
            else {
                return;
            };
            let (host, user) = account(owner);
            let ids = [id.to_string()];
            let data = match ctx.storage.pep.items(host, user, NODE_DATA, 1, &ids).await {
                Ok(items) => items.into_iter().next(),
                Err(e) => return tracing::error!("avatar of {owner}: {e}"),
            };
            let Some(data) = data.and_then(|d| parse_fragment(&d.xml, Limits::stored()).ok())
            else {
                return tracing::warn!("avatar of {owner}: no data item {id}");
            };
            let b64: String = data.text().split_ascii_whitespace().collect();
            let bytes = base64::engine::general_purpose::STANDARD.decode(b64.as_bytes());
            if bytes.map(|b| sha1_hex(&b)).ok().as_deref() != Some(id) {
                return tracing::warn!("avatar of {owner}: item {id} is not the image it names");
            }
            card.append_child(
                Element::new("PHOTO", NS_VCARD)
                    .with_child(Element::new("TYPE", NS_VCARD).with_text(kind))
                    .with_child(Element::new("BINVAL", NS_VCARD).with_text(b64)),
            );
            Some(id.to_string())
        }
    };
    let xml = card.to_string_in("");
    if xml.len() > ctx.config.im.max_document_size {
        return tracing::warn!("avatar of {owner} not put in its vCard: im.max_document_size");
    }
    let (host, user) = account(owner);
    if let Err(e) = ctx
        .storage
        .documents
        .set(host, user, "vcard", "", &xml)
        .await
    {
        return tracing::error!("vCard of {owner}: {e}");
    }
    hashes.set(owner, hash);
}

/// `owner` set its vCard to `card`: its photo is published as its PEP avatar (data, then
/// metadata), or the PEP avatar is cleared when the photo is gone.
pub async fn vcard_set(ctx: &Ctx, router: &Router, owner: &BareJid, card: &Element) {
    let Some(hashes) = ctx.state::<Hashes>() else {
        return;
    };
    let now = photo(card);
    // What PEP has now: the newest metadata item's id, and whether it names an image.
    let (host, user) = account(owner);
    let current = match ctx
        .storage
        .pep
        .items(host, user, NODE_METADATA, 1, &[])
        .await
    {
        Ok(items) => items.into_iter().next().map(|i| {
            let named = parse_fragment(&i.xml, Limits::stored())
                .is_ok_and(|m| m.children().any(|c| c.is("info", NODE_METADATA)));
            (i.id, named)
        }),
        Err(e) => return tracing::error!("avatar of {owner}: {e}"),
    };
    // A client that sets its vCard again with the same photo (or still none) changes nothing.
    let same = match (&now, &current) {
        (Some(p), Some((id, true))) => *id == p.2,
        (None, None | Some((_, false))) => true,
        _ => false,
    };
    if same {
        return hashes.set(owner, now.map(|p| p.2));
    }
    let mut metadata = Element::new("metadata", NODE_METADATA);
    let id = match &now {
        Some((kind, bytes, hash)) => {
            let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
            let data = Element::new("data", NODE_DATA).with_text(b64);
            let r = server::publish(ctx, router, owner, NODE_DATA, hash, &data, DEFAULT_NODE).await;
            if r.is_err() {
                return server::log(owner, "avatar", r);
            }
            metadata.append_child(
                Element::new("info", NODE_METADATA)
                    .with_attr("id", hash.clone())
                    .with_attr("bytes", bytes.len().to_string())
                    .with_attr("type", kind.clone()),
            );
            hash.clone()
        }
        None => crate::stream::random_id(),
    };
    let r = server::publish(
        ctx,
        router,
        owner,
        NODE_METADATA,
        &id,
        &metadata,
        DEFAULT_NODE,
    )
    .await;
    if r.is_ok() {
        hashes.set(owner, now.map(|p| p.2));
    }
    server::log(owner, "avatar", r);
}

/// An available presence an account's session sends carries its avatar's hash (XEP-0398 §4),
/// unless the client put a `<photo/>` in it itself.
pub fn on_presence_out<'a>(
    ctx: &'a Ctx,
    _router: &'a Router,
    e: &'a mut PresenceOut,
) -> HookFut<'a> {
    Box::pin(async move {
        let Some(p) = e.stanza.as_ref() else {
            return Flow::Next;
        };
        if p.attr("type").is_some()
            || p.get_child("x", NS_UPDATE)
                .is_some_and(|x| x.get_child("photo", NS_UPDATE).is_some())
        {
            return Flow::Next;
        }
        let Some(hashes) = ctx.state::<Hashes>() else {
            return Flow::Next;
        };
        let owner = e.session.jid.to_bare();
        let Some(hash) = hash_of(ctx, &hashes, &owner).await else {
            return Flow::Next;
        };
        if let Some(p) = e.stanza.as_mut() {
            p.retain_children(|c| !c.is("x", NS_UPDATE));
            p.append_child(
                Element::new("x", NS_UPDATE)
                    .with_child(Element::new("photo", NS_UPDATE).with_text(hash)),
            );
        }
        Flow::Next
    })
}
