#!/usr/bin/env node
// Complete a prompt with nanochat-next's ONNX export, from the command line (onnxruntime-node).
//   node node/generate.mjs EXPORT_DIR "prompt" [--max-new-tokens N] [--temperature T] [--top-k K] [--seed S] [--json]
// --json prints {"prompt_ids": [...], "tokens": [...], "text": "...", "timing": {...}} instead of streaming the text
// (timing: load_ms, first_token_ms = prefill + first pick, decode_tok_s = the tokens after the first / their time).
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import * as ort from "onnxruntime-node";
import { encodePrompt, generate, loadModel } from "../web/generate.js";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    "max-new-tokens": { type: "string", default: "64" },
    temperature: { type: "string", default: "0" },
    "top-k": { type: "string", default: "0" },
    seed: { type: "string", default: "0" },
    json: { type: "boolean", default: false },
  },
});
if (positionals.length !== 2) {
  console.error("usage: node node/generate.mjs EXPORT_DIR PROMPT [--max-new-tokens N] [--temperature T] [--json]");
  process.exit(2);
}
const [dir, prompt] = positionals;
try {
  const started = performance.now();
  const model = await loadModel({
    ort,
    readJson: async (name) => JSON.parse(await readFile(join(dir, name), "utf8")),
    readBytes: async (name) => new Uint8Array(await readFile(join(dir, name))),
  });
  const ids = encodePrompt(model, prompt);
  const options = {
    maxNewTokens: Number(values["max-new-tokens"]),
    temperature: Number(values.temperature),
    topK: Number(values["top-k"]),
    seed: Number(values.seed),
  };
  const tokens = [];
  let shown = "";
  const loaded = performance.now();
  let first = null;
  for await (const token of generate(model, ids, options)) {
    first ??= performance.now();
    tokens.push(token);
    const text = model.tokenizer.decode(tokens);
    if (!values.json && !text.endsWith("\uFFFD")) {
      process.stdout.write(text.slice(shown.length));
      shown = text;
    }
  }
  const text = model.tokenizer.decode(tokens);
  const end = performance.now();
  const timing = { load_ms: loaded - started, first_token_ms: first === null ? null : first - loaded,
                   decode_tok_s: tokens.length > 1 ? (tokens.length - 1) / ((end - first) / 1000) : null };
  if (values.json) console.log(JSON.stringify({ prompt_ids: ids, tokens, text, timing }));
  else process.stdout.write(text.slice(shown.length) + "\n");
} catch (err) {
  console.error(`error: ${err.message}`);
  process.exit(1);
}
