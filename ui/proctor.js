// invigil exam proctoring, the page's side. Plain ES module, no build step.
//
// The window side (src-tauri/src/proctor) watches focus, fullscreen and displays and says what
// it sees in the `proctor` event; this module shows the student what is reported, calmly, and
// carries out `block_clipboard` where only the page can: copy, cut, paste and drag-and-drop.
//
// Copy and paste keep working inside the exam through the exam's own clipboard: a copy or cut
// in the exam keeps the text here and puts only a short note on the computer's clipboard, so
// nothing of the exam reaches another program; a paste inserts the exam's text when the
// computer's clipboard still holds that note, and is refused (and reported) when it holds
// something another program put there. Text dragged in from another program is refused the
// same way; dragging text out is switched off; the context menu is suppressed (only
// `preventDefault` on `contextmenu` does that). Files dropped on the window never reach the
// page: the window reports them.
//
// Nothing here blocks the exam, hides it or takes anything the student typed.

/** The note a copy inside the exam leaves on the computer's clipboard. */
export const CLIPBOARD_NOTE =
  "Copied inside an invigil exam: it can be pasted inside the exam only.";

/** How long the note about a refusal stays on screen, in milliseconds. */
const NOTICE_MS = 8000;

const SETTING_NAMES = {
  fullscreen: "Fullscreen",
  report_focus: "Leaving the window",
  block_clipboard: "Copy and paste",
  single_display: "One display",
};

const LEVEL_WORDS = {
  enforced: "done",
  detect_only: "reported, not prevented",
  unavailable: "not possible on this computer, never counted against you",
};

const REFUSAL_NOTICES = {
  paste_from_outside:
    "Pasting from other programs is turned off during this exam. Copy and paste inside the exam still work.",
  file_paste: "Pasting files or images is turned off during this exam.",
  drop_from_outside: "Dragging text in from other programs is turned off during this exam.",
  file_drop: "Dropping files on the exam is turned off during this exam.",
};

function times(n) {
  return `${n} ${n === 1 ? "time" : "times"}`;
}

/**
 * What the exam screen says about proctoring, from the window side's status:
 * `lines` (what this exam reports), `request` (disconnect the other displays, or null) and
 * `capabilities` (what this computer can do, as the professor sees it).
 */
export function describe(status) {
  const none = { lines: [], request: null, capabilities: [] };
  if (!status?.active || !status.settings) return none;
  const s = status.settings;
  const lines = [];
  if (s.reportFocus) {
    const f = status.focus;
    const brief = f.brief > 0 ? ` (${f.brief} of them brief)` : "";
    lines.push(`This exam reports when you leave the window: ${times(f.left)} so far${brief}.`);
  }
  if (s.fullscreen) {
    lines.push(
      status.fullscreen === "unavailable"
        ? "This exam asks for fullscreen, which this computer does not allow; that is not held against you."
        : "This exam stays fullscreen; leaving fullscreen is reported.",
    );
  }
  if (s.blockClipboard) {
    lines.push("Copy and paste work inside this exam only; pasting from other programs is turned off and reported.");
  }
  if (s.singleDisplay) {
    lines.push("This exam reports how many displays are connected.");
  }
  const request =
    s.singleDisplay && status.displays > 1
      ? `Please disconnect the other display: ${status.displays} displays are connected. ` +
        "Your exam stays open and you can keep working; the number of displays is reported to your professor."
      : null;
  const capabilities = (status.capabilities ?? []).map((c) => ({
    setting: c.setting,
    level: c.level,
    text: `${SETTING_NAMES[c.setting] ?? c.setting}: ${LEVEL_WORDS[c.level] ?? c.level} (${c.reason})`,
  }));
  return { lines, request, capabilities };
}

/**
 * What to do with a paste. `data`: the computer's clipboard as the paste event shows it
 * (`types`, `text`, `files`); `examClipboard`: the text last copied inside the exam, or null;
 * `examSelection`: the text last selected inside the exam, or null.
 * Returns `{action: "insert", text}`, `{action: "nothing"}` or `{action: "refuse", what}`.
 */
export function pasteDecision(data, examClipboard, examSelection = null) {
  const types = data.types ?? [];
  if (data.files > 0 || types.includes("Files") || types.some((t) => t.startsWith("image/"))) {
    return { action: "refuse", what: "file_paste" };
  }
  const text = data.text ?? "";
  const ours = text.trim() === CLIPBOARD_NOTE || (text === "" && types.length === 0);
  if (ours) {
    return examClipboard ? { action: "insert", text: examClipboard } : { action: "nothing" };
  }
  // On Linux a middle click pastes the last text selected anywhere: text selected in the exam
  // is the exam's own.
  if (examSelection && text === examSelection) return { action: "insert", text };
  return { action: "refuse", what: "paste_from_outside" };
}

function isTextField(el) {
  return (
    el instanceof HTMLTextAreaElement ||
    (el instanceof HTMLInputElement && ["text", "search", "url", "email", "tel", ""].includes(el.type))
  );
}

function editable(el) {
  return (isTextField(el) && !el.readOnly && !el.disabled) || el?.isContentEditable === true;
}

