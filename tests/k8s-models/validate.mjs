// Every Kubernetes object in Serin's docs, validated against the published
// models of its API: Argo Rollouts (@kubernetes-models/argo-rollouts), the
// Gateway API (@kubernetes-models/gateway-api) and core Kubernetes
// (kubernetes-models). Each model is generated from its project's own types
// and checks types and required fields (not, for instance, Argo's rule that
// `count > 1` needs an `interval`).
//
// It also checks every object Serin's Gateway API engine wrote in the tests
// (`target/k8s-objects/*.json`, kept by crates/serin-server/tests/it/gateway.rs);
// with CI=true there must be some.
//
// Flagger publishes no such model on npm, so a Flagger `Canary` is checked
// here for the fields Serin relies on and says so. An object of any other API
// fails: add a model for it.
//
//   cd tests/k8s-models && npm ci && node validate.mjs [FILE.md ...]

import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/// The model module of an object, or null when none is published.
function modelPath(apiVersion, kind) {
  if (apiVersion.startsWith("argoproj.io/"))
    return `@kubernetes-models/argo-rollouts/${apiVersion}/${kind}`;
  if (apiVersion.startsWith("gateway.networking.k8s.io/"))
    return `@kubernetes-models/gateway-api/${apiVersion}/${kind}`;
  if (!apiVersion.includes(".") || apiVersion.endsWith(".k8s.io/v1"))
    return `kubernetes-models/${apiVersion}/${kind}`;
  return null;
}

async function validateWithModel(obj) {
  const path = modelPath(obj.apiVersion, obj.kind);
  if (!path) return false;
  const mod = await import(path);
  const Model = mod[obj.kind] ?? mod.default;
  new Model(obj).validate();
  return true;
}

const WEBHOOK_TYPES = new Set(["", "confirm-rollout", "pre-rollout", "rollout",
  "confirm-traffic-increase", "confirm-promotion", "post-rollout", "event", "rollback"]);

/// Flagger's `Canary`: the fields Serin relies on, by the rules of its CRD.
function checkFlaggerCanary(obj) {
  const fail = (why) => { throw new Error(`flagger.app Canary ${obj.metadata?.name}: ${why}`); };
  const s = obj.spec ?? fail("no spec");
  const t = s.targetRef ?? fail("spec.targetRef is required");
  for (const f of ["apiVersion", "kind", "name"]) if (typeof t[f] !== "string") fail(`spec.targetRef.${f} must be a string`);
  const a = s.analysis ?? fail("spec.analysis is required");
  if (!/^[0-9]+(m|s)/.test(a.interval ?? "")) fail("spec.analysis.interval must match ^[0-9]+(m|s)");
  if (!Number.isInteger(a.threshold)) fail("spec.analysis.threshold must be an integer");
  for (const [i, w] of (a.webhooks ?? []).entries()) {
    if (typeof w.name !== "string" || typeof w.url !== "string") fail(`webhooks[${i}] needs name and url`);
    new URL(w.url);
    if (!WEBHOOK_TYPES.has(w.type ?? "")) fail(`webhooks[${i}].type ${w.type} is not one of Flagger's`);
    if (w.timeout !== undefined && !/^[0-9]+(m|s)/.test(w.timeout)) fail(`webhooks[${i}].timeout must match ^[0-9]+(m|s)`);
    for (const [k, v] of Object.entries(w.metadata ?? {})) if (typeof v !== "string") fail(`webhooks[${i}].metadata.${k} must be a string`);
  }
}

/// The YAML blocks of a Markdown file.
function yamlBlocks(text) {
  const out = [];
  const re = /^```ya?ml\n([\s\S]*?)^```/gm;
  for (let m; (m = re.exec(text)); ) out.push(m[1]);
  return out;
}

const files = process.argv.slice(2).length
  ? process.argv.slice(2)
  : readdirSync(join(root, "docs")).filter((f) => f.endsWith(".md")).map((f) => join(root, "docs", f));

let checked = 0, failed = 0;
const kinds = new Map();
for (const file of files) {
  for (const block of yamlBlocks(readFileSync(file, "utf8"))) {
    for (const doc of parseAllDocuments(block)) {
      const obj = doc.toJS();
      if (!obj || typeof obj !== "object" || !obj.apiVersion || !obj.kind) continue;
      const name = `${file.replace(root + "/", "")}: ${obj.apiVersion} ${obj.kind} ${obj.metadata?.name ?? ""}`;
      try {
        if (obj.apiVersion.startsWith("flagger.app/")) {
          checkFlaggerCanary(obj);
          console.log(`ok (Serin's fields; no published model) ${name}`);
        } else if (await validateWithModel(obj)) {
          console.log(`ok ${name}`);
        } else {
          throw new Error("no published model for this API: add one to tests/k8s-models");
        }
        checked++;
        kinds.set(obj.kind, (kinds.get(obj.kind) ?? 0) + 1);
      } catch (e) {
        failed++;
        console.error(`INVALID ${name}: ${e.message}`);
      }
    }
  }
}

// What Serin's engines wrote to the (stand-in) API server in the tests.
const written = join(root, "target", "k8s-objects");
let writtenCount = 0;
if (existsSync(written)) {
  for (const f of readdirSync(written).filter((f) => f.endsWith(".json"))) {
    const obj = JSON.parse(readFileSync(join(written, f), "utf8"));
    const name = `target/k8s-objects/${f}: ${obj.apiVersion} ${obj.kind} ${obj.metadata?.name ?? ""}`;
    try {
      if (!(await validateWithModel(obj))) throw new Error("no published model for this API");
      console.log(`ok (written by Serin) ${name}`);
      checked++;
      writtenCount++;
      kinds.set(`${obj.kind} written`, (kinds.get(`${obj.kind} written`) ?? 0) + 1);
    } catch (e) {
      failed++;
      console.error(`INVALID ${name}: ${e.message}`);
    }
  }
}
if (process.env.CI === "true" && writtenCount === 0) {
  failed++;
  console.error("no object written by Serin's engines in target/k8s-objects: run `cargo test -p serin-server --test it gateway` first");
}

// The models must be able to refuse: an AnalysisTemplate without its URL and
// a route with a negative weight are invalid.
for (const bad of [
  { apiVersion: "argoproj.io/v1alpha1", kind: "AnalysisTemplate", metadata: { name: "bad" },
    spec: { metrics: [{ name: "m", provider: { web: {} } }] } },
  { apiVersion: "gateway.networking.k8s.io/v1", kind: "HTTPRoute", metadata: { name: "bad" },
    spec: { rules: [{ backendRefs: [{ name: "a", port: 80, weight: -1 }] }] } },
]) {
  let refused = false;
  try { await validateWithModel(bad); } catch { refused = true; }
  if (!refused) { failed++; console.error(`the ${bad.kind} model accepted an invalid object`); }
}

console.log(`${checked} object(s) valid (${[...kinds].map(([k, n]) => `${n} ${k}`).join(", ")}), ${failed} invalid`);
if (failed > 0 || checked === 0) process.exit(1);
