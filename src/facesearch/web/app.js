// facesearch in a browser. Talks only to the public /v1 API, sending the key typed at the top
// of the page (kept in localStorage) with every call. No build step, no third-party code.
"use strict";

const KEY_STORAGE = "facesearch.apiKey";
const PHOTO_TYPES = ["image/jpeg", "image/png", "image/webp"];

const state = {
  key: readStoredKey(),
  keyOk: null, // null: not checked yet
  collection: null,
  personsCursor: null,
  personsToken: 0,
  thumbs: new Map(), // face id -> Promise<blob: URL>
  enrol: [], // [{file, url, li, bar, status}]
  enrolFinished: false,
  addFaceTarget: null,
  photos: {}, // panel -> blob: URL of the photo shown
  identifyFile: null,
  allFile: null,
  persons: [], // the persons (with faces) on the Persons tab, for merge
};

// --- small helpers --------------------------------------------------------------------------

const $ = (sel, root = document) => root.querySelector(sel);
const enc = encodeURIComponent;

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Replace an element's content with children (nested arrays flattened, null/false skipped). */
function put(el, ...children) {
  el.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
}

function readStoredKey() {
  try {
    return localStorage.getItem(KEY_STORAGE) || "";
  } catch {
    return "";
  }
}

function splitList(text) {
  return text.split(",").map((s) => s.trim()).filter(Boolean);
}

function personLabel(p) {
  return p.name || p.external_id || "this person";
}

function fmtMs(v) {
  return typeof v === "number" ? (v >= 100 ? v.toFixed(0) : v.toFixed(1)) : "–";
}

function fmtBytes(n) {
  return n >= 1048576 ? `${(n / 1048576).toFixed(1)} MB` : `${Math.max(1, Math.round(n / 1024))} kB`;
}

// --- the API --------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(code, message, details, status) {
    super(message);
    this.code = code;
    this.details = details || {};
    this.status = status || 0;
  }
}

/** A mistake caught in the page before calling the server (shown like an API error). */
function localError(text) {
  return new ApiError("", text);
}

function unwrap(status, text) {
  let body = null;
  try {
    body = JSON.parse(text);
  } catch {
    body = null;
  }
  if (body && body.success === true) return body.data;
  if (body && body.success === false && body.error) {
    const e = body.error;
    const err = new ApiError(e.code || "ERROR", e.message || "", e.details, status);
    if (err.code === "API_KEY_MISSING" || err.code === "API_KEY_INVALID") keyRefused(err);
    throw err;
  }
  throw new ApiError(`HTTP_${status}`, `the server answered ${status} without the API envelope`, {}, status);
}

function keyHeaders() {
  if (!state.key) throw new ApiError("API_KEY_MISSING", "no API key entered");
  return { "X-API-Key": state.key, Accept: "application/json" };
}

/** Call the API with JSON (or nothing); resolves to the envelope's data, rejects with ApiError. */
async function api(method, path, { json, query } = {}) {
  const headers = keyHeaders();
  let url = `/v1${path}`;
  if (query) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== "") q.append(k, v);
    if (q.toString()) url += `?${q}`;
  }
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  }
  let resp;
  try {
    resp = await fetch(url, { method, headers, body, cache: "no-store" });
  } catch (e) {
    throw new ApiError("NETWORK", String(e.message || e));
  }
  return unwrap(resp.status, await resp.text());
}