/** The text selected in the page (in a field, or in the document). */
function selectedText() {
  const el = document.activeElement;
  if (isTextField(el) && el.selectionStart !== null) {
    return el.value.slice(el.selectionStart, el.selectionEnd);
  }
  return document.getSelection()?.toString() ?? "";
}

/**
 * Replaces the selection of the focused field with `text` as typing would (so the field's own
 * `input` listeners save it, and undo keeps working where the browser supports it).
 */
function replaceSelection(text) {
  const el = document.activeElement;
  if (!editable(el)) return;
  const command = text === "" ? "delete" : "insertText";
  if (document.execCommand?.(command, false, text)) return;
  if (!isTextField(el)) return;
  el.setRangeText(text, el.selectionStart, el.selectionEnd, "end");
  el.dispatchEvent(new InputEvent("input", { bubbles: true, inputType: "insertText", data: text }));
}

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) el.setAttribute(key, value);
  el.append(...children);
  return el;
}

/**
 * Starts the page's side of proctoring. `invoke` and `listen` are Tauri's; `root` is the
 * element of the exam screen where the status goes. Returns `{status()}`, the last status.
 */
export async function startProctor({ invoke, listen, root }) {
  let status = null;
  let examClipboard = null;
  let examSelection = null;
  let notice = null;
  let noticeTimer = null;

  const guarding = () => status?.active === true && status.settings?.blockClipboard === true;

  function render() {
    if (!root) return;
    const view = describe(status);
    root.hidden = view.lines.length === 0;
    root.dataset.displays = String(status?.displays ?? "");
    const parts = [h("ul", { class: "proctor-lines" }, ...view.lines.map((l) => h("li", {}, l)))];
    if (view.request) parts.push(h("p", { class: "proctor-request", role: "status" }, view.request));
    if (notice) parts.push(h("p", { class: "proctor-notice", role: "status" }, notice));
    if (view.capabilities.length) {
      parts.push(
        h(
          "details",
          { class: "proctor-capabilities" },
          h("summary", {}, "What this computer can do for this exam (your professor sees the same list)"),
          h("ul", {}, ...view.capabilities.map((c) => h("li", { "data-level": c.level, "data-setting": c.setting }, c.text))),
        ),
      );
    }
    root.replaceChildren(...parts);
  }

  function update(next) {
    status = next;
    if (!guarding()) {
      examClipboard = null;
      examSelection = null;
    }
    render();
  }

  function refuse(ev, what) {
    ev.preventDefault();
    ev.stopPropagation();
    notice = REFUSAL_NOTICES[what];
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => {
      notice = null;
      render();
    }, NOTICE_MS);
    render();
    invoke("proctor_refused", { what }).catch((e) => console.warn("proctor_refused", e));
  }

  function copy(ev, cut) {
    if (!guarding()) return;
    ev.preventDefault();
    const text = selectedText();
    if (text === "") return;
    examClipboard = text;
    ev.clipboardData?.setData("text/plain", CLIPBOARD_NOTE);
    if (cut) replaceSelection("");
  }

  const on = (type, handler) => document.addEventListener(type, handler, { capture: true });

  const remember = () => {
    if (!guarding()) return;
    const text = selectedText();
    if (text !== "") examSelection = text;
  };
  on("selectionchange", remember);
  on("select", remember);
  on("copy", (ev) => copy(ev, false));
  on("cut", (ev) => copy(ev, true));
  on("paste", (ev) => {
    if (!guarding()) return;
    const data = ev.clipboardData;
    const decision = pasteDecision(
      { types: [...(data?.types ?? [])], text: data?.getData("text/plain") ?? "", files: data?.files?.length ?? 0 },
      examClipboard,
      examSelection,
    );
    if (decision.action === "refuse") {
      refuse(ev, decision.what);
      return;
    }
    ev.preventDefault();
    if (decision.action === "insert") replaceSelection(decision.text);
  });
  // A paste or drop that comes without its own event (a middle-click paste, say) is caught
  // where the text would go in.
  on("beforeinput", (ev) => {
    if (!guarding()) return;
    if (["insertFromPaste", "insertFromPasteAsQuotation", "insertFromYank"].includes(ev.inputType)) {
      refuse(ev, "paste_from_outside");
    } else if (ev.inputType === "insertFromDrop") {
      refuse(ev, "drop_from_outside");
    }
  });
  on("dragstart", (ev) => {
    if (guarding()) ev.preventDefault();
  });
  on("dragover", (ev) => {
    if (!guarding()) return;
    // Accepted here only so that the drop arrives below to be refused and reported.
    ev.preventDefault();
    if (ev.dataTransfer) ev.dataTransfer.dropEffect = "copy";
  });
  on("drop", (ev) => {
    if (!guarding()) return;
    const files = ev.dataTransfer?.files?.length ?? 0;
    refuse(ev, files > 0 ? "file_drop" : "drop_from_outside");
  });
  on("contextmenu", (ev) => {
    if (guarding()) ev.preventDefault();
  });

  try {
    await listen("proctor", (event) => update(event.payload));
    update(await invoke("proctor_attach"));
  } catch (e) {
    console.warn("proctoring is not available in this window", e);
    update(null);
  }
  return { status: () => status };
}
