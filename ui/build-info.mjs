// Records what the committed dist/ was built from: a hash of every source file of the UI project
// (all of ui/ but node_modules). tests/ui/test_build_info.py computes the same hash from the
// current sources and fails when they differ, so a change without `make ui` cannot land unseen.
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL(".", import.meta.url));
const out = join(root, "..", "src", "waypost", "ui", "dist", "build-info.json");

function files(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    if (entry.name === "node_modules" || entry.name.startsWith(".")) return [];
    const path = join(dir, entry.name);
    return entry.isDirectory() ? files(path) : [path];
  });
}

const paths = files(root)
  .map((path) => relative(root, path).split(sep).join("/"))
  .sort();
const hash = createHash("sha256");
for (const path of paths) {
  const digest = createHash("sha256").update(readFileSync(join(root, path))).digest("hex");
  hash.update(`${path}\0${digest}\n`);
}
writeFileSync(out, JSON.stringify({ sources_sha256: hash.digest("hex"), files: paths.length }, null, 2) + "\n");
