// The test page of tests/proctor_window.rs: the real ui/proctor.js on a page with one answer.
import * as proctor from "./proctor.js";

const { invoke } = window.__TAURI__.core;
const { listen } = window.__TAURI__.event;

// The module itself, for what the window cannot stage (a second display, a pasted file).
window.proctorModule = proctor;
window.proctor = await proctor.startProctor({ invoke, listen, root: document.getElementById("proctor") });
document.getElementById("answer").focus();
document.body.dataset.ready = "true";
