// The test page of tests/proctor_window.rs: the real ui/proctor.js on a page with one answer.
import { startProctor } from "./proctor.js";

const { invoke } = window.__TAURI__.core;
const { listen } = window.__TAURI__.event;

window.proctor = await startProctor({ invoke, listen, root: document.getElementById("proctor") });
document.getElementById("answer").focus();
document.body.dataset.ready = "true";
