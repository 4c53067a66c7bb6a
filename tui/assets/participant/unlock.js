/* mrishare passphrase page: PBKDF2-SHA256 + AES-256-GCM (WebCrypto) over a plain zip, all in this browser. */
"use strict";

/* base64 text -> bytes (in steps, so a 40 MB payload does not build one huge intermediate array). */
mrishare.fromBase64 = function (text) {
  const binary = atob(text.trim());
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
};

/* The passphrase as the zip uses it: lower-case words joined by '-' (spaces typed instead are fine). */
mrishare.normalise = function (typed) {
  return typed.trim().toLowerCase().split(/[\s\-‐–]+/).filter(Boolean).join("-");
};

mrishare.decrypt = async function (phrase, sealed, data) {
  const material = await crypto.subtle.importKey("raw", new TextEncoder().encode(phrase), "PBKDF2", false, ["deriveKey"]);
  const key = await crypto.subtle.deriveKey(
    { name: "PBKDF2", hash: "SHA-256", salt: mrishare.fromBase64(sealed.salt), iterations: sealed.iterations },
    material, { name: "AES-GCM", length: 256 }, false, ["decrypt"]);
  return new Uint8Array(await crypto.subtle.decrypt({ name: "AES-GCM", iv: mrishare.fromBase64(sealed.iv) }, key, data));
};

/* Raw deflate data -> bytes. Streamed from the array itself: through a Blob, a member of ~300 MB failed in
   Chromium ("Failed to fetch") where 150 MB did not. */
mrishare.inflate = async function (raw) {
  const source = new ReadableStream({ start(controller) { controller.enqueue(raw); controller.close(); } });
  return new Uint8Array(await new Response(source.pipeThrough(new DecompressionStream("deflate-raw"))).arrayBuffer());
};

/* The members of a plain zip: [{name, bytes()}], read from its central directory (stored or deflated). */
mrishare.readZip = function (zip) {
  const view = new DataView(zip.buffer, zip.byteOffset, zip.byteLength);
  let end = zip.length - 22;
  while (end >= 0 && view.getUint32(end, true) !== 0x06054b50) end--;
  if (end < 0) throw new Error("not a zip");
  const count = view.getUint16(end + 10, true);
  let at = view.getUint32(end + 16, true);
  const names = new TextDecoder();
  const members = [];
  for (let i = 0; i < count; i++) {
    const method = view.getUint16(at + 10, true), packed = view.getUint32(at + 20, true);
    const nameLength = view.getUint16(at + 28, true), extra = view.getUint16(at + 30, true);
    const comment = view.getUint16(at + 32, true), local = view.getUint32(at + 42, true);
    const name = names.decode(zip.subarray(at + 46, at + 46 + nameLength));
    const start = local + 30 + view.getUint16(local + 26, true) + view.getUint16(local + 28, true);
    const raw = zip.subarray(start, start + packed);
    members.push({
      name, size: view.getUint32(at + 24, true),
      bytes: async () => method === 0 ? raw : mrishare.inflate(raw),
    });
    at += 46 + nameLength + extra + comment;
  }
  return members;
};

/* Tell the participant to open the zip instead (a member that cannot be unpacked here, a damaged payload). */
mrishare.openZipInstead = function (what, error, state) {
  const de = "Nicht alles ließ sich in diesem Browser auspacken (" + what + ": " + error + "). Bitte öffnen Sie "
    + "stattdessen die ZIP-Datei, die Sie mit dieser Seite bekommen haben, mit 7-Zip (Windows) oder Keka (macOS) "
    + "und derselben Passphrase.";
  const en = "Not everything could be unpacked in this browser (" + what + ": " + error + "). Please open the ZIP "
    + "file you received with this page instead, with 7-Zip (Windows) or Keka (macOS) and the same passphrase.";
  mrishare.say("unlock-status", de, en);
  document.getElementById("unlock-status").classList.add("error");
  document.body.dataset.unlock = state;
};

/* Make `link` save `bytes` when clicked. The Blob is made on the first click, not before: the browser keeps every
   Blob in its own blob storage besides the page's memory, and with all of them made at once a 280 MB file could
   not be saved (the download was cancelled) where 220 MB could. */
mrishare.offer = function (link, bytes, type) {
  link.href = "#";
  link.addEventListener("click", () => {
    if (link.href.startsWith("blob:")) return;
    link.href = URL.createObjectURL(new Blob([bytes], { type }));
  });
};

