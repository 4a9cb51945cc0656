// Validates AsyncAPI documents with the AsyncAPI project's own parser (@asyncapi/parser): the
// schema of the spec version, references, and the parser's built-in rules. Every diagnostic is
// printed; an error, or a warning, fails (exit 1), so that `make lint` stops on either.
//   node validate-asyncapi.mjs <document.yaml>...
import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { Parser, fromFile } from "@asyncapi/parser";

const SEVERITY = ["error", "warning", "info", "hint"];
const FAILING = new Set(["error", "warning"]);

const parser = new Parser();
let failed = false;
const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: node validate-asyncapi.mjs <document.yaml>...");
  process.exit(2);
}
for (const file of files) {
  await readFile(file); // a missing file fails here, with its name, not inside the parser
  const { document, diagnostics } = await fromFile(parser, resolve(file)).parse();
  let invalid = document === undefined;
  for (const d of diagnostics) {
    const severity = SEVERITY[d.severity] ?? String(d.severity);
    const where = d.range ? `${d.range.start.line + 1}:${d.range.start.character + 1}` : "-";
    console.log(`${file}:${where} ${severity} ${d.code} ${d.message} (${d.path.join(".")})`);
    if (FAILING.has(severity)) invalid = true;
  }
  if (invalid) failed = true;
  else console.log(`${file}: valid AsyncAPI ${document.version()}`);
}
process.exit(failed ? 1 : 0);
