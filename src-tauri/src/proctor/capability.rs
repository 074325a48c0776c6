//! Capabilities: how far this computer lets the app carry out each setting the professor asked
//! for, with the reason, decided from what the platform is and what the window did.
//!
//! Honest by construction: nothing is `enforced` that the app does not do. Switching windows
//! (Alt-Tab) cannot be prevented by a Tauri app on any platform, so `report_focus` reports and
//! says so; a display cannot be switched off, so `single_display` is `detect_only`; a Wayland
//! compositor ignores always-on-top, so fullscreen there is `detect_only`. Under X11 the window
//! manager's answer to always-on-top cannot be read back (GTK 3 does not report it): fullscreen
//! is `enforced` once the window manager is seen to grant fullscreen, which it is asked for
//! through the same standard (EWMH `_NET_WM_STATE`). What is unavailable is never the student's
//! fault, and the student sees the same list as the professor.

use crate::proctor::fullscreen::NotHeld;
use crate::proctor::signal::clip;
use invigil_protocol::{Capabilities, CapabilityLevel, MAX_INTEGRITY_DETAIL_CHARS, Proctoring};
use serde::Serialize;

/// The window system the app's window lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowSystem {
    /// Windows.
    Windows,
    /// macOS.
    MacOs,
    /// Linux or another Unix under X11.
    X11,
    /// Linux under a Wayland compositor.
    Wayland,
    /// Something else.
    Other,
}

impl WindowSystem {
    /// Whether `is_always_on_top()` reports what the window system really does (see
    /// `fullscreen.rs`: GTK 3 on X11 does not).
    pub(crate) fn reports_always_on_top(self) -> bool {
        matches!(self, WindowSystem::Windows | WindowSystem::MacOs)
    }

    /// This computer's.
    pub fn detect() -> Self {
        Self::from_env(std::env::consts::OS, |name| std::env::var(name).ok())
    }

    /// For `os` (`std::env::consts::OS`) and the environment `var`. On Linux GTK picks its
    /// backend as this does: `GDK_BACKEND` first, else Wayland when `WAYLAND_DISPLAY` is set,
    /// else X11 when `DISPLAY` is.
    pub(crate) fn from_env(os: &str, var: impl Fn(&str) -> Option<String>) -> Self {
        match os {
            "windows" => return WindowSystem::Windows,
            "macos" => return WindowSystem::MacOs,
            "linux" | "freebsd" | "dragonfly" | "netbsd" | "openbsd" => {}
            _ => return WindowSystem::Other,
        }
        let set = |name: &str| var(name).is_some_and(|v| !v.is_empty());
        if let Some(backend) = var("GDK_BACKEND").filter(|b| !b.is_empty()) {
            for choice in backend.split(',').map(str::trim) {
                match choice {
                    "wayland" if set("WAYLAND_DISPLAY") => return WindowSystem::Wayland,
                    "x11" if set("DISPLAY") => return WindowSystem::X11,
                    "*" => break,
                    _ => {}
                }
            }
        }
        if set("WAYLAND_DISPLAY") {
            WindowSystem::Wayland
        } else if set("DISPLAY") {
            WindowSystem::X11
        } else {
            WindowSystem::Other
        }
    }
}

/// A proctoring setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Setting {
    /// `fullscreen`.
    Fullscreen,
    /// `report_focus`.
    ReportFocus,
    /// `block_clipboard`.
    BlockClipboard,
    /// `single_display`.
    SingleDisplay,
}

impl Setting {
    /// The contract's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Setting::Fullscreen => "fullscreen",
            Setting::ReportFocus => "report_focus",
            Setting::BlockClipboard => "block_clipboard",
            Setting::SingleDisplay => "single_display",
        }
    }
}

/// One setting as this computer can carry it out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Capability {
    /// Which setting.
    pub setting: Setting,
    /// How far.
    pub level: CapabilityLevel,
    /// Why, in words the student and the professor both read.
    pub reason: String,
}

/// What the app has seen of this computer so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Observed {
    /// The window system.
    pub(crate) system: WindowSystem,
    /// Why fullscreen is not held, if it was asked for and is not.
    pub(crate) fullscreen_not_held: Option<NotHeld>,
    /// Whether the window is kept above the others, where the platform can tell (`None`: it
    /// cannot, or the window was never fullscreen).
    pub(crate) always_on_top: Option<bool>,
    /// Whether the list of displays could be read.
    pub(crate) monitors_readable: bool,
    /// Whether the exam page has its clipboard guard running.
    pub(crate) page_guard: bool,
}

