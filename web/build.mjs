// Builds agent/web/app.js (the page script, NiiVue bundled in) from web/src with esbuild. The banner
// records the SHA-256 of the inputs (src/*.js, package-lock.json, this file) so tests/test_web_bundle.py
// can tell, without node, whether the committed bundle was built from the committed sources.
import { createHash } from "node:crypto";
import { readFileSync, readdirSync } from "node:fs";
import { build } from "esbuild";

const inputs = [...readdirSync("src").filter((f) => f.endsWith(".js")).sort().map((f) => "src/" + f),
  "package-lock.json", "build.mjs"];
const h = createHash("sha256");
for (const f of inputs) {
  h.update(f + "\n");
  h.update(readFileSync(f));
}
const lock = JSON.parse(readFileSync("package-lock.json", "utf8"));
const nv = lock.packages["node_modules/@niivue/niivue"].version;
await build({
  entryPoints: ["src/app.js"], bundle: true, minify: true, format: "iife", target: "es2020", legalComments: "none",
  outfile: "../agent/web/app.js", logLevel: "warning",
  banner: { js: `/* radagent web page, built by web/build.mjs (esbuild) from web/src; bundles @niivue/niivue ${nv} ` +
    `(BSD-2-Clause) and its dependencies (web/package-lock.json). inputs-sha256: ${h.digest("hex")} */` },
});
