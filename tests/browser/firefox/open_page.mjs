// Open one participant page in Debian's Firefox ESR (WebDriver BiDi through puppeteer-core, no browser download) and
// print one JSON line of what happened: unlock and viewer states, secure context, WebGL2, requests that left the
// machine's files, console errors. With a passphrase it is typed into the page; the viewer canvas is saved as PNG;
// with a save-all path the page's "save all" ZIP is written there.
// Usage: node open_page.mjs FILE_URL CANVAS_PNG [PASSPHRASE SAVE_ALL_ZIP]
import fs from "node:fs";
import puppeteer from "puppeteer-core";

const [url, canvasPng, phrase, saveAllPath] = process.argv.slice(2);
const browser = await puppeteer.launch({
  browser: "firefox", executablePath: "/usr/bin/firefox-esr", headless: false,  // on Xvfb: headless Firefox has no WebGL
  defaultViewport: { width: 1100, height: 1300 }, extraPrefsFirefox: { "webgl.force-enabled": true },
});
try {
  const page = await browser.newPage();
  const requests = [], errors = [];
  page.on("request", (request) => requests.push(request.url()));
  page.on("console", (message) => { if (message.type() === "error") errors.push(message.text()); });
  page.on("pageerror", (error) => errors.push(String(error)));
  await page.goto(url);
  let unlock = "";
  if (phrase) {
    await page.type("#unlock-phrase", phrase);
    await page.click("#unlock-button");
    await page.waitForSelector("body:not([data-unlock=locked]):not([data-unlock=working])", { timeout: 180_000 });
    unlock = await page.evaluate(() => document.body.dataset.unlock);
  }
  await page.waitForSelector("body[data-viewer]:not([data-viewer=loading])", { timeout: 180_000 });
  await new Promise((resolve) => setTimeout(resolve, 1000));  // one more frame after `ready`
  const canvas = await page.$("#viewer-canvas");
  await canvas.screenshot({ path: canvasPng });
  if (saveAllPath) {
    const base64 = await page.evaluate(async () => {
      const link = document.getElementById("save-all");
      link.dispatchEvent(new MouseEvent("click", { cancelable: true }));  // the page makes the blob on the click
      const bytes = new Uint8Array(await (await fetch(link.href)).arrayBuffer());
      let text = "";
      for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
      return btoa(text);
    });
    fs.writeFileSync(saveAllPath, Buffer.from(base64, "base64"));
  }
  const facts = await page.evaluate(() => ({
    viewer: document.body.dataset.viewer, secure: window.isSecureContext, subtle: Boolean(window.crypto?.subtle),
    files: document.querySelectorAll("#files a").length,
  }));
  console.log(JSON.stringify({ version: await browser.version(), unlock, ...facts, requests, errors }));
} finally {
  await browser.close();
}