/// The capability of each setting `settings` turns on, in the contract's order.
pub(crate) fn decide(settings: &Proctoring, seen: &Observed) -> Vec<Capability> {
    use CapabilityLevel::{DetectOnly, Enforced, Unavailable};
    let mut list = Vec::new();
    let mut add = |setting, level, reason: &str| {
        list.push(Capability {
            setting,
            level,
            reason: reason.to_owned(),
        })
    };
    if settings.fullscreen {
        match (seen.fullscreen_not_held, seen.system, seen.always_on_top) {
            (Some(NotHeld::NotGranted), _, _) => add(
                Setting::Fullscreen,
                Unavailable,
                "the window manager did not make the exam fullscreen",
            ),
            (Some(NotHeld::Undone), _, _) => add(
                Setting::Fullscreen,
                DetectOnly,
                "the window manager keeps taking the exam out of fullscreen; leaving it is reported",
            ),
            (None, WindowSystem::Wayland, _) => add(
                Setting::Fullscreen,
                DetectOnly,
                "always-on-top refused by a Wayland compositor: other windows can cover the exam; leaving fullscreen is reported",
            ),
            (None, _, Some(false)) => add(
                Setting::Fullscreen,
                DetectOnly,
                "the window manager does not keep the exam above other windows; leaving fullscreen is reported",
            ),
            (None, _, _) => add(
                Setting::Fullscreen,
                Enforced,
                "fullscreen above other windows; leaving it is reported and undone",
            ),
        }
    }
    if settings.report_focus {
        add(
            Setting::ReportFocus,
            Enforced,
            "leaving the window is reported with the time away; switching windows cannot be prevented",
        );
    }
    if settings.block_clipboard {
        if seen.page_guard {
            // Linux desktops also paste the last selected text with a middle click, from a
            // selection the page cannot keep to itself: said, not hidden.
            let reason = if matches!(seen.system, WindowSystem::X11 | WindowSystem::Wayland) {
                "copy and paste work inside the exam only; what comes from other programs is refused; text selected in the exam can still be middle-click pasted elsewhere"
            } else {
                "copy and paste work inside the exam only; what comes from other programs is refused"
            };
            add(Setting::BlockClipboard, Enforced, reason);
        } else {
            add(
                Setting::BlockClipboard,
                Unavailable,
                "the exam page did not start its clipboard guard",
            );
        }
    }
    if settings.single_display {
        if seen.monitors_readable {
            add(
                Setting::SingleDisplay,
                DetectOnly,
                "extra displays are reported and the student asked to disconnect them; the app cannot turn them off",
            );
        } else {
            add(
                Setting::SingleDisplay,
                Unavailable,
                "this computer does not tell the app its displays",
            );
        }
    }
    list
}

/// The `capabilities` field of the event.
pub(crate) fn to_wire(list: &[Capability]) -> Capabilities {
    let mut wire = Capabilities::default();
    for c in list {
        let slot = match c.setting {
            Setting::Fullscreen => &mut wire.fullscreen,
            Setting::ReportFocus => &mut wire.report_focus,
            Setting::BlockClipboard => &mut wire.block_clipboard,
            Setting::SingleDisplay => &mut wire.single_display,
        };
        *slot = Some(c.level);
    }
    wire
}

