// Schema checks for tests/deploy/validate.py, run with Node.js from the npm
// tools scripts/setup.sh installs (tests/deploy/package.json):
//
//   node check.js k8s NODE_MODULES < objects.json
//     objects.json: [{"where": "file [Kind name]", "obj": {...}}, ...]
//     Each object is checked twice against the Kubernetes API types of
//     kubernetes-models: by its JSON-schema validator (types, formats,
//     required fields) and by the TypeScript compiler against the same
//     types, whose excess-property check rejects unknown or misspelt fields
//     at any depth and whose literal types reject unknown enum values.
//   node check.js dockerfile NODE_MODULES FILE
//     Lints a Dockerfile with dockerfile-utils (unknown instructions and
//     flags, bad syntax).
//
// Prints one line per problem and exits 1 if there was any, 0 otherwise.
"use strict";

const fs = require("fs");
const path = require("path");

// Serialize v as indented JSON and remember which JSON path each line holds,
// so that a TypeScript error's line can be named by its path.
function toJsonLines(v) {
  const lines = [];
  const paths = [];
  function emit(text, p) {
    lines.push(text);
    paths.push(p);
  }
  function walk(val, p, indent, prefix, suffix) {
    const pad = "  ".repeat(indent);
    if (Array.isArray(val) && val.length > 0) {
      emit(pad + prefix + "[", p);
      val.forEach((x, i) => walk(x, `${p}[${i}]`, indent + 1, "", i < val.length - 1 ? "," : ""));
      emit(pad + "]" + suffix, p);
    } else if (val && typeof val === "object" && !Array.isArray(val) && Object.keys(val).length > 0) {
      const keys = Object.keys(val);
      emit(pad + prefix + "{", p);
      keys.forEach((k, i) => {
        const kp = p ? `${p}.${k}` : k;
        walk(val[k], kp, indent + 1, JSON.stringify(k) + ": ", i < keys.length - 1 ? "," : "");
      });
      emit(pad + "}" + suffix, p);
    } else {
      emit(pad + prefix + JSON.stringify(val) + suffix, p);
    }
  }
  walk(v, "", 0, "", "");
  return { text: lines.join("\n"), paths };
}

// "apps/v1" + "DaemonSet" -> "kubernetes-models/apps/v1/DaemonSet"
function modelPath(obj) {
  if (typeof obj.apiVersion !== "string" || typeof obj.kind !== "string")
    return null;
  return `kubernetes-models/${obj.apiVersion}/${obj.kind}`;
}

function runtimeCheck(nodeModules, items, problems) {
  for (const { where, obj } of items) {
    const mod = modelPath(obj);
    let Model;
    try {
      Model = require(path.join(nodeModules, mod))[obj.kind];
    } catch (e) {
      problems.push(`${where}: no Kubernetes type for apiVersion ${obj.apiVersion} kind ${obj.kind}`);
      continue;
    }
    try {
      new Model(obj).validate();
    } catch (e) {
      for (const line of String(e.message).split("\n"))
        if (line.trim())
          problems.push(`${where}: schema: ${line.trim()}`);
    }
  }
}

function typeCheck(nodeModules, items, problems) {
  const ts = require(path.join(nodeModules, "typescript"));
  // Inside the npm folder, so that "kubernetes-models/..." resolves.
  const dir = fs.mkdtempSync(path.join(path.dirname(nodeModules), ".typecheck-"));
  const files = [];
  const byFile = new Map();
  try {
    items.forEach(({ where, obj }, i) => {
      const mod = modelPath(obj);
      if (!mod || !fs.existsSync(path.join(nodeModules, mod + ".d.ts")))
        return; // runtimeCheck has reported it
      const { text, paths } = toJsonLines(obj);
      const header = `import type { I${obj.kind} } from "${mod}";\nconst doc: I${obj.kind} =\n`;
      const file = path.join(dir, `doc${i}.ts`);
      fs.writeFileSync(file, header + text + ";\nexport default doc;\n");
      files.push(file);
      byFile.set(file, { where, paths, offset: 2 });
    });
    const program = ts.createProgram(files, {
      strict: true, noEmit: true, skipLibCheck: true, types: [],
      target: ts.ScriptTarget.ES2020, module: ts.ModuleKind.CommonJS,
      moduleResolution: ts.ModuleResolutionKind.Node10,
    });
    for (const d of ts.getPreEmitDiagnostics(program)) {
      const msg = ts.flattenDiagnosticMessageText(d.messageText, " ");
      const info = d.file && byFile.get(path.resolve(d.file.fileName));
      if (!info) {
        problems.push(`typescript: ${msg}`);
        continue;
      }
      const line = d.file.getLineAndCharacterOfPosition(d.start).line - info.offset;
      const at = info.paths[line] !== undefined ? info.paths[line] || "(document)" : "?";
      problems.push(`${info.where}: ${at}: ${msg}`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function k8s(nodeModules) {
  const items = JSON.parse(fs.readFileSync(0, "utf8"));
  const problems = [];
  runtimeCheck(nodeModules, items, problems);
  typeCheck(nodeModules, items, problems);
  for (const p of problems)
    console.log(p);
  console.log(`checked ${items.length} objects: ${problems.length} problems`);
  return problems.length ? 1 : 0;
}

function dockerfile(nodeModules, file) {
  const { validate } = require(path.join(nodeModules, "dockerfile-utils"));
  const content = fs.readFileSync(file, "utf8");
  const diags = validate(content);
  for (const d of diags)
    console.log(`${file}:${d.range.start.line + 1}: ${d.message}`);
  return diags.length ? 1 : 0;
}

function main(argv) {
  const [cmd, nodeModules, file] = argv;
  if (cmd === "k8s" && nodeModules)
    return k8s(path.resolve(nodeModules));
  if (cmd === "dockerfile" && nodeModules && file)
    return dockerfile(path.resolve(nodeModules), file);
  console.error("usage: check.js k8s NODE_MODULES < objects.json | check.js dockerfile NODE_MODULES FILE");
  return 2;
}

process.exitCode = main(process.argv.slice(2));
