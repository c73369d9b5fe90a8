//! The undo of the element-level path (one PF or EIP, applied in place).

use vr_model::{Edit, Eip, Model, PortForward};

/// What the element-level edits replaced: the entries of the keys they
/// touch, as they were (None: absent).
pub(super) enum EntryUndo {
    PortForwards(Vec<(String, Option<PortForward>)>),
    Eips(Vec<(std::net::Ipv4Addr, Option<Eip>)>),
    Nothing,
}

impl EntryUndo {
    pub(super) fn of(m: &Model, edit: &Edit) -> EntryUndo {
        let pf = |u: &String| (u.clone(), m.port_forwards.get(u).cloned());
        let eip = |v: &std::net::Ipv4Addr| (*v, m.eips.get(v).cloned());
        match edit {
            Edit::CreatePortForwards(rules) => {
                EntryUndo::PortForwards(rules.iter().map(|r| pf(&r.uuid)).collect())
            }
            Edit::RevokePortForwards(uuids) => {
                EntryUndo::PortForwards(uuids.iter().map(pf).collect())
            }
            Edit::CreateEip(e) => EntryUndo::Eips(vec![eip(&e.vip)]),
            Edit::RemoveEip(vip) => EntryUndo::Eips(vec![eip(vip)]),
            _ => EntryUndo::Nothing,
        }
    }

    pub(super) fn restore(self, m: &mut Model) {
        match self {
            EntryUndo::PortForwards(v) => {
                for (uuid, old) in v.into_iter().rev() {
                    match old {
                        Some(r) => m.port_forwards.insert(uuid, r),
                        None => m.port_forwards.remove(&uuid),
                    };
                }
            }
            EntryUndo::Eips(v) => {
                for (vip, old) in v.into_iter().rev() {
                    match old {
                        Some(e) => m.eips.insert(vip, e),
                        None => m.eips.remove(&vip),
                    };
                }
            }
            EntryUndo::Nothing => {}
        }
    }
}
