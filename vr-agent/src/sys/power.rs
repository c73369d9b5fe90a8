//! The ACPI power button, so a graceful stop from the host (kvm-agent's
//! grace stop, `virsh shutdown`) powers the VR off at once instead of
//! waiting out its grace period and being destroyed. The VR runs no logind
//! or acpid (boot time): the agent watches the kernel's "Power Button"
//! input device itself and asks systemd to power off.

use std::io::Read;
use std::path::{Path, PathBuf};

/// `struct input_event` on 64-bit Linux: a timeval, then type, code, value.
const EVENT_SIZE: usize = 24;
const EV_KEY: u16 = 1;
const KEY_POWER: u16 = 116;

/// Whether one raw input event is the power key going down.
pub fn is_power_press(ev: &[u8; EVENT_SIZE]) -> bool {
    let kind = u16::from_ne_bytes([ev[16], ev[17]]);
    let code = u16::from_ne_bytes([ev[18], ev[19]]);
    let value = i32::from_ne_bytes([ev[20], ev[21], ev[22], ev[23]]);
    kind == EV_KEY && code == KEY_POWER && value == 1
}

/// The event devices whose name says power button (`/sys/class/input`).
pub fn power_buttons(sys_input: &Path) -> Vec<PathBuf> {
    let Ok(dir) = std::fs::read_dir(sys_input) else {
        return vec![];
    };
    let mut found: Vec<PathBuf> = dir
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("event"))
        .filter(|e| {
            std::fs::read_to_string(e.path().join("device/name"))
                .is_ok_and(|n| n.trim() == "Power Button")
        })
        .map(|e| Path::new("/dev/input").join(e.file_name()))
        .collect();
    found.sort();
    found
}

/// Reads `dev` until the power key is pressed (or the device goes away).
pub fn wait_for_press(mut dev: impl Read) -> bool {
    let mut ev = [0u8; EVENT_SIZE];
    while dev.read_exact(&mut ev).is_ok() {
        if is_power_press(&ev) {
            return true;
        }
    }
    false
}

/// Watches every power button on threads of their own; a press runs
/// `systemctl poweroff` (which stops this agent cleanly with SIGTERM).
pub fn watch() {
    let buttons = power_buttons(Path::new("/sys/class/input"));
    if buttons.is_empty() {
        tracing::warn!(
            "no ACPI power button (modules button and evdev): a graceful stop from the host will time out"
        );
        return;
    }
    for path in buttons {
        let dev = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot watch the power button");
                continue;
            }
        };
        tracing::info!(path = %path.display(), "watching the ACPI power button");
        std::thread::spawn(move || {
            if wait_for_press(dev) {
                tracing::info!("power button pressed: powering off");
                match std::process::Command::new("systemctl")
                    .arg("poweroff")
                    .status()
                {
                    Ok(s) if s.success() => {}
                    other => tracing::error!(?other, "systemctl poweroff failed"),
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: u16, code: u16, value: i32) -> Vec<u8> {
        let mut e = vec![0u8; 16];
        e.extend(kind.to_ne_bytes());
        e.extend(code.to_ne_bytes());
        e.extend(value.to_ne_bytes());
        e
    }

    #[test]
    fn only_a_power_key_press_counts() {
        let mut stream = vec![];
        stream.extend(event(EV_KEY, 30, 1)); // KEY_A
        stream.extend(event(0, 0, 0)); // EV_SYN
        stream.extend(event(EV_KEY, KEY_POWER, 0)); // release
        assert!(!wait_for_press(stream.as_slice()));
        stream.extend(event(EV_KEY, KEY_POWER, 1));
        assert!(wait_for_press(stream.as_slice()));
    }

    #[test]
    fn finds_buttons_by_name() {
        let dir = std::env::temp_dir().join(format!("vr-power-{}", std::process::id()));
        for (ev, name) in [
            ("event0", "Power Button"),
            ("event1", "AT Translated Set 2 keyboard"),
        ] {
            std::fs::create_dir_all(dir.join(ev).join("device")).unwrap();
            std::fs::write(dir.join(ev).join("device/name"), format!("{name}\n")).unwrap();
        }
        std::fs::create_dir_all(dir.join("input0")).unwrap();
        assert_eq!(
            power_buttons(&dir),
            vec![PathBuf::from("/dev/input/event0")]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