/** POST a multipart form (photos) with upload progress (0..1) reported to onProgress. */
function upload(path, form, onProgress) {
  return new Promise((resolve, reject) => {
    let headers;
    try {
      headers = keyHeaders();
    } catch (e) {
      reject(e);
      return;
    }
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/v1${path}`);
    for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v);
    if (onProgress) {
      xhr.upload.onprogress = (ev) => ev.lengthComputable && onProgress(ev.loaded / ev.total);
      xhr.upload.onload = () => onProgress(1);
    }
    xhr.onload = () => {
      try {
        resolve(unwrap(xhr.status, xhr.responseText));
      } catch (e) {
        reject(e);
      }
    };
    xhr.onerror = () => reject(new ApiError("NETWORK", "the request did not reach the server"));
    xhr.send(form);
  });
}

/** A face thumbnail (needs the key, so it is fetched and shown from a blob: URL). */
function thumbnail(url) {
  if (!state.thumbs.has(url)) {
    const p = (async () => {
      const resp = await fetch(url, { headers: keyHeaders() });
      if (!resp.ok) throw new Error(`thumbnail: HTTP ${resp.status}`);
      return URL.createObjectURL(await resp.blob());
    })();
    p.catch(() => state.thumbs.delete(url));
    state.thumbs.set(url, p);
  }
  return state.thumbs.get(url);
}

// --- errors in words ------------------------------------------------------------------------

const FRIENDLY = {
  API_KEY_MISSING: "No API key: enter your key at the top of the page.",
  API_KEY_INVALID: "This API key was not accepted: it is unknown or has been revoked. Check it and enter it again.",
  FORBIDDEN: "Your API key is not allowed to do this (its role or its collections do not permit it).",
  NOT_FOUND: "This was not found: it may have been deleted meanwhile.",
  CONFLICT: "That name or external id is already taken: choose another one.",
  VALIDATION_ERROR: "A value is not valid.",
  IMAGE_DECODE_FAILED: "This file could not be read as a photo: use a JPEG, PNG or WebP image.",
  IMAGE_TOO_LARGE: "This photo is too large for the server.",
  IMAGE_URL_REFUSED: "The server refused to fetch that photo address.",
  FACE_NOT_DETECTED: "No face was found in this photo. Use a photo where a face is clearly visible.",
  FACE_QUALITY_TOO_LOW: "The face in this photo is not good enough to enrol.",
  LIVENESS_FAILED: "This does not look like a live person.",
  LIVENESS_UNAVAILABLE: "Liveness checking is not installed on this server: untick “Check liveness”.",
  MODEL_UNAVAILABLE: "A face model is missing on the server: ask its administrator to install it.",
  PAYLOAD_TOO_LARGE: "The upload is too large for the server.",
  METHOD_NOT_ALLOWED: "The server does not allow this action.",
  BAD_REQUEST: "The server could not understand the request.",
  INTERNAL: "Something went wrong on the server.",
  NETWORK: "The facesearch server could not be reached: check that it is running.",
};

const REASONS = {
  FACE_TOO_SMALL: "the face is too small",
  FACE_CLOSE_TO_BORDER: "the face is too close to the edge of the photo",
  FACE_CROPPED: "the face is cut off by the edge of the photo",
  FACE_ANGLE_TOO_LARGE: "the face is turned too far from the camera",
  BLURRY: "the photo is too blurry",
  FACE_NOT_LIVE: "it looks like a photo of a photo or of a screen",
  EYES_CLOSED: "the eyes are closed",
  TOO_MANY_FACES: "there is more than one face",
};

/** {text, code, detail}: what to tell a person about an error. */
function describe(err) {
  if (!(err instanceof ApiError)) {
    return { text: "Something unexpected went wrong in this page.", code: "", detail: String(err?.message || err) };
  }
  if (!err.code) return { text: err.message, code: "", detail: "" };
  const d = err.details || {};
  let text = FRIENDLY[err.code] || "The server refused this request.";
  if (err.code === "VALIDATION_ERROR" && d.field) text = `The value of “${d.field}” is not valid.`;
  if (d.reason && (err.code === "FACE_QUALITY_TOO_LOW" || err.code === "LIVENESS_FAILED")) {
    const why = REASONS[d.reason] || String(d.reason).toLowerCase().replaceAll("_", " ");
    text = `${text.replace(/\.$/, "")}: ${why}.`;
  }
  if (err.code === "INTERNAL" && d.request_id) text += ` Quote request id ${d.request_id} when reporting it.`;
  return { text, code: err.code, detail: err.message };
}

function errorBox(err) {
  const { text, code, detail } = describe(err);
  return h(
    "div",
    { class: "error", role: "alert" },
    h("p", {}, h("strong", {}, text)),
    code || detail
      ? h("p", { class: "error-meta" }, code ? ["Error code ", h("code", {}, code)] : null, detail ? ` — ${detail}` : null)
      : null,
  );
}

function showError(box, err) {
  box.replaceChildren(errorBox(err));
  box.hidden = false;
}

function showOk(box, ...content) {
  box.replaceChildren(h("p", { class: "ok" }, ...content));
  box.hidden = false;
}

function clearMsg(box) {
  box.replaceChildren();
  box.hidden = true;
}

// --- the key --------------------------------------------------------------------------------

function keyStatus(kind, text, code) {
  const el = $("#key-status");
  el.className = `key-status ${kind}`;
  put(el, text, code ? [" ", h("code", {}, code)] : []);
}

function keyRefused(err) {
  state.keyOk = false;
  keyStatus("bad", describe(err).text, err.code);
  updateNotice();
}

function setKey(key) {
  state.key = key;
  state.keyOk = null;
  for (const url of state.thumbs.values()) url.then(URL.revokeObjectURL, () => null);
  state.thumbs.clear();
  try {
    if (key) localStorage.setItem(KEY_STORAGE, key);
    else localStorage.removeItem(KEY_STORAGE);
  } catch {
    // private mode: the key lasts for this page only
  }
}

async function checkKey() {
  if (!state.key) {
    state.keyOk = false;
    keyStatus("bad", "No API key: enter your key to use facesearch.", "API_KEY_MISSING");
    return;
  }
  try {
    await api("GET", "/collections", { query: { limit: 1 } });
    state.keyOk = true;
    keyStatus("good", "Key accepted.");
  } catch (err) {
    if (err.code !== "API_KEY_MISSING" && err.code !== "API_KEY_INVALID") {
      state.keyOk = null;
      keyStatus("bad", describe(err).text, err.code);
    }
  }
}

function updateNotice() {
  const ready = Boolean(state.key) && state.keyOk !== false;
  $("#need-key").hidden = ready;
  $("#need-key-why").textContent = state.key
    ? "The API key you entered was not accepted: check it and enter it again at the top of the page."
    : "No API key yet: enter one at the top of the page.";
  if (!ready) {
    $("#view-collections").hidden = true;
    $("#view-collection").hidden = true;
  }
  return ready;
}

// --- confirmation ---------------------------------------------------------------------------

function confirmAction(text, okLabel = "Delete") {
  const dialog = $("#confirm");
  $("#confirm-text").textContent = text;
  $("#confirm-ok").textContent = okLabel;
  return new Promise((resolve) => {
    const done = (answer) => () => dialog.close(answer);
    const ok = done("ok");
    const cancel = done("cancel");
    $("#confirm-ok").addEventListener("click", ok, { once: true });
    $("#confirm-cancel").addEventListener("click", cancel, { once: true });
    dialog.addEventListener(
      "close",
      () => {
        $("#confirm-ok").removeEventListener("click", ok);
        $("#confirm-cancel").removeEventListener("click", cancel);
        resolve(dialog.returnValue === "ok");
      },
      { once: true },
    );
    dialog.returnValue = "";
    dialog.showModal();
    $("#confirm-cancel").focus();
  });
}

// --- routing --------------------------------------------------------------------------------

function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "c" && parts[1]) {
    const tab = ["identify", "identify-all", "unknowns"].includes(parts[2]) ? parts[2] : "persons";
    return { view: "collection", name: parts[1], tab };
  }
  return { view: "collections" };
}

const collHref = (name, tab) => `#/c/${enc(name)}${tab && tab !== "persons" ? `/${tab}` : ""}`;
const collPath = () => `/collections/${enc(state.collection)}`;

async function render() {
  if (!updateNotice()) return;
  const r = route();
  $("#view-collections").hidden = r.view !== "collections";
  $("#view-collection").hidden = r.view !== "collection";
  if (r.view === "collections") {
    await renderCollections();
  } else {
    await renderCollection(r);
  }
}

// --- collections ----------------------------------------------------------------------------

async function renderCollections() {
  const msg = $("#collections-msg");
  clearMsg(msg);
  try {
    const data = await api("GET", "/collections", { query: { limit: 1000 } });
    $("#collections-body").replaceChildren(...data.collections.map(collectionRow));
    $("#collections-empty").hidden = data.collections.length > 0;
    $("#collections-table").hidden = data.collections.length === 0;
  } catch (err) {
    showError(msg, err);
  }
}

function collectionRow(c) {
  return h(
    "tr",
    {},
    h("th", { scope: "row" }, h("a", { href: collHref(c.name) }, c.name)),
    h("td", {}, c.title || ""),
    h("td", { class: "num" }, c.person_count),
    h("td", { class: "num" }, c.face_count),
    h(
      "td",
      { class: "row-actions" },
      h("button", { type: "button", class: "danger small", onclick: () => deleteCollection(c) }, "Delete",
        h("span", { class: "visually-hidden" }, ` collection ${c.name}`)),
    ),
  );
}

async function createCollection(ev) {
  ev.preventDefault();
  const msg = $("#create-collection-msg");
  const nameInput = $("#new-coll-name");
  const name = nameInput.value.trim();
  if (!name || !nameInput.checkValidity()) {
    showError(msg, localError("Give the collection a name: letters, digits, dots, underscores and dashes."));
    nameInput.focus();
    return;
  }
  try {
    await api("POST", "/collections", { json: { name, title: $("#new-coll-title").value.trim() } });
    ev.target.reset();
    showOk(msg, "Collection ", h("a", { href: collHref(name) }, name), " created.");
    await renderCollections();
  } catch (err) {
    showError(msg, err);
  }
}

async function deleteCollection(c) {
  const sure = await confirmAction(
    `Delete the collection “${c.name}” with its ${c.person_count} persons and ${c.face_count} faces? ` +
      "This cannot be undone.",
  );
  if (!sure) return;
  try {
    await api("DELETE", `/collections/${enc(c.name)}`);
    showOk($("#collections-msg"), `Collection “${c.name}” deleted.`);
    await renderCollections();
    showOk($("#collections-msg"), `Collection “${c.name}” deleted.`);
  } catch (err) {
    showError($("#collections-msg"), err);
  }
}

// --- one collection -------------------------------------------------------------------------

async function renderCollection(r) {
  if (state.collection !== r.name) {
    state.collection = r.name;
    resetCollectionView();
  }
  $("#coll-name").textContent = r.name;
  for (const tab of ["persons", "identify", "identify-all", "unknowns"]) {
    const link = $(`#tab-${tab}`);
    link.href = collHref(r.name, tab);
    if (tab === r.tab) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
    $(`#panel-${tab}`).hidden = tab !== r.tab;
  }
  const counts = refreshCounts();
  if (r.tab === "persons") await loadPersons(false);
  if (r.tab === "unknowns") await loadUnknowns();
  await counts;
}

function resetCollectionView() {
  $("#person-search").value = "";
  $("#persons-grid").replaceChildren();
  $("#identify-result").replaceChildren();
  $("#all-result").replaceChildren();
  $("#unknown-clusters").replaceChildren();
  $("#identify-form").reset();
  $("#all-form").reset();
  state.identifyFile = null;
  state.allFile = null;
  syncCutoff("identify");
  syncCutoff("all");
  clearEnrolList();
  clearMsg($("#enrol-msg"));
}

async function refreshCounts() {
  const el = $("#coll-counts");
  try {
    const c = await api("GET", collPath());
    const title = c.title ? `${c.title} · ` : "";
    el.textContent = `${title}${c.person_count} persons · ${c.face_count} faces · model pack ${c.pack}`;
  } catch (err) {
    el.replaceChildren(errorBox(err));
  }
}

// --- persons --------------------------------------------------------------------------------

async function loadPersons(more) {
  const grid = $("#persons-grid");
  const msg = $("#persons-msg");
  const query = $("#person-search").value.trim();
  const token = ++state.personsToken;
  clearMsg(msg);
  grid.setAttribute("aria-busy", "true");
  try {
    const page = await api("GET", `${collPath()}/persons`, {
      query: { limit: 60, name_prefix: query, cursor: more ? state.personsCursor : "" },
    });
    // The list has no faces: read each person (with faces) for the thumbnails.
    const full = await Promise.all(
      page.persons.map((p) => api("GET", `${collPath()}/persons/${enc(p.id)}`).catch(() => p)),
    );
    if (token !== state.personsToken) return;
    state.persons = more ? [...state.persons, ...full] : full;
    const cards = full.map(personCard);
    if (more) grid.append(...cards);
    else grid.replaceChildren(...cards);
    state.personsCursor = page.next_cursor;
    $("#persons-more").hidden = !page.next_cursor;
    const empty = $("#persons-empty");
    empty.hidden = grid.children.length > 0;
    empty.textContent = query ? `Nobody’s name starts with “${query}”.` : "Nobody enrolled yet: enrol a person below.";
  } catch (err) {
    if (token === state.personsToken) showError(msg, err);
  } finally {
    if (token === state.personsToken) grid.removeAttribute("aria-busy");
  }
}

function metadataList(metadata) {
  const entries = Object.entries(metadata || {});
  if (!entries.length) return null;
  return h(
    "dl",
    { class: "meta" },
    entries.map(([k, v]) => [h("dt", {}, k), h("dd", {}, typeof v === "string" ? v : JSON.stringify(v))]),
  );
}

function groupChips(groups) {
  if (!groups || !groups.length) return null;
  return h("ul", { class: "chips", "aria-label": "Groups" }, groups.map((g) => h("li", {}, g)));
}

function personCard(p) {
  const who = personLabel(p);
  const faces = p.faces || [];
  return h(
    "li",
    { class: "person card", "data-person-id": p.id },
    h(
      "ul",
      { class: "faces", "aria-label": `Faces of ${who}` },
      faces.map((f) => faceItem(p, f)),
    ),
    faces.length ? null : h("p", { class: "muted" }, "No face enrolled."),
    h("h4", {}, p.name || h("span", { class: "muted" }, "(no name)")),
    h("p", { class: "ext" }, "External id ", h("code", {}, p.external_id)),
    groupChips(p.groups),
    metadataList(p.metadata),
    h(
      "div",
      { class: "actions" },
      h("button", { type: "button", class: "secondary small", onclick: () => chooseFaces(p) }, "Add face",
        h("span", { class: "visually-hidden" }, ` to ${who}`)),
      h("button", { type: "button", class: "secondary small", onclick: (ev) => toggleTool(ev, p, "merge") },
        "Merge…", h("span", { class: "visually-hidden" }, ` into ${who}`)),
      faces.length > 1
        ? h("button", { type: "button", class: "secondary small", onclick: (ev) => toggleTool(ev, p, "split") },
          "Split…", h("span", { class: "visually-hidden" }, ` ${who}`))
        : null,
      h("button", { type: "button", class: "danger small", onclick: () => deletePerson(p) }, "Delete",
        h("span", { class: "visually-hidden" }, ` ${who}`)),
    ),
    h("div", { class: "tool", hidden: true }),
    h("div", { class: "card-msg msg", "aria-live": "polite" }),
  );
}

// --- merge and split ------------------------------------------------------------------------

function toggleTool(ev, p, kind) {
  const card = ev.target.closest("li.person");
  const tool = $(".tool", card);
  if (!tool.hidden && tool.dataset.kind === kind) {
    tool.hidden = true;
    return;
  }
  tool.dataset.kind = kind;
  put(tool, kind === "merge" ? mergeTool(p) : splitTool(p));
  tool.hidden = false;
  const first = $("select, input", tool);
  if (first) first.focus();
}

function mergeTool(p) {
  const others = state.persons.filter((x) => x.id !== p.id);
  if (!others.length) return h("p", { class: "muted" }, "Nobody else to merge in.");
  const id = `merge-${p.id}`;
  const select = h("select", { id }, others.map((x) => h("option", { value: x.id }, `${personLabel(x)} (${x.external_id})`)));
  return h(
    "form",
    { class: "inline-tool", onsubmit: (ev) => mergeInto(ev, p, select.value) },
    h("label", { for: id }, `Merge into ${personLabel(p)}:`),
    select,
    h("button", { type: "submit", class: "small" }, "Merge"),
    h("small", {}, "Their faces, groups and corrections move here; their id then points to this person."),
  );
}

async function mergeInto(ev, p, sourceId) {
  ev.preventDefault();
  const source = state.persons.find((x) => x.id === sourceId);
  const n = (source?.faces || []).length;
  if (!(await confirmAction(`Merge ${personLabel(source)} (${n} face${n === 1 ? "" : "s"}) into ${personLabel(p)}? ` +
    `${personLabel(source)} is then deleted.`, "Merge"))) return;
  try {
    await api("POST", `${collPath()}/persons/${enc(p.id)}/merge`, { json: { from: sourceId } });
    await loadPersons(false);
    showOk(cardMsg(p) || $("#persons-msg"), `${personLabel(source)} merged into ${personLabel(p)}.`);
    refreshCounts();
  } catch (err) {
    showError(cardMsg(p) || $("#persons-msg"), err);
  }
}

function splitTool(p) {
  const boxes = (p.faces || []).map((f, i) => {
    const id = `split-${f.id}`;
    const img = h("img", { alt: "", width: 48, height: 48 });
    thumbnail(f.thumbnail_url).then((url) => { img.src = url; }, () => {});
    return h("li", {}, h("input", { type: "checkbox", id, value: f.id }), h("label", { for: id }, img, ` face ${i + 1}`));
  });
  const nameId = `split-name-${p.id}`;
  const name = h("input", { id: nameId, maxlength: 255, autocomplete: "off" });
  return h(
    "form",
    { class: "inline-tool", onsubmit: (ev) => splitOff(ev, p, name.value.trim()) },
    h("p", {}, "Tick the faces that are someone else:"),
    h("ul", { class: "split-faces" }, boxes),
    h("label", { for: nameId }, "The new person’s name"),
    name,
    h("button", { type: "submit", class: "small" }, "Move to a new person"),
  );
}

async function splitOff(ev, p, name) {
  ev.preventDefault();
  const faces = [...ev.target.querySelectorAll("input[type=checkbox]:checked")].map((c) => c.value);
  const msg = cardMsg(p) || $("#persons-msg");
  if (!faces.length) {
    showError(msg, localError("Tick at least one face to move."));
    return;
  }
  try {
    const made = await api("POST", `${collPath()}/persons/${enc(p.id)}/split`, { json: { faces, name } });
    await loadPersons(false);
    showOk($("#persons-msg"), `${faces.length} face${faces.length === 1 ? "" : "s"} moved from ${personLabel(p)} to a new person, ${personLabel(made)}.`);
    refreshCounts();
  } catch (err) {
    showError(msg, err);
  }
}

function faceItem(p, f) {
  const img = h("img", { alt: `Face of ${personLabel(p)}`, width: 72, height: 72 });
  thumbnail(f.thumbnail_url).then(
    (url) => {
      img.src = url;
    },
    () => {
      img.alt = "Thumbnail unavailable";
    },
  );
  return h(
    "li",
    { class: "face" },
    img,
    h(
      "button",
      {
        type: "button",
        class: "remove",
        title: "Remove this face",
        "aria-label": `Remove this face of ${personLabel(p)}`,
        onclick: () => removeFace(p, f),
      },
      "×",
    ),
  );
}

function cardMsg(p) {
  return $(`li[data-person-id="${CSS.escape(p.id)}"] .card-msg`);
}

function chooseFaces(p) {
  state.addFaceTarget = p;
  const input = $("#add-face-input");
  input.value = "";
  input.click();
}

async function addFaces(files) {
  const p = state.addFaceTarget;
  if (!p || !files.length) return;
  const msg = cardMsg(p);
  const problems = [];
  let added = 0;
  for (const [i, file] of files.entries()) {
    if (msg) showOk(msg, `Adding photo ${i + 1} of ${files.length}…`);
    const form = new FormData();
    form.append("image", file);
    try {
      await upload(`${collPath()}/persons/${enc(p.id)}/faces`, form);
      added += 1;
    } catch (err) {
      problems.push([file.name, err]);
    }
  }
  await loadPersons(false);
  refreshCounts();
  const box = cardMsg(p) || $("#persons-msg");
  put(
    box,
    added ? h("p", { class: "ok" }, `${added} face${added > 1 ? "s" : ""} added to ${personLabel(p)}.`) : [],
    problems.map(([name, err]) => [h("p", {}, `Photo ${name} refused:`), errorBox(err)]),
  );
  box.hidden = false;
}

async function removeFace(p, f) {
  if (!(await confirmAction(`Remove this face of ${personLabel(p)}? The person stays.`, "Remove"))) return;
  try {
    await api("DELETE", `${collPath()}/faces/${enc(f.id)}`);
    await loadPersons(false);
    refreshCounts();
  } catch (err) {
    showError(cardMsg(p) || $("#persons-msg"), err);
  }
}

async function deletePerson(p) {
  const n = (p.faces || []).length;
  if (!(await confirmAction(`Delete ${personLabel(p)} and their ${n} face${n === 1 ? "" : "s"}? This cannot be undone.`)))
    return;
  try {
    await api("DELETE", `${collPath()}/persons/${enc(p.id)}`);
    await loadPersons(false);
    showOk($("#persons-msg"), `${personLabel(p)} deleted.`);
    refreshCounts();
  } catch (err) {
    showError(cardMsg(p) || $("#persons-msg"), err);
  }
}

// --- enrolment ------------------------------------------------------------------------------

function clearEnrolList() {
  for (const item of state.enrol) URL.revokeObjectURL(item.url);
  state.enrol = [];
  state.enrolFinished = false;
  $("#enrol-files").replaceChildren();
}

function setItem(item, kind, ...content) {
  item.li.className = `file ${kind}`;
  put(item.status, ...content);
}

function addEnrolFiles(files) {
  if (state.enrolFinished) clearEnrolList();
  for (const file of files) {
    if (state.enrol.some((x) => x.file.name === file.name && x.file.size === file.size)) continue;
    const url = URL.createObjectURL(file);
    const item = { file, url };
    item.bar = h("progress", { max: 1, value: 0, "aria-label": `Upload of ${file.name}` });
    item.status = h("span", { class: "status" }, "Ready");
    item.remove = h(
      "button",
      {
        type: "button",
        class: "remove",
        "aria-label": `Leave out ${file.name}`,
        onclick: () => {
          state.enrol = state.enrol.filter((x) => x !== item);
          URL.revokeObjectURL(url);
          item.li.remove();
        },
      },
      "×",
    );
    item.li = h(
      "li",
      { class: "file" },
      h("img", { src: url, alt: "", width: 56, height: 56 }),
      h("div", { class: "file-body" }, h("span", { class: "file-name" }, file.name), " ",
        h("span", { class: "muted" }, fmtBytes(file.size)), item.bar, item.status),
      item.remove,
    );
    state.enrol.push(item);
    $("#enrol-files").append(item.li);
  }
}

async function enrol(ev) {
  ev.preventDefault();
  const msg = $("#enrol-msg");
  clearMsg(msg);
  const items = state.enrolFinished ? [] : [...state.enrol];
  if (!items.length) {
    showError(msg, localError("Add at least one photo of the person: drop it on the photo area or choose it."));
    $("#enrol-photos").focus();
    return;
  }
  let metadata;
  const metaText = $("#enrol-metadata").value.trim();
  if (metaText) {
    try {
      metadata = JSON.parse(metaText);
    } catch {
      metadata = undefined;
    }
    if (!metadata || typeof metadata !== "object" || Array.isArray(metadata)) {
      showError(msg, localError('Metadata must be a JSON object, for example {"department": "sales"}.'));
      $("#enrol-metadata").focus();
      return;
    }
  }
  const body = {
    name: $("#enrol-name").value.trim(),
    external_id: $("#enrol-external").value.trim() || undefined,
    metadata,
    groups: splitList($("#enrol-groups").value),
  };
  const submit = $("#enrol-submit");
  submit.disabled = true;
  try {
    let person;
    try {
      person = await api("POST", `${collPath()}/persons`, { json: body });
    } catch (err) {
      showError(msg, err);
      return;
    }
    // One photo at a time, so that each shows its own progress and its own refusal.
    for (const item of items) item.remove.hidden = true;
    let enrolled = 0;
    for (const item of items) {
      setItem(item, "busy", "Uploading…");
      const form = new FormData();
      form.append("image", item.file);
      try {
        await upload(`${collPath()}/persons/${enc(person.id)}/faces`, form, (done) => {
          item.bar.value = done;
          if (done >= 1) setItem(item, "busy", "Finding the face…");
        });
        item.bar.value = 1;
        setItem(item, "done", "Enrolled ✓");
        enrolled += 1;
      } catch (err) {
        item.bar.value = 0;
        const { text, code } = describe(err);
        setItem(item, "refused", "Refused: ", text, code ? [" ", h("code", {}, code)] : []);
      }
    }
    state.enrolFinished = true;
    const who = personLabel(person);
    if (!enrolled) {
      await api("DELETE", `${collPath()}/persons/${enc(person.id)}`).catch(() => null);
      showError(msg, localError(`No photo of ${who} could be enrolled, so ${who} was not added. See each photo’s reason above.`));
    } else {
      const refused = items.length - enrolled;
      showOk(msg, `${who} enrolled with ${enrolled} photo${enrolled > 1 ? "s" : ""}` +
        (refused ? `; ${refused} refused (see above).` : "."));
      for (const id of ["#enrol-name", "#enrol-external", "#enrol-metadata", "#enrol-groups"]) $(id).value = "";
      $("#enrol-photos").value = "";
      await loadPersons(false);
      refreshCounts();
    }
  } finally {
    submit.disabled = false;
  }
}

// --- search options -------------------------------------------------------------------------

function syncCutoff(prefix) {
  const mode = $(`input[name="${prefix}-cutoff"]:checked`).value;
  $(`#${prefix}-threshold`).disabled = mode !== "threshold";
  $(`#${prefix}-fpr`).disabled = mode !== "fpr";
}

/** The photo and the search options of a panel as a multipart form; throws a local error. */
function searchForm(prefix, file) {
  const form = new FormData();
  form.append("image", file);
  const topK = Number($(`#${prefix}-top-k`).value || 1);
  if (!Number.isInteger(topK) || topK < 1 || topK > 100) throw localError("Matches must be a whole number from 1 to 100.");
  form.append("top_k", String(topK));
  const mode = $(`input[name="${prefix}-cutoff"]:checked`).value;
  if (mode === "threshold") {
    const text = $(`#${prefix}-threshold`).value.trim();
    const t = Number(text);
    if (!text || !(t >= 0 && t <= 1)) throw localError("The similarity threshold is a number from 0 to 1.");
    form.append("threshold", text);
  } else if (mode === "fpr") {
    const text = $(`#${prefix}-fpr`).value.trim();
    const r = Number(text);
    if (text) {
      // Sent only when filled in (empty: the collection's default threshold).
      if (!(r > 0 && r < 1)) throw localError("The false-positive rate is a number between 0 and 1, like 0.001.");
      form.append("max_false_positive_rate", text);
    }
  }
  const groups = splitList($(`#${prefix}-groups`).value);
  if (groups.length) form.append("groups", groups.join(","));
  form.append("search_mode", $(`#${prefix}-mode`).value);
  if ($(`#${prefix}-liveness`).checked) form.append("check_liveness", "true");
  return form;
}

// --- photos with boxes ----------------------------------------------------------------------

function photoFigure(panel, file) {
  if (state.photos[panel]) URL.revokeObjectURL(state.photos[panel]);
  const url = URL.createObjectURL(file);
  state.photos[panel] = url;
  const img = h("img", { src: url, alt: `The photo ${file.name}` });
  const layer = h("div", { class: "boxes", "aria-hidden": "true" });
  const caption = h("figcaption", { class: "muted" }, file.name);
  return { figure: h("figure", { class: "photo" }, h("div", { class: "frame" }, img, layer), caption), img, layer, caption };
}

/** Draw boxes ({box, label, kind}) over the photo, in percent of its size (so it scales). */
async function drawBoxes(photo, boxes) {
  try {
    await photo.img.decode();
  } catch {
    return;
  }
  const W = photo.img.naturalWidth;
  const H = photo.img.naturalHeight;
  photo.layer.replaceChildren();
  for (const b of boxes) {
    const el = h("div", { class: `box ${b.kind}` });
    el.style.left = `${(100 * b.box.left) / W}%`;
    el.style.top = `${(100 * b.box.top) / H}%`;
    el.style.width = `${(100 * b.box.width) / W}%`;
    el.style.height = `${(100 * b.box.height) / H}%`;
    if (b.label) el.append(h("span", { class: `box-label${b.box.top < H * 0.08 ? " below" : ""}` }, b.label));
    photo.layer.append(el);
  }
}

/** How much a match is worth in this gallery, from the strangers expected to score as high. */
function strength(m) {
  const e = m && m.expected_false_matches;
  if (typeof e !== "number") return { level: "unrated", text: "" };
  const under = m.false_match_rate <= 1e-7 ? "under " : "";
  if (e < 0.001) return { level: "strong", text: `Strong: ${under}1 in ${fmtCount(1 / e)} chance a stranger scores this high here.` };
  if (e < 0.05) return { level: "fair", text: `Fair: 1 in ${fmtCount(1 / e)} chance a stranger scores this high here.` };
  return { level: "weak", text: `Weak: about ${e < 1 ? e.toFixed(2) : e.toPrecision(2)} strangers here would score this high.` };
}

function fmtCount(x) {
  if (x >= 1e9) return `${(x / 1e9).toPrecision(2)} billion`;
  return x >= 1e6 ? `${(x / 1e6).toPrecision(2)} million` : Math.round(x).toLocaleString("en");
}

/** Which rule set a search's cut-off, in words. */
function ruleText(d) {
  const r = d.threshold_rule;
  const t = `similarity ${Number(d.threshold).toFixed(3)}`;
  if (!r) return `threshold ${t}`;
  const who = r.set_by === "request" ? "this search" : `the ${r.set_by}`;
  return r.kind === "max_false_positive_rate"
    ? `cut-off ${t}, from a ${r.value} chance that a stranger matches anyone (set by ${who})`
    : `threshold ${t} (set by ${who})`;
}

function similarityBar(sim, threshold, m) {
  const worth = strength(m);
  const bar = h("div", { class: `bar ${worth.level}`, "aria-hidden": "true" }, h("div", { class: "fill" }));
  bar.firstChild.style.width = `${Math.max(0, Math.min(1, sim)) * 100}%`;
  if (typeof threshold === "number") {
    const mark = h("div", { class: "mark", title: `threshold ${threshold.toFixed(3)}` });
    mark.style.left = `${threshold * 100}%`;
    bar.append(mark);
  }
  return h(
    "div",
    { class: `sim ${worth.level}` },
    h("span", {}, `Similarity ${sim.toFixed(3)}`),
    bar,
    worth.text ? h("small", { class: "worth" }, worth.text) : null,
  );
}

function matchCard(m, i, threshold, onNotThis) {
  return h(
    "li",
    { class: "match card" },
    m.thumbnail
      ? h("img", { src: `data:image/jpeg;base64,${m.thumbnail}`, alt: `Enrolled face of ${personLabel(m)}`, width: 96, height: 96 })
      : h("div", { class: "noimg", "aria-hidden": "true" }),
    h(
      "div",
      { class: "match-body" },
      h("h4", {}, h("span", { class: "rank" }, `${i + 1}.`), " ", m.name || "(no name)"),
      h("p", { class: "ext" }, "External id ", h("code", {}, m.external_id)),
      similarityBar(m.similarity, threshold, m),
      groupChips(m.groups),
      metadataList(m.metadata),
      onNotThis
        ? h("button", { type: "button", class: "secondary small", onclick: () => onNotThis(m) }, "Not this person",
          h("span", { class: "visually-hidden" }, `: this face is not ${personLabel(m)}`))
        : null,
    ),
  );
}

/** Notes on what the corrections did to an answer: ambiguous pairs, left-out persons, remembered unknowns. */
function correctionNotes(d) {
  return [
    d.ambiguous && d.ambiguous.length
      ? h("p", { class: "warn ambiguous", role: "note" },
        `Ambiguous: ${d.ambiguous.map((a) => `${a.name || a.external_id} (similarity ${a.similarity.toFixed(3)})`).join(" and ")} ` +
          "are recorded as different people and all match this face: the service cannot tell which one it is.")
      : null,
    d.vetoed
      ? h("p", { class: "muted vetoed" }, `${d.vetoed} person${d.vetoed === 1 ? " was" : "s were"} left out: this face was marked as not being them.`)
      : null,
    d.unknown_id
      ? h("p", { class: "muted" }, "Remembered as an unknown face: see the ", h("a", { href: collHref(state.collection, "unknowns") }, "Unknown faces"), " tab.")
      : null,
  ];
}

async function notThisPerson(m, file) {
  const form = new FormData();
  form.append("image", file);
  const out = $("#identify-result");
  try {
    await upload(`${collPath()}/persons/${enc(m.person_id)}/negatives`, form);
    await runIdentify();
    out.prepend(h("p", { class: "ok", role: "status" }, `Recorded: this face is not ${personLabel(m)}. It will not be matched to them again.`));
  } catch (err) {
    out.prepend(errorBox(err));
  }
}

function timings(d, roundTripMs) {
  const t = d.timings || {};
  return h(
    "p",
    { class: "timings" },
    `Server time ${fmtMs(d.query_time_ms)} ms (decode ${fmtMs(t.decode_ms)}, detect ${fmtMs(t.detect_ms)}, ` +
      `embed ${fmtMs(t.embed_ms)}, search ${fmtMs(t.search_ms)} ms); round trip ${fmtMs(roundTripMs)} ms. ` +
      `Compared with ${d.searched} faces; ${ruleText(d)}.`,
  );
}

// --- identify -------------------------------------------------------------------------------

async function runIdentify() {
  const out = $("#identify-result");
  const file = state.identifyFile;
  if (!file) {
    out.replaceChildren(errorBox(localError("Choose or drop a photo first.")));
    return;
  }
  let form;
  try {
    form = searchForm("identify", file);
  } catch (err) {
    out.replaceChildren(errorBox(err));
    return;
  }
  form.append("return_thumbnails", "true");
  const photo = photoFigure("identify", file);
  const status = h("p", { class: "busy" }, "Identifying…");
  out.replaceChildren(h("div", { class: "result-grid" }, photo.figure, h("div", { class: "matches-col" }, status)));
  out.setAttribute("aria-busy", "true");
  const started = performance.now();
  try {
    const d = await upload(`${collPath()}/identify`, form);
    const ms = performance.now() - started;
    const best = d.matches[0];
    await drawBoxes(photo, [{ box: d.face.box, label: best ? best.name || best.external_id : "unknown", kind: best ? "known" : "unknown" }]);
    photo.caption.textContent = `${file.name}: the face searched for is boxed.`;
    const list = d.matches.length
      ? h("ol", { class: "matches", "aria-label": "Matches" },
        d.matches.map((m, i) => matchCard(m, i, d.threshold, (x) => notThisPerson(x, file))))
      : h("p", { class: "nomatch" }, `Unknown: nobody in this collection passes the ${ruleText(d)}.`);
    status.replaceWith(h("h4", {}, "Matches"), ...correctionNotes(d).filter(Boolean), list, timings(d, ms));
  } catch (err) {
    status.replaceWith(errorBox(err));
  } finally {
    out.removeAttribute("aria-busy");
  }
}

// --- identify all ---------------------------------------------------------------------------

async function runIdentifyAll() {
  const out = $("#all-result");
  const file = state.allFile;
  if (!file) {
    out.replaceChildren(errorBox(localError("Choose or drop a photo first.")));
    return;
  }
  let form;
  try {
    form = searchForm("all", file);
  } catch (err) {
    out.replaceChildren(errorBox(err));
    return;
  }
  const photo = photoFigure("all", file);
  const status = h("p", { class: "busy" }, "Looking for every face…");
  out.replaceChildren(photo.figure, status);
  out.setAttribute("aria-busy", "true");
  const started = performance.now();
  try {
    const d = await upload(`${collPath()}/identify-all`, form);
    const ms = performance.now() - started;
    const faces = [...d.faces, ...d.unrecognized].sort((a, b) => a.face.box.left - b.face.box.left);
    const name = (f) => (f.matches[0] ? f.matches[0].name || f.matches[0].external_id : "unknown");
    await drawBoxes(
      photo,
      faces.map((f, i) => ({ box: f.face.box, label: `${i + 1}. ${name(f)}`, kind: f.matches.length ? "known" : "unknown" })),
    );
    photo.caption.textContent = `${file.name}: ${faces.length} face${faces.length === 1 ? "" : "s"} found, ` +
      `${d.faces.length} recognised.`;
    const list = faces.length
      ? h("ol", { class: "faces-found", "aria-label": "Faces found" }, faces.map((f, i) => foundFace(f, i, d.threshold)))
      : h("p", { class: "nomatch" }, "No face was found in this photo.");
    status.replaceWith(list, timings(d, ms));
  } catch (err) {
    status.replaceWith(errorBox(err));
  } finally {
    out.removeAttribute("aria-busy");
  }
}

function foundFace(f, i, threshold) {
  const best = f.matches[0];
  return h(
    "li",
    { class: `found card ${best ? "known" : "unknown"}` },
    f.crop ? h("img", { src: `data:image/jpeg;base64,${f.crop}`, alt: `Face ${i + 1}`, width: 80, height: 80 }) : null,
    h(
      "div",
      { class: "match-body" },
      h("h4", {}, h("span", { class: "rank" }, `${i + 1}.`), " ", best ? best.name || best.external_id : "unknown"),
      best ? h("p", { class: "ext" }, "External id ", h("code", {}, best.external_id)) : h("p", { class: "muted" }, "Nobody in this collection matched."),
      best ? similarityBar(best.similarity, threshold, best) : null,
      f.matches.length > 1
        ? h("p", { class: "muted" }, "Also: ", f.matches.slice(1).map((m) => `${m.name || m.external_id} (${m.similarity.toFixed(3)})`).join(", "))
        : null,
      correctionNotes(f),
    ),
  );
}

// --- unknown faces --------------------------------------------------------------------------

function fmtWhen(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

async function loadUnknowns() {
  const list = $("#unknown-clusters");
  const msg = $("#unknowns-msg");
  const status = $("#unknowns-status");
  const toggle = $("#unknowns-toggle");
  clearMsg(msg);
  list.setAttribute("aria-busy", "true");
  try {
    const [coll, data] = await Promise.all([
      api("GET", collPath()),
      api("GET", `${collPath()}/unknowns/clusters`),
    ]);
    const on = Boolean(coll.settings.remember_unknown);
    const days = coll.settings.unknown_retention_days || 30;
    status.textContent = on
      ? `Faces that searches match to nobody are kept for ${days} days and grouped here by likely person. ` +
        `${data.unknown_faces} unknown face${data.unknown_faces === 1 ? "" : "s"} held.`
      : "This collection does not keep unknown faces (setting remember_unknown is off).";
    toggle.hidden = false;
    toggle.textContent = on ? "Stop keeping unknown faces" : "Keep unknown faces";
    toggle.onclick = () => setRemember(!on);
    list.replaceChildren(...data.clusters.map(clusterCard));
    const empty = $("#unknowns-empty");
    empty.hidden = data.clusters.length > 0;
    empty.textContent = on ? "No unknown faces yet." : "";
  } catch (err) {
    showError(msg, err);
  } finally {
    list.removeAttribute("aria-busy");
  }
}

async function setRemember(on) {
  try {
    await api("PATCH", collPath(), { json: { settings: { remember_unknown: on } } });
    await loadUnknowns();
  } catch (err) {
    showError($("#unknowns-msg"), err);
  }
}

function clusterCard(c, i) {
  const samples = c.sample_urls.map((url, j) => {
    const img = h("img", { alt: `Unknown face ${j + 1} of cluster ${i + 1}`, width: 72, height: 72 });
    thumbnail(url).then((u) => { img.src = u; }, () => { img.alt = "Thumbnail unavailable"; });
    return h("li", { class: "face" }, img);
  });
  const nameId = `cluster-name-${c.id}`;
  const personId = `cluster-person-${c.id}`;
  const name = h("input", { id: nameId, maxlength: 255, autocomplete: "off" });
  const existing = h("input", { id: personId, maxlength: 255, autocomplete: "off", placeholder: "external id or per_…" });
  const msg = h("div", { class: "card-msg msg", "aria-live": "polite" });
  return h(
    "li",
    { class: "cluster card", "data-cluster-id": c.id },
    h("ul", { class: "faces", "aria-label": `Faces of cluster ${i + 1}` }, samples),
    h("h4", {}, `${c.size} face${c.size === 1 ? "" : "s"}`, h("span", { class: "visually-hidden" }, ` in cluster ${i + 1}`)),
    h("p", { class: "muted" }, `First seen ${fmtWhen(c.first_seen)} · last seen ${fmtWhen(c.last_seen)}`),
    h(
      "form",
      { class: "inline-tool", onsubmit: (ev) => nameCluster(ev, c, { name: name.value.trim() }, msg) },
      h("label", { for: nameId }, "Name"),
      name,
      h("button", { type: "submit", class: "small" }, "Make a new person"),
    ),
    h(
      "form",
      { class: "inline-tool", onsubmit: (ev) => nameCluster(ev, c, { person: existing.value.trim() }, msg) },
      h("label", { for: personId }, "Or add to a person"),
      existing,
      h("button", { type: "submit", class: "secondary small" }, "Add faces"),
    ),
    h("div", { class: "actions" },
      h("button", { type: "button", class: "danger small", onclick: () => forgetCluster(c, msg) }, "Forget",
        h("span", { class: "visually-hidden" }, ` cluster ${i + 1}`))),
    msg,
  );
}

async function nameCluster(ev, c, fields, msg) {
  ev.preventDefault();
  if ("person" in fields && !fields.person) {
    showError(msg, localError("Type the person’s external id (or id) first."));
    return;
  }
  try {
    const made = await api("POST", `${collPath()}/unknowns/persons`, { json: { cluster: c.id, ...fields } });
    await loadUnknowns();
    showOk($("#unknowns-msg"), `${made.faces_added} face${made.faces_added === 1 ? "" : "s"} now belong to `,
      h("strong", {}, personLabel(made.person)), ".");
    refreshCounts();
  } catch (err) {
    showError(msg, err);
  }
}

async function forgetCluster(c, msg) {
  if (!(await confirmAction(`Forget these ${c.size} unknown face${c.size === 1 ? "" : "s"}?`, "Forget"))) return;
  try {
    await api("POST", `${collPath()}/unknowns/forget`, { json: { unknowns: c.members } });
    await loadUnknowns();
  } catch (err) {
    showError(msg, err);
  }
}

// --- drop zones -----------------------------------------------------------------------------

function photoFiles(list) {
  return [...(list || [])].filter((f) => !f.type || PHOTO_TYPES.includes(f.type) || f.type.startsWith("image/"));
}

function dropZone(zone, input, onFiles) {
  zone.addEventListener("dragover", (ev) => {
    ev.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (ev) => {
    ev.preventDefault();
    zone.classList.remove("over");
    const files = photoFiles(ev.dataTransfer?.files);
    if (files.length) onFiles(files);
  });
  input.addEventListener("change", () => {
    const files = photoFiles(input.files);
    if (files.length) onFiles(files);
  });
}

// --- start ----------------------------------------------------------------------------------

function start() {
  const keyInput = $("#api-key");
  keyInput.value = state.key;
  $("#key-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    setKey(keyInput.value.trim());
    await checkKey();
    await render();
    if (state.keyOk === false) keyInput.focus();
  });
  $("#key-forget").addEventListener("click", async () => {
    setKey("");
    keyInput.value = "";
    await checkKey();
    await render();
    keyInput.focus();
  });
  $("#create-collection").addEventListener("submit", createCollection);
  $("#enrol-form").addEventListener("submit", enrol);
  $("#persons-more").addEventListener("click", () => loadPersons(true));
  $("#unknowns-refresh").addEventListener("click", () => loadUnknowns());
  let typing;
  $("#person-search").addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => loadPersons(false), 250);
  });
  $("#add-face-input").addEventListener("change", (ev) => addFaces(photoFiles(ev.target.files)));
  dropZone($("#enrol-drop"), $("#enrol-photos"), addEnrolFiles);
  dropZone($("#identify-drop"), $("#identify-photo"), (files) => {
    state.identifyFile = files[0];
    runIdentify();
  });
  dropZone($("#all-drop"), $("#all-photo"), (files) => {
    state.allFile = files[0];
    runIdentifyAll();
  });
  for (const prefix of ["identify", "all"]) {
    for (const radio of document.querySelectorAll(`input[name="${prefix}-cutoff"]`)) {
      radio.addEventListener("change", () => {
        syncCutoff(prefix);
        if (radio.value !== "default") $(`#${prefix}-${radio.value === "fpr" ? "fpr" : "threshold"}`).focus();
      });
    }
    syncCutoff(prefix);
  }
  $("#identify-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    runIdentify();
  });
  $("#all-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    runIdentifyAll();
  });
  // Stray drops outside a drop zone must not navigate away from the page.
  window.addEventListener("dragover", (ev) => ev.preventDefault());
  window.addEventListener("drop", (ev) => ev.preventDefault());
  window.addEventListener("hashchange", async () => {
    await render();
    const r = route();
    $(r.view === "collections" ? "#collections-h" : "#coll-h").focus({ preventScroll: true });
  });
  (async () => {
    await checkKey();
    await render();
    document.body.dataset.ready = "true";
  })();
}

document.addEventListener("DOMContentLoaded", start);
