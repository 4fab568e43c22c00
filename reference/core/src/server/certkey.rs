//! ADD_DEL_CERT_KEY: the request, its data datagram and its deadline (`docs/protocol.md` §3.6,
//! §3.7, §6.3).
//!
//! Must never: store data whose length differs from the announced `certkey_len`, delete pair 0, or
//! leave an add without a deadline: its data datagram arrives within [`CERTKEY_DATA_TIMEOUT`] or
//! the add is refused with INVALID.

use sapi_wire::{AddDelCertKey, AddDelCertKeyReply, Message, SapiError};
use tracing::info;

use crate::action::Action;
use crate::config::{CERTKEY_DATA_TIMEOUT, MAX_CERT_OR_KEY_LEN, MAX_CERTKEY_LEN};
use crate::ids::SocketId;

use super::Server;

impl Server {
    pub(super) fn certkey_reply(&mut self, sock: SocketId, context: u32, retval: i32, index: u32) {
        self.send(
            sock,
            Message::AddDelCertKeyReply(AddDelCertKeyReply {
                context,
                retval,
                index,
            }),
            Vec::new(),
        );
    }

    pub(super) fn on_certkey(&mut self, sock: SocketId, req: AddDelCertKey) {
        let invalid = self.retval(SapiError::Invalid);
        if !req.is_add {
            let idx = req.index as usize;
            let live = idx != 0 && self.certkeys.get(idx).is_some_and(Option::is_some);
            if live {
                self.certkeys[idx] = None;
                return self.certkey_reply(sock, req.context, 0, 0);
            }
            return self.certkey_reply(sock, req.context, invalid, 0);
        }
        if req.certkey_len > MAX_CERTKEY_LEN || req.certkey_len == 0 {
            return self.certkey_reply(sock, req.context, invalid, 0);
        }
        if let Some(s) = self.socket_mut(sock) {
            s.pending_certkey = Some(req);
            self.out.push(Action::SetDeadline {
                sock,
                after: CERTKEY_DATA_TIMEOUT,
            });
        }
    }

    pub(super) fn on_deadline(&mut self, sock: SocketId) {
        let Some(s) = self.socket_mut(sock) else {
            return;
        };
        if let Some(req) = s.pending_certkey.take() {
            info!(%sock, "cert-key data never arrived");
            self.finish_certkey_add(sock, req, None);
        }
    }

    pub(super) fn finish_certkey_add(
        &mut self,
        sock: SocketId,
        req: AddDelCertKey,
        data: Option<&[u8]>,
    ) {
        let invalid = self.retval(SapiError::Invalid);
        let key_len = req.certkey_len.saturating_sub(req.cert_len);
        let ok = data.is_some_and(|d| d.len() == usize::from(req.certkey_len))
            && req.cert_len <= MAX_CERT_OR_KEY_LEN
            && req.certkey_len >= req.cert_len
            && key_len <= MAX_CERT_OR_KEY_LEN;
        let (Some(data), true) = (data, ok) else {
            return self.certkey_reply(sock, req.context, invalid, 0);
        };
        let slot = self.certkeys.iter().skip(1).position(Option::is_none);
        let index = match slot {
            Some(i) => i + 1,
            None => {
                self.certkeys.push(None);
                self.certkeys.len() - 1
            }
        };
        self.certkeys[index] = Some(data.to_vec());
        self.certkey_reply(sock, req.context, 0, index as u32);
    }
}
