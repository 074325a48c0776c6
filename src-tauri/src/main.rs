//! `invigil-desktop`: the student's exam app.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    invigil_desktop::run()
}