/// The event's `detail`: the reasons of what is not enforced, within the contract's limit.
pub(crate) fn detail(list: &[Capability]) -> String {
    let limits: Vec<String> = list
        .iter()
        .filter(|c| c.level != CapabilityLevel::Enforced)
        .map(|c| format!("{}: {}", c.setting.as_str(), c.reason))
        .collect();
    let text = if limits.is_empty() {
        "everything asked is enforced on this computer".to_owned()
    } else {
        limits.join("; ")
    };
    clip(text, MAX_INTEGRITY_DETAIL_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proctor::tests::all_on;

    fn x11_all_well() -> Observed {
        Observed {
            system: WindowSystem::X11,
            fullscreen_not_held: None,
            always_on_top: Some(true),
            monitors_readable: true,
            page_guard: true,
        }
    }

    fn levels(list: &[Capability]) -> Vec<(&'static str, CapabilityLevel)> {
        list.iter().map(|c| (c.setting.as_str(), c.level)).collect()
    }

    #[test]
    fn on_a_willing_desktop_only_what_cannot_be_prevented_is_detect_only() {
        let list = decide(&all_on(), &x11_all_well());
        assert_eq!(
            levels(&list),
            vec![
                ("fullscreen", CapabilityLevel::Enforced),
                ("report_focus", CapabilityLevel::Enforced),
                ("block_clipboard", CapabilityLevel::Enforced),
                ("single_display", CapabilityLevel::DetectOnly),
            ]
        );
        assert!(
            list[1].reason.contains("cannot be prevented"),
            "no pretending about Alt-Tab"
        );
        assert_eq!(
            serde_json::to_value(to_wire(&list)).unwrap(),
            serde_json::json!({"fullscreen": "enforced", "report_focus": "enforced",
                "block_clipboard": "enforced", "single_display": "detect_only"})
        );
    }

    #[test]
    fn only_the_settings_asked_for_are_listed() {
        let settings = Proctoring {
            report_focus: true,
            ..Proctoring::default()
        };
        let list = decide(&settings, &x11_all_well());
        assert_eq!(
            levels(&list),
            vec![("report_focus", CapabilityLevel::Enforced)]
        );
        assert_eq!(
            detail(&list),
            "everything asked is enforced on this computer"
        );
    }

    #[test]
    fn wayland_makes_fullscreen_detect_only_and_says_why() {
        let seen = Observed {
            system: WindowSystem::Wayland,
            always_on_top: Some(false),
            ..x11_all_well()
        };
        let list = decide(&all_on(), &seen);
        assert_eq!(list[0].level, CapabilityLevel::DetectOnly);
        let detail = detail(&list);
        assert!(
            detail.starts_with("fullscreen: always-on-top refused by a Wayland compositor"),
            "{detail}"
        );
        assert!(detail.chars().count() <= MAX_INTEGRITY_DETAIL_CHARS);
    }

    #[test]
    fn what_the_computer_cannot_do_is_unavailable_with_its_reason() {
        let seen = Observed {
            fullscreen_not_held: Some(NotHeld::NotGranted),
            monitors_readable: false,
            page_guard: false,
            ..x11_all_well()
        };
        let list = decide(&all_on(), &seen);
        assert_eq!(
            levels(&list),
            vec![
                ("fullscreen", CapabilityLevel::Unavailable),
                ("report_focus", CapabilityLevel::Enforced),
                ("block_clipboard", CapabilityLevel::Unavailable),
                ("single_display", CapabilityLevel::Unavailable),
            ]
        );
        let x11_no_above = Observed {
            always_on_top: Some(false),
            ..x11_all_well()
        };
        assert_eq!(
            decide(&all_on(), &x11_no_above)[0].level,
            CapabilityLevel::DetectOnly
        );
    }

    #[test]
    fn the_window_system_is_the_one_gtk_would_pick() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert_eq!(
            WindowSystem::from_env(
                "linux",
                env(&[("WAYLAND_DISPLAY", "wayland-0"), ("DISPLAY", ":0")])
            ),
            WindowSystem::Wayland
        );
        assert_eq!(
            WindowSystem::from_env(
                "linux",
                env(&[
                    ("WAYLAND_DISPLAY", "wayland-0"),
                    ("DISPLAY", ":0"),
                    ("GDK_BACKEND", "x11")
                ])
            ),
            WindowSystem::X11
        );
        assert_eq!(
            WindowSystem::from_env("linux", env(&[("DISPLAY", ":99")])),
            WindowSystem::X11
        );
        assert_eq!(
            WindowSystem::from_env(
                "linux",
                env(&[
                    ("GDK_BACKEND", "*"),
                    ("WAYLAND_DISPLAY", "w"),
                    ("DISPLAY", ":0")
                ])
            ),
            WindowSystem::Wayland
        );
        assert_eq!(
            WindowSystem::from_env("windows", env(&[])),
            WindowSystem::Windows
        );
        assert_eq!(
            WindowSystem::from_env("linux", env(&[])),
            WindowSystem::Other
        );
    }
}
