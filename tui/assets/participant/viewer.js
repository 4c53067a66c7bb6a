/* mrishare participant viewer: NiiVue (a classic script, window.niivue) over volumes given as base64.
   No fetch, no module import, no network: the page's Content-Security-Policy forbids them anyway. */
"use strict";
window.mrishare = window.mrishare || {};

/* Put a German and an English line into the status element (plain text, never markup). */
mrishare.say = function (id, de, en) {
  const box = document.getElementById(id);
  box.replaceChildren();
  for (const [lang, text] of [["de", de], ["en", en]]) {
    const p = document.createElement("p");
    p.lang = lang;
    p.textContent = text;
    box.appendChild(p);
  }
  box.hidden = false;
};

/* True where the browser can draw with WebGL2 (NiiVue needs it). */
mrishare.hasWebGL2 = function () {
  try {
    return !!document.createElement("canvas").getContext("webgl2");
  } catch (e) {
    return false;
  }
};

/* Show `volumes` ([{name, title, base64}]) in the viewer section; resolves when the first frame is drawn. */
mrishare.startViewer = async function (volumes) {
  const section = document.getElementById("viewer");
  if (typeof window.niivue === "undefined") {
    mrishare.say("viewer-status", "Der 3D-Betrachter fehlt. Bitte zuerst alle Dateien entpacken und dann index.html öffnen.",
      "The 3D viewer is missing. Please extract all files first, then open index.html.");
    document.body.dataset.viewer = "missing";
    return;
  }
  if (!mrishare.hasWebGL2()) {
    mrishare.say("viewer-status", "Dieser Browser kann keine 3D-Grafik (WebGL2) zeigen. Unten sehen Sie die Vorschaubilder.",
      "This browser cannot show 3D graphics (WebGL2). The preview pictures are below.");
    document.body.dataset.viewer = "no-webgl2";
    return;
  }
  if (!volumes || volumes.length === 0) {
    document.body.dataset.viewer = "empty";
    return;
  }
  section.hidden = false;
  const nv = new niivue.Niivue({
    backColor: [0, 0, 0, 1], isRadiologicalConvention: true, sagittalNoseLeft: true,
    multiplanarShowRender: niivue.SHOW_RENDER.ALWAYS, multiplanarLayout: niivue.MULTIPLANAR_TYPE.GRID,
    show3Dcrosshair: false, crosshairWidth: 0.5, clipPlaneColor: [0, 0, 0, 0], dragAndDropEnabled: false, logLevel: "error", isOrientCube: true,
    loadingText: "Lade... / Loading...",
  });
  await nv.attachToCanvas(document.getElementById("viewer-canvas"));
  mrishare.nv = nv;
  nv.setRadiologicalConvention(true);
  const select = document.getElementById("viewer-series");
  select.replaceChildren(...volumes.map((v, i) => new Option(v.title, String(i))));
  select.hidden = volumes.length < 2;

  const views = {
    slices: () => { nv.setClipPlane([2, 0, 0]); nv.setSliceType(nv.sliceTypeMultiplanar); },
    render: () => { nv.setClipPlane([2, 0, 0]); nv.setSliceType(nv.sliceTypeRender); nv.setRenderAzimuthElevation(120, 15); },
    cut: () => { nv.setSliceType(nv.sliceTypeRender); nv.setRenderAzimuthElevation(110, 15); nv.setClipPlane([0, 270, 0]); },
  };
  async function load(index) {
    document.body.dataset.viewer = "loading";
    while (nv.volumes.length) nv.removeVolume(nv.volumes[0]);
    const v = volumes[index];
    nv.addVolume(await niivue.NVImage.loadFromBase64({ base64: v.base64, name: v.name }));
    views.slices();
    nv.drawScene();
    document.body.dataset.viewer = "ready";
  }
  for (const button of section.querySelectorAll("button[data-view]")) {
    button.addEventListener("click", () => { views[button.dataset.view](); nv.drawScene(); });
  }
  select.addEventListener("change", () => load(Number(select.value)));
  // The full-resolution image: a file the participant picks may be read on file://, one the page names not.
  document.getElementById("viewer-file").addEventListener("change", async (event) => {
    const file = event.target.files[0];
    if (!file) return;
    document.body.dataset.viewer = "loading";
    while (nv.volumes.length) nv.removeVolume(nv.volumes[0]);
    nv.addVolume(await niivue.NVImage.loadFromFile({ file, name: file.name }));
    views.slices();
    nv.drawScene();
    document.body.dataset.viewer = "ready";
  });
  try {
    await load(0);
  } catch (error) {
    mrishare.say("viewer-status", "Das Bild ließ sich nicht anzeigen: " + error, "The image could not be shown: " + error);
    document.body.dataset.viewer = "error";
  }
};