/* One member: a link to save it, and what the page shows of it (README, preview, viewer volume). */
mrishare.addMember = function (member, bytes, volumes) {
  const short = member.name.split("/").slice(1).join("/");
  const item = document.createElement("li");
  const link = document.createElement("a");
  mrishare.offer(link, bytes, "application/octet-stream");
  link.download = short.split("/").pop();
  link.dataset.path = short;
  link.textContent = short;
  const size = member.size < 1e6 ? `${Math.max(1, Math.round(member.size / 1e3))} kB`
    : `${(member.size / 1e6).toFixed(1)} MB`;  // never "0.0 MB" for a README
  item.append(link, ` (${size})`);
  document.getElementById("files").appendChild(item);
  if (short === "README.txt") document.getElementById("readme").textContent = new TextDecoder().decode(bytes);
  if (short.startsWith("previews/") && short.endsWith(".png")) {
    const image = document.createElement("img");
    image.src = URL.createObjectURL(new Blob([bytes], { type: "image/png" }));
    image.alt = short;
    document.getElementById("previews").appendChild(image);
  }
  if (short.startsWith("viewer/") && short.endsWith(".js") && short !== "viewer/niivue.umd.js") {
    const script = new TextDecoder().decode(bytes);
    volumes.push(JSON.parse(script.slice(script.indexOf("(", script.indexOf("push")) + 1, script.lastIndexOf(")"))));
  }
};

/* After the right passphrase: README, previews, files to save, then the viewer. A member that cannot be unpacked
   or read here (damaged, or too large for this browser's memory) is left out, and the page says to open the zip;
   the rest is still shown. */
mrishare.show = async function (zip) {
  const members = mrishare.readZip(zip);
  const saveAll = document.getElementById("save-all");
  mrishare.offer(saveAll, zip, "application/zip");
  const volumes = [], failed = [];
  let last = "";
  for (const [index, member] of members.entries()) {
    const count = `${index + 1} / ${members.length}`;
    mrishare.say("unlock-status", `Dateien werden ausgepackt … ${count}`, `Unpacking the files … ${count}`);
    try {
      mrishare.addMember(member, await member.bytes(), volumes);
    } catch (error) {
      failed.push(member.name.split("/").slice(1).join("/"));
      last = String(error);
    }
  }
  document.getElementById("unlock-status").hidden = true;
  document.getElementById("content").hidden = false;
  if (failed.length) mrishare.openZipInstead(failed.join(", "), last, "incomplete");
  try {
    await mrishare.startViewer(volumes);
  } catch (error) {
    mrishare.say("viewer-status", "Der 3D-Betrachter ließ sich nicht starten: " + error
      + ". Die Vorschaubilder und Dateien unten sind da.", "The 3D viewer could not start: " + error
      + ". The previews and files below are there.");
    document.body.dataset.viewer = "error";
  }
};

document.getElementById("unlock").addEventListener("submit", async (event) => {
  event.preventDefault();
  const button = document.getElementById("unlock-button");
  const input = document.getElementById("unlock-phrase");
  button.disabled = true;
  mrishare.say("unlock-status", "Entschlüsseln …", "Decrypting …");
  document.getElementById("unlock-status").classList.remove("error");  // from a wrong phrase typed before
  document.body.dataset.unlock = "working";
  const sealed = JSON.parse(document.getElementById("sealed-header").textContent);
  let zip;
  try {
    mrishare.data = mrishare.data || mrishare.fromBase64(document.getElementById("sealed-data").textContent);
    zip = await mrishare.decrypt(mrishare.normalise(input.value), sealed, mrishare.data);
  } catch (error) {
    if (error.name !== "OperationError") {  // not the GCM tag check: the page itself is damaged
      mrishare.say("unlock-status", "Die Datei ist beschädigt: " + error, "The file is damaged: " + error);
      document.body.dataset.unlock = "damaged";
      return;
    }
    mrishare.say("unlock-status", "Die Passphrase stimmt nicht. Bitte prüfen Sie jedes Wort und versuchen Sie es noch einmal.",
      "Wrong passphrase. Please check each word and try again.");
    document.getElementById("unlock-status").classList.add("error");
    document.body.dataset.unlock = "wrong";
    button.disabled = false;
    return;
  }
  input.value = "";
  document.getElementById("unlock").hidden = true;
  document.body.dataset.unlock = "open";
  try {
    await mrishare.show(zip);
  } catch (error) {  // a damaged payload, or the viewer failed to start: never a page that silently stops
    mrishare.openZipInstead("ZIP", error, "failed");
    if (!["ready", "empty", "missing", "no-webgl2"].includes(document.body.dataset.viewer)) {
      document.body.dataset.viewer = "error";
    }
  }
});

if (!window.crypto || !crypto.subtle) {
  mrishare.say("unlock-status", "Dieser Browser kann die Datei nicht entschlüsseln. Bitte öffnen Sie sie mit einem aktuellen Chrome, Edge, Firefox oder Safari.",
    "This browser cannot decrypt the file. Please open it in a current Chrome, Edge, Firefox or Safari.");
  document.body.dataset.unlock = "unsupported";
}
